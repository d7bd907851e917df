package signin

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// ErrBusy is Enter's error when no slot came free in time; callers answer
// 429 "busy, try again".
var ErrBusy = errors.New("signin: password checks busy")

// HashGate bounds how many password hashes run at once, so a spray of
// attempts cannot take every CPU, and keeps one slot that only known
// (user, address) pairs may use, so such a spray cannot starve a cashier's
// sign-in at their own till. Safe for concurrent use.
type HashGate struct {
	all     chan struct{} // one token per running hash
	unknown chan struct{} // slots-1 tokens, held as well by attempts not known
}

// NewHashGate returns a gate with slots slots (at least 2: one of them is
// reserved for known pairs).
func NewHashGate(slots int) *HashGate {
	slots = max(slots, 2)
	return &HashGate{all: make(chan struct{}, slots), unknown: make(chan struct{}, slots-1)}
}

// Enter waits for a slot until ctx is done, then returns leave, which
// frees it (calling it again does nothing). known says the attempt's pair
// is Throttle.Known. On error no slot is held and the error wraps ErrBusy
// and ctx's error.
func (g *HashGate) Enter(ctx context.Context, known bool) (leave func(), err error) {
	if ctx.Err() != nil {
		return nil, busy(ctx)
	}
	if !known {
		select {
		case g.unknown <- struct{}{}:
		case <-ctx.Done():
			return nil, busy(ctx)
		}
	}
	select {
	case g.all <- struct{}{}:
	case <-ctx.Done():
		if !known {
			<-g.unknown
		}
		return nil, busy(ctx)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			<-g.all
			if !known {
				<-g.unknown
			}
		})
	}, nil
}

// InUse is how many hashes hold a slot now, for /debug/stats.
func (g *HashGate) InUse() int { return len(g.all) }

func busy(ctx context.Context) error { return fmt.Errorf("%w: %w", ErrBusy, ctx.Err()) }
