package idle_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"idleguard/server/clock"
	"idleguard/server/idle"
	"idleguard/server/pos"
	"idleguard/server/protocol"
)

// countingClock is a fake clock that counts timers armed and stopped, so a
// test can see which timers an operation touched, not only when events
// fire.
type countingClock struct {
	*clock.Fake
	mu             sync.Mutex
	armed, stopped int
}

func (c *countingClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	c.mu.Lock()
	c.armed++
	c.mu.Unlock()
	return countingTimer{c.Fake.AfterFunc(d, f), c}
}

func (c *countingClock) counts() (armed, stopped int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.armed, c.stopped
}

type countingTimer struct {
	clock.Timer
	c *countingClock
}

func (t countingTimer) Stop() bool {
	t.c.mu.Lock()
	t.c.stopped++
	t.c.mu.Unlock()
	return t.Timer.Stop()
}

// newDomains returns a tracker on a counting fake clock with one domain per
// entry of policies.
func newDomains(t *testing.T, policies map[string]idle.Policy) (*idle.Tracker, *countingClock, *recorder) {
	t.Helper()
	c := &countingClock{Fake: clock.NewFake(start)}
	r := &recorder{}
	tr := idle.NewTracker(c, r)
	for d, p := range policies {
		tr.SetPolicy(d, p)
	}
	return tr, c, r
}

// wantAt advances the clock to start+at, checking that nothing happens
// until the microsecond before and exactly want happens at it.
func wantAt(t *testing.T, c *countingClock, r *recorder, at time.Duration, want ...string) {
	t.Helper()
	due := start.Add(at)
	c.Advance(due.Sub(c.Now()) - time.Microsecond)
	if got := r.take(); len(got) != 0 {
		t.Fatalf("events before %v: got %q, want none", at, got)
	}
	c.Advance(time.Microsecond)
	if got := r.take(); !slices.Equal(got, want) {
		t.Fatalf("events at %v: got %q, want %q", at, got, want)
	}
}

func wantLen(t *testing.T, tr *idle.Tracker, domain string, want int) {
	t.Helper()
	if got := tr.DomainLen(domain); got != want {
		t.Fatalf("DomainLen(%s): got %d, want %d", domain, got, want)
	}
}

func TestEachDomainFollowsItsOwnPolicy(t *testing.T) {
	tr, c, r := newDomains(t, map[string]idle.Policy{
		"acme":   {Expiration: time.Minute},
		"globex": {Expiration: 10 * time.Minute},
	})
	addSessionIn(t, tr, c, "acme", "a1")
	addSessionIn(t, tr, c, "globex", "g1")
	wantLen(t, tr, "acme", 1)
	wantLen(t, tr, "globex", 1)
	if tr.Len() != 2 {
		t.Fatalf("Len: got %d, want 2", tr.Len())
	}
	for sid, want := range map[string]time.Duration{"a1": time.Minute, "g1": 10 * time.Minute} {
		if st, ok := tr.Status(sid); !ok || st.Remaining != want {
			t.Fatalf("Status(%s): got %v %v, want %v", sid, st.Remaining, ok, want)
		}
	}
	wantAt(t, c, r, 45*time.Second, "warn a1 15s")
	wantAt(t, c, r, time.Minute, "expire a1 idle 1m0s")
	wantLen(t, tr, "acme", 0)
	wantLen(t, tr, "globex", 1)
	wantAt(t, c, r, 9*time.Minute+30*time.Second, "warn g1 30s")
	wantAt(t, c, r, 10*time.Minute, "expire g1 idle 10m0s")
	if tr.Len() != 0 || c.Pending() != 0 {
		t.Fatalf("after both expired: %d sessions, %d timers; want none", tr.Len(), c.Pending())
	}
}

// A change to one domain's Expiration Time neither expires, re-arms nor
// returns another domain's sessions: the counting clock shows that only the
// changed domain's timers were stopped and armed, and the others' events
// come exactly when they would have.
func TestSetPolicyTouchesOnlyItsDomain(t *testing.T) {
	tr, c, r := newDomains(t, map[string]idle.Policy{
		"acme":    {Expiration: time.Hour},
		"globex":  {Expiration: 20 * time.Minute},
		"initech": {Expiration: time.Minute},
	})
	addSessionIn(t, tr, c, "acme", "a-old")
	addSessionIn(t, tr, c, "globex", "g1")
	c.Advance(10 * time.Minute)
	addSessionIn(t, tr, c, "acme", "a-new")
	addSessionIn(t, tr, c, "globex", "g2")
	c.Advance(10 * time.Second)
	addSessionIn(t, tr, c, "initech", "i1")
	wantAt(t, c, r, 10*time.Minute+55*time.Second, "warn i1 15s")
	c.Advance(5 * time.Second) // now start+11m; i1 is warned, 10 s left
	if _, ok := tr.Touch("g2", c.Now()); !ok {
		t.Fatal("Touch g2 failed")
	}

	armed, stopped := c.counts()
	pending := c.Pending()
	live := tr.SetPolicy("acme", idle.Policy{Expiration: 5 * time.Minute})
	if got := r.take(); !slices.Equal(got, []string{"expire a-old setting_changed 5m0s"}) {
		t.Fatalf("SetPolicy(acme) told: got %q, want only a-old's expiry", got)
	}
	if len(live) != 1 || live[0].ID != "a-new" || live[0].Status.Remaining != 4*time.Minute {
		t.Fatalf("SetPolicy(acme) returned %+v, want only a-new with 4m left", live)
	}
	a, s := c.counts()
	// a-old's timer stopped (dropped); a-new's stopped and armed again.
	if a-armed != 1 || s-stopped != 2 {
		t.Fatalf("SetPolicy(acme) armed %d and stopped %d timers, want 1 and 2 (acme's only)", a-armed, s-stopped)
	}
	if got := c.Pending(); got != pending-1 {
		t.Fatalf("timers pending after SetPolicy(acme): got %d, want %d", got, pending-1)
	}
	if p, _ := tr.Policy("globex"); p.Expiration != 20*time.Minute {
		t.Fatalf("globex's policy changed: got %+v", p)
	}
	if st, ok := tr.Status("i1"); !ok || !st.Warned || st.Remaining != 10*time.Second {
		t.Fatalf("i1 after SetPolicy(acme): got %+v ok=%v, want still warned with 10s", st, ok)
	}
	for sid, want := range map[string]time.Duration{"g1": 9 * time.Minute, "g2": 20 * time.Minute} {
		if st, ok := tr.Status(sid); !ok || st.Remaining != want || st.Policy.Expiration != 20*time.Minute {
			t.Fatalf("Status(%s) after SetPolicy(acme): got %+v ok=%v, want %v left under globex's 20m", sid, st, ok, want)
		}
	}

	// A new domain with no sessions costs no timer.
	armed, stopped = c.counts()
	if live := tr.SetPolicy("hooli", idle.Policy{Expiration: time.Second}); live != nil {
		t.Fatalf("SetPolicy on a new domain: got %+v, want nil", live)
	}
	if a, s := c.counts(); a != armed || s != stopped {
		t.Fatalf("SetPolicy(hooli) armed %d and stopped %d timers, want none", a-armed, s-stopped)
	}

	wantAt(t, c, r, 11*time.Minute+10*time.Second, "expire i1 idle 1m0s")
	wantAt(t, c, r, 14*time.Minute+30*time.Second, "warn a-new 30s")
	wantAt(t, c, r, 15*time.Minute, "expire a-new idle 5m0s")
	wantAt(t, c, r, 19*time.Minute+30*time.Second, "warn g1 30s")
	wantAt(t, c, r, 20*time.Minute, "expire g1 idle 20m0s")
	wantAt(t, c, r, 30*time.Minute+30*time.Second, "warn g2 30s")
	wantAt(t, c, r, 31*time.Minute, "expire g2 idle 20m0s")
	if tr.Len() != 0 || c.Pending() != 0 {
		t.Fatalf("at the end: %d sessions, %d timers; want none", tr.Len(), c.Pending())
	}
}

func TestAddToUnknownDomainIsRefused(t *testing.T) {
	tr, c, r := newDomains(t, map[string]idle.Policy{"acme": {Expiration: time.Minute}})
	now := c.Now()
	for _, d := range []string{"globex", ""} {
		if st, ok := tr.Add(pos.Session{ID: "x", Domain: d, Created: now, LastActivity: now}); ok || st != (idle.Status{}) {
			t.Fatalf("Add to %q: got %+v %v, want the zero Status and false", d, st, ok)
		}
	}
	if tr.Len() != 0 || c.Pending() != 0 {
		t.Fatalf("after refused Adds: %d sessions, %d timers; want none", tr.Len(), c.Pending())
	}
	if _, ok := tr.Status("x"); ok {
		t.Fatal("a refused session has a status")
	}
	if _, ok := tr.Touch("x", now); ok {
		t.Fatal("a refused session was touched")
	}
	if _, ok := tr.Policy("globex"); ok {
		t.Fatal("Add created the domain it was refused for")
	}

	// A refused Add of a tracked id leaves that session as it was.
	addSessionIn(t, tr, c, "acme", "a1")
	c.Advance(10 * time.Second)
	if _, ok := tr.Add(pos.Session{ID: "a1", Domain: "globex", Created: c.Now(), LastActivity: c.Now()}); ok {
		t.Fatal("Add of a1 to globex: got true, want false")
	}
	wantLen(t, tr, "acme", 1)
	if st, ok := tr.Status("a1"); !ok || st.Remaining != 50*time.Second {
		t.Fatalf("a1 after a refused Add: got %v %v, want 50s", st.Remaining, ok)
	}
	wantAt(t, c, r, 45*time.Second, "warn a1 15s")
	wantAt(t, c, r, time.Minute, "expire a1 idle 1m0s")

	tr.SetPolicy("globex", idle.Policy{Expiration: time.Hour})
	addSessionIn(t, tr, c, "globex", "x")
	wantLen(t, tr, "globex", 1)
}

// Ids are unique across domains, so adding a tracked id again under another
// domain moves the session there.
func TestReAddMovesASessionToItsNewDomain(t *testing.T) {
	tr, c, r := newDomains(t, map[string]idle.Policy{
		"acme":   {Expiration: time.Minute},
		"globex": {Expiration: time.Hour},
	})
	addSessionIn(t, tr, c, "acme", "s1")
	addSessionIn(t, tr, c, "globex", "s1")
	wantLen(t, tr, "acme", 0)
	wantLen(t, tr, "globex", 1)
	if tr.Len() != 1 || c.Pending() != 1 {
		t.Fatalf("after moving: %d sessions, %d timers; want 1 and 1", tr.Len(), c.Pending())
	}
	if live := tr.SetPolicy("acme", idle.Policy{Expiration: time.Second}); len(live) != 0 {
		t.Fatalf("SetPolicy(acme) after the move: got %+v, want none", live)
	}
	c.Advance(59*time.Minute + 30*time.Second)
	wantEvents(t, r, "warn s1 30s")
}

func TestRemoveDomain(t *testing.T) {
	tr, c, r := newDomains(t, map[string]idle.Policy{
		"acme":   {Expiration: time.Hour},
		"globex": {Expiration: time.Hour},
	})
	addSessionIn(t, tr, c, "acme", "a1")
	addSessionIn(t, tr, c, "acme", "a2")
	addSessionIn(t, tr, c, "globex", "g1")
	c.Advance(time.Second)
	tr.Touch("a1", c.Now())
	tr.Touch("g1", c.Now())

	ids := tr.RemoveDomain("acme")
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"a1", "a2"}) {
		t.Fatalf("RemoveDomain(acme): got %q, want [a1 a2]", ids)
	}
	wantEvents(t, r)
	if tr.Len() != 1 || c.Pending() != 1 {
		t.Fatalf("after RemoveDomain: %d sessions, %d timers; want globex's one of each", tr.Len(), c.Pending())
	}
	wantLen(t, tr, "acme", 0)
	if _, ok := tr.Policy("acme"); ok {
		t.Fatal("acme still has a policy")
	}
	for _, sid := range []string{"a1", "a2"} {
		if _, ok := tr.Status(sid); ok {
			t.Fatalf("Status(%s): alive after RemoveDomain", sid)
		}
		if _, ok := tr.Touch(sid, c.Now()); ok {
			t.Fatalf("Touch(%s): accepted after RemoveDomain", sid)
		}
		if _, ok := tr.Remove(sid); ok {
			t.Fatalf("Remove(%s): true after RemoveDomain", sid)
		}
	}
	if _, ok := tr.Add(pos.Session{ID: "a3", Domain: "acme", Created: c.Now(), LastActivity: c.Now()}); ok {
		t.Fatal("Add to a removed domain: got true, want false")
	}
	if got := tr.TakeActivity(nil); len(got) != 1 || got[0].SessionID != "g1" {
		t.Fatalf("TakeActivity after RemoveDomain: got %+v, want only g1's", got)
	}
	if ids := tr.RemoveDomain("acme"); len(ids) != 0 {
		t.Fatalf("second RemoveDomain(acme): got %q, want none", ids)
	}
	// Named again, the domain starts empty.
	if live := tr.SetPolicy("acme", idle.Policy{Expiration: time.Second}); len(live) != 0 {
		t.Fatalf("SetPolicy on a domain named again: got %+v, want none", live)
	}
	c.Advance(2 * time.Hour)
	wantEvents(t, r, "warn g1 30s", "expire g1 idle 1h0m0s")
}

func TestStatusCarriesTheDomainPolicy(t *testing.T) {
	acmeP := idle.Policy{Expiration: time.Hour, MaxLifetime: 8 * time.Hour}
	globexP := idle.Policy{Expiration: 10 * time.Minute}
	tr, c, _ := newDomains(t, map[string]idle.Policy{"acme": acmeP, "globex": globexP})
	if st := addSessionIn(t, tr, c, "acme", "a1"); st.Policy != acmeP {
		t.Fatalf("Add's status: got policy %+v, want %+v", st.Policy, acmeP)
	}
	if st := addSessionIn(t, tr, c, "globex", "g1"); st.Policy != globexP {
		t.Fatalf("Add's status: got policy %+v, want %+v", st.Policy, globexP)
	}
	c.Advance(time.Second)
	if st, _ := tr.Touch("a1", c.Now()); st.Policy != acmeP {
		t.Fatalf("Touch's status: got policy %+v, want %+v", st.Policy, acmeP)
	}
	if st, _ := tr.Status("g1"); st.Policy != globexP {
		t.Fatalf("Status: got policy %+v, want %+v", st.Policy, globexP)
	}
	lowered := idle.Policy{Expiration: 30 * time.Minute, MaxLifetime: 8 * time.Hour}
	live := tr.SetPolicy("acme", lowered)
	if len(live) != 1 || live[0].Status.Policy != lowered {
		t.Fatalf("SetPolicy's live: got %+v, want a1 under %+v", live, lowered)
	}
	if st, _ := tr.Status("a1"); st.Policy != lowered {
		t.Fatalf("Status after SetPolicy: got policy %+v, want %+v", st.Policy, lowered)
	}
	if st, _ := tr.Status("g1"); st.Policy != globexP {
		t.Fatalf("globex's Status after SetPolicy(acme): got policy %+v, want %+v", st.Policy, globexP)
	}
	if p, ok := tr.Policy("acme"); !ok || p != lowered {
		t.Fatalf("Policy(acme): got %+v %v, want %+v", p, ok, lowered)
	}
	if p, ok := tr.Remove("g1"); !ok || p != globexP {
		t.Fatalf("Remove(g1): got %+v %v, want globex's %+v", p, ok, globexP)
	}
}

func TestExpireReceivesTheDomainPolicy(t *testing.T) {
	globexP := idle.Policy{Expiration: 2 * time.Minute}
	tr, c, r := newDomains(t, map[string]idle.Policy{
		"acme":   {Expiration: time.Minute, MaxLifetime: 3 * time.Minute},
		"globex": globexP,
	})
	addSessionIn(t, tr, c, "acme", "a1")
	addSessionIn(t, tr, c, "acme", "a2")
	addSessionIn(t, tr, c, "globex", "g1")
	lowered := idle.Policy{Expiration: 30 * time.Second, MaxLifetime: 3 * time.Minute}
	for i := range 9 { // a1 busy every 20 s up to its maximum lifetime
		c.Advance(20 * time.Second)
		tr.Touch("a1", c.Now())
		if i == 1 { // at 40 s: a2, idle since 0, is past the lowered time
			tr.SetPolicy("acme", lowered)
		}
	}
	wantEvents(t, r,
		"expire a2 setting_changed 30s",
		"warn g1 30s",
		"expire g1 idle 2m0s",
		"warn a1 7.5s",
		"expire a1 revoked 30s")
	for sid, want := range map[string]idle.Policy{"a1": lowered, "a2": lowered, "g1": globexP} {
		if p, ok := r.expiredWith(sid); !ok || p != want {
			t.Errorf("Expire(%s) policy: got %+v %v, want %+v", sid, p, ok, want)
		}
	}
}

// callback is a Notifier that calls back into the tracker, as the sessions
// layer does: it would deadlock if the tracker called it under its lock.
type callback struct {
	tr    *idle.Tracker
	calls chan string
}

func (n *callback) Warn(sid string, remaining time.Duration) {
	n.tr.Status(sid)
	n.tr.Policy("acme")
	n.calls <- "warn " + sid
}

func (n *callback) Expire(_, sid string, reason protocol.Reason, p idle.Policy) {
	n.tr.Len()
	n.tr.DomainLen("acme")
	n.tr.Remove(sid)
	n.calls <- "expire " + sid
}

func TestNotifierMayCallBackIntoTheTracker(t *testing.T) {
	c := clock.NewFake(start)
	n := &callback{calls: make(chan string, 10)}
	n.tr = idle.NewTracker(c, n)
	n.tr.SetPolicy("acme", idle.Policy{Expiration: time.Minute})
	addSessionIn(t, n.tr, c, "acme", "s1")
	addSessionIn(t, n.tr, c, "acme", "s2")
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Advance(50 * time.Second) // warns both
		n.tr.Touch("s2", c.Now())
		n.tr.SetPolicy("acme", idle.Policy{Expiration: 20 * time.Second}) // expires s1
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second): // a deadlock guard, not a timing check
		t.Fatal("the tracker called its Notifier under its lock")
	}
	close(n.calls)
	var got []string
	for s := range n.calls {
		got = append(got, s)
	}
	slices.Sort(got)
	if want := []string{"expire s1", "warn s1", "warn s2"}; !slices.Equal(got, want) {
		t.Fatalf("calls: got %q, want %q", got, want)
	}
}

// Many domains changed, removed and used at once: for the race detector,
// and to check that the per-domain sets agree with the whole.
func TestDomainsConcurrently(t *testing.T) {
	c := clock.NewFake(start)
	tr := idle.NewTracker(c, &recorder{})
	var wg sync.WaitGroup
	for d := range 8 {
		wg.Go(func() {
			domain := fmt.Sprintf("d%d", d)
			for i := range 50 {
				tr.SetPolicy(domain, idle.Policy{Expiration: time.Duration(1+i%5) * time.Minute})
				sid := fmt.Sprintf("%s-s%d", domain, i)
				now := c.Now()
				tr.Add(pos.Session{ID: sid, Domain: domain, Created: now, LastActivity: now})
				tr.Touch(sid, now)
				if i%7 == 0 {
					tr.Remove(sid)
				}
				if d%4 == 0 && i == 25 {
					tr.RemoveDomain(domain)
				}
			}
		})
	}
	wg.Go(func() {
		for range 100 {
			c.Advance(time.Second)
			tr.TakeActivity(nil)
		}
	})
	wg.Wait()
	sum := 0
	for d := range 8 {
		sum += tr.DomainLen(fmt.Sprintf("d%d", d))
	}
	if sum != tr.Len() {
		t.Fatalf("domains hold %d sessions, the tracker %d", sum, tr.Len())
	}
	tr.Stop()
}

// benchSetPolicy measures SetPolicy on one domain of a tracker holding
// domains×perDomain sessions, on the real clock (as in production: the
// runtime's timers, none due during the run). The policy alternates
// between two long Expiration Times so every session is re-armed and none
// expires.
func benchSetPolicy(b *testing.B, domains, perDomain int) {
	tr := idle.NewTracker(clock.Real{}, &recorder{})
	b.Cleanup(tr.Stop)
	p := [2]idle.Policy{{Expiration: time.Hour}, {Expiration: 2 * time.Hour}}
	now := time.Now()
	for d := range domains {
		domain := fmt.Sprintf("d%d", d)
		tr.SetPolicy(domain, p[0])
		for s := range perDomain {
			tr.Add(pos.Session{ID: fmt.Sprintf("%s-s%d", domain, s), Domain: domain, Created: now, LastActivity: now})
		}
	}
	if tr.Len() != domains*perDomain {
		b.Fatalf("set up %d sessions, want %d", tr.Len(), domains*perDomain)
	}
	target := fmt.Sprintf("d%d", domains/2)
	b.ReportAllocs()
	touched, i := 0, 0
	for b.Loop() {
		touched += len(tr.SetPolicy(target, p[i%2]))
		i++
	}
	b.ReportMetric(float64(touched)/float64(i), "sessions/op")
}

func BenchmarkSetPolicyOneOfManyDomains(b *testing.B) { benchSetPolicy(b, 10000, 2) }

func BenchmarkSetPolicyOneBigDomain(b *testing.B) { benchSetPolicy(b, 1, 20000) }
