// Package livetest is the live layer's behaviour suite: Contract runs the
// same tests against every implementation of live.Layer (the in-process
// Network, Redis single, Redis Cluster), so that none can drift from the
// others.
package livetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"idleguard/server/live"
)

// Join makes a new node of a cluster for the test: a Layer with the given
// id, closed at the test's cleanup.
type Join func(id string) live.Layer

// NewCluster gives each test the cluster its nodes share. It may be the
// same deployment for every test (one Redis for the whole suite): the
// tests use domain names and node ids of their own.
type NewCluster func(t *testing.T) Join

// Margin is how much more than the time that has passed since the Record
// call began, on the test's own monotonic clock, a test accepts an Idle to
// have grown by: Redis counts whole milliseconds on its own clock.
const Margin = 100 * time.Millisecond

// Wait bounds how long a test waits for a signal.
const Wait = 10 * time.Second

// Contract runs every behaviour test against newCluster's layers.
func Contract(t *testing.T, newCluster NewCluster) {
	tests := []struct {
		name string
		fn   func(t *testing.T, c *cluster)
	}{
		{"RecordThenIdleFromAnotherNode", testRecordThenIdle},
		{"MaxOfActivity", testMaxOfActivity},
		{"CoalescedPerSession", testCoalesced},
		{"UnknownSession", testUnknownSession},
		{"Forget", testForget},
		{"DomainsIsolated", testDomainsIsolated},
		{"BadInputChangesNothing", testBadInput},
		{"EmptyBatch", testEmptyBatch},
		{"Closed", testClosed},
		{"ActivitySignalReachesOthers", testActivitySignal},
		{"SignalsInOrderPerDomain", testSignalsInOrder},
		{"SameOrderOnEveryNode", testSameOrder},
		{"ManyDomains", testManyDomains},
		{"LargeBatch", testLargeBatch},
		{"OneRunAtATime", testOneRun},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, &cluster{join: newCluster(t), prefix: fmt.Sprintf("t%d-%d", i, time.Now().UnixNano()%1e6)})
		})
	}
}

// cluster is one test's view: names made unique with prefix.
type cluster struct {
	join   Join
	prefix string
}

func (c *cluster) node(id string) live.Layer { return c.join(c.prefix + "-" + id) }
func (c *cluster) id(id string) string       { return c.prefix + "-" + id }
func (c *cluster) domain(d string) string    { return c.prefix + "-" + d }

// ctx is a test's context for one call.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), Wait)
	t.Cleanup(cancel)
	return c
}

// mustIdle is the session's Idle, failing when the call fails.
func mustIdle(t *testing.T, l live.Layer, domain, sid string) (time.Duration, bool) {
	t.Helper()
	d, ok, err := l.Idle(ctx(t), domain, sid)
	if err != nil {
		t.Fatalf("Idle(%s, %s): %v", domain, sid, err)
	}
	return d, ok
}

// wantIdle checks that the session was last active want before the
// Record call that began at since: no less, and no more than the time
// that has passed since then.
func wantIdle(t *testing.T, l live.Layer, domain, sid string, want time.Duration, since time.Time) {
	t.Helper()
	d, ok := mustIdle(t, l, domain, sid)
	if !ok {
		t.Fatalf("Idle(%s, %s): not held, want %v", domain, sid, want)
	}
	if most := want + time.Since(since) + Margin; d < want || d > most {
		t.Fatalf("Idle(%s, %s) = %v, want %v to %v", domain, sid, d, want, most)
	}
}

// mustRecord records batch and returns when the call began.
func mustRecord(t *testing.T, l live.Layer, batch ...live.Activity) time.Time {
	t.Helper()
	start := time.Now()
	if err := l.Record(ctx(t), batch); err != nil {
		t.Fatalf("Record: %v", err)
	}
	return start
}

func mustPublish(t *testing.T, l live.Layer, s live.Signal) {
	t.Helper()
	if err := l.Publish(ctx(t), s); err != nil {
		t.Fatalf("Publish(%+v): %v", s, err)
	}
}

// Listener is a node's Run, with what it delivered.
type Listener struct {
	signals chan live.Signal
	resyncs chan struct{}
}

// Listen runs l.Run until the test ends, and returns once Run has called
// resynced the first time (from then on it hears every signal). The
// cleanup cancels Run and checks that it returned nil.
func Listen(t *testing.T, l live.Layer) *Listener {
	t.Helper()
	ln := &Listener{signals: make(chan live.Signal, 100000), resyncs: make(chan struct{}, 100)}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- l.Run(runCtx, func(s live.Signal) {
			select {
			case ln.signals <- s:
			default:
				t.Errorf("a listener's buffer of %d signals is full", cap(ln.signals))
			}
		}, func() {
			select {
			case ln.resyncs <- struct{}{}:
			default:
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v when its context ended, want nil", err)
			}
		case <-time.After(Wait):
			t.Errorf("Run did not return within %v of its context's end", Wait)
		}
	})
	ln.WaitResync(t)
	return ln
}

// WaitResync waits for Run's next call of resynced.
func (ln *Listener) WaitResync(t *testing.T) {
	t.Helper()
	select {
	case <-ln.resyncs:
	case <-time.After(Wait):
		t.Fatalf("Run did not call resynced within %v", Wait)
	}
}

// Next is the next signal delivered.
func (ln *Listener) Next(t *testing.T) live.Signal {
	t.Helper()
	select {
	case s := <-ln.signals:
		return s
	case <-time.After(Wait):
		t.Fatalf("no signal within %v", Wait)
		return live.Signal{}
	}
}

// Take is the next n signals.
func (ln *Listener) Take(t *testing.T, n int) []live.Signal {
	t.Helper()
	out := make([]live.Signal, 0, n)
	for range n {
		out = append(out, ln.Next(t))
	}
	return out
}

// Pending is what has been delivered and not taken.
func (ln *Listener) Pending() int { return len(ln.signals) }

func testRecordThenIdle(t *testing.T, c *cluster) {
	a, b := c.node("a"), c.node("b")
	d := c.domain("acme")
	at := mustRecord(t, a, live.Activity{Domain: d, SessionID: "s1", Ago: 10 * time.Second})
	wantIdle(t, b, d, "s1", 10*time.Second, at)
	wantIdle(t, a, d, "s1", 10*time.Second, at)
	at = mustRecord(t, b, live.Activity{Domain: d, SessionID: "s2"})
	wantIdle(t, a, d, "s2", 0, at)
}

func testMaxOfActivity(t *testing.T, c *cluster) {
	a, b := c.node("a"), c.node("b")
	d := c.domain("acme")
	at := mustRecord(t, a, live.Activity{Domain: d, SessionID: "s1", Ago: 10 * time.Second})
	// Older input, reported late: it never moves the last activity back.
	mustRecord(t, b, live.Activity{Domain: d, SessionID: "s1", Ago: 30 * time.Second})
	wantIdle(t, a, d, "s1", 10*time.Second, at)
	// Later input moves it on.
	at = mustRecord(t, b, live.Activity{Domain: d, SessionID: "s1", Ago: 1 * time.Second})
	wantIdle(t, a, d, "s1", 1*time.Second, at)
	// A negative Ago counts as now, never as the future.
	at = mustRecord(t, a, live.Activity{Domain: d, SessionID: "s2", Ago: -time.Hour})
	wantIdle(t, b, d, "s2", 0, at)
}

func testCoalesced(t *testing.T, c *cluster) {
	a, b := c.node("a"), c.node("b")
	lb := Listen(t, b)
	d := c.domain("acme")
	at := mustRecord(t, a,
		live.Activity{Domain: d, SessionID: "s1", Ago: 5 * time.Second},
		live.Activity{Domain: d, SessionID: "s1", Ago: 2 * time.Second},
		live.Activity{Domain: d, SessionID: "s1", Ago: 9 * time.Second},
	)
	wantIdle(t, b, d, "s1", 2*time.Second, at)
	s := lb.Next(t)
	want := []live.Activity{{Domain: d, SessionID: "s1", Ago: 2 * time.Second}}
	if s.Kind != live.KindActivity || !sameActivity(s.Activity, want) {
		t.Fatalf("signal %+v, want one activity entry %+v", s, want)
	}
}

func testUnknownSession(t *testing.T, c *cluster) {
	a := c.node("a")
	d := c.domain("acme")
	if _, ok := mustIdle(t, a, d, "never"); ok {
		t.Fatal("Idle of a session never recorded: ok, want not held")
	}
	mustRecord(t, a, live.Activity{Domain: d, SessionID: "s1"})
	if _, ok := mustIdle(t, a, d, "s2"); ok {
		t.Fatal("Idle of another session of a held domain: ok, want not held")
	}
	if _, ok := mustIdle(t, a, c.domain("nobody"), "s1"); ok {
		t.Fatal("Idle in a domain never recorded: ok, want not held")
	}
}

func testForget(t *testing.T, c *cluster) {
	a, b := c.node("a"), c.node("b")
	d := c.domain("acme")
	at := mustRecord(t, a, live.Activity{Domain: d, SessionID: "s1"}, live.Activity{Domain: d, SessionID: "s2"}, live.Activity{Domain: d, SessionID: "s3"})
	if err := b.Forget(ctx(t), d, []string{"s1", "s3", "never"}); err != nil {
		t.Fatalf("Forget: %v", err)
	}
	for _, sid := range []string{"s1", "s3"} {
		if _, ok := mustIdle(t, a, d, sid); ok {
			t.Fatalf("Idle(%s) after Forget: ok, want not held", sid)
		}
	}
	wantIdle(t, a, d, "s2", 0, at)
	if err := b.Forget(ctx(t), d, nil); err != nil {
		t.Fatalf("Forget of nothing: %v", err)
	}
	// A forgotten session that has input again is held again.
	at = mustRecord(t, b, live.Activity{Domain: d, SessionID: "s1", Ago: 3 * time.Second})
	wantIdle(t, a, d, "s1", 3*time.Second, at)
}

func testDomainsIsolated(t *testing.T, c *cluster) {
	a, b := c.node("a"), c.node("b")
	acme, globex := c.domain("acme"), c.domain("globex")
	at := mustRecord(t, a,
		live.Activity{Domain: acme, SessionID: "s1", Ago: 1 * time.Second},
		live.Activity{Domain: globex, SessionID: "s1", Ago: 30 * time.Second},
	)
	wantIdle(t, b, acme, "s1", 1*time.Second, at)
	wantIdle(t, b, globex, "s1", 30*time.Second, at)
	if err := b.Forget(ctx(t), acme, []string{"s1"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := mustIdle(t, a, acme, "s1"); ok {
		t.Fatal("acme's s1 after Forget: ok, want not held")
	}
	wantIdle(t, a, globex, "s1", 30*time.Second, at)
}

func testBadInput(t *testing.T, c *cluster) {
	a, b := c.node("a"), c.node("b")
	lb := Listen(t, b)
	d := c.domain("acme")
	long := strings.Repeat("x", live.MaxName+1)
	for _, bad := range [][]live.Activity{
		{{Domain: d, SessionID: "ok"}, {Domain: "", SessionID: "s1"}},
		{{Domain: d, SessionID: "ok"}, {Domain: d, SessionID: ""}},
		{{Domain: d, SessionID: "ok"}, {Domain: "a{b}", SessionID: "s1"}},
		{{Domain: d, SessionID: "ok"}, {Domain: long, SessionID: "s1"}},
		{{Domain: d, SessionID: "ok"}, {Domain: d, SessionID: long}},
	} {
		if err := a.Record(ctx(t), bad); err == nil {
			t.Errorf("Record(%.40v): nil error, want one", bad)
		}
	}
	if _, ok := mustIdle(t, b, d, "ok"); ok {
		t.Fatal("a refused batch recorded its good entry")
	}
	for _, bad := range []live.Signal{
		{},
		{Kind: 99, Domain: d},
		{Kind: live.KindStarted, Domain: d},
		{Kind: live.KindStarted, SessionID: "s1"},
		{Kind: live.KindEnded, Domain: d, SessionID: "s1"}, // no reason
		{Kind: live.KindEnded, Domain: d, SessionID: "s1", Reason: 200},
		{Kind: live.KindSettings},
		{Kind: live.KindSettings, Domain: "a}"},
		{Kind: live.KindActivity},
	} {
		if err := a.Publish(ctx(t), bad); err == nil {
			t.Errorf("Publish(%+v): nil error, want one", bad)
		}
	}
	for _, bad := range [][2]string{{"", "s1"}, {d, ""}, {"{x", "s1"}} {
		if _, _, err := a.Idle(ctx(t), bad[0], bad[1]); err == nil {
			t.Errorf("Idle(%q, %q): nil error, want one", bad[0], bad[1])
		}
	}
	// Nothing of the above was sent: the next signal b hears is this one.
	mustPublish(t, a, live.Signal{Kind: live.KindSettings, Domain: d})
	if s := lb.Next(t); s.Kind != live.KindSettings || s.Domain != d {
		t.Fatalf("first signal after refused ones: %+v, want the settings of %s", s, d)
	}
}

func testEmptyBatch(t *testing.T, c *cluster) {
	a, b := c.node("a"), c.node("b")
	lb := Listen(t, b)
	mustRecord(t, a)
	mustPublish(t, a, live.Signal{Kind: live.KindDomains})
	if s := lb.Next(t); s.Kind != live.KindDomains {
		t.Fatalf("first signal after an empty Record: %+v, want the domains signal (an empty batch sends nothing)", s)
	}
}

func testClosed(t *testing.T, c *cluster) {
	a := c.node("a")
	d := c.domain("acme")
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close again: %v", err)
	}
	if err := a.Record(ctx(t), []live.Activity{{Domain: d, SessionID: "s1"}}); !errors.Is(err, live.ErrClosed) {
		t.Errorf("Record after Close: %v, want ErrClosed", err)
	}
	if _, _, err := a.Idle(ctx(t), d, "s1"); !errors.Is(err, live.ErrClosed) {
		t.Errorf("Idle after Close: %v, want ErrClosed", err)
	}
	if err := a.Forget(ctx(t), d, []string{"s1"}); !errors.Is(err, live.ErrClosed) {
		t.Errorf("Forget after Close: %v, want ErrClosed", err)
	}
	if err := a.Publish(ctx(t), live.Signal{Kind: live.KindSettings, Domain: d}); !errors.Is(err, live.ErrClosed) {
		t.Errorf("Publish after Close: %v, want ErrClosed", err)
	}
	if err := a.Run(ctx(t), func(live.Signal) {}, func() {}); !errors.Is(err, live.ErrClosed) {
		t.Errorf("Run after Close: %v, want ErrClosed", err)
	}

	// Close while Run is in progress: Run returns.
	b := c.node("b")
	done := make(chan error, 1)
	resynced := make(chan struct{}, 1)
	go func() {
		done <- b.Run(context.Background(), func(live.Signal) {}, func() {
			select {
			case resynced <- struct{}{}:
			default:
			}
		})
	}()
	select {
	case <-resynced:
	case <-time.After(Wait):
		t.Fatal("Run did not call resynced")
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close during Run: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, live.ErrClosed) {
			t.Errorf("Run after Close: %v, want ErrClosed", err)
		}
	case <-time.After(Wait):
		t.Fatal("Run did not return after Close")
	}
}

func testOneRun(t *testing.T, c *cluster) {
	a := c.node("a")
	Listen(t, a)
	if err := a.Run(ctx(t), func(live.Signal) {}, func() {}); err == nil {
		t.Fatal("a second Run at once: nil error, want one")
	}
}

// sameActivity compares entries as sets.
func sameActivity(got, want []live.Activity) bool {
	if len(got) != len(want) {
		return false
	}
	seen := map[live.Activity]int{}
	for _, a := range want {
		seen[a]++
	}
	for _, a := range got {
		if seen[a] == 0 {
			return false
		}
		seen[a]--
	}
	return true
}

// collect takes Activity signals from ln until it holds n entries, checking
// that each came from node from.
func collect(t *testing.T, ln *Listener, n int, from string) []live.Activity {
	t.Helper()
	var got []live.Activity
	for len(got) < n {
		s := ln.Next(t)
		if s.Kind != live.KindActivity || s.Node != from || s.Domain != "" {
			t.Fatalf("signal %+v, want activity from %s", s, from)
		}
		if len(s.Activity) > live.MaxSignalActivity {
			t.Fatalf("an activity signal of %d entries, over %d", len(s.Activity), live.MaxSignalActivity)
		}
		got = append(got, s.Activity...)
	}
	return got
}
