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

// recorder is a Notifier that writes down what it is told. An expiry is
// written with the Expiration Time of the policy it came with, so every
// test that expects one also checks which domain's policy it heard.
type recorder struct {
	mu       sync.Mutex
	events   []string
	policies map[string]idle.Policy // the policy each session's Expire carried
}

func (r *recorder) Warn(sid string, remaining time.Duration) {
	r.add(fmt.Sprintf("warn %s %v", sid, remaining))
}

func (r *recorder) Expire(_, sid string, reason protocol.Reason, p idle.Policy) {
	r.mu.Lock()
	if r.policies == nil {
		r.policies = make(map[string]idle.Policy)
	}
	r.policies[sid] = p
	r.mu.Unlock()
	r.add(fmt.Sprintf("expire %s %s %v", sid, reason, p.Expiration))
}

func (r *recorder) expiredWith(sid string) (idle.Policy, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.policies[sid]
	return p, ok
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, s)
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.events
	r.events = nil
	return e
}

var start = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

// acme is the domain of the tests that need only one.
const acme = "acme"

// newTracker returns a tracker on a fake clock with one domain, acme,
// whose Expiration Time is exp.
func newTracker(t *testing.T, exp time.Duration) (*idle.Tracker, *clock.Fake, *recorder) {
	t.Helper()
	c := clock.NewFake(start)
	r := &recorder{}
	tr := idle.NewTracker(c, r)
	if live := tr.SetPolicy(acme, idle.Policy{Expiration: exp}); len(live) != 0 {
		t.Fatalf("SetPolicy on a new domain: got %+v, want no sessions", live)
	}
	return tr, c, r
}

// addSession signs sid in to acme now.
func addSession(t *testing.T, tr *idle.Tracker, c *clock.Fake, sid string) {
	t.Helper()
	addSessionIn(t, tr, c, acme, sid)
}

// addSessionIn signs sid in to domain now.
func addSessionIn(t *testing.T, tr *idle.Tracker, c clock.Clock, domain, sid string) idle.Status {
	t.Helper()
	now := c.Now()
	st, ok := tr.Add(pos.Session{ID: sid, Domain: domain, Created: now, LastActivity: now})
	if !ok || st.Remaining <= 0 {
		t.Fatalf("Add %s to %s: got %v remaining, ok=%v; want a live session", sid, domain, st.Remaining, ok)
	}
	return st
}

// mustAdd adds s, failing the test if it is refused.
func mustAdd(t *testing.T, tr *idle.Tracker, s pos.Session) idle.Status {
	t.Helper()
	st, ok := tr.Add(s)
	if !ok {
		t.Fatalf("Add %s to %q refused", s.ID, s.Domain)
	}
	return st
}

func wantEvents(t *testing.T, r *recorder, want ...string) {
	t.Helper()
	if got := r.take(); !slices.Equal(got, want) {
		t.Fatalf("events: got %q, want %q", got, want)
	}
}

func TestPolicy(t *testing.T) {
	for _, tc := range []struct {
		exp, lead, report time.Duration
	}{
		{3 * time.Second, 750 * time.Millisecond, 300 * time.Millisecond},
		{60 * time.Second, 15 * time.Second, 5 * time.Second},
		{172800 * time.Second, 30 * time.Second, 5 * time.Second},
		{1 * time.Second, 250 * time.Millisecond, 200 * time.Millisecond},
	} {
		p := idle.Policy{Expiration: tc.exp}
		if got := p.WarnLead(); got != tc.lead {
			t.Errorf("WarnLead(%v): got %v, want %v", tc.exp, got, tc.lead)
		}
		if got := p.ReportEvery(); got != tc.report {
			t.Errorf("ReportEvery(%v): got %v, want %v", tc.exp, got, tc.report)
		}
	}
	p := idle.Policy{Expiration: time.Hour, MaxLifetime: 8 * time.Hour}
	if got, want := p.Deadline(start, start.Add(30*time.Minute)), start.Add(90*time.Minute); !got.Equal(want) {
		t.Errorf("Deadline: got %v, want %v", got, want)
	}
	if got, want := p.Deadline(start, start.Add(7*time.Hour+30*time.Minute)), start.Add(8*time.Hour); !got.Equal(want) {
		t.Errorf("Deadline capped by MaxLifetime: got %v, want %v", got, want)
	}
}

func TestIdleSessionWarnsThenExpiresOnTheDot(t *testing.T) {
	tr, c, r := newTracker(t, 60*time.Second)
	addSession(t, tr, c, "s1")

	c.Advance(45*time.Second - time.Microsecond)
	wantEvents(t, r)
	c.Advance(time.Microsecond)
	wantEvents(t, r, "warn s1 15s")

	c.Advance(15*time.Second - time.Microsecond)
	wantEvents(t, r)
	if _, ok := tr.Status("s1"); !ok {
		t.Fatal("session ended before its deadline")
	}
	c.Advance(time.Microsecond)
	wantEvents(t, r, "expire s1 idle 1m0s")
	if _, ok := tr.Status("s1"); ok {
		t.Fatal("session alive after its deadline")
	}
	if tr.Len() != 0 || c.Pending() != 0 {
		t.Fatalf("after expiry: %d sessions, %d timers; want none", tr.Len(), c.Pending())
	}
}

func TestActivityMovesTheDeadline(t *testing.T) {
	tr, c, r := newTracker(t, 60*time.Second)
	addSession(t, tr, c, "s1")

	c.Advance(40 * time.Second)
	// Input 2 s before the report: the deadline counts from the input.
	st, ok := tr.Touch("s1", c.Now().Add(-2*time.Second))
	if !ok || st.Remaining != 58*time.Second {
		t.Fatalf("Touch: got %v %v, want 58s true", st.Remaining, ok)
	}
	c.Advance(58*time.Second - 15*time.Second - time.Microsecond)
	wantEvents(t, r)
	c.Advance(time.Microsecond)
	wantEvents(t, r, "warn s1 15s")
	c.Advance(15 * time.Second)
	wantEvents(t, r, "expire s1 idle 1m0s")
}

func TestActivityNeverMovesBackwardsOrIntoTheFuture(t *testing.T) {
	tr, c, _ := newTracker(t, 60*time.Second)
	addSession(t, tr, c, "s1")
	c.Advance(10 * time.Second)
	tr.Touch("s1", c.Now())
	st, _ := tr.Touch("s1", c.Now().Add(-5*time.Second))
	if st.Remaining != 60*time.Second {
		t.Errorf("older report moved the deadline back: remaining %v, want 60s", st.Remaining)
	}
	st, _ = tr.Touch("s1", c.Now().Add(time.Hour))
	if st.Remaining != 60*time.Second {
		t.Errorf("a future time was believed: remaining %v, want 60s", st.Remaining)
	}
}

func TestActivityClearsTheWarning(t *testing.T) {
	tr, c, r := newTracker(t, 60*time.Second)
	addSession(t, tr, c, "s1")
	c.Advance(50 * time.Second)
	wantEvents(t, r, "warn s1 15s")
	st, ok := tr.Touch("s1", c.Now())
	if !ok || !st.WarningCleared || st.Warned {
		t.Fatalf("Touch after warning: got %+v, want WarningCleared", st)
	}
	st, _ = tr.Touch("s1", c.Now())
	if st.WarningCleared {
		t.Fatal("second Touch cleared the warning again")
	}
	// The new cycle warns and expires from the touch.
	c.Advance(45 * time.Second)
	wantEvents(t, r, "warn s1 15s")
	c.Advance(15 * time.Second)
	wantEvents(t, r, "expire s1 idle 1m0s")
}

func TestActivityAfterTheDeadlineDoesNotRevive(t *testing.T) {
	tr, c, _ := newTracker(t, 60*time.Second)
	addSession(t, tr, c, "s1")
	// A report arriving after the deadline about input before it.
	c.Advance(60 * time.Second)
	if _, ok := tr.Touch("s1", c.Now().Add(-time.Second)); ok {
		t.Fatal("Touch revived an expired session")
	}
}

func TestLoweringTheSettingExpiresTheLongIdleAndShortensTheRest(t *testing.T) {
	tr, c, r := newTracker(t, time.Hour)
	addSession(t, tr, c, "old")
	c.Advance(10 * time.Minute)
	addSession(t, tr, c, "new")
	c.Advance(time.Minute)

	live := tr.SetPolicy(acme, idle.Policy{Expiration: 5 * time.Minute})
	wantEvents(t, r, "expire old setting_changed 5m0s")
	if len(live) != 1 || live[0].ID != "new" || live[0].Status.Remaining != 4*time.Minute {
		t.Fatalf("live after SetPolicy: got %+v, want new with 4m left", live)
	}
	st, _ := tr.Status("new")
	if st.Remaining != 4*time.Minute {
		t.Fatalf("remaining after SetPolicy: got %v, want 4m", st.Remaining)
	}
	c.Advance(4*time.Minute - 30*time.Second)
	wantEvents(t, r, "warn new 30s")
	c.Advance(30 * time.Second)
	wantEvents(t, r, "expire new idle 5m0s")
}

func TestRaisingTheSettingPostponesAPendingSignOut(t *testing.T) {
	tr, c, r := newTracker(t, 60*time.Second)
	addSession(t, tr, c, "s1")
	c.Advance(50 * time.Second)
	wantEvents(t, r, "warn s1 15s")
	tr.SetPolicy(acme, idle.Policy{Expiration: 10 * time.Minute})
	c.Advance(10 * time.Second)
	wantEvents(t, r)
	st, ok := tr.Status("s1")
	if !ok || st.Warned || st.Remaining != 9*time.Minute {
		t.Fatalf("after raising: got %+v ok=%v, want 9m unwarned", st, ok)
	}
}

func TestLoweringIntoTheWarningWindowWarnsAtOnce(t *testing.T) {
	tr, c, r := newTracker(t, time.Hour)
	addSession(t, tr, c, "s1")
	c.Advance(100 * time.Second)
	tr.SetPolicy(acme, idle.Policy{Expiration: 120 * time.Second})
	c.Advance(0)
	wantEvents(t, r, "warn s1 20s")
}

func TestMaxLifetimeEndsEvenABusySession(t *testing.T) {
	c := clock.NewFake(start)
	r := &recorder{}
	tr := idle.NewTracker(c, r)
	tr.SetPolicy(acme, idle.Policy{Expiration: time.Minute, MaxLifetime: 10 * time.Minute})
	addSession(t, tr, c, "s1")
	for range 20 {
		c.Advance(30 * time.Second)
		tr.Touch("s1", c.Now())
	}
	got := r.take()
	if len(got) == 0 || got[len(got)-1] != "expire s1 revoked 1m0s" {
		t.Fatalf("events: got %q, want a warning then expire s1 revoked 1m0s", got)
	}
}

func TestRestoredSessionsAreRebasedAndExpiredIfPast(t *testing.T) {
	tr, c, r := newTracker(t, 60*time.Second)
	now := c.Now()
	// As read back from storage: wall-clock times, no monotonic reading.
	mustAdd(t, tr, pos.Session{ID: "fresh", Domain: acme, Created: now.Add(-time.Hour).Round(0), LastActivity: now.Add(-20 * time.Second).Round(0)})
	mustAdd(t, tr, pos.Session{ID: "stale", Domain: acme, Created: now.Add(-time.Hour).Round(0), LastActivity: now.Add(-61 * time.Second).Round(0)})
	c.Advance(0)
	wantEvents(t, r, "expire stale idle 1m0s")
	st, ok := tr.Status("fresh")
	if !ok || st.Remaining != 40*time.Second {
		t.Fatalf("fresh: got %v %v, want 40s", st.Remaining, ok)
	}
}

// A last activity stored in the future (the wall clock stepped back across
// a restart) must not give a session more than its Expiration Time.
func TestRestoredTimesInTheFutureAreClamped(t *testing.T) {
	tr, c, r := newTracker(t, 60*time.Second)
	now := c.Now()
	mustAdd(t, tr, pos.Session{ID: "future", Domain: acme, Created: now.Add(5 * time.Minute).Round(0), LastActivity: now.Add(10 * time.Minute).Round(0)})
	st, ok := tr.Status("future")
	if !ok || st.Remaining != 60*time.Second {
		t.Fatalf("future: got %v %v, want 60s (clamped to now)", st.Remaining, ok)
	}
	c.Advance(60 * time.Second)
	wantEvents(t, r, "warn future 15s", "expire future idle 1m0s")
}

// After the setting is lowered, activity in one tab still reaches the
// others within half the new Expiration Time: a token issued under the
// longer time does not hold back the renewal that tells them.
func TestLoweredSettingRenewsAtItsOwnCadence(t *testing.T) {
	tr, c, _ := newTracker(t, time.Hour)
	addSession(t, tr, c, "s1")
	tr.Renewed("s1", c.Now().Add(time.Hour))
	tr.SetPolicy(acme, idle.Policy{Expiration: 10 * time.Second})
	renewed := false
	for range 20 { // 10 s of input, every 500 ms
		c.Advance(500 * time.Millisecond)
		st, ok := tr.Touch("s1", c.Now())
		if !ok {
			t.Fatal("session ended while active")
		}
		if st.RenewToken {
			renewed = true
			break
		}
	}
	if !renewed {
		t.Fatal("10 s of activity under a 10 s Expiration Time brought no renewal, want one after about 5 s")
	}
}

func TestRemoveStopsTheTimer(t *testing.T) {
	tr, c, r := newTracker(t, 60*time.Second)
	addSession(t, tr, c, "s1")
	if p, ok := tr.Remove("s1"); !ok || p != (idle.Policy{Expiration: 60 * time.Second}) {
		t.Fatalf("Remove: got %+v %v, want acme's policy (60s) and true", p, ok)
	}
	if p, ok := tr.Remove("s1"); ok || p != (idle.Policy{}) {
		t.Fatalf("second Remove: got %+v %v, want the zero policy and false", p, ok)
	}
	if n := tr.DomainLen(acme); n != 0 {
		t.Fatalf("DomainLen after Remove: got %d, want 0", n)
	}
	c.Advance(time.Hour)
	wantEvents(t, r)
	if c.Pending() != 0 {
		t.Fatalf("timers pending after Remove: %d", c.Pending())
	}
}

func TestStopDisarmsEveryTimer(t *testing.T) {
	tr, c, r := newTracker(t, 60*time.Second)
	addSession(t, tr, c, "a")
	addSession(t, tr, c, "b")
	c.Advance(time.Second)
	tr.Touch("a", c.Now())
	tr.Stop()
	tr.SetPolicy(acme, idle.Policy{Expiration: time.Hour})
	mustAdd(t, tr, pos.Session{ID: "c", Domain: acme, Created: c.Now(), LastActivity: c.Now()})
	c.Advance(24 * time.Hour)
	wantEvents(t, r)
	if c.Pending() != 0 {
		t.Fatalf("timers pending after Stop: %d", c.Pending())
	}
	if got := tr.TakeActivity(nil); len(got) != 1 || got[0].SessionID != "a" {
		t.Fatalf("TakeActivity after Stop: got %+v, want a's activity", got)
	}
}

func TestTakeActivityCoalesces(t *testing.T) {
	tr, c, _ := newTracker(t, 60*time.Second)
	addSession(t, tr, c, "a")
	addSession(t, tr, c, "b")
	for range 10 {
		c.Advance(time.Second)
		tr.Touch("a", c.Now())
	}
	got := tr.TakeActivity(nil)
	if len(got) != 1 || got[0].SessionID != "a" || !got[0].LastActivity.Equal(c.Now()) {
		t.Fatalf("TakeActivity: got %+v, want one entry for a at now", got)
	}
	if got := tr.TakeActivity(nil); len(got) != 0 {
		t.Fatalf("second TakeActivity: got %+v, want none", got)
	}
}

func TestTokenRenewalIsDueAboutTwicePerExpiration(t *testing.T) {
	tr, c, _ := newTracker(t, 60*time.Second)
	st := mustAdd(t, tr, pos.Session{ID: "s1", Domain: acme, Created: c.Now(), LastActivity: c.Now()})
	tr.Renewed("s1", st.Deadline)
	renewals := 0
	for range 120 { // two minutes of steady input, one report a second
		c.Advance(time.Second)
		st, ok := tr.Touch("s1", c.Now())
		if !ok {
			t.Fatal("busy session expired")
		}
		if st.RenewToken {
			renewals++
			tr.Renewed("s1", st.Deadline)
		}
	}
	if renewals < 3 || renewals > 5 {
		t.Fatalf("renewals in 2 minutes at 60 s expiration: got %d, want about 4", renewals)
	}
}

func BenchmarkTouch(b *testing.B) {
	c := clock.NewFake(start)
	tr := idle.NewTracker(c, &recorder{})
	tr.SetPolicy(acme, idle.Policy{Expiration: time.Hour})
	ids := make([]string, 10000)
	for i := range ids {
		ids[i] = fmt.Sprintf("s%d", i)
		tr.Add(pos.Session{ID: ids[i], Domain: acme, Created: start, LastActivity: start})
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		tr.Touch(ids[i%len(ids)], start)
		i++
	}
}
