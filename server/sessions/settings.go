package sessions

import (
	"context"
	"fmt"
	"time"

	"idleguard/server/pos"
)

// SettingsView is the JWT tab as the API shows it.
type SettingsView struct {
	pos.Settings
	WarningSeconds       float64
	MinExpirationSeconds int64
	MaxExpirationSeconds int64
}

// Settings returns the setting in force.
func (s *Service) Settings() SettingsView {
	s.settingsMu.Lock()
	defer s.settingsMu.Unlock()
	return s.view()
}

// view is the setting in force; called with settingsMu held.
func (s *Service) view() SettingsView {
	p := s.tracker.Policy()
	return SettingsView{
		Settings: pos.Settings{
			ExpirationSeconds: int64(p.Expiration / time.Second),
			UpdatedBy:         s.changedBy,
			UpdatedAt:         s.changedAt,
		},
		WarningSeconds:       p.WarnLead().Seconds(),
		MinExpirationSeconds: s.cfg.MinExpirationSeconds,
		MaxExpirationSeconds: pos.MaxExpirationSeconds,
	}
}

// RangeError is the error for any Expiration Time that is not a whole
// number in range, so that every bad input reads the same.
func (s *Service) RangeError() *pos.Error {
	return pos.Invalid("expiration_seconds",
		"Expiration Time (expiration_seconds) must be a whole number of seconds from %d to %d (1 day = 86400)",
		s.cfg.MinExpirationSeconds, pos.MaxExpirationSeconds)
}

// UpdateExpiration saves a new Expiration Time and applies it at once to
// every session: deadlines are recomputed from last activity, sessions idle
// longer than the new time are signed out, open sockets hear their new
// remaining time. Only a user with Developer Edit may; bad input changes
// nothing.
func (s *Service) UpdateExpiration(ctx context.Context, by pos.User, seconds int64) (SettingsView, error) {
	if !by.Can(pos.DeveloperEdit) {
		return SettingsView{}, pos.Errorf(pos.EFORBIDDEN, "you need the %s permission to save Developer Configuration", pos.DeveloperEdit.Title())
	}
	if seconds < s.cfg.MinExpirationSeconds || seconds > pos.MaxExpirationSeconds {
		return SettingsView{}, s.RangeError()
	}
	s.settingsMu.Lock()
	defer s.settingsMu.Unlock()
	old := s.expirationSeconds()
	now := s.clock.Now().Round(0)
	next := pos.Settings{ExpirationSeconds: seconds, UpdatedBy: by.Name, UpdatedAt: now}
	change := pos.SettingsChange{At: now, By: by.Name, Old: old, New: seconds}
	if err := s.store.SaveSettings(ctx, next, change); err != nil {
		return SettingsView{}, fmt.Errorf("sessions: save settings: %w", err)
	}
	s.changedBy, s.changedAt = by.Name, now
	p := s.policy(next.Expiration())
	// One pass: the tracker ends those now past the new time and returns
	// every other session's new status, which their sockets hear.
	live := s.tracker.SetPolicy(p)
	for _, l := range live {
		s.sockets.Send(l.ID, s.stateFrame(l.ID, p, l.Status, false))
	}
	s.log.Info("expiration time changed", "by", by.Name, "old", old, "new", seconds, "live_sessions", len(live))
	return s.view(), nil
}

// Changes returns the newest changes to the Expiration Time first.
func (s *Service) Changes(ctx context.Context, limit int) ([]pos.SettingsChange, error) {
	c, err := s.store.SettingsChanges(ctx, limit)
	if err != nil {
		return nil, fmt.Errorf("sessions: settings changes: %w", err)
	}
	return c, nil
}
