package sessions

import (
	"context"
	"fmt"
	"sync"
	"time"

	"idleguard/server/pos"
	"idleguard/server/protocol"
)

// domain is what the service keeps of one domain beyond its sessions. Its
// Expiration Time is held once, in the idle clock's policy for the domain
// (which applies it); mu serialises changes to it and keeps who made the
// last one and when beside it.
type domain struct {
	name string

	mu        sync.Mutex
	changedBy string
	changedAt time.Time
	removed   bool // set by dropDomain: a change that waited for mu must not apply
}

// errNoDomain is the answer for a domain this node does not serve.
func errNoDomain(name string) error {
	return pos.Errorf(pos.ENOTFOUND, "no domain %q here", name)
}

// Serves reports whether the node serves the named domain: how the HTTP
// layer answers 404 for an unknown host before anything else. It is a map
// lookup, whatever the number of domains.
func (s *Service) Serves(name string) bool {
	_, ok := s.domain(name)
	return ok
}

func (s *Service) domain(name string) (*domain, bool) {
	s.domainsMu.RLock()
	defer s.domainsMu.RUnlock()
	d, ok := s.domains[name]
	return d, ok
}

// Domains is the number of domains served, for /debug/stats.
func (s *Service) Domains() int {
	s.domainsMu.RLock()
	defer s.domainsMu.RUnlock()
	return len(s.domains)
}

// loadDomain starts serving a domain: its setting from the store, applied
// by the idle clock. A domain already served is left as it is.
func (s *Service) loadDomain(ctx context.Context, name string) error {
	if _, ok := s.domain(name); ok {
		return nil
	}
	st, err := s.store.Settings(ctx, name)
	if err != nil {
		return fmt.Errorf("sessions: load settings of domain %s: %w", name, err)
	}
	s.tracker.SetPolicy(name, s.policy(st.Expiration()))
	s.domainsMu.Lock()
	defer s.domainsMu.Unlock()
	if _, ok := s.domains[name]; !ok {
		s.domains[name] = &domain{name: name, changedBy: st.UpdatedBy, changedAt: st.UpdatedAt}
	}
	return nil
}

// dropDomain stops serving a removed domain: its sockets hear the sign-out
// (the store already ended the sessions), and its host answers 404.
func (s *Service) dropDomain(name string) {
	s.domainsMu.Lock()
	d := s.domains[name]
	delete(s.domains, name)
	s.domainsMu.Unlock()
	if d != nil {
		// After a setting change in flight, never under it: its SetPolicy
		// would bring the domain back into the idle clock.
		d.mu.Lock()
		defer d.mu.Unlock()
		d.removed = true
	}
	p, _ := s.tracker.Policy(name)
	ended := s.tracker.RemoveDomain(name)
	for _, sid := range ended {
		s.sockets.SignOut(sid, protocol.ReasonRevoked, expSeconds(p))
	}
	s.log.Info("domain removed", "domain", name, "ended_sessions", len(ended))
}

// readDomains applies the domain log's entries since the last read: a
// domain the CLI added is served from the next flush on, one it removed no
// longer. Called by the flusher, and on a cluster's signal.
func (s *Service) readDomains(ctx context.Context) error {
	s.domLogMu.Lock() // the flusher, and a cluster's signals
	defer s.domLogMu.Unlock()
	const page = 256
	for {
		changes, err := s.store.DomainChanges(ctx, s.domSeq, page)
		if err != nil {
			return fmt.Errorf("sessions: read domain log: %w", err)
		}
		for _, c := range changes {
			if c.Removed {
				s.dropDomain(c.Domain)
			} else if err := s.loadDomain(ctx, c.Domain); err != nil && pos.ErrorCode(err) != pos.ENOTFOUND {
				// Not found: removed again since; a later entry says so.
				return err
			} else if err == nil {
				s.log.Info("domain added", "domain", c.Domain)
			}
			s.domSeq = c.Seq
		}
		if len(changes) < page {
			return nil
		}
	}
}
