package storetest

import (
	"context"
	"idleguard/server/pos"
	"idleguard/server/protocol"
	"reflect"
	"testing"
)

func testSessionEndLog(t *testing.T, c contract) {
	ctx := context.Background()

	t.Run("WhatIsLogged", func(t *testing.T) {
		db := c.open(t)
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
		db := c.open(t)
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
		db := c.open(t)
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

func testRevokeOrphanSessions(t *testing.T, c contract) {
	ctx := context.Background()
	db := c.open(t)
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
