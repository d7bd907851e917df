package idle_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"idleguard/server/clock"
	"idleguard/server/idle"
)

// elsewhere is a Rechecker standing for the shared clock of a cluster:
// the last input any node saw, per session, on the same fake clock.
type elsewhere struct {
	c    *clock.Fake
	mu   sync.Mutex
	last map[string]time.Time
	asks int
}

func (e *elsewhere) Idle(domain, sid string) (time.Duration, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.asks++
	at, ok := e.last[domain+"/"+sid]
	if !ok {
		return 0, false
	}
	return e.c.Now().Sub(at), true
}

func (e *elsewhere) input(domain, sid string, at time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.last[domain+"/"+sid] = at
}

// clearing is a recorder that is also told of warnings a recheck cleared.
type clearing struct{ recorder }

func (c *clearing) Cleared(sid string, st idle.Status) {
	c.add(fmt.Sprintf("cleared %s %v", sid, st.Remaining))
}

// Activity another node recorded moves the deadline here, but this node
// does not write it behind again.
func TestHeardIsNotWrittenHere(t *testing.T) {
	tr, c, _ := newTracker(t, time.Minute)
	addSession(t, tr, c, "a")
	tr.TakeActivity(nil)
	c.Advance(30 * time.Second)
	st, ok := tr.Heard("a", c.Now())
	if !ok || st.Remaining != time.Minute {
		t.Fatalf("Heard: got %v %v, want a full minute left", st.Remaining, ok)
	}
	if got := tr.TakeActivity(nil); len(got) != 0 {
		t.Fatalf("TakeActivity after Heard: got %+v, want nothing", got)
	}
	c.Advance(time.Second)
	tr.Touch("a", c.Now())
	if got := tr.TakeActivity(nil); len(got) != 1 {
		t.Fatalf("TakeActivity after Touch: got %+v, want the session", got)
	}
}

// At its deadline a session is confirmed with the shared clock: input on
// another node that this one never heard of keeps it, clears the standing
// warning, and the session then ends exactly at the deadline that input
// set; a session the shared clock does not know ends on this node's word.
func TestRecheckAtTheDeadline(t *testing.T) {
	c := clock.NewFake(start)
	r := &clearing{}
	tr := idle.NewTracker(c, r)
	other := &elsewhere{c: c, last: make(map[string]time.Time)}
	tr.SetRechecker(other)
	p := idle.Policy{Expiration: time.Minute}
	tr.SetPolicy(acme, p)
	addSession(t, tr, c, "a")
	addSession(t, tr, c, "unknown")
	other.input(acme, "a", c.Now())
	lead := p.WarnLead()

	c.Advance(time.Minute - lead)
	wantEvents(t, &r.recorder, fmt.Sprintf("warn a %v", lead), fmt.Sprintf("warn unknown %v", lead))
	// Another node saw input 10 s before the deadline; this one did not.
	c.Advance(lead - 10*time.Second)
	other.input(acme, "a", c.Now())
	c.Advance(10 * time.Second)
	wantEvents(t, &r.recorder, "cleared a 50s", "expire unknown idle 1m0s")
	if st, ok := tr.Status("a"); !ok || st.Remaining != 50*time.Second || st.Warned {
		t.Fatalf("after the recheck: got %+v %v, want 50 s left and no warning", st, ok)
	}
	// No more input anywhere: warned again, then ended on the dot.
	c.Advance(50*time.Second - lead)
	wantEvents(t, &r.recorder, fmt.Sprintf("warn a %v", lead))
	c.Advance(lead - time.Microsecond)
	wantEvents(t, &r.recorder)
	c.Advance(time.Microsecond)
	wantEvents(t, &r.recorder, "expire a idle 1m0s")
	if other.asks != 3 {
		t.Fatalf("rechecks: got %d, want 3 (one per deadline reached)", other.asks)
	}
}

// A recheck that hears of no later input changes nothing: the session ends
// at its own deadline, and the shared clock is asked only then.
func TestRecheckOnlyAtTheDeadline(t *testing.T) {
	c := clock.NewFake(start)
	r := &recorder{}
	tr := idle.NewTracker(c, r)
	other := &elsewhere{c: c, last: make(map[string]time.Time)}
	tr.SetRechecker(other)
	tr.SetPolicy(acme, idle.Policy{Expiration: time.Minute})
	addSession(t, tr, c, "a")
	other.input(acme, "a", c.Now())
	for range 59 {
		c.Advance(time.Second)
		tr.Touch("a", c.Now().Add(-time.Minute)) // old input: moves nothing
	}
	if other.asks != 0 {
		t.Fatalf("asked %d times before the deadline, want 0", other.asks)
	}
	c.Advance(time.Second)
	if got := r.take(); len(got) != 2 || got[1] != "expire a idle 1m0s" {
		t.Fatalf("events: got %q, want the warning and the expiry", got)
	}
	if other.asks != 1 {
		t.Fatalf("asked %d times, want 1", other.asks)
	}
}

// renewing is a recorder that is also told when the tabs' deadline is near
// though the session lives on.
type renewing struct{ recorder }

func (r *renewing) Renew(sid string, st idle.Status) {
	r.add(fmt.Sprintf("renew %s %v", sid, st.Remaining))
}

// Input early in a token's life moves the deadline past the token's exp
// without asking for a renewal (that waits for half the token's life); the
// tabs, told only that exp, must hear the later deadline a warning's lead
// before it, once, and again only after the next token.
func TestRenewBeforeTheTabsDeadline(t *testing.T) {
	c := clock.NewFake(start)
	r := &renewing{}
	tr := idle.NewTracker(c, r)
	p := idle.Policy{Expiration: time.Minute}
	tr.SetPolicy(acme, p)
	addSession(t, tr, c, "a")
	tr.Renewed("a", start.Add(time.Minute)) // the sign-in's token
	c.Advance(25 * time.Second)
	if st, _ := tr.Touch("a", c.Now()); st.RenewToken {
		t.Fatalf("input at 25 s: RenewToken set, want it left for later")
	}
	lead := p.WarnLead()
	c.Advance(35*time.Second - lead - time.Microsecond)
	wantEvents(t, &r.recorder)
	c.Advance(time.Microsecond)
	wantEvents(t, &r.recorder, fmt.Sprintf("renew a %v", 25*time.Second+lead))
	// The service issued the renewed token: nothing more until the warning.
	tr.Renewed("a", start.Add(85*time.Second))
	c.Advance(25*time.Second - time.Microsecond)
	wantEvents(t, &r.recorder)
	c.Advance(time.Microsecond)
	wantEvents(t, &r.recorder, fmt.Sprintf("warn a %v", lead))
	c.Advance(lead)
	wantEvents(t, &r.recorder, "expire a idle 1m0s")
}

// A Notifier that is not a Renewer is never asked, and a renewal that was
// not followed by a token is not asked for again.
func TestRenewAskedOnce(t *testing.T) {
	c := clock.NewFake(start)
	r := &renewing{}
	tr := idle.NewTracker(c, r)
	p := idle.Policy{Expiration: time.Minute}
	tr.SetPolicy(acme, p)
	addSession(t, tr, c, "a")
	tr.Renewed("a", start.Add(time.Minute))
	c.Advance(10 * time.Second)
	tr.Touch("a", c.Now())
	lead := p.WarnLead()
	// The tabs' deadline is 60 s, the session's 70 s: asked at 60 s - lead.
	c.Advance(50*time.Second - lead)
	wantEvents(t, &r.recorder, fmt.Sprintf("renew a %v", 10*time.Second+lead))
	// No token came (no socket, say): the next event is the warning.
	c.Advance(10*time.Second - time.Microsecond)
	wantEvents(t, &r.recorder)
	c.Advance(time.Microsecond)
	wantEvents(t, &r.recorder, fmt.Sprintf("warn a %v", lead))
}

// clearingRenewer is told both of rechecks that moved the deadline and of
// renewals due.
type clearingRenewer struct{ clearing }

func (r *clearingRenewer) Renew(sid string, st idle.Status) {
	r.add(fmt.Sprintf("renew %s %v", sid, st.Remaining))
}

// A recheck that finds input elsewhere tells the tabs through the Clearer,
// with a token when one is due: that token is this one's renewal, and the
// re-armed timer, due at once, does not ask for another, however late the
// Clearer's token is recorded (on a real clock the timer runs while the
// service is still issuing it).
func TestRenewNotAskedAfterARecheckThatRenews(t *testing.T) {
	c := clock.NewFake(start)
	r := &clearingRenewer{}
	tr := idle.NewTracker(c, r)
	other := &elsewhere{c: c, last: make(map[string]time.Time)}
	tr.SetRechecker(other)
	p := idle.Policy{Expiration: time.Minute}
	tr.SetPolicy(acme, p)
	addSession(t, tr, c, "a")
	tr.Renewed("a", start.Add(time.Minute))
	lead := p.WarnLead()

	c.Advance(time.Minute - lead)
	wantEvents(t, &r.recorder, fmt.Sprintf("warn a %v", lead))
	c.Advance(lead - 10*time.Second)
	other.input(acme, "a", c.Now()) // at 50 s, on another node
	c.Advance(10 * time.Second)
	wantEvents(t, &r.recorder, "cleared a 50s")
	tr.Renewed("a", start.Add(110*time.Second)) // the Clearer's token, recorded late
	c.Advance(35*time.Second - time.Microsecond)
	wantEvents(t, &r.recorder)
	c.Advance(time.Microsecond)
	wantEvents(t, &r.recorder, fmt.Sprintf("warn a %v", lead))
}
