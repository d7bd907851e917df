// Package sessions is idleguard's service layer: sign-in and sign-out, the
// activity that sockets report, and Expiration Time changes, for every
// domain this node serves, none crossing into another. It joins the
// idle clock, the store, the token issuer and the sockets (the hub, through
// the Sockets port). Its exported methods are what the HTTP layer calls;
// what the hub and the idle clock call back are unexported adapters
// (frames and clockEvents, socket.go).
package sessions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"idleguard/server/clock"
	"idleguard/server/idle"
	"idleguard/server/live"
	"idleguard/server/pos"
	"idleguard/server/protocol"
	"idleguard/server/seclog"
	"idleguard/server/signin"
	"idleguard/server/token"
)

// Config is the service's fixed configuration.
type Config struct {
	// MinExpirationSeconds is the lowest Expiration Time accepted.
	MinExpirationSeconds int64
	// MaxLifetime caps a session from sign-in; zero means no cap.
	MaxLifetime time.Duration
	// FlushEvery is how often last activity is written behind (at most this
	// much is lost on a crash) and the session end log is read. Default 1 s.
	FlushEvery time.Duration
	// CheckpointEvery is how often the store's write-ahead log is folded
	// back into its file, so a small disk does not fill. Default 10 s.
	CheckpointEvery time.Duration
	// HashSlots caps concurrent password hashing; default max(2, GOMAXPROCS).
	HashSlots int
	// PasswordCost is the bcrypt cost of new password hashes (and of the
	// hash an unknown name is compared against); default bcrypt.DefaultCost.
	PasswordCost int
	// Security is the security log (nil: none).
	Security *seclog.Log
	// Live, when set, makes this node one of a cluster sharing sessions
	// through the live layer (cluster.go); nil: the only node.
	Live live.Layer
	// LiveEvery is how often input is recorded in the live layer (input
	// that may end a warning goes at once). Default 100 ms.
	LiveEvery time.Duration
}

// Service is the one place where sessions begin, move and end.
type Service struct {
	log     *slog.Logger
	clock   clock.Clock
	store   pos.Store
	tokens  *token.Issuer
	sockets Sockets
	cfg     Config
	tracker *idle.Tracker
	cl      *cluster // nil on a single node

	// The domains this node serves, by name: every request looks its
	// domain up here, once. The flusher adds and removes them as the
	// domain log says (the CLI writes it).
	domainsMu sync.RWMutex
	domains   map[string]*domain

	// Idle expiries, and sign-outs whose write failed, are revoked in the
	// store by the flusher, in batches, and stay here until written.
	revokeMu sync.Mutex
	revokes  []pos.Revocation

	throttle *signin.Throttle
	hashing  *signin.HashGate
	sec      *seclog.Log

	// Owned by the flusher (flush holds flushMu): activity whose write
	// failed, kept for the next try, and how far the end log has been read.
	flushMu sync.Mutex
	unsaved []pos.Activity
	endSeq  int64

	domLogMu sync.Mutex // readDomains
	domSeq   int64

	health storeHealth

	// A bcrypt hash compared against when the user does not exist, so that
	// a wrong name costs as long as a wrong password.
	dummyHash []byte
}

// New loads the setting and every live session from the store and starts
// their idle clocks, which tell sockets (the hub, built first) when
// sessions are warned and end. Call Run to write behind.
func New(ctx context.Context, log *slog.Logger, c clock.Clock, store pos.Store, tokens *token.Issuer, sockets Sockets, cfg Config) (*Service, error) {
	if cfg.FlushEvery <= 0 {
		cfg.FlushEvery = time.Second
	}
	if cfg.CheckpointEvery <= 0 {
		cfg.CheckpointEvery = 10 * time.Second
	}
	if cfg.HashSlots <= 0 {
		cfg.HashSlots = max(2, runtime.GOMAXPROCS(0))
	}
	if cfg.LiveEvery <= 0 {
		cfg.LiveEvery = 100 * time.Millisecond
	}
	if cfg.PasswordCost == 0 {
		cfg.PasswordCost = bcrypt.DefaultCost
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("idleguard: no such user"), cfg.PasswordCost)
	if err != nil {
		return nil, fmt.Errorf("sessions: password cost: %w", err)
	}
	s := &Service{log: log, clock: c, store: store, tokens: tokens, cfg: cfg, sockets: sockets,
		throttle:  signin.NewThrottle(c, signin.ThrottleConfig{}),
		hashing:   signin.NewHashGate(cfg.HashSlots),
		sec:       cfg.Security,
		dummyHash: dummy,
	}
	s.tracker = idle.NewTracker(c, clockEvents{s})
	if cfg.Live != nil {
		s.cl = newCluster(cfg.Live)
		s.tracker.SetRechecker(sharedClock{s})
	}
	s.domains = make(map[string]*domain)
	// Read the logs' tails before what they change: a domain added or a
	// session ended between the two reads is in the log after its tail.
	if s.domSeq, err = store.LastDomainChange(ctx); err != nil {
		return nil, fmt.Errorf("sessions: read domain log: %w", err)
	}
	if s.endSeq, err = store.LastSessionEnd(ctx); err != nil {
		return nil, fmt.Errorf("sessions: read session end log: %w", err)
	}
	doms, err := store.Domains(ctx)
	if err != nil {
		return nil, fmt.Errorf("sessions: load domains: %w", err)
	}
	for _, d := range doms {
		if err := s.loadDomain(ctx, d.Name); err != nil {
			return nil, err
		}
	}
	// Sessions whose user was deleted or replaced by older code never come
	// back: a token authenticates only as the user it was issued to.
	if n, err := store.RevokeOrphanSessions(ctx, c.Now().Round(0)); err != nil {
		return nil, fmt.Errorf("sessions: end orphaned sessions: %w", err)
	} else if n > 0 {
		log.Warn("ended sessions whose user no longer exists", "count", n)
	}
	live, err := store.LiveSessions(ctx)
	if err != nil {
		return nil, fmt.Errorf("sessions: load live sessions: %w", err)
	}
	if s.cl != nil {
		s.onLayerClock(ctx, live)
	}
	now, future := c.Now(), 0
	for _, sess := range live {
		if sess.LastActivity.After(now) || sess.Created.After(now) {
			future++ // the tracker clamps them to now
		}
		if _, ok := s.tracker.Add(sess); !ok {
			log.Error("live session of an unknown domain left untracked", "domain", sess.Domain, "sid", ShortID(sess.ID))
		}
	}
	if future > 0 {
		// The wall clock was stepped back across the restart.
		log.Warn("stored times in the future were clamped to now", "sessions", future)
	}
	log.Info("sessions loaded", "domains", len(doms), "live", len(live))
	return s, nil
}

// Live is the number of live sessions on the idle clock, for /debug/stats.
func (s *Service) Live() int { return s.tracker.Len() }

func (s *Service) policy(expiration time.Duration) idle.Policy {
	return idle.Policy{Expiration: expiration, MaxLifetime: s.cfg.MaxLifetime}
}

// MaxPasswordLen is bcrypt's limit: it ignores every byte after the 72nd,
// so a longer password is refused rather than silently cut.
const MaxPasswordLen = 72

// hashWait bounds how long a sign-in waits for a free password hash before
// it is told the server is busy.
const hashWait = 3 * time.Second

// SignedIn is the outcome of a sign-in.
type SignedIn struct {
	User      pos.User
	Token     string
	Claims    token.Claims
	Remaining time.Duration
}

// Credentials are what a sign-in presents, to which domain, and from
// where: Addr is the client's address (through trusted proxies), a key of
// the throttle.
type Credentials struct {
	Domain   string
	Username string
	Password string
	Addr     string
}

// ThrottledError is the ETOOMANY answer to a sign-in that must wait.
type ThrottledError struct {
	Err  *pos.Error
	Wait time.Duration // until the next attempt may run
}

func (e *ThrottledError) Error() string { return e.Err.Error() }

// RetryAfter is Wait in whole seconds, rounded up (a Retry-After value).
func (e *ThrottledError) RetryAfter() int64 { return int64((e.Wait + time.Second - 1) / time.Second) }
func (e *ThrottledError) Unwrap() error     { return e.Err }

// Login checks a user's password and starts a session. Every failure is
// the same EUNAUTHORIZED so that nothing tells names from passwords. Only
// failures are throttled, per name and address, with backoff: a cashier at
// their own till always gets in with the right password (package signin).
func (s *Service) Login(ctx context.Context, cr Credentials) (SignedIn, error) {
	if len(cr.Password) > MaxPasswordLen {
		return SignedIn{}, pos.Invalid("password", "password must be at most %d bytes", MaxPasswordLen)
	}
	if _, ok := s.domain(cr.Domain); !ok {
		return SignedIn{}, errNoDomain(cr.Domain)
	}
	name := pos.CanonicalName(cr.Username)
	// Every bucket is the domain's own: failures against acme's admin
	// never hold back globex's, nor an address's failures in acme
	// another business behind the same address.
	tuser, taddr := throttleKey(cr.Domain, name), throttleKey(cr.Domain, cr.Addr)
	// Check reserves this attempt until Failed or Succeeded (an attempt
	// that never reaches the password check lapses by itself).
	if wait := s.throttle.Check(tuser, taddr); wait > 0 {
		s.sec.Event(seclog.LoginThrottled, slog.String("domain", cr.Domain), slog.String("user", name), slog.String("addr", cr.Addr))
		e := &ThrottledError{Wait: wait}
		e.Err = pos.Errorf(pos.ETOOMANY, "too many failed sign-ins for this user from here; try again in %d s", e.RetryAfter())
		return SignedIn{}, e
	}
	u, err := s.checkPassword(ctx, name, s.throttle.Known(tuser, taddr), cr)
	if err != nil {
		if pos.ErrorCode(err) == pos.EUNAUTHORIZED {
			s.throttle.Failed(tuser, taddr)
			s.sec.Event(seclog.LoginFailed, slog.String("domain", cr.Domain), slog.String("user", name), slog.String("addr", cr.Addr))
		}
		return SignedIn{}, err
	}
	s.throttle.Succeeded(tuser, taddr)
	now := s.clock.Now()
	sess := pos.Session{ID: pos.NewSessionID(), Domain: u.Domain, UserID: u.ID, Username: u.Name, Created: now, LastActivity: now}
	// Stored with wall-clock times; kept in memory with monotonic ones.
	stored := sess
	stored.Created, stored.LastActivity = now.Round(0), now.Round(0)
	if err := s.store.CreateSession(ctx, stored); err != nil {
		if pos.ErrorCode(err) == pos.ENOTFOUND {
			return SignedIn{}, errNoDomain(cr.Domain) // removed meanwhile: the store is fine
		}
		s.health.failed(s.log, s.clock.Now(), err)
		return SignedIn{}, fmt.Errorf("sessions: login: %w", err)
	}
	st, ok := s.tracker.Add(sess)
	if !ok {
		// Removed between the check above and now.
		return SignedIn{}, errNoDomain(cr.Domain)
	}
	// The session's first moment on the layer's clock, so that another
	// node adopting it never reads this node's wall clock.
	s.noteInput(sess.Domain, sess.ID, now, false)
	tok, claims, err := s.issue(sess, st.Deadline)
	if err != nil {
		return SignedIn{}, err
	}
	s.log.Info("signed in", "domain", u.Domain, "user", u.Name, "sid", ShortID(sess.ID), "addr", cr.Addr)
	return SignedIn{User: u, Token: tok, Claims: claims, Remaining: st.Remaining}, nil
}

// throttleKey scopes a throttle key to its domain. "/" is in neither a
// domain's nor a name's alphabet, and an address never starts a domain.
func throttleKey(domain, key string) string { return domain + "/" + key }

// checkPassword finds the domain's user (by canonical name, else as typed,
// for names made before names were lowercase) and compares the password,
// inside the hashing gate so that a spray cannot take every CPU from real
// sign-ins; known says the name and address have signed in before.
func (s *Service) checkPassword(ctx context.Context, name string, known bool, cr Credentials) (pos.User, error) {
	fail := pos.Errorf(pos.EUNAUTHORIZED, "invalid username or password")
	u, err := s.store.UserByName(ctx, cr.Domain, name)
	if pos.ErrorCode(err) == pos.ENOTFOUND && name != cr.Username {
		u, err = s.store.UserByName(ctx, cr.Domain, cr.Username)
	}
	if err != nil && pos.ErrorCode(err) != pos.ENOTFOUND {
		return pos.User{}, fmt.Errorf("sessions: login: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, hashWait)
	defer cancel()
	leave, gerr := s.hashing.Enter(wctx, known)
	if gerr != nil {
		s.sec.Event(seclog.HashBusy, slog.String("domain", cr.Domain), slog.String("user", name), slog.String("addr", cr.Addr))
		return pos.User{}, &ThrottledError{Wait: time.Second,
			Err: pos.Errorf(pos.ETOOMANY, "the server is busy signing others in; try again in a second")}
	}
	defer leave()
	if err != nil {
		bcrypt.CompareHashAndPassword(s.dummyHash, []byte(cr.Password))
		return pos.User{}, fail
	}
	if bcrypt.CompareHashAndPassword(u.PasswordHash, []byte(cr.Password)) != nil {
		return pos.User{}, fail
	}
	return u, nil
}

// issue signs a token for session sess (its ID, Domain and Username)
// ending at deadline.
func (s *Service) issue(sess pos.Session, deadline time.Time) (string, token.Claims, error) {
	tok, claims, err := s.tokens.Issue(sess.Domain, sess.Username, sess.ID, deadline)
	if err != nil {
		return "", token.Claims{}, fmt.Errorf("sessions: issue token: %w", err)
	}
	s.tracker.Renewed(sess.ID, claims.ExpiresAt)
	return tok, claims, nil
}

// JWKS is the public key set other backends verify tokens with.
func (s *Service) JWKS() []byte { return s.tokens.JWKS() }

// Principal is who a valid token speaks for.
type Principal struct {
	User      pos.User
	SessionID string
	Claims    token.Claims
	Remaining time.Duration
	// Expired: the token's exp has passed though its session is alive
	// (activity moved the deadline after it was issued); the caller should
	// hand the browser a fresh one (Refresh).
	Expired bool
}

// Authenticate accepts a token for domain only if its signature and claims
// are valid, it names domain, its session is alive now, and the session
// and the token name the same user of that domain, who still exists under
// the id the session was started for. A valid token of another domain is
// refused like a forged one. The
// session decides, not exp: a live session's page can always reload or
// reconnect, even with a token issued before activity moved the deadline.
// A refusal is EUNAUTHORIZED; when the session has ended, Reason says why.
func (s *Service) Authenticate(ctx context.Context, domain, tok string) (Principal, error) {
	claims, err := s.tokens.Verify(tok)
	expired := errors.Is(err, token.ErrExpired)
	if err != nil && !expired {
		return Principal{}, err
	}
	if claims.Domain != domain {
		s.sec.Event(seclog.TokenOtherDomain, slog.String("domain", domain), slog.String("token_domain", claims.Domain))
		return Principal{}, ErrOtherDomain
	}
	st, alive := s.tracker.Status(claims.SessionID)
	if !alive && s.cl != nil {
		// Perhaps signed in, or kept alive, on another node.
		st, alive = s.adopt(ctx, domain, claims.SessionID)
	}
	if !alive {
		return Principal{}, s.endedError(ctx, claims.SessionID)
	}
	sess, err := s.store.Session(ctx, claims.SessionID)
	if err != nil {
		return Principal{}, unauthorizedIfMissing(err, "session not found")
	}
	if sess.Revoked {
		// Ended by another process, and the end log not read yet.
		return Principal{}, s.endedError(ctx, claims.SessionID)
	}
	u, err := s.store.UserByID(ctx, sess.UserID)
	if err != nil {
		return Principal{}, unauthorizedIfMissing(err, "user no longer exists")
	}
	if claims.Subject != sess.Username || u.Name != sess.Username || sess.Domain != domain || u.Domain != domain {
		return Principal{}, pos.Errorf(pos.EUNAUTHORIZED, "invalid token")
	}
	return Principal{User: u, SessionID: claims.SessionID, Claims: claims, Remaining: st.Remaining, Expired: expired}, nil
}

// ErrOtherDomain is Authenticate's refusal of a validly signed token of
// another domain: to the client the same "invalid token" as any other, and
// already in the security log as token_other_domain.
var ErrOtherDomain error = pos.Errorf(pos.EUNAUTHORIZED, "invalid token")

// unauthorizedIfMissing is a lookup's error as Authenticate answers it:
// what is not found is a refusal, anything else an internal error.
func unauthorizedIfMissing(err error, msg string) error {
	if pos.ErrorCode(err) == pos.ENOTFOUND {
		return pos.Errorf(pos.EUNAUTHORIZED, "%s", msg)
	}
	return fmt.Errorf("sessions: authenticate: %w", err)
}

// Refresh issues a new token for p's live session, ending at its deadline.
func (s *Service) Refresh(p Principal) (string, token.Claims, error) {
	st, ok := s.tracker.Status(p.SessionID)
	if !ok {
		return "", token.Claims{}, pos.Errorf(pos.EUNAUTHORIZED, "session has ended")
	}
	return s.issue(pos.Session{ID: p.SessionID, Domain: p.User.Domain, Username: p.User.Name}, st.Deadline)
}

// EndedError is the EUNAUTHORIZED error for a session that is not alive; it
// carries the sign-out reason when the store knows it.
type EndedError struct {
	Err    *pos.Error
	Reason protocol.Reason
}

func (e *EndedError) Error() string { return e.Err.Error() }

// Unwrap lets pos.ErrorCode see the EUNAUTHORIZED code.
func (e *EndedError) Unwrap() error { return e.Err }

func (s *Service) endedError(ctx context.Context, sid string) error {
	e := &EndedError{Err: pos.Errorf(pos.EUNAUTHORIZED, "session has ended"), Reason: protocol.ReasonRevoked}
	// An expiry not yet written behind knows its reason (idle or
	// setting_changed); the store would still call the session alive.
	if r, ok := s.pendingRevocation(sid); ok {
		e.Reason = r
		return e
	}
	if sess, err := s.store.Session(ctx, sid); err == nil && sess.Revoked {
		if sess.RevokedReason != protocol.ReasonNone {
			e.Reason = sess.RevokedReason
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
		if r.SessionID == sid {
			return r.Reason, true
		}
	}
	return protocol.ReasonNone, false
}

// Logout ends a session everywhere, now, and records it. A sign-out whose
// store write fails is not lost: it stays pending, like an idle expiry,
// until the flusher writes it, and the session stays ended meanwhile.
func (s *Service) Logout(ctx context.Context, sid string) error {
	p, ok := s.tracker.Remove(sid)
	if !ok {
		// Already ended (the idle clock got there first, its revocation
		// perhaps not written yet): the first end and its reason stand.
		return nil
	}
	// Pending first: a request that comes between the tabs hearing the
	// sign-out and the store's write must hear its true reason. The flush
	// writes it again, which changes nothing once it is written here.
	at := s.clock.Now().Round(0)
	s.pend(pos.Revocation{SessionID: sid, At: at, Reason: protocol.ReasonSignedOut})
	s.sockets.SignOut(sid, protocol.ReasonSignedOut, expSeconds(p))
	if err := s.store.RevokeSession(ctx, sid, at, protocol.ReasonSignedOut); err != nil {
		s.health.failed(s.log, s.clock.Now(), err)
		s.log.Error("sign-out kept pending: store write failed", "sid", ShortID(sid), "err", err)
	}
	s.publishEnd(ctx, sid, protocol.ReasonSignedOut)
	s.log.Info("signed out", "sid", ShortID(sid), "reason", protocol.ReasonSignedOut)
	return nil
}

func (s *Service) pend(r pos.Revocation) {
	s.revokeMu.Lock()
	s.revokes = append(s.revokes, r)
	s.revokeMu.Unlock()
}

// expSeconds is a policy's Expiration Time in seconds, as frames carry it.
func expSeconds(p idle.Policy) int64 { return int64(p.Expiration / time.Second) }

// ShortID is enough of a session id to follow it in logs without making the
// log a list of bearer secrets (ids are not tokens, but need not be whole).
func ShortID(sid string) string { return sid[:min(len(sid), 8)] }
