package storetest

import (
	"context"
	"idleguard/server/pos"
	"idleguard/server/protocol"
	"reflect"
	"testing"
	"time"
)

func testSessions(t *testing.T, c contract) {
	ctx := context.Background()
	newSession := func(id string, created int64) pos.Session {
		return pos.Session{Domain: pos.DefaultDomain, ID: id, UserID: 1, Username: "admin", Created: at(created), LastActivity: at(created)}
	}

	t.Run("CreateAndGet", func(t *testing.T) {
		db := c.open(t)
		want := newSession("s1", 0)
		mustNoErr(t, db.CreateSession(ctx, want))
		got, err := db.Session(ctx, "s1")
		mustNoErr(t, err)
		if got.ID != want.ID || got.UserID != want.UserID || got.Username != want.Username ||
			!got.Created.Equal(want.Created) || !got.LastActivity.Equal(want.LastActivity) ||
			got.Revoked || !got.RevokedAt.IsZero() || got.RevokedReason != protocol.ReasonNone {
			t.Errorf("Session: got %+v, want %+v", got, want)
		}
		wantCode(t, db.CreateSession(ctx, want), pos.ECONFLICT)
		_, err = db.Session(ctx, "nope")
		wantCode(t, err, pos.ENOTFOUND)
	})

	t.Run("LiveSessions", func(t *testing.T) {
		db := c.open(t)
		for i, id := range []string{"a", "b", "c"} {
			mustNoErr(t, db.CreateSession(ctx, newSession(id, int64(i))))
		}
		mustNoErr(t, db.RevokeSession(ctx, "b", at(10), protocol.ReasonSignedOut))
		live, err := db.LiveSessions(ctx)
		mustNoErr(t, err)
		var got []string
		for _, s := range live {
			got = append(got, s.ID)
		}
		if want := []string{"a", "c"}; !reflect.DeepEqual(got, want) {
			t.Errorf("LiveSessions: got %v, want %v", got, want)
		}
	})

	t.Run("SaveActivity", func(t *testing.T) {
		db := c.open(t)
		mustNoErr(t, db.CreateSession(ctx, newSession("a", 0)))
		mustNoErr(t, db.CreateSession(ctx, newSession("b", 0)))
		mustNoErr(t, db.CreateSession(ctx, newSession("gone", 0)))
		mustNoErr(t, db.RevokeSession(ctx, "gone", at(5), protocol.ReasonIdle))
		mustNoErr(t, db.SaveActivity(ctx, []pos.Activity{
			{SessionID: "a", LastActivity: at(100)},
			{SessionID: "b", LastActivity: at(50)},
			{SessionID: "gone", LastActivity: at(100)},
			{SessionID: "unknown", LastActivity: at(100)},
		}))
		// Older times arrive late: they must not move anything backwards.
		mustNoErr(t, db.SaveActivity(ctx, []pos.Activity{
			{SessionID: "a", LastActivity: at(40)},
			{SessionID: "b", LastActivity: at(70)},
		}))
		mustNoErr(t, db.SaveActivity(ctx, nil))
		for id, want := range map[string]time.Time{"a": at(100), "b": at(70), "gone": at(0)} {
			s, err := db.Session(ctx, id)
			mustNoErr(t, err)
			if !s.LastActivity.Equal(want) {
				t.Errorf("%s LastActivity: got %v, want %v", id, s.LastActivity, want)
			}
		}
	})

	t.Run("RevokeIdempotent", func(t *testing.T) {
		db := c.open(t)
		mustNoErr(t, db.CreateSession(ctx, newSession("s", 0)))
		mustNoErr(t, db.RevokeSession(ctx, "s", at(10), protocol.ReasonIdle))
		mustNoErr(t, db.RevokeSession(ctx, "s", at(20), protocol.ReasonSignedOut))
		got, err := db.Session(ctx, "s")
		mustNoErr(t, err)
		if !got.Revoked || !got.RevokedAt.Equal(at(10)) || got.RevokedReason != protocol.ReasonIdle {
			t.Errorf("after revoking twice: got %+v, want revoked at t0+10ms for idle", got)
		}
		wantCode(t, db.RevokeSession(ctx, "nope", at(10), protocol.ReasonIdle), pos.ENOTFOUND)
	})

	t.Run("CreateRevoked", func(t *testing.T) {
		db := c.open(t)
		s := newSession("r", 0)
		s.Revoked, s.RevokedAt, s.RevokedReason = true, at(3), protocol.ReasonRevoked
		mustNoErr(t, db.CreateSession(ctx, s))
		got, err := db.Session(ctx, "r")
		mustNoErr(t, err)
		if !got.Revoked || !got.RevokedAt.Equal(at(3)) || got.RevokedReason != protocol.ReasonRevoked {
			t.Errorf("Session: got %+v, want %+v", got, s)
		}
	})

	t.Run("Purge", func(t *testing.T) {
		db := c.open(t)
		for _, id := range []string{"old1", "old2", "recent", "live"} {
			mustNoErr(t, db.CreateSession(ctx, newSession(id, 0)))
		}
		mustNoErr(t, db.RevokeSession(ctx, "old1", at(10), protocol.ReasonIdle))
		mustNoErr(t, db.RevokeSession(ctx, "old2", at(19), protocol.ReasonIdle))
		mustNoErr(t, db.RevokeSession(ctx, "recent", at(20), protocol.ReasonIdle))
		n, err := db.PurgeSessions(ctx, at(20))
		mustNoErr(t, err)
		if n != 2 {
			t.Errorf("PurgeSessions: got %d, want 2", n)
		}
		for id, want := range map[string]string{"old1": pos.ENOTFOUND, "old2": pos.ENOTFOUND, "recent": "", "live": ""} {
			_, err := db.Session(ctx, id)
			if got := pos.ErrorCode(err); got != want {
				t.Errorf("Session(%q) code: got %q, want %q", id, got, want)
			}
		}
		n, err = db.PurgeSessions(ctx, at(20))
		mustNoErr(t, err)
		if n != 0 {
			t.Errorf("second PurgeSessions: got %d, want 0", n)
		}
	})
}

func testRevokeSessions(t *testing.T, c contract) {
	ctx := context.Background()
	db := c.open(t)
	seed(t, db)
	for _, id := range []string{"a", "b", "c"} {
		mustNoErr(t, db.CreateSession(ctx, pos.Session{Domain: pos.DefaultDomain, ID: id, UserID: 1, Username: "admin", Created: at(0), LastActivity: at(0)}))
	}
	mustNoErr(t, db.RevokeSession(ctx, "c", at(5), protocol.ReasonSignedOut))
	mustNoErr(t, db.RevokeSessions(ctx, []pos.Revocation{
		{SessionID: "a", At: at(10), Reason: protocol.ReasonIdle},
		{SessionID: "unknown", At: at(10), Reason: protocol.ReasonIdle},
		{SessionID: "c", At: at(10), Reason: protocol.ReasonIdle},
	}))
	mustNoErr(t, db.RevokeSessions(ctx, nil))
	for _, tc := range []struct {
		id      string
		revoked bool
		at      int64
		reason  protocol.Reason
	}{{"a", true, 10, protocol.ReasonIdle}, {"b", false, 0, protocol.ReasonNone}, {"c", true, 5, protocol.ReasonSignedOut}} {
		got, err := db.Session(ctx, tc.id)
		mustNoErr(t, err)
		if got.Revoked != tc.revoked || (tc.revoked && (!got.RevokedAt.Equal(at(tc.at)) || got.RevokedReason != tc.reason)) {
			t.Errorf("session %s: got revoked %v at %v for %q, want %v at t0+%dms for %q",
				tc.id, got.Revoked, got.RevokedAt, got.RevokedReason, tc.revoked, tc.at, tc.reason)
		}
	}
}
