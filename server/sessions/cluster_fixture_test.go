package sessions

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"idleguard/server/clock"
	"idleguard/server/internal/storetest"
	"idleguard/server/live"
	"idleguard/server/pos"
	"idleguard/server/sqlite"
	"idleguard/server/token"
)

// The cluster tests run several nodes in one process: each a Service with
// its own recording sockets and its own handle on ONE SQLite file (its own
// sqlite.Open, so its own pools, as a separate process would have: WAL and
// the busy timeout share the file), all on one live.Network and one fake
// clock. The network reads that clock as its time base (Redis's TIME in
// production); a node's own clock is that clock, or the same clock read a
// fixed offset off (offsetClock): a wrong wall clock whose timers run at
// the right pace.
//
// Time moves only by Advance. A node's flusher and its layer's Run are
// goroutines, so what they do after a tick is waited for (tick, settle),
// never slept on: the layer is read for the input every node has seen,
// and every node counts the signals the others sent it and those it acted
// on.
//
// The flushers' own ticker is an hour apart (liveTicker): a ticker that
// fires inside a long Advance may be taken by a flusher that fell behind
// only once the clock has moved on, or while it moves, and then the
// input's age (read on the node's clock) and the layer's clock (read a
// moment later) straddle the move, which makes the layer's time late by
// up to the move. tick moves the clock by one LiveEvery and wakes every
// flusher itself, through the channel urgent input uses, with the clock
// standing still until they have flushed: microsecond-exact. One test
// runs the real 100 ms ticker, with that tolerance.

// liveEvery is Config.LiveEvery's default: what tick moves the clock by.
const liveEvery = 100 * time.Millisecond

type clusterFixture struct {
	clock *clock.Fake
	net   *live.Network
	path  string     // the one SQLite file
	db    *sqlite.DB // the CLI's handle on it, for setup
	key   ed25519.PrivateKey

	// liveTicker is the nodes' Config.LiveEvery, set before they join: by
	// default an hour, so that their flushers flush only when tick (or
	// urgent input) wakes them.
	liveTicker time.Duration

	mu       sync.Mutex
	nodes    []*node
	sessions map[string]string // every session signed in, and its domain
}

// newClusterFixture is a cluster with no node yet (join adds them) on a
// fresh copy of newFixture's store: domain default, Expiration Time 60 s,
// users cashier, other and admin with password "demo"; the clock at t0.
func newClusterFixture(t *testing.T) *clusterFixture {
	t.Helper()
	dir := t.TempDir()
	db := template.Open(inDir{TB: t, dir: dir})
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	fake := clock.NewFake(t0)
	return &clusterFixture{clock: fake, net: live.NewMemory(fake), path: filepath.Join(dir, sqlite.FileName), db: db, key: key,
		liveTicker: time.Hour, sessions: map[string]string{}}
}

// inDir is tb with its TempDir fixed, so that template.Open puts the copy
// where every node can open it.
type inDir struct {
	testing.TB
	dir string
}

func (d inDir) TempDir() string { return d.dir }

// addGlobex creates domain globex (Expiration Time 90 s, password
// globex-pw) as the CLI would, before the nodes that should serve it from
// the start join.
func (c *clusterFixture) addGlobex(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if err := c.db.AddDomain(ctx, globex, t0); err != nil {
		t.Fatalf("AddDomain: %v", err)
	}
	if err := seedDomain(ctx, c.db, globex, globexPassword, globexExpiration); err != nil {
		t.Fatalf("seed %s: %v", globex, err)
	}
}

// node is one node of the cluster.
type node struct {
	c     *clusterFixture
	id    string
	clock clock.Clock // the cluster's clock, or read off it
	db    *sqlite.DB
	store *storetest.Faulty // db, whose session writes fail on demand: what the node uses
	inner live.Layer        // the node's own on the network
	layer *watchedLayer
	socks *sockets
	svc   *Service
	stop  func() error
	logs  *syncBuffer
}

// join starts node id, its clock skew off the network's (0: the same), and
// runs it: when join returns, its tickers are on the clock and its layer
// listens. Call it while no other node is flushing (no urgent input in
// flight), so that the signal counts start even.
func (c *clusterFixture) join(t *testing.T, id string, skew time.Duration) *node {
	t.Helper()
	db, err := sqlite.Open(context.Background(), c.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var clk clock.Clock = c.clock
	if skew != 0 {
		clk = offsetClock{base: c.clock, off: skew}
	}
	n := &node{c: c, id: id, clock: clk, db: db, store: &storetest.Faulty{DB: db}, inner: c.net.Node(id), logs: &syncBuffer{}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("node %s's log:\n%s", id, n.logs.String())
		}
	})
	n.start(t)
	c.mu.Lock()
	c.nodes = append(c.nodes, n)
	c.mu.Unlock()
	return n
}

// start builds the node's Service (a process starting) and runs it.
func (n *node) start(t *testing.T) {
	t.Helper()
	w := &watchedLayer{Layer: n.inner, c: n.c, listening: make(chan struct{})}
	n.c.mu.Lock() // senders read it
	n.layer = w
	n.c.mu.Unlock()
	n.socks = newSockets()
	tokens := token.New(n.c.key, token.Config{Issuer: token.DefaultIssuer, Audience: token.DefaultAudience, Now: n.clock.Now})
	log := slog.New(slog.NewTextHandler(n.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	svc, err := New(context.Background(), log.With("node", n.id), n.clock, n.store, tokens, n.socks,
		Config{MinExpirationSeconds: 1, PasswordCost: bcrypt.MinCost, Live: w, LiveEvery: n.c.liveTicker})
	if err != nil {
		t.Fatal(err)
	}
	n.svc = svc

	before := n.c.clock.Pending()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	const tickers = 5 // flush, checkpoint, purge, security summary; the cluster's input flusher
	waitFor(t, "node "+n.id+"'s tickers", func() bool { return n.c.clock.Pending() >= before+tickers })
	select {
	case <-n.layer.listening:
	case <-time.After(waitLimit):
		t.Fatalf("node %s's layer did not start listening", n.id)
	}
	var once sync.Once
	var runErr error
	n.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(waitLimit):
				runErr = fmt.Errorf("node %s: Run did not return after its context was cancelled", n.id)
			}
		})
		return runErr
	}
	t.Cleanup(func() { n.stop() })
}

// restart stops the node's Service and starts a new one on the same store
// file and live layer: the process restarted, with new sockets.
func (n *node) restart(t *testing.T) {
	t.Helper()
	if err := n.stop(); err != nil {
		t.Fatalf("stop node %s: %v", n.id, err)
	}
	n.start(t)
}

// offsetClock is a node's clock off by a fixed amount: Now reads the
// cluster's clock plus off, timers run on the cluster's clock (durations
// are the same on every node; only the wall-clock reading differs).
type offsetClock struct {
	base *clock.Fake
	off  time.Duration
}

func (o offsetClock) Now() time.Time { return o.base.Now().Add(o.off) }

func (o offsetClock) AfterFunc(d time.Duration, f func()) clock.Timer { return o.base.AfterFunc(d, f) }

// watchedLayer is a node's live layer that counts, for the waits: Record
// and Publish calls that succeeded (sent), the signals the other nodes sent
// this one while it listened (expected), and those it has acted on
// (acted: deliver returned). dropActivity loses the other nodes' Activity
// signals before they reach the node, as a message lost in transit.
type watchedLayer struct {
	live.Layer
	c         *clusterFixture
	listening chan struct{} // closed once Run first listens
	once      sync.Once
	on        atomic.Bool

	sent, expected, acted atomic.Int64
	dropActivity          atomic.Bool
	dropped               atomic.Int64
	// Sessions dropped by Forget, and of those how many the store still
	// called alive at that moment.
	forgotten, forgotAlive atomic.Int64
}

// Record and Publish count the signals at the other nodes before they
// send them: a waiter that sees the layer hold an input, or sees sent
// move, finds them counted.
func (w *watchedLayer) Record(ctx context.Context, batch []live.Activity) error {
	k := activitySignals(batch)
	undo := w.c.toOthers(w, k)
	err := w.Layer.Record(ctx, batch)
	if err != nil {
		undo()
		return err
	}
	w.sent.Add(1)
	return nil
}

func (w *watchedLayer) Publish(ctx context.Context, s live.Signal) error {
	undo := w.c.toOthers(w, 1)
	err := w.Layer.Publish(ctx, s)
	if err != nil {
		undo()
		return err
	}
	w.sent.Add(1)
	return nil
}

func (w *watchedLayer) Forget(ctx context.Context, domain string, sids []string) error {
	for _, sid := range sids {
		if sess, err := w.c.db.Session(ctx, sid); err == nil && !sess.Revoked {
			w.forgotAlive.Add(1)
		}
	}
	err := w.Layer.Forget(ctx, domain, sids)
	if err == nil {
		w.forgotten.Add(int64(len(sids)))
	}
	return err
}

func (w *watchedLayer) Run(ctx context.Context, deliver func(live.Signal), resynced func()) error {
	defer w.on.Store(false)
	return w.Layer.Run(ctx, func(s live.Signal) {
		if s.Kind == live.KindActivity && w.dropActivity.Load() {
			w.dropped.Add(1)
		} else {
			deliver(s)
		}
		w.acted.Add(1)
	}, func() {
		resynced()
		w.on.Store(true)
		w.once.Do(func() { close(w.listening) })
	})
}

// activitySignals is how many Activity signals a Record of batch sends:
// one per signal channel its domains use, per MaxSignalActivity sessions.
func activitySignals(batch []live.Activity) int64 {
	per := map[int]map[string]bool{}
	for _, a := range batch {
		ch := live.ChannelOf(a.Domain)
		if per[ch] == nil {
			per[ch] = map[string]bool{}
		}
		per[ch][a.Domain+"/"+a.SessionID] = true
	}
	var n int64
	for _, s := range per {
		n += int64((len(s) + live.MaxSignalActivity - 1) / live.MaxSignalActivity)
	}
	return n
}

// toOthers counts k signals from w at every other node that listens, and
// returns what takes them back.
func (c *clusterFixture) toOthers(w *watchedLayer, k int64) (undo func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var at []*watchedLayer
	for _, n := range c.nodes {
		if n.layer != w && n.layer.on.Load() {
			n.layer.expected.Add(k)
			at = append(at, n.layer)
		}
	}
	return func() {
		for _, l := range at {
			l.expected.Add(-k)
		}
	}
}

func (c *clusterFixture) all() []*node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*node(nil), c.nodes...)
}

// waitQuiet waits until every node has acted on every signal sent to it.
func (c *clusterFixture) waitQuiet(t *testing.T) {
	t.Helper()
	waitFor(t, "every node to act on the signals sent to it", func() bool {
		for _, n := range c.all() {
			if n.layer.acted.Load() != n.layer.expected.Load() {
				return false
			}
		}
		return true
	})
}

// tick advances the clock by one LiveEvery, wakes every node's flusher
// as its tick would, and settles.
func (c *clusterFixture) tick(t *testing.T) {
	t.Helper()
	c.clock.Advance(liveEvery)
	for _, n := range c.all() {
		select {
		case n.svc.cl.urgent <- struct{}{}:
		default: // a flush is due already
		}
	}
	c.settle(t)
}

// settle waits, the clock standing still, until the layer holds every
// node's view of every live session's last input, and every node has
// acted on every signal sent to it: what the flushers had queued has left
// and been heard, whichever flush took it.
func (c *clusterFixture) settle(t *testing.T) {
	t.Helper()
	waitFor(t, "the layer to hold every node's input", func() bool {
		for _, n := range c.all() {
			if !n.recorded() {
				return false
			}
		}
		return true
	})
	c.waitQuiet(t)
}

// recorded reports whether the layer holds, for each session the node
// tracks alive, input at least as late as the node's own view of it.
func (n *node) recorded() bool {
	n.c.mu.Lock()
	sessions := maps.Clone(n.c.sessions)
	n.c.mu.Unlock()
	skew := time.Duration(0)
	if o, ok := n.clock.(offsetClock); ok {
		skew = o.off
	}
	for sid, domain := range sessions {
		st, ok := n.svc.tracker.Status(sid)
		if !ok {
			continue
		}
		last := st.Deadline.Add(-st.Policy.Expiration - skew) // on the layer's clock
		d, ok, err := n.inner.Idle(context.Background(), domain, sid)
		if err != nil || !ok || n.c.clock.Now().Add(-d).Before(last) {
			return false
		}
	}
	return true
}

// waitSent waits until the node has sent something since its count was
// before (an input flush that did not wait for the tick, say).
func (n *node) waitSent(t *testing.T, before int64) {
	t.Helper()
	waitFor(t, "node "+n.id+" to send", func() bool { return n.layer.sent.Load() > before })
}

// login signs user of domain default in on this node.
func (n *node) login(t *testing.T, user string) SignedIn {
	t.Helper()
	return n.loginTo(t, pos.DefaultDomain, user, "demo")
}

func (n *node) loginTo(t *testing.T, domain, user, password string) SignedIn {
	t.Helper()
	in, err := n.svc.Login(context.Background(), Credentials{Domain: domain, Username: user, Password: password, Addr: "10.0.0.1"})
	if err != nil {
		t.Fatalf("node %s: login %s/%s: %v", n.id, domain, user, err)
	}
	n.c.mu.Lock()
	n.c.sessions[in.Claims.SessionID] = domain
	n.c.mu.Unlock()
	return in
}

// open is a tab of domain opening its socket on this node with tok, as the
// upgrade does: Authenticate (which adopts a session this node does not
// track), then Connect. It returns the socket and its first frame, taken.
func (n *node) open(t *testing.T, domain, tok string) (*socket, string) {
	t.Helper()
	p, err := n.svc.Authenticate(context.Background(), domain, tok)
	if err != nil {
		t.Fatalf("node %s: Authenticate: %v", n.id, err)
	}
	if err := n.svc.Connect(nil, p); err != nil {
		t.Fatalf("node %s: Connect: %v", n.id, err)
	}
	n.socks.mu.Lock()
	s := n.socks.last
	n.socks.mu.Unlock()
	if s == nil || s.sid != p.SessionID {
		t.Fatalf("node %s: Connect attached no socket for %s", n.id, ShortID(p.SessionID))
	}
	first := s.take()
	if len(first) != 1 {
		t.Fatalf("node %s: on connect: got %q, want one frame", n.id, first)
	}
	return s, first[0]
}

// user is a user of domain default as the node's store has it.
func (n *node) user(t *testing.T, name string) pos.User {
	t.Helper()
	u, err := n.db.UserByName(context.Background(), pos.DefaultDomain, name)
	if err != nil {
		t.Fatalf("user %s: %v", name, err)
	}
	return u
}

// deadline is the session's deadline on this node's idle clock, in the
// node's own time, and whether it tracks the session alive.
func (n *node) deadline(sid string) (time.Time, bool) {
	st, ok := n.svc.tracker.Status(sid)
	return st.Deadline, ok
}

// waitDeadline waits until the node tracks the session alive with its
// deadline at t0+at on the layer's clock (t0+at plus the node's skew on
// its own): what the node hears comes from goroutines.
func (n *node) waitDeadline(t *testing.T, sid string, at time.Duration) {
	t.Helper()
	want := t0.Add(at)
	if o, ok := n.clock.(offsetClock); ok {
		want = want.Add(o.off)
	}
	deadline := time.Now().Add(waitLimit)
	for {
		got, ok := n.deadline(sid)
		if ok && got.Equal(want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s's deadline: got %v (alive %v), want %v", n.id, got.Sub(t0), ok, want.Sub(t0))
		}
		time.Sleep(time.Millisecond)
	}
}

// syncBuffer is a node's log, written from its goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
