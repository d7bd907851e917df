// Package signin decides when a password may be checked: Throttle slows
// guessing without locking the real cashier out of their own till, and
// HashGate bounds how many password hashes run at once.
//
// A sign-in runs: wait := Check(user, addr), and if it is not 0 answer 429
// with Retry-After (rounded up to seconds); otherwise Enter a HashGate with
// Known(user, addr), check the password, then call Failed or Succeeded. An
// attempt that never reached the password check (gate busy, store error)
// calls neither.
//
// Throttle's rules (numbers are ThrottleConfig's defaults):
//
//   - Only failures count. Check reserves the attempt it allows; Failed
//     turns the reservation into a failure and Succeeded drops it, so a
//     sign-in that succeeds consumes nothing. While a reservation is open it
//     counts as a failure, so a burst of concurrent attempts cannot slip
//     past the backoff while their hashes run. A reservation nobody resolves
//     lapses after 10 s.
//   - Every failure counts against its (user, address) pair: 5 are free,
//     then each further one makes the next attempt wait 1 s, 2 s, 4 s, ...
//     up to 15 min, measured from the last failure. There is no wall: after
//     the wait one more attempt may run. A success resets the pair and makes
//     it known for 30 days.
//   - Unless the pair is known, a failure also counts against the user (10
//     free; one name guessed from many addresses) and against the address
//     (20 free; many names sprayed from one address), with the same backoff.
//     A known pair is neither counted nor held back by these two rules, so
//     an attacker elsewhere cannot keep a cashier out of their own till, and
//     a spray through a shop's shared NAT address does not lock out its staff.
//   - Counted failures are forgiven one per 15 min from the end of the
//     backoff (waiting it out forgives nothing, so retrying as soon as
//     allowed climbs to the cap), and a quiet pair, user or address returns
//     to its free allowance and its entry is swept.
//   - An IPv6 address counts as its /64, which one host usually holds whole.
//   - Memory is bounded: each table holds at most 65536 entries (a full one
//     evicts, from a small random sample, the entry with the fewest
//     failures, so a flood of random names evicts its own entries rather
//     than the one under attack), and a user keeps at most 16 known
//     addresses (the oldest goes).
package signin

import (
	"net/netip"
	"sync"
	"time"

	"idleguard/server/clock"
)

// ThrottleConfig tunes a Throttle. A field that is zero or negative takes
// the default in its comment.
type ThrottleConfig struct {
	PairFree int // failures per (user, address) before backoff: 5
	UserFree int // failures per user, from addresses not known for it: 10
	AddrFree int // failures per address, for users not known there: 20

	FirstDelay time.Duration // wait after the first failure past the free ones: 1 s
	MaxDelay   time.Duration // the backoff's cap: 15 min
	Forgive    time.Duration // one counted failure is forgotten per Forgive: 15 min

	KnownFor     time.Duration // how long a success keeps its pair known: 30 days
	KnownPerUser int           // known addresses kept per user: 16
	MaxEntries   int           // hard cap on each table (pairs, users, addresses, known users): 65536
}

func (c ThrottleConfig) withDefaults() ThrottleConfig {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.PairFree, 5)
	def(&c.UserFree, 10)
	def(&c.AddrFree, 20)
	defDur(&c.FirstDelay, time.Second)
	defDur(&c.MaxDelay, 15*time.Minute)
	defDur(&c.Forgive, 15*time.Minute)
	defDur(&c.KnownFor, 30*24*time.Hour)
	def(&c.KnownPerUser, 16)
	def(&c.MaxEntries, 1<<16)
	return c
}

const (
	// reservationLapse outlives a password hash and a HashGate wait; a
	// caller that never resolves an attempt holds others back only this long.
	reservationLapse = 10 * time.Second
	// sweepEvery spaces full sweeps; between them full tables evict.
	sweepEvery = time.Minute
)

type pairKey struct{ user, addr string }

// Throttle holds failed sign-ins per pair, user and address. Safe for
// concurrent use.
type Throttle struct {
	clock clock.Clock
	cfg   ThrottleConfig

	mu        sync.Mutex
	pairs     *table[pairKey]
	users     *table[string]
	addrs     *table[string]
	known     *knownPairs
	lastSweep time.Time
}

// NewThrottle returns a Throttle on c; see ThrottleConfig for defaults.
func NewThrottle(c clock.Clock, cfg ThrottleConfig) *Throttle {
	cfg = cfg.withDefaults()
	return &Throttle{
		clock:     c,
		cfg:       cfg,
		pairs:     newTable[pairKey](cfg, cfg.PairFree),
		users:     newTable[string](cfg, cfg.UserFree),
		addrs:     newTable[string](cfg, cfg.AddrFree),
		known:     newKnownPairs(cfg),
		lastSweep: c.Now(),
	}
}

// Check reports how long user must wait before an attempt from addr may
// run: 0 means now, and the attempt is reserved until Failed or Succeeded.
// user is the canonical (lowercased) name, addr the client's address.
func (t *Throttle) Check(user, addr string) (wait time.Duration) {
	addr = addrKey(addr)
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.begin()
	k := pairKey{user, addr}
	known := t.known.has(k, now)
	wait = t.pairs.wait(k, now)
	if !known {
		wait = max(wait, t.users.wait(user, now), t.addrs.wait(addr, now))
	}
	if wait > 0 {
		return wait
	}
	t.pairs.reserve(k, now)
	if !known {
		t.users.reserve(user, now)
		t.addrs.reserve(addr, now)
	}
	return 0
}

// lockPair takes the throttle's lock for an attempt's outcome and returns
// the pair's key (the address as counted) and the time.
func (t *Throttle) lockPair(user, addr string) (pairKey, time.Time, func()) {
	k := pairKey{user, addrKey(addr)}
	t.mu.Lock()
	return k, t.begin(), t.mu.Unlock
}

// Failed records a wrong password (or an unknown name) for user from addr.
func (t *Throttle) Failed(user, addr string) {
	k, now, unlock := t.lockPair(user, addr)
	defer unlock()
	addr = k.addr
	t.pairs.fail(k, now)
	if t.known.has(k, now) {
		t.users.release(user, now)
		t.addrs.release(addr, now)
		return
	}
	t.users.fail(user, now)
	t.addrs.fail(addr, now)
}

// Succeeded records a right password: the pair's failures are forgotten
// and the pair is known from now on.
func (t *Throttle) Succeeded(user, addr string) {
	k, now, unlock := t.lockPair(user, addr)
	defer unlock()
	addr = k.addr
	t.pairs.forget(k)
	t.users.release(user, now)
	t.addrs.release(addr, now)
	t.known.add(k, now)
}

// Known reports whether user signed in successfully from addr within
// KnownFor.
func (t *Throttle) Known(user, addr string) bool {
	addr = addrKey(addr)
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.known.has(pairKey{user, addr}, t.begin())
}

// begin reads the clock and sweeps when a sweep is due. Callers hold mu.
func (t *Throttle) begin() time.Time {
	now := t.clock.Now()
	if now.Sub(t.lastSweep) >= sweepEvery {
		t.pairs.sweep(now)
		t.users.sweep(now)
		t.addrs.sweep(now)
		t.known.sweep(now)
		t.lastSweep = now
	}
	return now
}

// addrKey is the address a rule counts against: an IPv6 address as its /64,
// anything else as given.
func addrKey(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	ip = ip.Unmap()
	if ip.Is4() {
		return ip.String()
	}
	p, err := ip.WithZone("").Prefix(64)
	if err != nil {
		return ip.String()
	}
	return p.String()
}
