package sessions

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"idleguard/server/clock"
	"idleguard/server/idle"
	"idleguard/server/live"
	"idleguard/server/pos"
	"idleguard/server/protocol"
)

// A node of a cluster (Config.Live set) shares its sessions with the
// others through the live layer:
//
//   - input its sockets report is recorded there, coalesced every
//     Config.LiveEvery, at once when it may end a warning anywhere, and the
//     other nodes hear it (Heard) and move their deadlines;
//   - before a session ends on the idle clock, its deadline is confirmed
//     with the layer's clock (the idle.Rechecker), which holds the last
//     input of every node: no node's wall clock and no lost signal ends a
//     session early;
//   - sign-outs and setting changes are signalled, so every node closes
//     its tabs and applies a change at once; the store's logs (session
//     ends, domains) are still read every flush, so that a signal lost in
//     an outage is made up within a second or so.
//
// A node tracks the sessions it loaded at start, those signed in on it and
// those whose tabs it serves; a token of a session it does not track is
// checked against the store and the layer (adopt).
type cluster struct {
	layer live.Layer

	mu         sync.Mutex
	pending    map[string]pendingInput // by session id
	ending     map[string]string       // ended here, revocation not yet stored: domain by session id
	forget     map[string][]string     // ended sessions to drop, by domain
	urgent     chan struct{}           // cap 1: flush now
	failing    bool                    // the layer's last call failed (logged once)
	subscribed bool                    // the layer's signals are heard (Ready waits for it)
}

type pendingInput struct {
	domain string
	at     time.Time // on this node's monotonic clock
}

// liveTimeout bounds each call to the layer: a stalled Redis must not
// stall the idle clock (a recheck that times out trusts this node's view).
const liveTimeout = 500 * time.Millisecond

func newCluster(l live.Layer) *cluster {
	return &cluster{layer: l, pending: make(map[string]pendingInput), ending: make(map[string]string),
		forget: make(map[string][]string), urgent: make(chan struct{}, 1)}
}

// noteInput queues a session's input for the layer; urgent when another
// node may be showing a warning that this input must close (within the
// warning window, or a Stay), so it leaves now, not at the next tick.
func (s *Service) noteInput(domain, sid string, at time.Time, urgent bool) {
	cl := s.cl
	if cl == nil {
		return
	}
	cl.mu.Lock()
	if p, ok := cl.pending[sid]; !ok || at.After(p.at) {
		cl.pending[sid] = pendingInput{domain: domain, at: at}
	}
	cl.mu.Unlock()
	if urgent {
		select {
		case cl.urgent <- struct{}{}:
		default:
		}
	}
}

// urgentInput says whether input that left st must reach the other nodes
// at once: a warning may be showing there (they warn at about the same
// time as this node, a little earlier or later), or this node's was just
// cleared.
func urgentInput(st idle.Status) bool {
	return st.WarningCleared || st.Remaining <= st.Policy.WarnLead()+2*time.Second
}

// runCluster is the node's part of the cluster until ctx is done: the
// layer's signals, and the input flusher.
func (s *Service) runCluster(ctx context.Context) {
	cl := s.cl
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Every subscription, the first too, reads what may have been
		// missed: a setting changed on another node between this node's
		// start (New read the store) and its subscription is in no log.
		err := cl.layer.Run(ctx, func(sig live.Signal) { s.deliver(ctx, sig) }, func() {
			s.resync(ctx)
			cl.mu.Lock()
			cl.subscribed = true
			cl.mu.Unlock()
		})
		if err != nil && !errors.Is(err, live.ErrClosed) {
			s.log.Error("live layer stopped", "err", err)
		}
	}()
	t := clock.NewTicker(s.clock, s.cfg.LiveEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			// What the last tick left: the next node to hear of it is one
			// that reads the store, so give the layer a last chance.
			fctx, cancel := context.WithTimeout(context.Background(), time.Second)
			s.flushInput(fctx)
			cancel()
			wg.Wait()
			return
		case <-t.C:
		case <-cl.urgent:
		}
		s.flushInput(ctx)
	}
}

// flushInput records the queued input in the layer, as ages measured now:
// durations, so this node's wall clock never enters. What fails is kept
// for the next try.
func (s *Service) flushInput(ctx context.Context) {
	cl := s.cl
	cl.mu.Lock()
	var forget map[string][]string // never cl.forget itself: it is read unlocked below
	if len(cl.forget) > 0 {
		forget, cl.forget = cl.forget, make(map[string][]string)
	}
	if len(cl.pending) == 0 {
		cl.mu.Unlock()
		s.forgetEnded(ctx, forget)
		return
	}
	taken := cl.pending
	cl.pending = make(map[string]pendingInput, len(taken))
	cl.mu.Unlock()
	now := s.clock.Now()
	batch := make([]live.Activity, 0, len(taken))
	for sid, p := range taken {
		batch = append(batch, live.Activity{Domain: p.domain, SessionID: sid, Ago: now.Sub(p.at)})
	}
	rctx, cancel := context.WithTimeout(ctx, liveTimeout)
	err := cl.layer.Record(rctx, batch)
	cancel()
	s.layerResult(err)
	s.forgetEnded(ctx, forget)
	if err == nil {
		return
	}
	cl.mu.Lock()
	for sid, p := range taken {
		if q, ok := cl.pending[sid]; !ok || p.at.After(q.at) {
			cl.pending[sid] = p
		}
	}
	cl.mu.Unlock()
}

// forgetEnded drops ended sessions from the layer. A failure leaves them
// there until their domain's keys expire (live.KeyTTL): harmless, they are
// ended in the store.
func (s *Service) forgetEnded(ctx context.Context, forget map[string][]string) {
	for domain, sids := range forget {
		fctx, cancel := context.WithTimeout(ctx, liveTimeout)
		err := s.cl.layer.Forget(fctx, domain, sids)
		cancel()
		if err != nil {
			s.layerResult(err)
			return
		}
	}
}

// layerResult logs the layer's failures once, and its recovery.
func (s *Service) layerResult(err error) {
	cl := s.cl
	cl.mu.Lock()
	was := cl.failing
	cl.failing = err != nil
	cl.mu.Unlock()
	switch {
	case err != nil && !was:
		s.log.Error("live layer failing: this node keeps its own deadlines, input is kept and retried", "err", err)
	case err == nil && was:
		s.log.Info("live layer recovered")
	}
}

// deliver acts on another node's signal.
func (s *Service) deliver(ctx context.Context, sig live.Signal) {
	switch sig.Kind {
	case live.KindActivity:
		now := s.clock.Now()
		for _, a := range sig.Activity {
			st, ok := s.tracker.Heard(a.SessionID, now.Add(-a.Ago))
			if ok && (st.WarningCleared || st.RenewToken) {
				// This node's tabs close their warning / learn the deadline
				// the other node's input set.
				s.sockets.Send(a.SessionID, s.stateFrame(a.SessionID, st, st.RenewToken))
			}
		}
	case live.KindEnded:
		if p, ok := s.tracker.Remove(sig.SessionID); ok {
			s.sockets.SignOut(sig.SessionID, sig.Reason, expSeconds(p))
			s.log.Info("signed out", "domain", sig.Domain, "sid", ShortID(sig.SessionID), "reason", sig.Reason, "by", "node "+sig.Node)
		}
	case live.KindSettings:
		if err := s.reloadSettings(ctx, sig.Domain); err != nil {
			s.log.Error("apply another node's setting", "domain", sig.Domain, "err", err)
		}
	case live.KindDomains:
		if err := s.readDomains(ctx); err != nil {
			s.log.Error("domain log", "err", err)
		}
	}
}

// resync makes up for signals missed while the layer was unreachable:
// sessions ended and domains changed are in the store's logs, settings are
// read again; input is made up by the recheck at each deadline.
func (s *Service) resync(ctx context.Context) {
	s.log.Info("live layer subscribed: reading what may have been missed")
	s.rerecord(ctx)
	s.readEnds(ctx)
	if err := s.readDomains(ctx); err != nil {
		s.log.Error("domain log", "err", err)
	}
	s.domainsMu.RLock()
	names := make([]string, 0, len(s.domains))
	for n := range s.domains {
		names = append(names, n)
	}
	s.domainsMu.RUnlock()
	for _, n := range names {
		if err := s.reloadSettings(ctx, n); err != nil {
			s.log.Error("reload setting", "domain", n, "err", err)
		}
	}
}

// rerecord writes this node's view of every tracked session's last input
// into the layer again (max semantics: newer input there stands), so that
// a Redis that restarted empty holds what the nodes know rather than
// leaving an adopting node to the store's wall-clock record.
func (s *Service) rerecord(ctx context.Context) {
	const chunk = 10000
	ages := s.tracker.Ages()
	for i := 0; i < len(ages); i += chunk {
		batch := make([]live.Activity, 0, min(chunk, len(ages)-i))
		for _, a := range ages[i:min(i+chunk, len(ages))] {
			batch = append(batch, live.Activity{Domain: a.Domain, SessionID: a.SessionID, Ago: a.Ago})
		}
		rctx, cancel := context.WithTimeout(ctx, 10*liveTimeout)
		err := s.cl.layer.Record(rctx, batch)
		cancel()
		if err != nil {
			s.layerResult(err)
			return
		}
	}
}

// reloadSettings applies a domain's stored setting, changed by another
// node, as UpdateExpiration applies its own.
func (s *Service) reloadSettings(ctx context.Context, domain string) error {
	d, ok := s.domain(domain)
	if !ok {
		return nil
	}
	st, err := s.store.Settings(ctx, domain)
	if err != nil {
		return fmt.Errorf("sessions: reload settings: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.removed {
		return nil
	}
	if cur, _ := s.tracker.Policy(domain); cur.Expiration == st.Expiration() {
		d.changedBy, d.changedAt = st.UpdatedBy, st.UpdatedAt
		return nil
	}
	d.changedBy, d.changedAt = st.UpdatedBy, st.UpdatedAt
	n := s.applyExpiration(d, st.Expiration())
	s.log.Info("expiration time changed", "domain", domain, "by", st.UpdatedBy, "new", st.ExpirationSeconds, "live_sessions", n, "on", "another node")
	return nil
}

// publish tells the other nodes; a failure is logged, never the caller's:
// the store's logs make up for it.
func (s *Service) publish(sig live.Signal) {
	if s.cl == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), liveTimeout)
	defer cancel()
	err := s.cl.layer.Publish(ctx, sig)
	s.layerResult(err)
}

// sharedClock is the layer as the idle clock's Rechecker.
type sharedClock struct{ s *Service }

// Idle asks the layer; when it cannot answer, this node's view stands
// (ok false), which is never earlier than what it has heard.
func (c sharedClock) Idle(domain, sid string) (time.Duration, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), liveTimeout)
	defer cancel()
	d, ok, err := c.s.cl.layer.Idle(ctx, domain, sid)
	c.s.layerResult(err)
	if err == nil {
		return d, ok
	}
	// The layer cannot answer (Redis unreachable): the store's record of
	// last activity, which every node writes behind each second, still
	// holds input this node never heard of; it is on the writers' wall
	// clocks, so it is the fallback, not the rule.
	sctx, scancel := context.WithTimeout(context.Background(), liveTimeout)
	defer scancel()
	sess, serr := c.s.store.Session(sctx, sid)
	if serr != nil || sess.Revoked {
		return 0, false
	}
	return max(c.s.clock.Now().Round(0).Sub(sess.LastActivity), 0), true
}

// adopt starts tracking a session this node does not know (signed in on
// another node, or after this node started): alive if the store says it
// is not revoked and its last input anywhere, by the layer's clock (the
// store's record if the layer lost it), is within its domain's Expiration
// Time.
func (s *Service) adopt(ctx context.Context, domain, sid string) (idle.Status, bool) {
	sess, err := s.store.Session(ctx, sid)
	if err != nil || sess.Revoked || sess.Domain != domain {
		return idle.Status{}, false
	}
	lctx, cancel := context.WithTimeout(ctx, liveTimeout)
	d, ok, err := s.cl.layer.Idle(lctx, domain, sid)
	cancel()
	s.layerResult(err)
	if ok && err == nil {
		sess.LastActivity = s.clock.Now().Add(-d)
	}
	st, added := s.tracker.Add(sess)
	return st, added && st.Remaining > 0
}

// endSignal is the signal of a session's end.
func endSignal(domain, sid string, reason protocol.Reason) live.Signal {
	return live.Signal{Kind: live.KindEnded, Domain: domain, SessionID: sid, Reason: reason}
}

var _ idle.Rechecker = sharedClock{}

// publishEnd tells the other nodes that this node ended sid, so their tabs
// close now rather than when they next read the session end log.
func (s *Service) publishEnd(ctx context.Context, sid string, reason protocol.Reason) {
	if s.cl == nil {
		return
	}
	sess, err := s.store.Session(ctx, sid)
	if err != nil {
		s.log.Error("signal a sign-out: the session's domain", "sid", ShortID(sid), "err", err)
		return
	}
	s.publish(endSignal(sess.Domain, sid, reason))
}

// forgetLater queues a session this node's idle clock ended for the layer
// to drop, once its revocation is in the store (forgetStored): until then
// the store calls it alive, and another node adopting it must find it on
// the layer's clock, past its deadline, not fall back on the store's
// last activity, a wall-clock time another node's clock may read as
// recent.
func (s *Service) forgetLater(domain, sid string) {
	if s.cl == nil {
		return
	}
	s.cl.mu.Lock()
	s.cl.ending[sid] = domain
	delete(s.cl.pending, sid)
	s.cl.mu.Unlock()
}

// forgetStored queues, for the next flush of input, the sessions of
// revokes that forgetLater holds back: the flusher has stored them.
func (s *Service) forgetStored(revokes []pos.Revocation) {
	if s.cl == nil {
		return
	}
	s.cl.mu.Lock()
	defer s.cl.mu.Unlock()
	for _, r := range revokes {
		if domain, ok := s.cl.ending[r.SessionID]; ok {
			delete(s.cl.ending, r.SessionID)
			s.cl.forget[domain] = append(s.cl.forget[domain], r.SessionID)
		}
	}
}

// onLayerClock replaces each loaded session's last activity, a wall-clock
// time of whichever node stored it (off by that node's clock, and read by
// this one's), with the layer's record of it, a duration on the one time
// base, as adopt does; a session the layer does not hold keeps the
// store's. The first failure leaves the rest as stored: a node starting
// while the layer is down must not wait liveTimeout per session. One call
// per session: a batched Idle would make it one per domain.
func (s *Service) onLayerClock(ctx context.Context, sessions []pos.Session) {
	for i := range sessions {
		sess := &sessions[i]
		lctx, cancel := context.WithTimeout(ctx, liveTimeout)
		d, ok, err := s.cl.layer.Idle(lctx, sess.Domain, sess.ID)
		cancel()
		if err != nil {
			s.layerResult(err)
			return
		}
		if ok {
			sess.LastActivity = s.clock.Now().Add(-d)
		}
	}
}
