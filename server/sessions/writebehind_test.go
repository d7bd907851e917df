package sessions

import (
	"context"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"idleguard/server/pos"
	"idleguard/server/protocol"
)

// Findings 9 and 15: what fails to be written (activity, an idle expiry, a
// sign-out) stays pending and is written once the store recovers; /readyz
// says the store is failing meanwhile.
func TestFailedWritesStayPending(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	busy := f.login(t, "cashier")
	leaving := f.login(t, "other")
	sid, leavingSID := busy.Claims.SessionID, leaving.Claims.SessionID

	f.store.Failing.Store(true)
	f.clock.Advance(10 * time.Second)
	active := f.clock.Now()
	if _, ok := f.svc.tracker.Touch(sid, active); !ok {
		t.Fatal("Touch: session not live")
	}
	if err := f.svc.flush(ctx); err == nil {
		t.Fatal("Flush on a failing store: got nil, want an error")
	}
	if f.svc.Ready() == nil {
		t.Fatal("Ready on a failing store: got nil, want an error")
	}
	if err := f.svc.Logout(ctx, leavingSID); err != nil {
		t.Fatalf("Logout on a failing store: got %v, want the sign-out kept pending", err)
	}
	for range 3 { // several failed flushes lose nothing either
		f.clock.Advance(time.Second)
		f.svc.flush(ctx)
	}

	f.store.Failing.Store(false)
	if err := f.svc.flush(ctx); err != nil {
		t.Fatalf("Flush after recovery: %v", err)
	}
	if err := f.svc.Ready(); err != nil {
		t.Fatalf("Ready after recovery: %v", err)
	}
	got, err := f.store.Session(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}
	if !got.LastActivity.Equal(active.Round(0).Truncate(time.Millisecond)) {
		t.Errorf("last activity after recovery: got %v, want %v", got.LastActivity, active)
	}
	gone, err := f.store.Session(ctx, leavingSID)
	if err != nil {
		t.Fatal(err)
	}
	if !gone.Revoked || gone.RevokedReason != protocol.ReasonSignedOut {
		t.Errorf("signed-out session after recovery: got %+v, want revoked signed_out", gone)
	}
}

// Finding 5: a session ended by another process (the CLI writes the
// session end log) is signed out on this node's sockets.
func TestSessionEndLogSignsOut(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	in := f.login(t, "cashier")
	keep := f.login(t, "other")
	ended, err := f.store.RevokeUserSessions(ctx, in.User.ID, f.clock.Now().Round(0), protocol.ReasonRevoked)
	if err != nil || len(ended) != 1 {
		t.Fatalf("RevokeUserSessions: got %v %v, want one session", ended, err)
	}
	f.svc.readEnds(ctx)
	wantLines(t, "sign-outs", f.socks.takeAll(), in.Claims.SessionID+" signout revoked 60")
	if _, err := f.svc.Authenticate(ctx, pos.DefaultDomain, in.Token); pos.ErrorCode(err) != pos.EUNAUTHORIZED {
		t.Fatalf("Authenticate after revocation: got %v, want 401", err)
	}
	if _, err := f.svc.Authenticate(ctx, pos.DefaultDomain, keep.Token); err != nil {
		t.Fatalf("the other user's session: got %v, want alive", err)
	}
	f.svc.readEnds(ctx) // read once: nothing twice
	wantLines(t, "second read", f.socks.takeAll())
}

// Finding 1: a token authenticates only as the user it was issued to: once
// the user is deleted, its session is gone, whoever is created next.
func TestDeletedUserTokenRefused(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	in := f.login(t, "cashier")
	if _, err := f.store.DeleteUser(ctx, pos.DefaultDomain, "cashier", f.clock.Now().Round(0)); err != nil {
		t.Fatal(err)
	}
	hash, _ := bcrypt.GenerateFromPassword([]byte("demo"), bcrypt.MinCost)
	u, err := f.store.AddUser(ctx, pos.User{Domain: pos.DefaultDomain, Name: "newadmin", Group: "cashiers", PasswordHash: hash})
	if err != nil {
		t.Fatal(err)
	}
	if u.ID == in.User.ID {
		t.Fatalf("new user got the deleted user's id %d", u.ID)
	}
	if _, err := f.svc.Authenticate(ctx, pos.DefaultDomain, in.Token); pos.ErrorCode(err) != pos.EUNAUTHORIZED {
		t.Fatalf("deleted user's token, before the end log is read: got %v, want 401", err)
	}
}

// An idle expiry whose write fails stays pending: the session stays ended
// (and says why) meanwhile, and reaches the store once it recovers.
func TestIdleExpiryKeptUntilWritten(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	in := f.login(t, "cashier")
	sid := in.Claims.SessionID
	f.store.Failing.Store(true)
	f.clock.Advance(60 * time.Second)
	wantLines(t, "at the deadline", f.socks.take(sid), "send warning remaining=15000", "signout idle 60")
	for range 3 {
		f.clock.Advance(time.Second)
		if err := f.svc.flush(ctx); err == nil {
			t.Fatal("flush on a failing store: got nil, want an error")
		}
		if got := f.endedReason(t, in.Token); got != protocol.ReasonIdle {
			t.Fatalf("Authenticate while the write fails: got reason %v, want idle", got)
		}
	}
	if got := f.session(t, sid); got.Revoked {
		t.Fatalf("stored while failing: got revoked, want the write still pending")
	}

	f.store.Failing.Store(false)
	if err := f.svc.flush(ctx); err != nil {
		t.Fatalf("flush after recovery: %v", err)
	}
	got := f.session(t, sid)
	if !got.Revoked || got.RevokedReason != protocol.ReasonIdle || !got.RevokedAt.Equal(t0.Add(60*time.Second)) {
		t.Errorf("stored after recovery: got revoked=%v reason=%v at %v, want idle at the deadline", got.Revoked, got.RevokedReason, got.RevokedAt)
	}
	if _, pending := f.svc.pendingRevocation(sid); pending {
		t.Error("pending after it was written: got pending, want gone")
	}
	if got := f.endedReason(t, in.Token); got != protocol.ReasonIdle {
		t.Errorf("Authenticate once written: got reason %v, want idle", got)
	}
}

// Run writes behind at every FlushEvery tick of the injected clock: last
// activity, idle expiries, and sign-outs from the session end log.
func TestRunFlushesEachTick(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	busy := f.login(t, "cashier")
	idle := f.login(t, "other")
	f.clock.Advance(30 * time.Second)
	revoked := f.login(t, "cashier")
	c, _ := f.connect(t, busy.Claims.SessionID)
	stop := f.run(t)

	// waitStored waits for the store to show what the last tick wrote.
	waitStored := func(what, sid string, ok func(pos.Session) bool) {
		t.Helper()
		waitFor(t, what, func() bool {
			s, err := f.store.Session(ctx, sid)
			return err == nil && ok(s)
		})
	}
	for i := range 3 {
		f.clock.Advance(400 * time.Millisecond)
		c.activity(0)
		at := f.clock.Now()
		if got := f.session(t, busy.Claims.SessionID); !got.LastActivity.Before(at) {
			t.Fatalf("tick %d: last activity %v stored before the tick", i, got.LastActivity)
		}
		f.clock.Advance(600 * time.Millisecond) // the tick
		waitStored("last activity at the tick", busy.Claims.SessionID, func(s pos.Session) bool { return s.LastActivity.Equal(at) })
	}

	// The idle session ends at t0+60 s; a tick after it writes it.
	f.clock.Advance(28 * time.Second)
	waitStored("the idle expiry", idle.Claims.SessionID, func(s pos.Session) bool {
		return s.Revoked && s.RevokedReason == protocol.ReasonIdle
	})

	// Another process ends a session: the next tick signs its sockets out.
	if err := f.store.RevokeSession(ctx, revoked.Claims.SessionID, f.clock.Now().Round(0), protocol.ReasonRevoked); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Second)
	waitFor(t, "the end log's sign-out", func() bool {
		got := f.socks.take(revoked.Claims.SessionID)
		return len(got) == 1 && got[0] == "signout revoked 60"
	})

	// Stopping flushes once more.
	f.clock.Advance(200 * time.Millisecond)
	c.activity(0)
	last := f.clock.Now()
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := f.session(t, busy.Claims.SessionID); !got.LastActivity.Equal(last) {
		t.Errorf("after Run returned: got last activity %v, want %v", got.LastActivity, last)
	}
}
