package idle

import "idleguard/server/protocol"

// domainClock is one domain's part of the tracker: its policy and its
// sessions. Guarded by the tracker's lock.
type domainClock struct {
	name     string
	policy   Policy
	sessions map[string]*entry
}

// Live is a session the tracker still holds, with its status.
type Live struct {
	ID     string
	Status Status
}

// SetPolicy sets domain's policy, creating the domain if it is new, and
// applies it at once to that domain's sessions and no other's: those
// already idle longer than its Expiration Time are expired with
// ReasonSettingChanged, the rest are re-armed. It returns the domain's live
// sessions with their new status, from the same pass, so that telling
// their sockets takes no second look. The cost is the domain's sessions,
// whatever the number of others.
func (t *Tracker) SetPolicy(domain string, p Policy) (live []Live) {
	now := t.clock.Now()
	var expired []string
	t.mu.Lock()
	d, ok := t.domains[domain]
	if !ok {
		d = &domainClock{name: domain, sessions: make(map[string]*entry)}
		t.domains[domain] = d
	}
	d.policy = p
	if n := len(d.sessions); n > 0 {
		live = make([]Live, 0, n)
	}
	for id, e := range d.sessions {
		if !now.Before(p.Deadline(e.created, e.last)) {
			expired = append(expired, id)
			t.drop(e) // deleting during range is safe in Go
			continue
		}
		// Every tab hears this deadline now (the caller's fan-out). A token
		// issued under a longer time must not postpone the next renewal,
		// which is also how idle tabs hear of another tab's activity:
		// otherwise they would count down to the deadline heard here.
		if dl := p.Deadline(e.created, e.last); e.tokenExp.After(dl) {
			e.tokenExp = dl
		}
		st := t.status(e, now)
		if e.warned && st.Remaining > p.WarnLead() {
			e.warned, st.Warned = false, false
		}
		live = append(live, Live{ID: id, Status: st})
		t.arm(e, now)
	}
	t.mu.Unlock()
	for _, id := range expired {
		t.notify.Expire(domain, id, protocol.ReasonSettingChanged, p)
	}
	return live
}

// Policy returns domain's policy in force; false when the domain has none.
func (t *Tracker) Policy(domain string) (Policy, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	d, ok := t.domains[domain]
	if !ok {
		return Policy{}, false
	}
	return d.policy, true
}

// DomainLen is the number of live sessions of domain.
func (t *Tracker) DomainLen(domain string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if d, ok := t.domains[domain]; ok {
		return len(d.sessions)
	}
	return 0
}

// RemoveDomain forgets domain, its policy and its sessions, returning the
// sessions' ids; the Notifier is not called (the domain is gone, there is
// no one to tell). Activity they had not yet handed to TakeActivity is
// dropped with them.
func (t *Tracker) RemoveDomain(domain string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	d, ok := t.domains[domain]
	if !ok {
		return nil
	}
	delete(t.domains, domain)
	ids := make([]string, 0, len(d.sessions))
	for id, e := range d.sessions {
		ids = append(ids, id)
		t.drop(e)
	}
	return ids
}
