package redistest

import (
	"context"
	"testing"
	"time"
)

func TestParseCommandStats(t *testing.T) {
	info := "# Commandstats\r\ncmdstat_evalsha:calls=100,usec=5,usec_per_call=0.05,rejected_calls=0,failed_calls=0\r\ncmdstat_SPUBLISH:calls=16,usec=1\r\nnot_a_stat:calls=3\r\n"
	got := ParseCommandStats(info)
	if len(got) != 2 || got["evalsha"] != 100 || got["spublish"] != 16 {
		t.Fatalf("ParseCommandStats = %v, want evalsha 100 and spublish 16", got)
	}
}

// TestServerLifecycle: data is lost on restart, the port stays, a frozen
// server answers nothing until thawed, and commandstats count.
func TestServerLifecycle(t *testing.T) {
	s := Start(t)
	c := s.Client()
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n := s.CommandCalls()["set"]; n != 1 {
		t.Fatalf("commandstats count %d SETs, want 1", n)
	}
	port := s.Port
	s.Restart()
	if s.Port != port {
		t.Fatalf("restarted on port %d, want %d", s.Port, port)
	}
	if err := c.Get(ctx, "k").Err(); err == nil {
		t.Fatal("the key survived a restart; want it lost (no persistence)")
	}

	s.Freeze()
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err := c.Ping(short).Err()
	cancel()
	if err == nil {
		t.Fatal("a frozen server answered PING")
	}
	s.Thaw()
	if err := s.Client().Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after thaw: %v", err)
	}

	s.Kill()
	s.StartAgain()
	if err := s.Client().Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after StartAgain: %v", err)
	}
}
