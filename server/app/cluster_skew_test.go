package app

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"idleguard/server/internal/apptest"
	"idleguard/server/protocol"
)

// Clock skew (issue 10, point 4): "a node whose clock is off by 5 s in
// either direction never signs anyone out early and never keeps a session
// more than 1 s past its deadline".
//
// The program cannot be given a clock: RunReady wires clock.Real, and the
// nodes of a test share the machine's clock (subprocesses too: Go reads the
// time through the vDSO, so no LD_PRELOAD faketime reaches it). The skew
// itself, 5 s each way, is shown with injected fake clocks at the service
// level, in server/sessions (TestClusterClockSkew,
// TestClusterClockSkewAcrossARestart). What a node's wall clock reaches
// outside itself is the wall-clock times it writes to the store: a
// session's last activity, written behind every second. Here such a node's
// writes are made in the real store by hand, 5 s ahead and 5 s behind the
// truth, and the other nodes, loading the session at start or adopting it
// for a new tab, must keep its true deadline: they read the live layer's
// record, kept on Redis's clock in durations.

// skewedSession is a session whose stored last activity is off by skew.
type skewedSession struct {
	user string
	skew time.Duration
	tok  string
	sid  string
	last time.Time // when its last input was sent
}

// skewTheStore signs each session in on a, types once in a tab on a, waits
// for a's write-behind to store the input and then moves the stored time
// by the session's skew, as a node off by that much would have written it.
func skewTheStore(t *testing.T, a *apptest.Server, dbURL string, sessions []*skewedSession) {
	t.Helper()
	ctx := context.Background()
	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	for _, s := range sessions {
		s.tok, _ = apptest.MustLogin(t, a.Base, s.user, "demo")
		s.sid, _ = claimsOf(t, s.tok)["sid"].(string)
		tb, _ := openTab(t, a, s.tok, s.user+" on a")
		time.Sleep(300 * time.Millisecond) // a later input than the sign-in's
		s.last = time.Now()
		tb.send(t, "activity ago=0")
	}
	for _, s := range sessions {
		deadline := time.Now().Add(apptest.WaitLimit)
		for {
			var ms int64
			if err := db.QueryRow(ctx, `SELECT last_activity FROM sessions WHERE id = $1`, s.sid).Scan(&ms); err != nil {
				t.Fatal(err)
			}
			if ms >= s.last.UnixMilli() {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("session of %s: stored last activity %v, want the input of %v written behind", s.user, time.UnixMilli(ms), s.last)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if _, err := db.Exec(ctx, `UPDATE sessions SET last_activity = last_activity + $2 WHERE id = $1`, s.sid, s.skew.Milliseconds()); err != nil {
			t.Fatal(err)
		}
	}
}

// wantTrueDeadline opens a tab of each session on each of nodes: its first
// state must count down from the true deadline (within 1 s, where the
// skew would be 5 s), and its sign-out must come never before the true
// deadline and not more than 1 s (plus 1.5 s of slack) after it.
func wantTrueDeadline(t *testing.T, exp time.Duration, sessions []*skewedSession, nodes map[string]*apptest.Server) {
	t.Helper()
	var tabs []*tab
	var owners []*skewedSession
	for _, s := range sessions {
		for name, n := range nodes {
			dial := time.Now()
			what := s.user + " (" + s.skew.String() + " in the store) on " + name
			if code := apptest.DialStatus(t, n, apptest.Bearer(s.tok)); code != http.StatusSwitchingProtocols {
				t.Errorf("tab %s: upgrade refused with %d %v before the true deadline, want the session alive", what, code, time.Until(s.last.Add(exp)).Round(time.Millisecond))
				continue
			}
			tb, first := openTab(t, n, s.tok, what)
			want := exp - dial.Sub(s.last)
			if got := time.Duration(first.RemainingMs) * time.Millisecond; got > want+time.Second || got < want-time.Second {
				t.Errorf("tab %s: remaining %v, want about %v (the true deadline)", tb.name, got, want.Round(time.Millisecond))
			}
			tabs, owners = append(tabs, tb), append(owners, s)
		}
	}
	for i, tb := range tabs {
		deadline := owners[i].last.Add(exp)
		at := tb.signedOut(t, protocol.ReasonIdle, deadline)
		if late := at.Sub(deadline); late > 2500*time.Millisecond {
			t.Errorf("tab %s: signed out %v after the true deadline, want within 1 s (+1.5 s of slack)", tb.name, late.Round(time.Millisecond))
		}
	}
}

// Last activity stored 5 s ahead (cashier) and 5 s behind (viewer) by a
// skewed node: node c, restarted, loads both from the store, and node b
// adopts both for a new tab; each keeps the true deadline, on the layer's
// record.
func TestClusterClockSkewInTheStore(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	const exp = 6 * time.Second
	setClusterExpiration(t, c.Nodes, 6)
	sessions := []*skewedSession{{user: "cashier", skew: 5 * time.Second}, {user: "viewer", skew: -5 * time.Second}}
	skewTheStore(t, c.Nodes[0], c.Postgres, sessions)
	c.Nodes[2].Restart(t)
	wantTrueDeadline(t, exp, sessions, map[string]*apptest.Server{"b (adopted)": c.Nodes[1], "c (restarted)": c.Nodes[2]})
}

// The same after Redis restarted and lost its records: the nodes that
// load or adopt a session then fall back on the store's last activity,
// the skewed node's wall clock.
//
// It fails today for the time stored 5 s behind: node b adopts it and
// node c loads it 5 s idler than it is, and both sign it out 5 s early
// (sessions.adopt and sessions.onLayerClock keep the store's time when the
// layer does not hold the session). Stored ahead, the time is clamped to
// the moment of loading, so the session may outlive its deadline by up to
// 5 s.
func TestClusterClockSkewInTheStoreRedisLost(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	const exp = 6 * time.Second
	setClusterExpiration(t, c.Nodes, 6)
	sessions := []*skewedSession{{user: "cashier", skew: 5 * time.Second}, {user: "viewer", skew: -5 * time.Second}}
	skewTheStore(t, c.Nodes[0], c.Postgres, sessions)
	c.Redis.Restart()
	c.WaitSubscribed(t, len(c.Nodes))
	c.Nodes[2].Restart(t)
	wantTrueDeadline(t, exp, sessions, map[string]*apptest.Server{"b (adopted)": c.Nodes[1], "c (restarted)": c.Nodes[2]})
}
