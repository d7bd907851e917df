package signin

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"
)

func mustEnter(tb testing.TB, g *HashGate, known bool) func() {
	tb.Helper()
	leave, err := g.Enter(context.Background(), known)
	if err != nil {
		tb.Fatalf("Enter(known=%v) = %v, want a slot", known, err)
	}
	return leave
}

// expired is a context that is already done, so a full gate answers at once.
func expired() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func TestKnownGetsInPastASpray(t *testing.T) {
	for _, slots := range []int{2, 3, 8} {
		g := NewHashGate(slots)
		var leaves []func()
		for range slots - 1 {
			leaves = append(leaves, mustEnter(t, g, false))
		}
		if _, err := g.Enter(expired(), false); !errors.Is(err, ErrBusy) {
			t.Fatalf("slots=%d: unknown attempt past slots-1: err %v, want ErrBusy", slots, err)
		}
		leaves = append(leaves, mustEnter(t, g, true))
		if got := g.InUse(); got != slots {
			t.Fatalf("slots=%d: InUse = %d, want %d", slots, got, slots)
		}
		if _, err := g.Enter(expired(), true); !errors.Is(err, ErrBusy) {
			t.Fatalf("slots=%d: known attempt on a full gate: err %v, want ErrBusy", slots, err)
		}
		for _, leave := range leaves {
			leave()
			leave() // a second call frees nothing more
		}
		if got := g.InUse(); got != 0 {
			t.Fatalf("slots=%d: InUse after leaving = %d, want 0", slots, got)
		}
	}
}

func TestSlotsAtLeastTwo(t *testing.T) {
	g := NewHashGate(1)
	mustEnter(t, g, false)
	mustEnter(t, g, true)
}

func TestWaitEndsWithContext(t *testing.T) {
	g := NewHashGate(2)
	leave := mustEnter(t, g, false)
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	_, err := g.Enter(ctx, false)
	if !errors.Is(err, ErrBusy) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Enter past its deadline = %v, want ErrBusy and DeadlineExceeded", err)
	}
	// The timed-out waiter held nothing: once the slot is free, another
	// unknown attempt gets it.
	leave()
	mustEnter(t, g, false)
}

func TestWaiterGetsTheFreedSlot(t *testing.T) {
	g := NewHashGate(2)
	leave := mustEnter(t, g, false)
	got := make(chan error)
	go func() {
		l, err := g.Enter(context.Background(), false)
		if err == nil {
			l()
		}
		got <- err
	}()
	leave()
	if err := <-got; err != nil {
		t.Fatalf("waiter after leave: %v, want a slot", err)
	}
}

func TestNoGoroutineLeaks(t *testing.T) {
	g := NewHashGate(2)
	before := runtime.NumGoroutine()
	hold := mustEnter(t, g, true)
	hold2 := mustEnter(t, g, false)
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	for i := range 100 {
		wg.Go(func() {
			if _, err := g.Enter(ctx, i%2 == 0); err == nil {
				t.Error("Enter on a full gate succeeded")
			}
		})
	}
	cancel()
	wg.Wait()
	hold()
	hold2()
	for _, known := range []bool{true, false} {
		if _, err := g.Enter(expired(), known); !errors.Is(err, ErrBusy) {
			t.Fatalf("Enter with a done ctx = %v, want ErrBusy", err)
		}
	}
	if got := g.InUse(); got != 0 {
		t.Fatalf("InUse after every waiter gave up = %d, want 0", got)
	}
	// A goroutine that has called wg.Done may not have exited yet.
	after := runtime.NumGoroutine()
	for deadline := time.Now().Add(time.Second); after > before && time.Now().Before(deadline); after = runtime.NumGoroutine() {
		time.Sleep(time.Millisecond)
	}
	if after > before {
		t.Fatalf("goroutines: %d before, %d after", before, after)
	}
}

func TestGateUnderLoad(t *testing.T) {
	const slots = 3
	g := NewHashGate(slots)
	var mu sync.Mutex
	running, unknownRunning := 0, 0
	var wg sync.WaitGroup
	for i := range 64 {
		known := i%4 == 0
		wg.Go(func() {
			for range 50 {
				leave, err := g.Enter(context.Background(), known)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				running++
				if !known {
					unknownRunning++
				}
				if running > slots || unknownRunning > slots-1 {
					t.Errorf("running %d (unknown %d), want at most %d (%d)", running, unknownRunning, slots, slots-1)
				}
				mu.Unlock()
				runtime.Gosched()
				mu.Lock()
				running--
				if !known {
					unknownRunning--
				}
				mu.Unlock()
				leave()
			}
		})
	}
	wg.Wait()
}
