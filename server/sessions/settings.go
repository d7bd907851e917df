package sessions

import (
	"context"
	"fmt"
	"time"

	"idleguard/server/live"
	"idleguard/server/pos"
)

// SettingsView is the JWT tab as the API shows it.
type SettingsView struct {
	pos.Settings
	WarningSeconds       float64
	MinExpirationSeconds int64
	MaxExpirationSeconds int64
}

// Settings returns the setting in force in a domain (ENOTFOUND).
func (s *Service) Settings(domain string) (SettingsView, error) {
	d, ok := s.domain(domain)
	if !ok {
		return SettingsView{}, errNoDomain(domain)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return s.view(d), nil
}

// view is d's setting in force; called with d.mu held.
func (s *Service) view(d *domain) SettingsView {
	p, _ := s.tracker.Policy(d.name)
	return SettingsView{
		Settings: pos.Settings{
			ExpirationSeconds: expSeconds(p),
			UpdatedBy:         d.changedBy,
			UpdatedAt:         d.changedAt,
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

// UpdateExpiration saves a new Expiration Time for by's own domain (no
// other: the domain is the user's, never the request's word) and applies
// it at once to every session of that domain and only those: deadlines are
// recomputed from last activity, sessions idle longer than the new time
// are signed out, open sockets hear their new remaining time. Only a user
// with Developer Edit may; bad input changes nothing.
func (s *Service) UpdateExpiration(ctx context.Context, by pos.User, seconds int64) (SettingsView, error) {
	if !by.Can(pos.DeveloperEdit) {
		return SettingsView{}, pos.Errorf(pos.EFORBIDDEN, "you need the %s permission to save Developer Configuration", pos.DeveloperEdit.Title())
	}
	if seconds < s.cfg.MinExpirationSeconds || seconds > pos.MaxExpirationSeconds {
		return SettingsView{}, s.RangeError()
	}
	d, ok := s.domain(by.Domain)
	if !ok {
		return SettingsView{}, errNoDomain(by.Domain)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.removed {
		return SettingsView{}, errNoDomain(by.Domain)
	}
	cur, _ := s.tracker.Policy(d.name)
	old := expSeconds(cur)
	now := s.clock.Now().Round(0)
	next := pos.Settings{ExpirationSeconds: seconds, UpdatedBy: by.Name, UpdatedAt: now}
	change := pos.SettingsChange{At: now, By: by.Name, Old: old, New: seconds}
	if err := s.store.SaveSettings(ctx, d.name, next, change); err != nil {
		return SettingsView{}, fmt.Errorf("sessions: save settings: %w", err)
	}
	d.changedBy, d.changedAt = by.Name, now
	n := s.applyExpiration(d, next.Expiration())
	s.publish(live.Signal{Kind: live.KindSettings, Domain: d.name})
	s.log.Info("expiration time changed", "domain", d.name, "by", by.Name, "old", old, "new", seconds, "live_sessions", n)
	return s.view(d), nil
}

// applyExpiration puts a domain's new Expiration Time in force on this
// node, in one pass over the domain's sessions: the tracker ends those now
// past the new time and returns every other one's new status, which their
// sockets hear. No other domain's session is looked at. Called with d.mu
// held; it returns how many sessions live on.
func (s *Service) applyExpiration(d *domain, exp time.Duration) int {
	alive := s.tracker.SetPolicy(d.name, s.policy(exp))
	for _, l := range alive {
		s.sockets.Send(l.ID, s.stateFrame(l.ID, l.Status, false))
	}
	return len(alive)
}

// Changes returns the newest changes to a domain's Expiration Time first.
func (s *Service) Changes(ctx context.Context, domain string, limit int) ([]pos.SettingsChange, error) {
	c, err := s.store.SettingsChanges(ctx, domain, limit)
	if err != nil {
		return nil, fmt.Errorf("sessions: settings changes: %w", err)
	}
	return c, nil
}
