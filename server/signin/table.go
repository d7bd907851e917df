package signin

import (
	"math"
	"time"
)

// failures is what one pair, user or address has against it.
type failures struct {
	score    float64   // failures counted, before forgiveness
	until    time.Time // no attempt before this; forgiveness runs from here
	inflight int       // attempts Check allowed that are not yet resolved
	lapse    time.Time // when the open reservations stop counting
}

// evictSample is how many entries a full table looks at to pick one to drop.
const evictSample = 8

// table keeps failures per key, with one free allowance.
type table[K comparable] struct {
	cfg  ThrottleConfig
	free int
	m    map[K]*failures
}

func newTable[K comparable](cfg ThrottleConfig, free int) *table[K] {
	return &table[K]{cfg: cfg, free: free, m: make(map[K]*failures)}
}

// score is f's failures after forgiveness, at now. Forgiveness starts
// when the backoff ends, so an attacker who retries as soon as allowed
// climbs to MaxDelay and stays there.
func (t *table[K]) score(f *failures, now time.Time) float64 {
	quiet := max(0, now.Sub(f.until))
	return max(0, f.score-float64(quiet)/float64(t.cfg.Forgive))
}

// count is score rounded up: a failure partly forgiven still counts whole.
// The epsilon keeps float error from turning 5 into 6.
func count(score float64) int { return int(math.Ceil(score - 1e-9)) }

// inflight is f's open reservations at now.
func (t *table[K]) inflight(f *failures, now time.Time) int {
	if !now.Before(f.lapse) {
		f.inflight = 0
	}
	return f.inflight
}

// delay is the backoff after n failures: none within the free allowance,
// then FirstDelay doubling up to MaxDelay.
func (t *table[K]) delay(n int) time.Duration {
	over := n - t.free
	if over <= 0 {
		return 0
	}
	d := t.cfg.FirstDelay
	for i := 1; i < over && d < t.cfg.MaxDelay; i++ {
		d *= 2
	}
	return min(d, t.cfg.MaxDelay)
}

// wait is how long an attempt against k must wait at now. Open
// reservations count as failures made now.
func (t *table[K]) wait(k K, now time.Time) time.Duration {
	f := t.m[k]
	if f == nil {
		return 0
	}
	w := f.until.Sub(now)
	if n := t.inflight(f, now); n > 0 {
		w = max(w, t.delay(count(t.score(f, now))+n))
	}
	return max(w, 0)
}

func (t *table[K]) reserve(k K, now time.Time) {
	f := t.entry(k, now)
	t.inflight(f, now)
	f.inflight++
	f.lapse = now.Add(reservationLapse)
}

func (t *table[K]) fail(k K, now time.Time) {
	f := t.entry(k, now)
	if t.inflight(f, now) > 0 {
		f.inflight--
	}
	f.score = t.score(f, now) + 1
	f.until = now.Add(t.delay(count(f.score)))
}

// release drops one reservation without counting a failure.
func (t *table[K]) release(k K, now time.Time) {
	f := t.m[k]
	if f == nil {
		return
	}
	if t.inflight(f, now) > 0 {
		f.inflight--
	}
	if t.dead(f, now) {
		delete(t.m, k)
	}
}

func (t *table[K]) forget(k K) { delete(t.m, k) }

// dead reports whether f no longer changes any answer.
func (t *table[K]) dead(f *failures, now time.Time) bool {
	return t.score(f, now) == 0 && !now.Before(f.until) && t.inflight(f, now) == 0
}

func (t *table[K]) sweep(now time.Time) {
	for k, f := range t.m {
		if t.dead(f, now) {
			delete(t.m, k)
		}
	}
}

// entry returns k's failures, making room for a new entry when the table
// is full by dropping the sampled entry with the lowest score: random
// names from a flood score lowest, the name under attack highest.
func (t *table[K]) entry(k K, now time.Time) *failures {
	if f := t.m[k]; f != nil {
		return f
	}
	if len(t.m) >= t.cfg.MaxEntries {
		var victim K
		low, seen := math.Inf(1), 0
		for vk, f := range t.m { // map order is random: a cheap sample
			if s := t.score(f, now); s < low {
				victim, low = vk, s
			}
			if seen++; seen == evictSample {
				break
			}
		}
		delete(t.m, victim)
	}
	f := &failures{}
	t.m[k] = f
	return f
}

// knownPairs remembers, per user, the addresses they last signed in from.
type knownPairs struct {
	cfg ThrottleConfig
	m   map[string][]knownAddr
}

type knownAddr struct {
	addr string
	at   time.Time // the last success
}

func newKnownPairs(cfg ThrottleConfig) *knownPairs {
	return &knownPairs{cfg: cfg, m: make(map[string][]knownAddr)}
}

func (p *knownPairs) has(k pairKey, now time.Time) bool {
	for _, a := range p.m[k.user] {
		if a.addr == k.addr {
			return now.Sub(a.at) < p.cfg.KnownFor
		}
	}
	return false
}

func (p *knownPairs) add(k pairKey, now time.Time) {
	addrs, ok := p.m[k.user]
	for i := range addrs {
		if addrs[i].addr == k.addr {
			addrs[i].at = now
			return
		}
	}
	if !ok && len(p.m) >= p.cfg.MaxEntries {
		p.evictUser()
	}
	// One account signing in from many addresses pushes out only its own
	// oldest, never another user's.
	if len(addrs) >= p.cfg.KnownPerUser {
		oldest := 0
		for i := range addrs {
			if addrs[i].at.Before(addrs[oldest].at) {
				oldest = i
			}
		}
		addrs = append(addrs[:oldest], addrs[oldest+1:]...)
	}
	p.m[k.user] = append(addrs, knownAddr{k.addr, now})
}

// evictUser drops the sampled user whose latest success is oldest.
func (p *knownPairs) evictUser() {
	var victim string
	var oldest time.Time
	seen := 0
	for u, addrs := range p.m {
		latest := addrs[0].at
		for _, a := range addrs[1:] {
			if a.at.After(latest) {
				latest = a.at
			}
		}
		if seen == 0 || latest.Before(oldest) {
			victim, oldest = u, latest
		}
		if seen++; seen == evictSample {
			break
		}
	}
	delete(p.m, victim)
}

func (p *knownPairs) sweep(now time.Time) {
	for u, addrs := range p.m {
		kept := addrs[:0]
		for _, a := range addrs {
			if now.Sub(a.at) < p.cfg.KnownFor {
				kept = append(kept, a)
			}
		}
		if len(kept) == 0 {
			delete(p.m, u)
		} else {
			p.m[u] = kept
		}
	}
}
