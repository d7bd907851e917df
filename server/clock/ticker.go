package clock

import (
	"sync"
	"time"
)

// Ticker delivers the time on C every d, on any Clock: it is built on
// AfterFunc, so a Fake clock drives it from Advance and loops that run on
// a ticker are tested without sleeping. Like time.Ticker it drops the
// ticks a slow receiver misses.
type Ticker struct {
	C <-chan time.Time

	c     chan time.Time
	clock Clock
	d     time.Duration

	mu      sync.Mutex
	timer   Timer
	stopped bool
}

// NewTicker starts a ticker on c; d must be positive.
func NewTicker(c Clock, d time.Duration) *Ticker {
	if d <= 0 {
		panic("clock.NewTicker: non-positive interval")
	}
	ch := make(chan time.Time, 1)
	t := &Ticker{C: ch, c: ch, clock: c, d: d}
	t.mu.Lock()
	t.timer = c.AfterFunc(d, t.tick)
	t.mu.Unlock()
	return t
}

func (t *Ticker) tick() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	select {
	case t.c <- t.clock.Now():
	default: // the receiver is behind: drop this tick
	}
	t.timer = t.clock.AfterFunc(t.d, t.tick)
}

// Stop stops the ticker; no tick is sent after it returns.
func (t *Ticker) Stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	t.timer.Stop()
}
