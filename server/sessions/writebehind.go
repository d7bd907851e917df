package sessions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"idleguard/server/clock"
	"idleguard/server/pos"
	"idleguard/server/protocol"
)

// Ended sessions are kept this long (so a late 401 can still say why a
// session ended), then deleted, so the table does not grow without end.
const (
	keepEnded  = 30 * 24 * time.Hour
	purgeEvery = time.Hour
)

// Run is the write-behind loop, until ctx is done: every FlushEvery it
// writes last activity and pending revocations and reads the session end
// log (sessions another process ended) and the domain log (domains the CLI
// added or removed); every CheckpointEvery it folds the
// store's write-ahead log back; every hour it deletes long-ended sessions.
// When ctx is done it flushes once more and returns.
func (s *Service) Run(ctx context.Context) error {
	// The tickers run on the injected clock: a fake one drives this loop
	// in tests without sleeping.
	t := clock.NewTicker(s.clock, s.cfg.FlushEvery)
	defer t.Stop()
	cp := clock.NewTicker(s.clock, s.cfg.CheckpointEvery)
	defer cp.Stop()
	purge := clock.NewTicker(s.clock, purgeEvery)
	defer purge.Stop()
	summary := clock.NewTicker(s.clock, time.Minute)
	defer summary.Stop()
	s.purge(ctx)
	if s.cl != nil {
		cctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.runCluster(cctx)
		}()
		// It stops with ctx, beside the final flush below; Run returns
		// once both are done.
		defer func() { stop(); <-done }()
	}
	for {
		select {
		case <-summary.C:
			s.sec.Summary() // what the security log's rate limit held back
		case <-purge.C:
			s.purge(ctx)
		case <-cp.C:
			if err := s.store.Checkpoint(ctx); err != nil {
				s.health.failed(s.log, s.clock.Now(), err)
			}
		case <-ctx.Done():
			// The process is ending: no more sign-outs from this node (the
			// next one recomputes every deadline from the store).
			s.tracker.Stop()
			// A fresh context: the final flush must happen though ctx is done.
			fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return s.flush(fctx)
		case <-t.C:
			if err := s.flush(ctx); err != nil {
				s.log.Error("write behind", "err", err)
			}
			s.readEnds(ctx)
			if err := s.readDomains(ctx); err != nil {
				s.log.Error("domain log", "err", err)
			}
		}
	}
}

func (s *Service) purge(ctx context.Context) {
	n, err := s.store.PurgeSessions(ctx, s.clock.Now().Round(0).Add(-keepEnded))
	if err != nil {
		s.log.Error("purge ended sessions", "err", err)
	} else if n > 0 {
		s.log.Info("purged ended sessions", "count", n, "ended_before_days", keepEnded.Hours()/24)
	}
}

// flush writes pending last-activity times and revocations now. What fails
// to be written stays pending and is tried again at the next flush, so a
// full disk or a locked file loses nothing once it recovers.
func (s *Service) flush(ctx context.Context) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	err := s.flushActivity(ctx)
	err = errors.Join(err, s.flushRevocations(ctx))
	if err != nil {
		s.health.failed(s.log, s.clock.Now(), err)
	} else {
		s.health.ok(s.log, s.clock.Now())
	}
	return err
}

func (s *Service) flushActivity(ctx context.Context) error {
	batch := s.tracker.TakeActivity(s.unsaved)
	if len(batch) == 0 {
		return nil
	}
	if err := s.store.SaveActivity(ctx, batch); err != nil {
		s.unsaved = latestPerSession(batch)
		return fmt.Errorf("sessions: flush activity (%d kept for the next try): %w", len(s.unsaved), err)
	}
	clear(batch)
	s.unsaved = batch[:0]
	return nil
}

// latestPerSession keeps one entry per session, its latest time: a batch
// kept over many failed flushes holds each session once.
func latestPerSession(batch []pos.Activity) []pos.Activity {
	slices.SortFunc(batch, func(a, b pos.Activity) int {
		if a.SessionID != b.SessionID {
			if a.SessionID < b.SessionID {
				return -1
			}
			return 1
		}
		return b.LastActivity.Compare(a.LastActivity) // latest first
	})
	return slices.CompactFunc(batch, func(a, b pos.Activity) bool { return a.SessionID == b.SessionID })
}

func (s *Service) flushRevocations(ctx context.Context) error {
	// A revocation stays pending until it is written, so that endedError
	// always finds its reason in one place or the other.
	s.revokeMu.Lock()
	revokes := slices.Clone(s.revokes)
	s.revokeMu.Unlock()
	if len(revokes) == 0 {
		return nil
	}
	// One transaction for the batch: a second in which thousands of
	// sessions end must not spend it committing them one by one.
	if err := s.store.RevokeSessions(ctx, revokes); err != nil {
		return fmt.Errorf("sessions: flush revocations (%d kept for the next try): %w", len(revokes), err)
	}
	// Only flush removes, and only from the front (others append); flushMu
	// keeps a second flush from removing these meanwhile.
	s.revokeMu.Lock()
	s.revokes = slices.Delete(s.revokes, 0, len(revokes))
	s.revokeMu.Unlock()
	s.forgetStored(revokes)
	return nil
}

// readEnds signs out the sockets of sessions ended outside this process
// (the CLI's `session revoke`, `user del`, `user passwd`): they reach the
// store's session end log, read here every FlushEvery.
func (s *Service) readEnds(ctx context.Context) {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	const page = 1000
	for {
		ends, err := s.store.SessionEnds(ctx, s.endSeq, page)
		if err != nil {
			s.log.Error("read session end log", "err", err)
			return
		}
		for _, e := range ends {
			s.endSeq = e.Seq
			p, ok := s.tracker.Remove(e.SessionID)
			if !ok {
				continue // not live here (this node ended it itself)
			}
			reason := e.Reason
			if reason == protocol.ReasonNone {
				reason = protocol.ReasonRevoked
			}
			s.sockets.SignOut(e.SessionID, reason, expSeconds(p))
			s.log.Info("signed out", "sid", ShortID(e.SessionID), "reason", reason, "by", "session end log")
		}
		if len(ends) < page {
			return
		}
	}
}

// storeHealth remembers whether the store's last write failed, for the
// readiness endpoint, and logs each change once rather than every second.
type storeHealth struct {
	mu      sync.Mutex
	failing bool
	since   time.Time
}

func (h *storeHealth) failed(log *slog.Logger, now time.Time, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.failing {
		h.failing, h.since = true, now
		log.Error("store failing: writes are kept pending and retried", "err", err)
	}
}

func (h *storeHealth) ok(log *slog.Logger, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failing {
		log.Info("store recovered", "failing_for", now.Sub(h.since).Round(time.Millisecond))
		h.failing = false
	}
}

// Ready reports whether the store takes writes (an error says since when
// it has not; pending writes are retried meanwhile) and, in a cluster,
// whether the live layer answers.
func (s *Service) Ready() error {
	s.health.mu.Lock()
	failing, since := s.health.failing, s.health.since
	s.health.mu.Unlock()
	if failing {
		return fmt.Errorf("store failing since %s", since.UTC().Format(time.RFC3339))
	}
	if s.cl != nil {
		s.cl.mu.Lock()
		layerFailing, subscribed := s.cl.failing, s.cl.subscribed
		s.cl.mu.Unlock()
		if !subscribed {
			return errors.New("not yet subscribed to the live layer")
		}
		if layerFailing {
			// Deadlines are still kept, on this node's view; but its tabs
			// are better served by a node that hears the others.
			return errors.New("live layer unreachable")
		}
	}
	return nil
}

// SecurityCounts are the security log's counters, for /debug/stats.
func (s *Service) SecurityCounts() map[string]uint64 { return s.sec.Counts() }
