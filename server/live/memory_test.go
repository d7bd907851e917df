package live_test

import (
	"context"
	"testing"
	"time"

	"idleguard/server/clock"
	"idleguard/server/internal/livetest"
	"idleguard/server/live"
)

func TestMemoryContract(t *testing.T) {
	livetest.Contract(t, func(t *testing.T) livetest.Join {
		net := live.NewMemory(nil)
		return func(id string) live.Layer {
			l := net.Node(id)
			t.Cleanup(func() { _ = l.Close() })
			return l
		}
	})
}

// TestMemoryIdleOnItsClock: the network's clock is the only time base:
// Idle moves with it, exactly, and with nothing else.
func TestMemoryIdleOnItsClock(t *testing.T) {
	ctx := context.Background()
	fake := clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	net := live.NewMemory(fake)
	a, b := net.Node("a"), net.Node("b")
	if err := a.Record(ctx, []live.Activity{{Domain: "acme", SessionID: "s1", Ago: 7 * time.Second}}); err != nil {
		t.Fatal(err)
	}
	for _, step := range []time.Duration{0, time.Microsecond, 3 * time.Second, time.Hour} {
		fake.Advance(step)
		if _, _, err := a.Idle(ctx, "acme", "s1"); err != nil {
			t.Fatal(err)
		}
	}
	want := 7*time.Second + time.Microsecond + 3*time.Second + time.Hour
	if d, ok, err := b.Idle(ctx, "acme", "s1"); err != nil || !ok || d != want {
		t.Fatalf("Idle = %v, %v, %v; want %v, true, nil", d, ok, err, want)
	}
	// Input reported now, 2 s old, is 2 s old on the clock.
	if err := b.Record(ctx, []live.Activity{{Domain: "acme", SessionID: "s1", Ago: 2 * time.Second}}); err != nil {
		t.Fatal(err)
	}
	fake.Advance(500 * time.Millisecond)
	if d, _, _ := a.Idle(ctx, "acme", "s1"); d != 2500*time.Millisecond {
		t.Fatalf("Idle = %v, want 2.5s", d)
	}
}
