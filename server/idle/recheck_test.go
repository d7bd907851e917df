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
