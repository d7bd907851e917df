package sqlite

import (
	"context"
	"testing"

	"idleguard/server/pos"
	"idleguard/server/protocol"
)

func TestRevokeSessions(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
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
