package sqlite

import (
	"context"
	"testing"

	"idleguard/server/pos"
)

func TestRevokeSessions(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	seed(t, db)
	for _, id := range []string{"a", "b", "c"} {
		mustNoErr(t, db.CreateSession(ctx, pos.Session{ID: id, UserID: 1, Username: "admin", Created: at(0), LastActivity: at(0)}))
	}
	mustNoErr(t, db.RevokeSession(ctx, "c", at(5), "signed_out"))
	mustNoErr(t, db.RevokeSessions(ctx, []pos.Revocation{
		{SessionID: "a", At: at(10), Reason: "idle"},
		{SessionID: "unknown", At: at(10), Reason: "idle"},
		{SessionID: "c", At: at(10), Reason: "idle"},
	}))
	mustNoErr(t, db.RevokeSessions(ctx, nil))
	for _, tc := range []struct {
		id      string
		revoked bool
		at      int64
		reason  string
	}{{"a", true, 10, "idle"}, {"b", false, 0, ""}, {"c", true, 5, "signed_out"}} {
		got, err := db.Session(ctx, tc.id)
		mustNoErr(t, err)
		if got.Revoked != tc.revoked || (tc.revoked && (!got.RevokedAt.Equal(at(tc.at)) || got.RevokedReason != tc.reason)) {
			t.Errorf("session %s: got revoked %v at %v for %q, want %v at t0+%dms for %q",
				tc.id, got.Revoked, got.RevokedAt, got.RevokedReason, tc.revoked, tc.at, tc.reason)
		}
	}
}
