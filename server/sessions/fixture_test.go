package sessions

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/crypto/bcrypt"

	"idleguard/server/clock"
	"idleguard/server/hub"
	"idleguard/server/internal/storetest"
	"idleguard/server/pos"
	"idleguard/server/protocol"
	"idleguard/server/sqlite"
	"idleguard/server/token"
)

// These tests run the service on a fake clock, a real SQLite file and a
// recording socket port: time moves only by Advance, and every timer due
// runs inside it, so nothing sleeps.

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// The fixture's Expiration Time, 60 s: a 15 s warning lead, a 5 s report
// interval; stateTail ends every state frame under it.
const (
	fixtureExpiration = 60
	stateTail         = " expiration=60 warn=15000 report=5000"
)

// sockets is a Sockets port that writes down what the service told it,
// per session, one line a call ("send <frame>", "signout <reason>
// <expiration>"), and hands out recording sockets from Attach. Those hear
// what the hub's would: Send reaches every socket of the session, SignOut
// sends each a logout frame and a close and forgets them, and a closed
// socket takes nothing more.
type sockets struct {
	mu     sync.Mutex
	full   map[string]bool     // sessions with no room for another socket
	calls  map[string][]string // by session, since the last take
	conns  map[string][]*socket
	tokens map[string][]string // by session: renewed tokens sent, in order
	last   *socket             // the socket Attach handed out last
	// onSignOut, when set, runs at each SignOut before it returns: what a
	// page does the moment it hears its sign-out.
	onSignOut func(sid string)
}

func newSockets() *sockets {
	return &sockets{full: map[string]bool{}, calls: map[string][]string{},
		conns: map[string][]*socket{}, tokens: map[string][]string{}}
}

func (r *sockets) Room(sid string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.full[sid]
}

func (r *sockets) Attach(_ *websocket.Conn, sid string, h hub.FrameHandler) (hub.Socket, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.full[sid] {
		return nil, hub.ErrTooManyTabs
	}
	c := &socket{sid: sid, handler: h}
	r.conns[sid] = append(r.conns[sid], c)
	r.last = c
	return c, nil
}

func (r *sockets) Send(sid string, m protocol.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[sid] = append(r.calls[sid], "send "+line(m))
	if m.Token != "" {
		r.tokens[sid] = append(r.tokens[sid], m.Token)
	}
	for _, c := range r.conns[sid] {
		c.Send(m)
	}
}

func (r *sockets) SignOut(sid string, reason protocol.Reason, expirationS int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[sid] = append(r.calls[sid], "signout "+reason.String()+" "+strconv.FormatInt(expirationS, 10))
	for _, c := range r.conns[sid] {
		c.Send(protocol.Message{Kind: protocol.Logout, Reason: reason, ExpirationS: expirationS})
		c.Close(reason.CloseCode(), reason.String())
	}
	delete(r.conns, sid)
	if r.onSignOut != nil {
		r.onSignOut(sid)
	}
}

// take returns what the port was told for session sid since the last take.
func (r *sockets) take(sid string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls[sid]
	delete(r.calls, sid)
	return c
}

// takeAll returns what the port was told for every session since the last
// take, one "<sid> <call>" line each, sessions in id order.
func (r *sockets) takeAll() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var all []string
	for _, sid := range slices.Sorted(func(yield func(string) bool) {
		for sid := range r.calls {
			if !yield(sid) {
				return
			}
		}
	}) {
		for _, c := range r.calls[sid] {
			all = append(all, sid+" "+c)
		}
	}
	clear(r.calls)
	return all
}

// renewed is every token sent to session sid in a state frame, in order.
func (r *sockets) renewed(sid string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.tokens[sid])
}

// socket is one recording hub.Socket: what the page on the other end would
// have received, one line a frame ("state remaining=...", "close 4001 idle").
type socket struct {
	sid     string
	handler hub.FrameHandler // what Connect gave Attach: the service's frames

	mu     sync.Mutex
	lines  []string
	closed bool
}

func (c *socket) SessionID() string { return c.sid }

func (c *socket) Send(m protocol.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.lines = append(c.lines, line(m))
	}
}

func (c *socket) Close(code int, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		c.lines = append(c.lines, "close "+strconv.Itoa(code)+" "+reason)
	}
}

// frame hands m to the service as the hub's reader would.
func (c *socket) frame(m protocol.Message) { c.handler.HandleFrame(c, m) }

func (c *socket) activity(agoMs int64) {
	c.frame(protocol.Message{Kind: protocol.Activity, AgoMs: agoMs})
}

// take returns the frames the socket received since the last take.
func (c *socket) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.lines
	c.lines = nil
	return l
}

// line is a frame as the wire carries it, with a token shown as JWT: a
// token differs from run to run (iat, the key), its presence does not.
func line(m protocol.Message) string {
	if m.Token != "" {
		m.Token = "JWT"
	}
	return string(protocol.Append(nil, m))
}

func wantLines(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: got %q, want %q", what, got, want)
	}
}

type fixture struct {
	svc   *Service
	store *storetest.Faulty
	clock *clock.Fake
	socks *sockets
	key   ed25519.PrivateKey
}

// newFixture is a service on a fresh SQLite file whose one domain,
// default, has an Expiration Time of 60 s, users cashier and other (group
// cashiers, no permissions) and admin (group developers: Developer View
// and Edit), all with password "demo", and the clock at t0.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	db := template.Open(t)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	f := &fixture{store: &storetest.Faulty{DB: db}, clock: clock.NewFake(t0), key: key}
	f.start(t)
	return f
}

// template holds newFixture's users and setting (seed), copied per test.
var template = storetest.NewTemplate(seed)

// seed fills domain default, which every new store has: newFixture's
// users, groups and setting.
func seed(ctx context.Context, db *sqlite.DB) error {
	return seedDomain(ctx, db, pos.DefaultDomain, "demo", fixtureExpiration)
}

// seedDomain gives an existing domain groups cashiers (no permissions) and
// developers (Developer View and Edit), users cashier, other (cashiers)
// and admin (developers), all with password, and an Expiration Time of
// expiration seconds saved by "fixture" at t0.
func seedDomain(ctx context.Context, db *sqlite.DB, domain, password string, expiration int64) error {
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		return err
	}
	for _, g := range []pos.Group{
		{Domain: domain, Name: "cashiers"},
		{Domain: domain, Name: "developers", Permissions: []pos.Permission{pos.DeveloperView, pos.DeveloperEdit}},
	} {
		if err := db.PutGroup(ctx, g); err != nil {
			return err
		}
	}
	for _, u := range []pos.User{
		{Domain: domain, Name: "cashier", Group: "cashiers"},
		{Domain: domain, Name: "other", Group: "cashiers"},
		{Domain: domain, Name: "admin", Group: "developers"},
	} {
		u.PasswordHash = hash
		if _, err := db.AddUser(ctx, u); err != nil {
			return err
		}
	}
	return db.SaveSettings(ctx, domain, pos.Settings{ExpirationSeconds: expiration, UpdatedBy: "fixture", UpdatedAt: t0},
		pos.SettingsChange{At: t0, By: "fixture", Old: pos.DefaultExpirationSeconds, New: expiration})
}

// start builds a new Service on the fixture's store, clock and signing key,
// with a new socket port: a process starting (again).
func (f *fixture) start(t *testing.T) {
	t.Helper()
	f.socks = newSockets()
	tokens := token.New(f.key, token.Config{Issuer: token.DefaultIssuer, Audience: token.DefaultAudience, Now: f.clock.Now})
	svc, err := New(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)), f.clock, f.store, tokens, f.socks,
		Config{MinExpirationSeconds: 1, PasswordCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	f.svc = svc
}

// run starts the write-behind loop and waits until its tickers are on the
// clock, so that the next Advance drives them; stop cancels it and returns
// what Run returned (its final flush).
func (f *fixture) run(t *testing.T) (stop func() error) {
	t.Helper()
	before := f.clock.Pending()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.svc.Run(ctx) }()
	const tickers = 4 // flush, checkpoint, purge, security summary
	waitFor(t, "Run's tickers", func() bool { return f.clock.Pending() >= before+tickers })
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(waitLimit):
				err = errors.New("Run did not return after its context was cancelled")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

// waitLimit bounds a wait for the Run goroutine: a guard against hanging,
// not a speed claim.
const waitLimit = 5 * time.Second

// waitFor polls cond until it holds, failing the test after waitLimit.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", waitLimit, what)
		}
		time.Sleep(time.Millisecond)
	}
}

func (f *fixture) login(t *testing.T, user string) SignedIn {
	t.Helper()
	in, err := f.svc.Login(context.Background(), Credentials{Domain: pos.DefaultDomain, Username: user, Password: "demo", Addr: "10.0.0.1"})
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return in
}

// user is a user as the store has it, permissions filled in.
func (f *fixture) user(t *testing.T, name string) pos.User {
	t.Helper()
	u, err := f.store.UserByName(context.Background(), pos.DefaultDomain, name)
	if err != nil {
		t.Fatalf("user %s: %v", name, err)
	}
	return u
}

// connect opens a socket for session sid of domain default the way the
// hub's upgrade does (Service.Connect) and returns it with the first frame
// it heard taken.
func (f *fixture) connect(t *testing.T, sid string) (*socket, string) {
	t.Helper()
	return f.connectIn(t, pos.DefaultDomain, sid)
}

// connectIn is connect for a session of domain: the principal is what
// Authenticate would have handed the upgrade (a session that has ended
// never gets that far, but a socket may outlive its session's end).
func (f *fixture) connectIn(t *testing.T, domain, sid string) (*socket, string) {
	t.Helper()
	p := Principal{User: pos.User{Domain: domain}, SessionID: sid}
	if err := f.svc.Connect(nil, p); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	f.socks.mu.Lock()
	c := f.socks.last
	f.socks.mu.Unlock()
	if c == nil || c.sid != sid {
		t.Fatalf("Connect: no socket attached for %s", ShortID(sid))
	}
	got := c.take()
	if len(got) == 0 {
		t.Fatalf("Connect: the socket heard nothing")
	}
	return c, strings.Join(got, "; ")
}

// session is the stored record of sid.
func (f *fixture) session(t *testing.T, sid string) pos.Session {
	t.Helper()
	s, err := f.store.Session(context.Background(), sid)
	if err != nil {
		t.Fatalf("store.Session: %v", err)
	}
	return s
}

// endedReason is why Authenticate refuses tok in domain default, failing
// unless it refuses it as a session that has ended.
func (f *fixture) endedReason(t *testing.T, tok string) protocol.Reason {
	t.Helper()
	return f.endedReasonIn(t, pos.DefaultDomain, tok)
}

// endedReasonIn is endedReason in domain.
func (f *fixture) endedReasonIn(t *testing.T, domain, tok string) protocol.Reason {
	t.Helper()
	_, err := f.svc.Authenticate(context.Background(), domain, tok)
	var ended *EndedError
	if !errors.As(err, &ended) {
		t.Fatalf("Authenticate: got %v, want an EndedError", err)
	}
	if pos.ErrorCode(err) != pos.EUNAUTHORIZED {
		t.Fatalf("Authenticate: got code %q, want %q", pos.ErrorCode(err), pos.EUNAUTHORIZED)
	}
	return ended.Reason
}

// state is the state frame a socket hears with remaining ms left under the
// fixture's Expiration Time.
func state(remainingMs int64) string {
	return "state remaining=" + strconv.FormatInt(remainingMs, 10) + stateTail
}
