package sessions

import (
	"context"
	"fmt"
	"slices"
	"time"

	"idleguard/server/guard"
	"idleguard/server/protocol"
)

// SettingsView is the JWT tab as the API shows it.
type SettingsView struct {
	guard.Settings
	WarningSeconds       float64
	MinExpirationSeconds int64
	MaxExpirationSeconds int64
}

// Settings returns the setting in force.
func (s *Service) Settings() SettingsView {
	s.settingsMu.Lock()
	st := s.settings
	s.settingsMu.Unlock()
	return s.view(st)
}

func (s *Service) view(st guard.Settings) SettingsView {
	return SettingsView{
		Settings:             st,
		WarningSeconds:       s.policy(st).WarnLead().Seconds(),
		MinExpirationSeconds: s.cfg.MinExpirationSeconds,
		MaxExpirationSeconds: guard.MaxExpirationSeconds,
	}
}

// RangeError is the error for any Expiration Time that is not a whole
// number in range, so that every bad input reads the same.
func (s *Service) RangeError() *guard.Error {
	return guard.Invalid("expiration_seconds",
		"Expiration Time (expiration_seconds) must be a whole number of seconds from %d to %d (1 day = 86400)",
		s.cfg.MinExpirationSeconds, guard.MaxExpirationSeconds)
}

// UpdateExpiration saves a new Expiration Time and applies it at once to
// every session: deadlines are recomputed from last activity, sessions idle
// longer than the new time are signed out, open sockets hear their new
// remaining time. Only a user with Developer Edit may; bad input changes
// nothing.
func (s *Service) UpdateExpiration(ctx context.Context, by guard.User, seconds int64) (SettingsView, error) {
	if !by.Can(guard.DeveloperEdit) {
		return SettingsView{}, guard.Errorf(guard.EFORBIDDEN, "you need the Developer → Edit permission to save Developer Configuration")
	}
	if seconds < s.cfg.MinExpirationSeconds || seconds > guard.MaxExpirationSeconds {
		return SettingsView{}, s.RangeError()
	}
	s.settingsMu.Lock()
	defer s.settingsMu.Unlock()
	old := s.settings
	now := s.clock.Now().Round(0)
	next := guard.Settings{ExpirationSeconds: seconds, UpdatedBy: by.Name, UpdatedAt: now}
	change := guard.SettingsChange{At: now, By: by.Name, Old: old.ExpirationSeconds, New: seconds}
	if err := s.store.SaveSettings(ctx, next, change); err != nil {
		return SettingsView{}, fmt.Errorf("sessions: save settings: %w", err)
	}
	s.settings = next
	live := s.tracker.SetPolicy(s.policy(next))
	s.sockets.SendEach(func(sid string) (protocol.Message, bool) { return s.State(sid) })
	s.log.Info("expiration time changed", "by", by.Name, "old", old.ExpirationSeconds, "new", seconds, "live_sessions", len(live))
	return s.view(next), nil
}

// Changes returns the newest changes to the Expiration Time first.
func (s *Service) Changes(ctx context.Context, limit int) ([]guard.SettingsChange, error) {
	c, err := s.store.SettingsChanges(ctx, limit)
	if err != nil {
		return nil, fmt.Errorf("sessions: settings changes: %w", err)
	}
	return c, nil
}

// Ended sessions are kept this long (so a late 401 can still say why a
// session ended), then deleted, so the table does not grow without end.
const (
	keepEnded  = 30 * 24 * time.Hour
	purgeEvery = time.Hour
)

// Run writes last activity and idle revocations behind, every FlushEvery,
// and deletes long-ended sessions every hour, until ctx is done; then it
// flushes once more and returns.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.FlushEvery)
	defer t.Stop()
	purge := time.NewTicker(purgeEvery)
	defer purge.Stop()
	s.purge(ctx)
	var buf []guard.Activity
	for {
		select {
		case <-purge.C:
			s.purge(ctx)
		case <-ctx.Done():
			// The process is ending: no more sign-outs from this node (the
			// next one recomputes every deadline from the store).
			s.tracker.Stop()
			// A fresh context: the final flush must happen though ctx is done.
			fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return s.Flush(fctx, buf)
		case <-t.C:
			if err := s.Flush(ctx, buf); err != nil {
				s.log.Error("write behind", "err", err)
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

// Flush writes pending last-activity times and revocations now.
func (s *Service) Flush(ctx context.Context, buf []guard.Activity) error {
	batch := s.tracker.TakeActivity(buf[:0])
	if len(batch) > 0 {
		if err := s.store.SaveActivity(ctx, batch); err != nil {
			return fmt.Errorf("sessions: flush activity: %w", err)
		}
	}
	// A revocation stays pending until it is written, so that endedError
	// always finds its reason in one place or the other.
	s.revokeMu.Lock()
	revokes := slices.Clone(s.revokes)
	s.revokeMu.Unlock()
	written := 0
	var err error
	if len(revokes) > 0 {
		// One transaction for the batch: a second in which thousands of
		// sessions end must not spend it committing them one by one.
		batch := make([]guard.Revocation, len(revokes))
		for i, r := range revokes {
			batch[i] = guard.Revocation{SessionID: r.sid, At: r.at, Reason: r.reason.String()}
		}
		if err = s.store.RevokeSessions(ctx, batch); err != nil {
			err = fmt.Errorf("sessions: flush revocations: %w", err)
		} else {
			written = len(revokes)
		}
	}
	// Only Flush removes, and only from the front (Expire appends); Run is
	// its one caller, so no other Flush removed these meanwhile.
	s.revokeMu.Lock()
	s.revokes = slices.Delete(s.revokes, 0, written)
	s.revokeMu.Unlock()
	return err
}
