package seclog

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"idleguard/server/clock"
)

// capture is a Log on a fake clock whose lines land in a buffer.
type capture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

func (c *capture) lines(tb testing.TB) []map[string]any {
	tb.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(c.buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			tb.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	c.buf.Reset()
	return out
}

func newTestLog(tb testing.TB) (*Log, *capture, *clock.Fake) {
	tb.Helper()
	out := &capture{}
	c := clock.NewFake(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))
	return New(slog.New(slog.NewJSONHandler(out, nil)), c), out, c
}

func TestEventLine(t *testing.T) {
	l, out, _ := newTestLog(t)
	l.Event(LoginFailed, slog.String("user", "alice"), slog.String("addr", "10.0.0.7"), slog.String("password", "hunter2"))
	lines := out.lines(t)
	if len(lines) != 1 {
		t.Fatalf("got %d lines, want 1", len(lines))
	}
	want := map[string]any{"level": "WARN", "msg": "security", "kind": "login_failed", "user": "alice", "addr": "10.0.0.7", "password": "[redacted]"}
	for k, v := range want {
		if lines[0][k] != v {
			t.Errorf("%s = %v, want %v", k, lines[0][k], v)
		}
	}
	if _, ok := lines[0]["suppressed"]; ok {
		t.Error("suppressed present on a line with nothing suppressed")
	}
}

func TestFloodIsBoundedAndCountedExactly(t *testing.T) {
	l, out, c := newTestLog(t)
	const flood = 10_000
	for range flood {
		l.Event(OriginRefused, slog.String("origin", "https://evil.example"))
	}
	l.Event(TokenInvalid) // another kind has its own allowance
	lines := out.lines(t)
	if len(lines) != Burst+1 {
		t.Fatalf("lines during the flood = %d, want %d", len(lines), Burst+1)
	}
	if got := l.Counts(); got["origin_refused"] != flood || got["token_invalid"] != 1 || got["login_failed"] != 0 {
		t.Fatalf("Counts = %v, want origin_refused %d, token_invalid 1, login_failed 0", got, flood)
	}
	if _, ok := l.Counts()["csrf_refused"]; !ok {
		t.Error("Counts lacks csrf_refused: every kind should be reported, seen or not")
	}

	// The next line logged says how many were not.
	c.Advance(Every)
	l.Event(OriginRefused)
	lines = out.lines(t)
	if len(lines) != 1 || lines[0]["suppressed"] != float64(flood-Burst) {
		t.Fatalf("line after the flood = %v, want suppressed=%d", lines, flood-Burst)
	}
	l.Event(OriginRefused) // over the rate again: suppressed, not logged
	if lines := out.lines(t); len(lines) != 0 {
		t.Fatalf("got %d lines, want 0", len(lines))
	}
}

func TestSummaryReportsSuppressed(t *testing.T) {
	l, out, _ := newTestLog(t)
	for range Burst + 5 {
		l.Event(CSRFRefused)
	}
	for range Burst + 2 {
		l.Event(FrameRefused)
	}
	out.lines(t)
	l.Summary()
	lines := out.lines(t)
	if len(lines) != 2 {
		t.Fatalf("summary lines = %v, want 2", lines)
	}
	for i, want := range []struct {
		kind string
		n    float64
	}{{"csrf_refused", 5}, {"frame_refused", 2}} {
		if lines[i]["kind"] != want.kind || lines[i]["suppressed"] != want.n {
			t.Errorf("summary line %d = %v, want kind=%s suppressed=%v", i, lines[i], want.kind, want.n)
		}
	}
	l.Summary() // nothing new suppressed: silent
	if lines := out.lines(t); len(lines) != 0 {
		t.Fatalf("second summary = %v, want nothing", lines)
	}
}

func TestRateRefills(t *testing.T) {
	l, out, c := newTestLog(t)
	for range Burst {
		l.Event(HashBusy)
	}
	out.lines(t)
	logged := 0
	for range 60 {
		c.Advance(Every)
		for range 100 {
			l.Event(HashBusy)
		}
		logged += len(out.lines(t))
	}
	if logged != 60 {
		t.Fatalf("lines over 60 s of flood = %d, want 60 (one a second)", logged)
	}
	if got := l.Counts()["hash_busy"]; got != Burst+6000 {
		t.Fatalf("count = %d, want %d", got, Burst+6000)
	}
}

func TestNilLog(t *testing.T) {
	var l *Log
	l.Event(LoginFailed, slog.String("user", "alice"))
	l.Summary()
	if got := l.Counts(); len(got) != 0 {
		t.Fatalf("nil Log Counts = %v, want empty", got)
	}
}

func TestConcurrentEvents(t *testing.T) {
	l, _, _ := newTestLog(t)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				l.Event(CookieConflict)
				l.Counts()
			}
		})
	}
	wg.Wait()
	if got := l.Counts()["cookie_conflict"]; got != 8000 {
		t.Fatalf("count = %d, want 8000", got)
	}
}
