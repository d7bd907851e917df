// Package sessions is idleguard's service layer: sign-in and sign-out, the
// activity that sockets report, and Expiration Time changes. It joins the
// idle clock, the store, the token issuer and the hub, and is the idle
// clock's Notifier.
package sessions

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"idleguard/server/clock"
	"idleguard/server/guard"
	"idleguard/server/hub"
	"idleguard/server/idle"
	"idleguard/server/protocol"
	"idleguard/server/token"
)

// Config is the service's fixed configuration.
type Config struct {
	// MinExpirationSeconds is the lowest Expiration Time accepted.
	MinExpirationSeconds int64
	// MaxLifetime caps a session from sign-in; zero means no cap.
	MaxLifetime time.Duration
	// FlushEvery is how often last activity is written behind (at most this
	// much is lost on a crash). Default 1 s.
	FlushEvery time.Duration
}

// Sockets is what the service needs of the hub.
type Sockets interface {
	Send(sid string, m protocol.Message)
	SendEach(msg func(sid string) (protocol.Message, bool))
	SignOut(sid string, reason protocol.Reason, expirationS int64)
}

var _ Sockets = (*hub.Hub)(nil)

// Service is the one place where sessions begin, move and end.
type Service struct {
	log     *slog.Logger
	clock   clock.Clock
	store   guard.Store
	tokens  *token.Issuer
	sockets Sockets
	cfg     Config
	tracker *idle.Tracker

	// settingsMu serialises setting changes so the store, the cache and
	// the tracker's policy agree.
	settingsMu sync.Mutex
	settings   guard.Settings

	// Idle expiries are revoked in the store by the flusher, in batches: a
	// restart before then recomputes the same deadline and ends them again.
	revokeMu sync.Mutex
	revokes  []revocation
}

type revocation struct {
	sid    string
	at     time.Time
	reason protocol.Reason
}

// New loads the setting and every live session from the store and starts
// their idle clocks. Call SetSockets before serving and Run to write behind.
func New(ctx context.Context, log *slog.Logger, c clock.Clock, store guard.Store, tokens *token.Issuer, cfg Config) (*Service, error) {
	if cfg.FlushEvery <= 0 {
		cfg.FlushEvery = time.Second
	}
	s := &Service{log: log, clock: c, store: store, tokens: tokens, cfg: cfg, sockets: noSockets{}}
	settings, err := store.Settings(ctx)
	if err != nil {
		return nil, fmt.Errorf("sessions: load settings: %w", err)
	}
	s.settings = settings
	s.tracker = idle.NewTracker(c, s.policy(settings), s)
	live, err := store.LiveSessions(ctx)
	if err != nil {
		return nil, fmt.Errorf("sessions: load live sessions: %w", err)
	}
	for _, sess := range live {
		s.tracker.Add(sess)
	}
	log.Info("sessions loaded", "live", len(live), "expiration_seconds", settings.ExpirationSeconds)
	return s, nil
}

// SetSockets connects the service to the hub (built after it).
func (s *Service) SetSockets(sockets Sockets) { s.sockets = sockets }

// Tracker exposes the idle clock for status pages and tests.
func (s *Service) Tracker() *idle.Tracker { return s.tracker }

func (s *Service) policy(st guard.Settings) idle.Policy {
	return idle.Policy{Expiration: st.Expiration(), MaxLifetime: s.cfg.MaxLifetime}
}

// A bcrypt hash of a random password, compared against when the user does
// not exist so that a wrong name costs as long as a wrong password.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("idleguard: no such user"), bcrypt.DefaultCost)

// SignedIn is the outcome of a sign-in.
type SignedIn struct {
	User      guard.User
	Token     string
	Claims    token.Claims
	Remaining time.Duration
}

// Login checks a user's password and starts a session. Every failure is
// the same EUNAUTHORIZED so that nothing tells names from passwords.
func (s *Service) Login(ctx context.Context, username, password string) (SignedIn, error) {
	fail := guard.Errorf(guard.EUNAUTHORIZED, "invalid username or password")
	u, err := s.store.UserByName(ctx, username)
	if err != nil && guard.ErrorCode(err) != guard.ENOTFOUND {
		return SignedIn{}, fmt.Errorf("sessions: login: %w", err)
	}
	if err != nil {
		bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
		return SignedIn{}, fail
	}
	if bcrypt.CompareHashAndPassword(u.PasswordHash, []byte(password)) != nil {
		return SignedIn{}, fail
	}
	now := s.clock.Now()
	sess := guard.Session{ID: NewSessionID(), UserID: u.ID, Username: u.Name, Created: now, LastActivity: now}
	// Stored with wall-clock times; kept in memory with monotonic ones.
	stored := sess
	stored.Created, stored.LastActivity = now.Round(0), now.Round(0)
	if err := s.store.CreateSession(ctx, stored); err != nil {
		return SignedIn{}, fmt.Errorf("sessions: login: %w", err)
	}
	st := s.tracker.Add(sess)
	tok, claims, err := s.issue(u.Name, sess.ID, st.Deadline)
	if err != nil {
		return SignedIn{}, err
	}
	s.log.Info("signed in", "user", u.Name, "sid", short(sess.ID))
	return SignedIn{User: u, Token: tok, Claims: claims, Remaining: st.Remaining}, nil
}

func (s *Service) issue(username, sid string, deadline time.Time) (string, token.Claims, error) {
	tok, claims, err := s.tokens.Issue(username, sid, deadline)
	if err != nil {
		return "", token.Claims{}, fmt.Errorf("sessions: issue token: %w", err)
	}
	s.tracker.Renewed(sid, claims.ExpiresAt)
	return tok, claims, nil
}

// JWKS is the public key set other backends verify tokens with.
func (s *Service) JWKS() []byte { return s.tokens.JWKS() }

// Principal is who a valid token speaks for.
type Principal struct {
	User      guard.User
	SessionID string
	Claims    token.Claims
	Remaining time.Duration
}

// Authenticate accepts a token only if its signature and claims are valid
// and its session is alive now. A refusal is EUNAUTHORIZED; when the
// session is known to have ended, Reason says why.
func (s *Service) Authenticate(ctx context.Context, tok string) (Principal, error) {
	claims, err := s.tokens.Verify(tok)
	if err != nil {
		return Principal{}, err
	}
	st, alive := s.tracker.Status(claims.SessionID)
	if !alive {
		return Principal{}, s.endedError(ctx, claims.SessionID)
	}
	sess, err := s.store.Session(ctx, claims.SessionID)
	if err != nil {
		if guard.ErrorCode(err) == guard.ENOTFOUND {
			return Principal{}, guard.Errorf(guard.EUNAUTHORIZED, "session not found")
		}
		return Principal{}, fmt.Errorf("sessions: authenticate: %w", err)
	}
	u, err := s.store.UserByID(ctx, sess.UserID)
	if err != nil {
		if guard.ErrorCode(err) == guard.ENOTFOUND {
			return Principal{}, guard.Errorf(guard.EUNAUTHORIZED, "user no longer exists")
		}
		return Principal{}, fmt.Errorf("sessions: authenticate: %w", err)
	}
	return Principal{User: u, SessionID: claims.SessionID, Claims: claims, Remaining: st.Remaining}, nil
}

// EndedError is the EUNAUTHORIZED error for a session that is not alive; it
// carries the sign-out reason when the store knows it.
type EndedError struct {
	Err    *guard.Error
	Reason protocol.Reason
}

func (e *EndedError) Error() string { return e.Err.Error() }

// Unwrap lets guard.ErrorCode see the EUNAUTHORIZED code.
func (e *EndedError) Unwrap() error { return e.Err }

func (s *Service) endedError(ctx context.Context, sid string) error {
	e := &EndedError{Err: guard.Errorf(guard.EUNAUTHORIZED, "session has ended"), Reason: protocol.ReasonRevoked}
	// An expiry not yet written behind knows its reason (idle or
	// setting_changed); the store would still call the session alive.
	if r, ok := s.pendingRevocation(sid); ok {
		e.Reason = r
		return e
	}
	if sess, err := s.store.Session(ctx, sid); err == nil && sess.Revoked {
		if r := protocol.ParseReason(sess.RevokedReason); r != protocol.ReasonNone {
			e.Reason = r
		}
	} else if err == nil {
		// Alive in the store but not here: past its deadline, revocation
		// not yet written.
		e.Reason = protocol.ReasonIdle
	}
	return e
}

// pendingRevocation is the reason of sid's expiry if it is still waiting to
// be written to the store.
func (s *Service) pendingRevocation(sid string) (protocol.Reason, bool) {
	s.revokeMu.Lock()
	defer s.revokeMu.Unlock()
	for _, r := range s.revokes {
		if r.sid == sid {
			return r.reason, true
		}
	}
	return protocol.ReasonNone, false
}

// Logout ends a session everywhere, now, and records it before returning.
func (s *Service) Logout(ctx context.Context, sid string) error {
	s.tracker.Remove(sid)
	s.sockets.SignOut(sid, protocol.ReasonSignedOut, s.expirationSeconds())
	if err := s.store.RevokeSession(ctx, sid, s.clock.Now().Round(0), protocol.ReasonSignedOut.String()); err != nil {
		return fmt.Errorf("sessions: logout: %w", err)
	}
	s.log.Info("signed out", "sid", short(sid), "reason", protocol.ReasonSignedOut)
	return nil
}

// Warn is the idle clock telling that a session's warning is due.
func (s *Service) Warn(sid string, remaining time.Duration) {
	s.sockets.Send(sid, protocol.Message{Kind: protocol.Warning, RemainingMs: remaining.Milliseconds()})
}

// Expire is the idle clock telling that a session has ended: sockets first
// (that is what the cashier sees), then the store, in the next flush.
func (s *Service) Expire(sid string, reason protocol.Reason) {
	s.sockets.SignOut(sid, reason, s.expirationSeconds())
	s.revokeMu.Lock()
	s.revokes = append(s.revokes, revocation{sid: sid, at: s.clock.Now().Round(0), reason: reason})
	s.revokeMu.Unlock()
	s.log.Info("signed out", "sid", short(sid), "reason", reason)
}

// State is the state frame for a live session.
func (s *Service) State(sid string) (protocol.Message, bool) {
	st, ok := s.tracker.Status(sid)
	if !ok {
		return protocol.Message{}, false
	}
	return s.stateFrame(sid, st, false), true
}

func (s *Service) stateFrame(sid string, st idle.Status, renew bool) protocol.Message {
	p := s.tracker.Policy()
	m := protocol.Message{
		Kind:        protocol.State,
		RemainingMs: st.Remaining.Milliseconds(),
		ExpirationS: int64(p.Expiration / time.Second),
		WarnMs:      p.WarnLead().Milliseconds(),
		ReportMs:    p.ReportEvery().Milliseconds(),
	}
	if renew {
		if sess, err := s.store.Session(context.Background(), sid); err == nil {
			if tok, _, err := s.issue(sess.Username, sid, st.Deadline); err == nil {
				m.Token = tok
			} else {
				s.log.Error("renew token", "sid", short(sid), "err", err)
			}
		}
	}
	return m
}

// expirationSeconds is the Expiration Time in force, as the idle clock
// applies it. It must not take settingsMu: UpdateExpiration holds that lock
// while tracker.SetPolicy calls Expire for the sessions the change ends, and
// Expire asks for this (taking the lock there deadlocked every change that
// signed a session out).
func (s *Service) expirationSeconds() int64 {
	return int64(s.tracker.Policy().Expiration / time.Second)
}

// NewSessionID returns a new random session id (144 bits, base64url).
func NewSessionID() string {
	b := make([]byte, 18)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// short is enough of a session id to follow it in logs without making the
// log a list of bearer secrets (ids are not tokens, but need not be whole).
func short(sid string) string { return sid[:min(len(sid), 8)] }

type noSockets struct{}

func (noSockets) Send(string, protocol.Message)                  {}
func (noSockets) SendEach(func(string) (protocol.Message, bool)) {}
func (noSockets) SignOut(string, protocol.Reason, int64)         {}
