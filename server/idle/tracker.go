package idle

import (
	"sync"
	"time"

	"idleguard/server/clock"
	"idleguard/server/pos"
	"idleguard/server/protocol"
)

// Notifier receives the tracker's decisions. Calls come from timer
// goroutines (or from SetPolicy's caller), never under the tracker's lock;
// they should not block for long.
type Notifier interface {
	// Warn: the session ends in remaining unless there is activity.
	Warn(sid string, remaining time.Duration)
	// Expire: the session has ended; it is already gone from the tracker.
	// p is its domain's policy at that moment.
	Expire(domain, sid string, reason protocol.Reason, p Policy)
}

// Rechecker confirms a deadline before the tracker ends a session, where
// nodes share sessions: Idle is how long ago the session's last activity
// was anywhere, on the shared clock (ok false if unknown there). It is
// called from a timer goroutine, never under the tracker's lock.
type Rechecker interface {
	Idle(domain, sid string) (idle time.Duration, ok bool)
}

// Renewer is what a Notifier may also be: told when the deadline the tabs
// were last given (the newest token's exp) is near though the session
// lives on, so that they hear the later one (a renewed token) before their
// own fallback would end them. Input that moved the deadline early in a
// token's life asks for no renewal (Status.RenewToken waits for half of
// it), so without this an idle tab of a session kept alive by another tab
// would count down to the old deadline.
type Renewer interface {
	Renew(sid string, st Status)
}

// Clearer is what a Notifier may also be: told when a recheck found
// activity elsewhere that moved the deadline, so the tabs hear the new
// one: st.WarningCleared when it ended the standing warning (the tabs
// close it), else the warning stands with more time than the tabs were
// told, whose own countdown must not run out first.
type Clearer interface {
	Cleared(sid string, st Status)
}

// Status is a live session's view of the clock.
type Status struct {
	Remaining time.Duration
	Deadline  time.Time
	// Warned is set while the warning for the current deadline stands.
	Warned bool
	// WarningCleared is set by Touch when it ended a standing warning.
	WarningCleared bool
	// RenewToken is set when the newest token ends well before the deadline
	// and a renewed one should be sent (see Renewed).
	RenewToken bool
	// Policy is the policy of the session's domain, so that a caller
	// builds its frame without a second lookup.
	Policy Policy
}

// Tracker is the idle clock for every live session on this node, of every
// domain. One timer per session, armed for the session's next event (its
// warning or its deadline); activity only moves a time, and a timer that
// fires early re-arms itself, so a busy session costs no timer churn.
//
// Session ids are unique across domains: one map finds a session by id,
// and each domain keeps its own set, so that a change to one domain's
// policy costs that domain's sessions only.
type Tracker struct {
	clock  clock.Clock
	notify Notifier

	recheck Rechecker // nil: this node alone decides

	mu       sync.Mutex
	domains  map[string]*domainClock
	sessions map[string]*entry
	dirty    []*entry // touched since the last TakeActivity
	stopped  bool
}

type entry struct {
	id       string
	dom      *domainClock
	created  time.Time
	last     time.Time
	tokenExp time.Time // exp of the newest token issued for the session
	renewed  time.Time // the tokenExp a Renew was last asked for
	timer    clock.Timer
	warned   bool
	dirty    bool
	gone     bool
}

// NewTracker returns a tracker with no domains: a domain's sessions are
// tracked once SetPolicy has named it.
func NewTracker(c clock.Clock, n Notifier) *Tracker {
	return &Tracker{
		clock:    c,
		notify:   n,
		domains:  make(map[string]*domainClock),
		sessions: make(map[string]*entry),
	}
}

// Len is the number of live sessions, of every domain.
func (t *Tracker) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.sessions)
}

// Add starts tracking a session of s.Domain. It reports false, tracking
// nothing and changing nothing, when that domain has no policy yet. Times
// from storage may lack a monotonic reading; they are rebased on the clock.
// A session already past its deadline is expired at once (through the
// Notifier, from a timer). A session id tracked already, in any domain, is
// replaced.
func (t *Tracker) Add(s pos.Session) (Status, bool) {
	now := t.clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	d, ok := t.domains[s.Domain]
	if !ok {
		return Status{}, false
	}
	if old, ok := t.sessions[s.ID]; ok {
		t.drop(old)
	}
	e := &entry{id: s.ID, dom: d, created: Rebase(now, s.Created), last: Rebase(now, s.LastActivity)}
	t.sessions[s.ID] = e
	d.sessions[s.ID] = e
	t.arm(e, now)
	return t.status(e, now), true
}

// SetRechecker makes every deadline confirmed with r before a session ends
// (see Rechecker). Call it before adding sessions.
func (t *Tracker) SetRechecker(r Rechecker) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.recheck = r
}

// Touch records activity that happened at at (clamped to now; it never moves
// last activity backwards). It reports false, changing nothing, for a
// session that is unknown or already past its deadline: activity never
// revives a session.
func (t *Tracker) Touch(sid string, at time.Time) (Status, bool) { return t.touch(sid, at, true) }

// Heard is Touch for activity another node saw and already recorded: it
// moves the deadline here but is not handed out by TakeActivity again.
func (t *Tracker) Heard(sid string, at time.Time) (Status, bool) { return t.touch(sid, at, false) }

func (t *Tracker) touch(sid string, at time.Time, local bool) (Status, bool) {
	now := t.clock.Now()
	if at.After(now) {
		at = now
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.sessions[sid]
	if !ok || !now.Before(e.dom.policy.Deadline(e.created, e.last)) {
		return Status{}, false
	}
	if at.After(e.last) {
		e.last = at
		if local && !e.dirty {
			e.dirty = true
			t.dirty = append(t.dirty, e)
		}
	}
	st := t.status(e, now)
	if e.warned && st.Remaining > e.dom.policy.WarnLead() {
		e.warned = false
		st.Warned = false
		st.WarningCleared = true
	}
	return st, true
}

// Status reports a live session's remaining time; false when the session is
// unknown or past its deadline.
func (t *Tracker) Status(sid string) (Status, bool) {
	now := t.clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.sessions[sid]
	if !ok {
		return Status{}, false
	}
	st := t.status(e, now)
	return st, st.Remaining > 0
}

// Renewed records that a token ending at exp was issued for the session.
func (t *Tracker) Renewed(sid string, exp time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.sessions[sid]; ok && exp.After(e.tokenExp) {
		e.tokenExp = exp
	}
}

// Remove stops tracking a session (signed out or revoked elsewhere); the
// Notifier is not called. It returns the policy of the session's domain,
// so that a sign-out frame can carry its Expiration Time, and reports
// whether the session was tracked.
func (t *Tracker) Remove(sid string) (Policy, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.sessions[sid]
	if !ok {
		return Policy{}, false
	}
	t.drop(e)
	return e.dom.policy, true
}

// Stop disarms every timer: no warning or expiry is called after it
// returns. The sessions stay as they were, for a last TakeActivity; the
// next process picks their deadlines up from the store.
func (t *Tracker) Stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	for _, e := range t.sessions {
		if e.timer != nil {
			e.timer.Stop()
		}
	}
}

// TakeActivity appends the sessions whose last activity moved since the last
// call, as wall-clock times for storage, and forgets them.
func (t *Tracker) TakeActivity(buf []pos.Activity) []pos.Activity {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range t.dirty {
		e.dirty = false
		if !e.gone {
			buf = append(buf, pos.Activity{SessionID: e.id, LastActivity: e.last.Round(0)})
		}
	}
	clear(t.dirty)
	t.dirty = t.dirty[:0]
	return buf
}

// status computes what a caller may tell the session. Called with t.mu held.
func (t *Tracker) status(e *entry, now time.Time) Status {
	p := e.dom.policy
	deadline := p.Deadline(e.created, e.last)
	st := Status{Remaining: max(deadline.Sub(now), 0), Deadline: deadline, Warned: e.warned, Policy: p}
	// Renew when the token would end before the deadline by a second or more
	// and has less than half an Expiration Time left: a busy session gets a
	// new token about twice per Expiration Time, never one per input.
	st.RenewToken = deadline.Sub(e.tokenExp) >= time.Second &&
		e.tokenExp.Sub(now) <= p.Expiration/2
	return st
}

// arm (re)starts e's timer for its next event. Called with t.mu held.
func (t *Tracker) arm(e *entry, now time.Time) {
	if e.timer != nil {
		e.timer.Stop()
	}
	if t.stopped {
		return
	}
	p := e.dom.policy
	deadline := p.Deadline(e.created, e.last)
	next := deadline
	if !e.warned {
		// Inside the warning window already (a lowered setting, a restart):
		// warn at once.
		next = deadline.Add(-p.WarnLead())
		if next.Before(now) {
			next = now
		}
	}
	if at, ok := t.renewAt(e, deadline); ok && at.Before(next) {
		next = at
		if next.Before(now) {
			next = now
		}
	}
	e.timer = t.clock.AfterFunc(next.Sub(now), func() { t.fire(e) })
}

// renewAt is when the tabs must hear of a deadline later than their token's
// exp: a warning's lead before that exp. False when there is nothing to
// tell (no token yet, or it ends within a second of the deadline) or it
// was asked for already. Called with t.mu held.
func (t *Tracker) renewAt(e *entry, deadline time.Time) (time.Time, bool) {
	_, renewer := t.notify.(Renewer)
	if !renewer || e.tokenExp.IsZero() || deadline.Sub(e.tokenExp) < time.Second || e.renewed.Equal(e.tokenExp) {
		return time.Time{}, false
	}
	return e.tokenExp.Add(-e.dom.policy.WarnLead()), true
}

// drop forgets e. Called with t.mu held.
func (t *Tracker) drop(e *entry) {
	e.gone = true
	if e.timer != nil {
		e.timer.Stop()
	}
	if t.sessions[e.id] == e {
		delete(t.sessions, e.id)
	}
	if e.dom.sessions[e.id] == e {
		delete(e.dom.sessions, e.id)
	}
}

// rechecked asks the Rechecker how long e has really been idle and moves
// its last activity if another node saw later input; it returns the time
// and the deadline then, and e's new status if the deadline moved
// (WarningCleared set if that ended the warning). Called with t.mu held;
// it releases it for the question.
func (t *Tracker) rechecked(e *entry, now time.Time) (time.Time, time.Time, *Status) {
	r, domain := t.recheck, e.dom.name
	t.mu.Unlock()
	idle, ok := r.Idle(domain, e.id)
	t.mu.Lock()
	now = t.clock.Now()
	moved := false
	if ok {
		if at := now.Add(-idle); at.After(e.last) && !at.After(now) {
			e.last, moved = at, true
		}
	}
	p := e.dom.policy
	deadline := p.Deadline(e.created, e.last)
	if !moved {
		return now, deadline, nil
	}
	cleared := e.warned && deadline.Sub(now) > p.WarnLead()
	if cleared {
		e.warned = false
	}
	st := t.status(e, now)
	st.WarningCleared = cleared
	return now, deadline, &st
}

// fire runs when e's timer is due: sign out, warn, or re-arm because
// activity moved the deadline.
func (t *Tracker) fire(e *entry) {
	now := t.clock.Now()
	t.mu.Lock()
	if e.gone || t.stopped {
		t.mu.Unlock()
		return
	}
	p := e.dom.policy
	deadline := p.Deadline(e.created, e.last)
	if !now.Before(deadline) && t.recheck != nil {
		var moved *Status
		if now, deadline, moved = t.rechecked(e, now); e.gone || t.stopped {
			t.mu.Unlock()
			return
		}
		if now.Before(deadline) {
			// Input on another node that this one had not heard of.
			c, clearer := t.notify.(Clearer)
			if clearer && moved != nil && moved.RenewToken {
				// The Clearer's token is this one's renewal: the timer
				// armed here (due at once, the token near its end) must
				// not ask for it again before that token is recorded.
				e.renewed = e.tokenExp
			}
			t.arm(e, now)
			t.mu.Unlock()
			if clearer && moved != nil {
				c.Cleared(e.id, *moved)
			}
			return
		}
		p = e.dom.policy
	}
	switch {
	case !now.Before(deadline):
		t.drop(e)
		reason := protocol.ReasonIdle
		if p.MaxLifetime > 0 && !deadline.Before(e.created.Add(p.MaxLifetime)) {
			reason = protocol.ReasonRevoked
		}
		t.mu.Unlock()
		t.notify.Expire(e.dom.name, e.id, reason, p)
	case !e.warned && !now.Before(deadline.Add(-p.WarnLead())):
		e.warned = true
		t.arm(e, now)
		t.mu.Unlock()
		t.notify.Warn(e.id, deadline.Sub(now))
	default:
		at, renew := t.renewAt(e, deadline)
		renew = renew && !now.Before(at)
		var st Status
		if renew {
			e.renewed = e.tokenExp
			st = t.status(e, now)
			st.RenewToken = true
		}
		t.arm(e, now)
		t.mu.Unlock()
		if renew {
			t.notify.(Renewer).Renew(e.id, st)
		}
	}
}

// Age is a tracked session and how long ago its last activity was.
type Age struct {
	Domain, SessionID string
	Ago               time.Duration
}

// Ages lists every tracked session with its idle time now: what a node
// records again in a shared clock that lost its records (a Redis restart).
func (t *Tracker) Ages() []Age {
	now := t.clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Age, 0, len(t.sessions))
	for id, e := range t.sessions {
		out = append(out, Age{Domain: e.dom.name, SessionID: id, Ago: max(now.Sub(e.last), 0)})
	}
	return out
}
