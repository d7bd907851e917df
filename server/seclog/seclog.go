// Package seclog is the security log: one structured Warn line per refused
// or suspicious request, rate limited per kind so an attack cannot flood the
// log, with exact counts for /debug/stats.
package seclog

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"idleguard/server/clock"
)

// Kind names what happened; it is the line's kind attribute and the key in
// Counts.
type Kind string

const (
	LoginFailed    Kind = "login_failed"    // wrong password or unknown name
	LoginThrottled Kind = "login_throttled" // refused by the sign-in throttle
	HashBusy       Kind = "hash_busy"       // no password-hash slot came free in time
	OriginRefused  Kind = "origin_refused"  // Origin not on the allowlist
	CSRFRefused    Kind = "csrf_refused"    // a state-changing request without its CSRF proof
	TokenInvalid   Kind = "token_invalid"   // a token with a bad signature, claims or session
	CookieConflict Kind = "cookie_conflict" // cookie and header name different tokens
	FrameRefused   Kind = "frame_refused"   // a socket frame too big, too fast or malformed
	// TokenOtherDomain: a validly signed token of one domain presented to
	// another; a host name mix-up at best, a probe at worst.
	TokenOtherDomain Kind = "token_other_domain"
	DomainUnknown    Kind = "domain_unknown" // a request for a host that names no domain
)

// Kinds lists the kinds above; Counts reports each of them, seen or not.
var Kinds = []Kind{LoginFailed, LoginThrottled, HashBusy, OriginRefused, CSRFRefused, TokenInvalid, CookieConflict, FrameRefused, TokenOtherDomain, DomainUnknown}

// Per kind, Burst lines at once, then one line per Every.
const (
	Burst = 20
	Every = time.Second
)

// Log writes and counts security events. Safe for concurrent use; a nil
// *Log does nothing, so tests may pass nil.
type Log struct {
	log   *slog.Logger
	clock clock.Clock

	mu    sync.Mutex
	kinds map[Kind]*kindState
}

type kindState struct {
	count      uint64
	lines      *rate.Limiter
	suppressed uint64 // events not logged since this kind's last line
}

// New returns a Log writing to log (nil: slog.Default()) and limiting lines
// on c (nil: the system clock).
func New(log *slog.Logger, c clock.Clock) *Log {
	if log == nil {
		log = slog.Default()
	}
	if c == nil {
		c = clock.Real{}
	}
	l := &Log{log: log, clock: c, kinds: make(map[Kind]*kindState)}
	for _, k := range Kinds {
		l.state(k)
	}
	return l
}

// Event counts one event of kind and logs it unless kind is over its rate;
// the first line logged after a suppression carries suppressed=N. attrs
// say who and why (user name, address, reason), never a password, PIN or
// token: values under those keys are redacted all the same.
func (l *Log) Event(kind Kind, attrs ...slog.Attr) {
	if l == nil {
		return
	}
	l.mu.Lock()
	s := l.state(kind)
	s.count++
	if !s.lines.AllowN(l.clock.Now(), 1) {
		s.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := s.suppressed
	s.suppressed = 0
	l.mu.Unlock()

	line := make([]slog.Attr, 0, len(attrs)+2)
	line = append(line, slog.String("kind", string(kind)))
	for _, a := range attrs {
		line = append(line, redact(a))
	}
	if suppressed > 0 {
		line = append(line, slog.Uint64("suppressed", suppressed))
	}
	l.log.LogAttrs(context.Background(), slog.LevelWarn, "security", line...)
}

// Summary logs, for each kind with lines suppressed since its last line,
// one line saying how many, so a flood that stops is still reported. The
// caller runs it now and then (each minute, say).
func (l *Log) Summary() {
	if l == nil {
		return
	}
	type pending struct {
		kind Kind
		n    uint64
	}
	var lines []pending
	l.mu.Lock()
	for _, k := range l.sortedKinds() {
		if s := l.kinds[k]; s.suppressed > 0 {
			lines = append(lines, pending{k, s.suppressed})
			s.suppressed = 0
		}
	}
	l.mu.Unlock()
	for _, p := range lines {
		l.log.LogAttrs(context.Background(), slog.LevelWarn, "security",
			slog.String("kind", string(p.kind)), slog.Uint64("suppressed", p.n))
	}
}

// Counts is how many events of each kind happened, logged or not.
func (l *Log) Counts() map[string]uint64 {
	if l == nil {
		return map[string]uint64{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]uint64, len(l.kinds))
	for k, s := range l.kinds {
		out[string(k)] = s.count
	}
	return out
}

// state returns kind's state, making it on first use. Callers hold mu.
func (l *Log) state(kind Kind) *kindState {
	s := l.kinds[kind]
	if s == nil {
		s = &kindState{lines: rate.NewLimiter(rate.Every(Every), Burst)}
		l.kinds[kind] = s
	}
	return s
}

// sortedKinds gives Summary a stable order. Callers hold mu.
func (l *Log) sortedKinds() []Kind {
	ks := make([]Kind, 0, len(l.kinds))
	for k := range l.kinds {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// secretKeys are attribute keys whose values never reach the log, in case
// a caller passes one by mistake.
var secretKeys = map[string]bool{"password": true, "pin": true, "token": true, "secret": true, "authorization": true}

func redact(a slog.Attr) slog.Attr {
	if secretKeys[strings.ToLower(a.Key)] {
		return slog.String(a.Key, "[redacted]")
	}
	return a
}
