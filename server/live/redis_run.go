package live

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Reconnect backoff of a subscription: doubling from the first to the
// last, so a restarted Redis is heard from again within about a second.
const (
	backoffFirst = 50 * time.Millisecond
	backoffLast  = time.Second
)

// event is what a subscription tells Run's goroutine.
type event struct {
	sub    int  // the subscription
	up     bool // it now listens on all its channels
	down   bool // it lost its connection
	signal Signal
}

// Run listens with one subscription per channel on a Cluster (a sharded
// subscription lives on the shard of its channel's slot) or one for all
// channels elsewhere. Each subscription is a goroutine that Run owns; they
// hand what they hear to Run's own goroutine, which calls deliver and
// resynced, so that deliver never runs twice at once and each channel's
// order is kept.
func (r *Redis) Run(ctx context.Context, deliver func(Signal), resynced func()) error {
	r.mu.Lock()
	switch {
	case r.closed():
		r.mu.Unlock()
		return ErrClosed
	case r.running:
		r.mu.Unlock()
		return errRunning
	}
	r.running = true
	r.runs.Add(1)
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.running = false
		r.mu.Unlock()
		r.runs.Done()
	}()

	var groups [][]string
	if r.cluster {
		for _, name := range channelNames {
			groups = append(groups, []string{name})
		}
	} else {
		groups = [][]string{channelNames[:]}
	}

	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel, below: every subscription has returned
	defer cancel()
	wg.Go(func() {
		select {
		case <-r.stop:
			cancel()
		case <-runCtx.Done():
		}
	})
	events := make(chan event)
	for i, channels := range groups {
		wg.Go(func() { r.subscribe(runCtx, i, channels, events) })
	}

	// down holds the subscriptions not listening; resynced is called each
	// time it empties.
	down := make(map[int]bool, len(groups))
	for i := range groups {
		down[i] = true
	}
	for {
		select {
		case <-runCtx.Done():
			if r.closed() && ctx.Err() == nil {
				return ErrClosed
			}
			return nil
		case ev := <-events:
			switch {
			case ev.up:
				delete(down, ev.sub)
				if len(down) == 0 {
					resynced()
				}
			case ev.down:
				down[ev.sub] = true
			default:
				deliver(ev.signal)
			}
		}
	}
}

// subscribe keeps one subscription to channels until ctx is done, making
// it again after each loss, and reports what it hears on events.
func (r *Redis) subscribe(ctx context.Context, sub int, channels []string, events chan<- event) {
	send := func(ev event) bool {
		select {
		case events <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	wait := backoffFirst
	for ctx.Err() == nil {
		heard, err := r.listen(ctx, sub, channels, send)
		if ctx.Err() != nil {
			return
		}
		if heard {
			wait = backoffFirst
			r.log.Warn("live: redis subscription lost; reconnecting", "node", r.node, "channels", len(channels), "err", err)
			if !send(event{sub: sub, down: true}) {
				return
			}
		} else {
			r.log.Debug("live: redis subscription failed", "node", r.node, "err", err, "retry_in", wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, backoffLast)
	}
}

// listen makes one subscription and reads it until it fails or ctx is
// done. It reports whether the subscription was confirmed (and reported
// up), so that the caller reports it down.
//
// go-redis reads a subscription with no deadline, and a read does not see
// ctx, so a watchdog goroutine ends the subscription by closing it: when
// ctx is done, or when a ping it sent to a quiet connection is not
// answered within another interval (a Redis that is stopped, or cut off,
// leaves the connection open and silent).
func (r *Redis) listen(ctx context.Context, sub int, channels []string, send func(event) bool) (confirmed bool, err error) {
	ps := r.client.SSubscribe(ctx, channels...)
	var (
		heard   atomic.Int64 // replies read: the watchdog's sign of life
		handing atomic.Bool  // waiting on Run's goroutine: not a dead connection
		wg      sync.WaitGroup
	)
	done := make(chan struct{})
	defer func() {
		close(done)
		_ = ps.Close()
		wg.Wait()
	}()
	wg.Go(func() {
		tick := time.NewTicker(r.health)
		defer tick.Stop()
		last, pinged := heard.Load(), false
		for {
			select {
			case <-ctx.Done():
				_ = ps.Close()
				return
			case <-done:
				return
			case <-tick.C:
			}
			now := heard.Load()
			switch {
			case now != last || handing.Load():
				last, pinged = now, false
			case !pinged:
				pinged = true
				_ = ps.Ping(ctx) // a write: fails or not, the answer is what counts
			default:
				_ = ps.Close() // no answer for a whole interval
				return
			}
		}
	})

	pending := len(channels)
	bad := 0
	for {
		msg, err := ps.Receive(ctx)
		if err != nil {
			return confirmed, err
		}
		heard.Add(1)
		switch msg := msg.(type) {
		case *redis.Subscription:
			if msg.Kind == "sunsubscribe" {
				// The server dropped us: the channel's slot moved to
				// another shard. Subscribe again, there.
				return confirmed, errors.New("live: redis ended the subscription (slot moved?)")
			}
			if msg.Kind != "ssubscribe" || confirmed {
				continue
			}
			if pending--; pending == 0 {
				confirmed = true
				handing.Store(true)
				ok := send(event{sub: sub, up: true})
				handing.Store(false)
				if !ok {
					return confirmed, ctx.Err()
				}
			}
		case *redis.Message:
			s, err := DecodeSignal([]byte(msg.Payload))
			if err != nil {
				if bad++; bad == 1 {
					r.log.Warn("live: a bad signal on a redis channel (later ones on this connection are not logged)", "node", r.node, "channel", msg.Channel, "err", err)
				}
				continue
			}
			if s.Node == r.node {
				continue
			}
			handing.Store(true)
			ok := send(event{sub: sub, signal: s})
			handing.Store(false)
			if !ok {
				return confirmed, ctx.Err()
			}
		case *redis.Pong:
		default:
			return confirmed, errors.New("live: an unexpected reply on a subscription")
		}
	}
}
