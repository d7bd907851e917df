package sessions

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/crypto/bcrypt"

	"idleguard/server/clock"
	"idleguard/server/hub"
	"idleguard/server/pos"
	"idleguard/server/protocol"
	"idleguard/server/sqlite"
	"idleguard/server/token"
)

// These tests run the service on a fake clock, a real SQLite file and a
// recording socket port.

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// signOuts records the sign-outs the service told the sockets.
type signOuts struct {
	mu   sync.Mutex
	outs []string // "sid reason"
}

func (r *signOuts) Room(string) bool              { return true }
func (r *signOuts) Send(string, protocol.Message) {}
func (r *signOuts) Attach(*websocket.Conn, string, hub.FrameHandler) (hub.Socket, error) {
	return nil, errors.New("no sockets here")
}
func (r *signOuts) SignOut(sid string, reason protocol.Reason, _ int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.outs = append(r.outs, sid+" "+reason.String())
}

func (r *signOuts) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.outs
	r.outs = nil
	return o
}

// faultyStore is the real SQLite store with writes that fail on demand: a
// full or read-only disk, as the outside test produced.
type faultyStore struct {
	*sqlite.DB
	failing atomic.Bool
}

var errDiskFull = errors.New("database or disk is full")

func (f *faultyStore) SaveActivity(ctx context.Context, b []pos.Activity) error {
	if f.failing.Load() {
		return errDiskFull
	}
	return f.DB.SaveActivity(ctx, b)
}

func (f *faultyStore) RevokeSession(ctx context.Context, id string, at time.Time, reason protocol.Reason) error {
	if f.failing.Load() {
		return errDiskFull
	}
	return f.DB.RevokeSession(ctx, id, at, reason)
}

func (f *faultyStore) RevokeSessions(ctx context.Context, b []pos.Revocation) error {
	if f.failing.Load() {
		return errDiskFull
	}
	return f.DB.RevokeSessions(ctx, b)
}

type fixture struct {
	svc   *Service
	store *faultyStore
	clock *clock.Fake
	socks *signOuts
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	hash, _ := bcrypt.GenerateFromPassword([]byte("demo"), bcrypt.MinCost)
	if err := db.PutGroup(ctx, pos.Group{Name: "cashiers"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"cashier", "other"} {
		if _, err := db.AddUser(ctx, pos.User{Name: name, Group: "cashiers", PasswordHash: hash}); err != nil {
			t.Fatal(err)
		}
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	c := clock.NewFake(t0)
	f := &fixture{store: &faultyStore{DB: db}, clock: c, socks: &signOuts{}}
	tokens := token.New(key, token.Config{Issuer: token.DefaultIssuer, Audience: token.DefaultAudience, Now: c.Now})
	f.svc, err = New(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), c, f.store, tokens, f.socks, Config{MinExpirationSeconds: 1})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) login(t *testing.T, user string) SignedIn {
	t.Helper()
	in, err := f.svc.Login(context.Background(), Credentials{Username: user, Password: "demo", Addr: "10.0.0.1"})
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return in
}

// Findings 9 and 15: what fails to be written (activity, an idle expiry, a
// sign-out) stays pending and is written once the store recovers; /readyz
// says the store is failing meanwhile.
func TestFailedWritesStayPending(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	busy := f.login(t, "cashier")
	leaving := f.login(t, "other")
	sid, leavingSID := busy.Claims.SessionID, leaving.Claims.SessionID

	f.store.failing.Store(true)
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

	f.store.failing.Store(false)
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
	if got := f.socks.take(); len(got) != 1 || got[0] != in.Claims.SessionID+" revoked" {
		t.Fatalf("sign-outs: got %q, want %s revoked", got, in.Claims.SessionID)
	}
	if _, err := f.svc.Authenticate(ctx, in.Token); pos.ErrorCode(err) != pos.EUNAUTHORIZED {
		t.Fatalf("Authenticate after revocation: got %v, want 401", err)
	}
	if _, err := f.svc.Authenticate(ctx, keep.Token); err != nil {
		t.Fatalf("the other user's session: got %v, want alive", err)
	}
	f.svc.readEnds(ctx) // read once: nothing twice
	if got := f.socks.take(); len(got) != 0 {
		t.Fatalf("second read: got %q, want nothing", got)
	}
}

// Finding 1: a token authenticates only as the user it was issued to: once
// the user is deleted, its session is gone, whoever is created next.
func TestDeletedUserTokenRefused(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	in := f.login(t, "cashier")
	if _, err := f.store.DeleteUser(ctx, "cashier", f.clock.Now().Round(0)); err != nil {
		t.Fatal(err)
	}
	hash, _ := bcrypt.GenerateFromPassword([]byte("demo"), bcrypt.MinCost)
	u, err := f.store.AddUser(ctx, pos.User{Name: "newadmin", Group: "cashiers", PasswordHash: hash})
	if err != nil {
		t.Fatal(err)
	}
	if u.ID == in.User.ID {
		t.Fatalf("new user got the deleted user's id %d", u.ID)
	}
	if _, err := f.svc.Authenticate(ctx, in.Token); pos.ErrorCode(err) != pos.EUNAUTHORIZED {
		t.Fatalf("deleted user's token, before the end log is read: got %v, want 401", err)
	}
}
