package sqlite

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"idleguard/server/pos"
	"idleguard/server/protocol"
)

// mustCreateSessions creates live sessions of a user, all at t0.
func mustCreateSessions(tb testing.TB, db *DB, u pos.User, ids ...string) {
	tb.Helper()
	for _, id := range ids {
		mustNoErr(tb, db.CreateSession(context.Background(),
			pos.Session{Domain: u.Domain, ID: id, UserID: u.ID, Username: u.Name, Created: t0, LastActivity: t0}))
	}
}

// mustSessionEnds reads the whole session end log after seq.
func mustSessionEnds(tb testing.TB, db *DB, after int64) []pos.SessionEnd {
	tb.Helper()
	ends, err := db.SessionEnds(context.Background(), after, 1000)
	mustNoErr(tb, err)
	return ends
}

// endIDs is each entry's session ID and reason, "id:reason".
func endIDs(ends []pos.SessionEnd) []string {
	var got []string
	for _, e := range ends {
		got = append(got, e.SessionID+":"+e.Reason.String())
	}
	return got
}

// wantEnded checks that a session ended at at(ms) for reason.
func wantEnded(tb testing.TB, db *DB, id string, ms int64, reason protocol.Reason) {
	tb.Helper()
	s, err := db.Session(context.Background(), id)
	mustNoErr(tb, err)
	if !s.Revoked || !s.RevokedAt.Equal(at(ms)) || s.RevokedReason != reason {
		tb.Errorf("session %s: got revoked %v at %v for %q, want revoked at t0+%dms for %q",
			id, s.Revoked, s.RevokedAt, s.RevokedReason, ms, reason)
	}
}

func wantLive(tb testing.TB, db *DB, id string) {
	tb.Helper()
	s, err := db.Session(context.Background(), id)
	mustNoErr(tb, err)
	if s.Revoked {
		tb.Errorf("session %s: got revoked at %v for %q, want live", id, s.RevokedAt, s.RevokedReason)
	}
}

func TestUserChangesEndSessions(t *testing.T) {
	ctx := context.Background()

	t.Run("UpdateUser", func(t *testing.T) {
		db := MustOpenDB(t)
		admin, clerk := seed(t, db)
		mustCreateSessions(t, db, admin, "a2", "a1", "a3")
		mustCreateSessions(t, db, clerk, "c1")
		mustNoErr(t, db.RevokeSession(ctx, "a3", at(5), protocol.ReasonSignedOut))
		before := mustSessionEnds(t, db, 0)

		ended, err := db.UpdateUser(ctx, pos.User{Domain: pos.DefaultDomain, Name: "admin", Group: "cashiers", PasswordHash: []byte("new")}, at(50))
		mustNoErr(t, err)
		if want := []string{"a1", "a2"}; !reflect.DeepEqual(ended, want) {
			t.Errorf("UpdateUser ended: got %v, want %v", ended, want)
		}
		wantEnded(t, db, "a1", 50, protocol.ReasonRevoked)
		wantEnded(t, db, "a2", 50, protocol.ReasonRevoked)
		wantEnded(t, db, "a3", 5, protocol.ReasonSignedOut)
		wantLive(t, db, "c1")
		got := endIDs(mustSessionEnds(t, db, before[len(before)-1].Seq))
		if want := []string{"a1:revoked", "a2:revoked"}; !reflect.DeepEqual(got, want) {
			t.Errorf("session end log after UpdateUser: got %v, want %v", got, want)
		}

		// No live session left: the update succeeds and ends nothing.
		ended, err = db.UpdateUser(ctx, pos.User{Domain: pos.DefaultDomain, Name: "admin", Group: "developers"}, at(60))
		mustNoErr(t, err)
		if len(ended) != 0 {
			t.Errorf("second UpdateUser ended: got %v, want none", ended)
		}
	})

	t.Run("UpdateUserFailsChangesNothing", func(t *testing.T) {
		db := MustOpenDB(t)
		admin, _ := seed(t, db)
		mustCreateSessions(t, db, admin, "a1")
		for _, u := range []pos.User{{Domain: pos.DefaultDomain, Name: "admin", Group: "ghosts"}, {Domain: pos.DefaultDomain, Name: "nobody", Group: "cashiers"}} {
			ended, err := db.UpdateUser(ctx, u, at(50))
			wantCode(t, err, pos.ENOTFOUND)
			if ended != nil {
				t.Errorf("UpdateUser(%+v) ended: got %v, want nil", u, ended)
			}
		}
		wantLive(t, db, "a1")
		if ends := mustSessionEnds(t, db, 0); len(ends) != 0 {
			t.Errorf("session end log: got %+v, want empty", ends)
		}
		got, err := db.UserByName(ctx, pos.DefaultDomain, "admin")
		mustNoErr(t, err)
		if got.Group != "developers" {
			t.Errorf("admin's group: got %q, want developers", got.Group)
		}
	})

	t.Run("DeleteUser", func(t *testing.T) {
		db := MustOpenDB(t)
		admin, clerk := seed(t, db)
		mustCreateSessions(t, db, admin, "a1")
		mustCreateSessions(t, db, clerk, "c1", "c2")
		ended, err := db.DeleteUser(ctx, pos.DefaultDomain, "clerk", at(70))
		mustNoErr(t, err)
		if want := []string{"c1", "c2"}; !reflect.DeepEqual(ended, want) {
			t.Errorf("DeleteUser ended: got %v, want %v", ended, want)
		}
		wantEnded(t, db, "c1", 70, protocol.ReasonRevoked)
		wantEnded(t, db, "c2", 70, protocol.ReasonRevoked)
		wantLive(t, db, "a1")
		if got, want := endIDs(mustSessionEnds(t, db, 0)), []string{"c1:revoked", "c2:revoked"}; !reflect.DeepEqual(got, want) {
			t.Errorf("session end log: got %v, want %v", got, want)
		}
		ended, err = db.DeleteUser(ctx, pos.DefaultDomain, "clerk", at(80))
		wantCode(t, err, pos.ENOTFOUND)
		if ended != nil {
			t.Errorf("second DeleteUser ended: got %v, want nil", ended)
		}
	})

	// The bug migration 2 fixes, seen from the new code: the next user
	// never gets a deleted user's id, so never its sessions.
	t.Run("DeletedIDNotReused", func(t *testing.T) {
		db := MustOpenDB(t)
		_, clerk := seed(t, db) // clerk is the newest
		mustCreateSessions(t, db, clerk, "c1")
		_, err := db.DeleteUser(ctx, pos.DefaultDomain, "clerk", at(1))
		mustNoErr(t, err)
		next, err := db.AddUser(ctx, pos.User{Domain: pos.DefaultDomain, Name: "next", Group: "cashiers"})
		mustNoErr(t, err)
		if next.ID <= clerk.ID {
			t.Errorf("next user's ID: got %d, want above the deleted clerk's %d", next.ID, clerk.ID)
		}
		ended, err := db.RevokeUserSessions(ctx, next.ID, at(2), protocol.ReasonRevoked)
		mustNoErr(t, err)
		if len(ended) != 0 {
			t.Errorf("the next user's sessions: got %v, want none", ended)
		}
	})
}

func TestSessionEndLog(t *testing.T) {
	ctx := context.Background()

	t.Run("WhatIsLogged", func(t *testing.T) {
		db := MustOpenDB(t)
		admin, clerk := seed(t, db)
		mustCreateSessions(t, db, admin, "a1", "a2", "idle1")
		mustCreateSessions(t, db, clerk, "c1", "c2")
		last, err := db.LastSessionEnd(ctx)
		mustNoErr(t, err)
		if last != 0 {
			t.Errorf("LastSessionEnd of an empty log: got %d, want 0", last)
		}

		mustNoErr(t, db.RevokeSession(ctx, "a1", at(1), protocol.ReasonSignedOut))
		mustNoErr(t, db.RevokeSession(ctx, "a1", at(2), protocol.ReasonRevoked)) // already ended: not logged again
		// The idle clock's batch is not logged: the server that wrote it knows.
		mustNoErr(t, db.RevokeSessions(ctx, []pos.Revocation{{SessionID: "idle1", At: at(3), Reason: protocol.ReasonIdle}}))
		ended, err := db.RevokeUserSessions(ctx, clerk.ID, at(4), protocol.ReasonRevoked)
		mustNoErr(t, err)
		if want := []string{"c1", "c2"}; !reflect.DeepEqual(ended, want) {
			t.Errorf("RevokeUserSessions: got %v, want %v", ended, want)
		}
		wantEnded(t, db, "c1", 4, protocol.ReasonRevoked)
		wantLive(t, db, "a2")

		ends := mustSessionEnds(t, db, 0)
		if got, want := endIDs(ends), []string{"a1:signed_out", "c1:revoked", "c2:revoked"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("session end log: got %v, want %v", got, want)
		}
		for i := 1; i < len(ends); i++ {
			if ends[i].Seq <= ends[i-1].Seq {
				t.Errorf("seqs: got %d after %d, want increasing", ends[i].Seq, ends[i-1].Seq)
			}
		}
		last, err = db.LastSessionEnd(ctx)
		mustNoErr(t, err)
		if last != ends[2].Seq {
			t.Errorf("LastSessionEnd: got %d, want %d", last, ends[2].Seq)
		}
	})

	t.Run("Paging", func(t *testing.T) {
		db := MustOpenDB(t)
		admin, _ := seed(t, db)
		ids := []string{"s1", "s2", "s3", "s4", "s5"}
		mustCreateSessions(t, db, admin, ids...)
		for i, id := range ids {
			mustNoErr(t, db.RevokeSession(ctx, id, at(int64(i)), protocol.ReasonSignedOut))
		}
		var got []string
		var after int64
		for {
			page, err := db.SessionEnds(ctx, after, 2)
			mustNoErr(t, err)
			if len(page) > 2 {
				t.Fatalf("SessionEnds(limit 2): got %d entries", len(page))
			}
			if len(page) == 0 {
				break
			}
			for _, e := range page {
				got = append(got, e.SessionID)
			}
			after = page[len(page)-1].Seq
		}
		if !reflect.DeepEqual(got, ids) {
			t.Errorf("pages: got %v, want %v", got, ids)
		}
		if page, err := db.SessionEnds(ctx, 0, 0); err != nil || len(page) != 0 {
			t.Errorf("SessionEnds(limit 0): got %v, %v, want none", page, err)
		}
	})

	// A purge must not let a seq come back: a server positioned after the
	// last one it read would skip the next entry.
	t.Run("SeqNotReusedAfterPurge", func(t *testing.T) {
		db := MustOpenDB(t)
		admin, _ := seed(t, db)
		mustCreateSessions(t, db, admin, "old", "new")
		mustNoErr(t, db.RevokeSession(ctx, "old", at(1), protocol.ReasonSignedOut))
		reader, err := db.LastSessionEnd(ctx)
		mustNoErr(t, err)
		_, err = db.PurgeSessions(ctx, at(10))
		mustNoErr(t, err)
		if ends := mustSessionEnds(t, db, 0); len(ends) != 0 {
			t.Fatalf("log after purge: got %+v, want empty", ends)
		}
		mustNoErr(t, db.RevokeSession(ctx, "new", at(20), protocol.ReasonSignedOut))
		if got := endIDs(mustSessionEnds(t, db, reader)); !reflect.DeepEqual(got, []string{"new:signed_out"}) {
			t.Errorf("entries after the reader's seq %d: got %v, want [new:signed_out]", reader, got)
		}
	})
}

func TestRevokeOrphanSessions(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	admin, clerk := seed(t, db)
	mustCreateSessions(t, db, admin, "admin-live")
	// What older code left behind: a session of a user since deleted, one
	// whose id passed to another user, and an orphan already ended.
	mustCreateSessions(t, db, pos.User{ID: 99, Domain: pos.DefaultDomain, Name: "ghost"}, "ghost-live", "ghost-ended")
	mustCreateSessions(t, db, pos.User{ID: clerk.ID, Domain: pos.DefaultDomain, Name: "oldclerk"}, "inherited")
	mustNoErr(t, db.RevokeSessions(ctx, []pos.Revocation{{SessionID: "ghost-ended", At: at(1), Reason: protocol.ReasonIdle}}))
	// A session of one domain naming another's user, id and name alike:
	// its token must not authenticate as that user.
	mustAddDomain(t, db, "acme")
	acmeAdmin, _ := seedDomain(t, db, "acme")
	mustCreateSessions(t, db, acmeAdmin, "acme-live")
	mustCreateSessions(t, db, pos.User{ID: admin.ID, Domain: "acme", Name: admin.Name}, "cross-domain")

	n, err := db.RevokeOrphanSessions(ctx, at(10))
	mustNoErr(t, err)
	if n != 3 {
		t.Errorf("RevokeOrphanSessions: got %d, want 3", n)
	}
	wantEnded(t, db, "ghost-live", 10, protocol.ReasonRevoked)
	wantEnded(t, db, "inherited", 10, protocol.ReasonRevoked)
	wantEnded(t, db, "cross-domain", 10, protocol.ReasonRevoked)
	wantEnded(t, db, "ghost-ended", 1, protocol.ReasonIdle)
	wantLive(t, db, "admin-live")
	wantLive(t, db, "acme-live")
	if got, want := endIDs(mustSessionEnds(t, db, 0)), []string{"cross-domain:revoked", "ghost-live:revoked", "inherited:revoked"}; !reflect.DeepEqual(got, want) {
		t.Errorf("session end log: got %v, want %v", got, want)
	}

	n, err = db.RevokeOrphanSessions(ctx, at(20))
	mustNoErr(t, err)
	if n != 0 {
		t.Errorf("second RevokeOrphanSessions: got %d, want 0", n)
	}
}

// queryPlan is SQLite's plan for query, its steps joined with "; ".
func queryPlan(tb testing.TB, db *DB, query string, args ...any) string {
	tb.Helper()
	rows, err := db.w.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+query, args...)
	mustNoErr(tb, err)
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		mustNoErr(tb, rows.Scan(&id, &parent, &unused, &detail))
		plan = append(plan, detail)
	}
	mustNoErr(tb, rows.Err())
	return strings.Join(plan, "; ")
}

// TestUserSessionsUseIndex: ending a user's or a domain's sessions must
// not read every session, as ended ones pile up by the hundred thousand
// until the purge; nor reading one domain's change record every domain's.
func TestUserSessionsUseIndex(t *testing.T) {
	db := MustOpenDB(t)
	for _, tc := range []struct{ query, index string }{
		{endSessionsSQL(`user_id = ?`), "sessions_live_by_user"},
		{endSessionsSQL(`domain = ?`), "sessions_live_by_domain"},
	} {
		if got := queryPlan(t, db, tc.query, millis(t0), "revoked", 1); !strings.Contains(got, "SEARCH sessions USING") || !strings.Contains(got, "INDEX "+tc.index) {
			t.Errorf("query plan of %s: got %q, want it to use %s", tc.query, got, tc.index)
		}
	}
	got := queryPlan(t, db, `SELECT at, by, old, new FROM settings_changes WHERE domain = ? ORDER BY id DESC LIMIT ?`, "d", 10)
	if !strings.Contains(got, "INDEX settings_changes_by_domain") || strings.Contains(got, "TEMP B-TREE") {
		t.Errorf("query plan of SettingsChanges: got %q, want settings_changes_by_domain and no sort", got)
	}
}
