package clock_test

import (
	"testing"
	"time"

	"idleguard/server/clock"
)

func TestTickerOnFakeClock(t *testing.T) {
	c := clock.NewFake(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	tk := clock.NewTicker(c, time.Second)
	start := c.Now()
	c.Advance(999 * time.Millisecond)
	select {
	case <-tk.C:
		t.Fatal("tick before the interval")
	default:
	}
	c.Advance(time.Millisecond)
	if got := <-tk.C; !got.Equal(start.Add(time.Second)) {
		t.Fatalf("tick at %v, want %v", got, start.Add(time.Second))
	}
	// A receiver that misses ticks gets one, not a backlog.
	c.Advance(5 * time.Second)
	<-tk.C
	select {
	case <-tk.C:
		t.Fatal("a backlog of ticks, want the missed ones dropped")
	default:
	}
	tk.Stop()
	c.Advance(time.Hour)
	select {
	case <-tk.C:
		t.Fatal("tick after Stop")
	default:
	}
	if c.Pending() != 0 {
		t.Fatalf("timers pending after Stop: %d", c.Pending())
	}
}
