package api

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimit is a token bucket: Burst attempts at once, refilled at
// PerMinute a minute.
type RateLimit struct {
	PerMinute float64
	Burst     int
}

func (l RateLimit) orDefault(perMinute float64, burst int) RateLimit {
	if l.PerMinute <= 0 {
		l.PerMinute = perMinute
	}
	if l.Burst <= 0 {
		l.Burst = burst
	}
	return l
}

// limiter keeps one bucket per key (a username or an address). Buckets
// unused for a while are swept so that guessing names cannot grow it
// without bound.
type limiter struct {
	limit RateLimit

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

const sweepAfter = 10 * time.Minute

func newLimiter(l RateLimit) *limiter {
	return &limiter{limit: l, buckets: make(map[string]*bucket)}
}

// Allow takes one attempt from key's bucket.
func (l *limiter) Allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) > sweepAfter {
		for k, b := range l.buckets {
			if now.Sub(b.seen) > sweepAfter {
				delete(l.buckets, k)
			}
		}
		l.lastSweep = now
	}
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(rate.Limit(l.limit.PerMinute/60), l.limit.Burst)}
		l.buckets[key] = b
	}
	b.seen = now
	return b.lim.AllowN(now, 1)
}
