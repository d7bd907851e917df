package main

// Backoff spaces reconnection attempts: exponential with full jitter, so that
// every terminal of a shop whose network came back does not knock at the
// same instant (the delay is uniform in [0, min(Cap, Base*2^attempt))).
type Backoff struct {
	Base, Cap int64          // milliseconds
	Rand      func() float64 // uniform in [0, 1): Math.random in the browser
	attempt   uint
}

// Next returns the delay before the next attempt and moves to the one after.
func (b *Backoff) Next() int64 {
	ceiling := b.Cap
	if b.attempt < 30 && b.Base<<b.attempt < b.Cap {
		ceiling = b.Base << b.attempt
	}
	b.attempt++
	r := b.Rand()
	if r < 0 || r >= 1 {
		r = 0
	}
	return int64(r * float64(ceiling))
}

// Reset starts over after a connection has proved good.
func (b *Backoff) Reset() { b.attempt = 0 }
