package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"testing"
	"time"

	"idleguard/server/app"
	"idleguard/server/internal/apptest"
	"idleguard/server/internal/redistest"
)

// One cashier's session on a cluster, as a browser lives it: two tabs,
// each on its own node, the nodes sharing one PostgreSQL and one Redis.

// clusterNode is one node of the test's cluster, with its debug listener,
// whose /debug/stats counts the sockets the node holds.
type clusterNode struct {
	*apptest.Server
	name  string
	stats string // the /debug/stats URL
}

// debugListener finds the debug listener's URL in a node's log.
var debugListener = regexp.MustCompile(`msg="debug listener" addr=(\S+)`)

// testCluster is one new PostgreSQL database and one redis-server, for
// nodes to share.
type testCluster struct{ postgres, redis string }

func newTestCluster(t *testing.T) testCluster {
	t.Helper()
	return testCluster{postgres: pg.Database(t), redis: redistest.Start(t).URL()}
}

// start starts node name of c, on its own port and -data directory, and
// waits until it answers /healthz.
func (c testCluster) start(t *testing.T, name string) clusterNode {
	t.Helper()
	s := apptest.Start(t, app.RunReady, "-postgres", c.postgres, "-redis", c.redis, "-node", name, "-debug-addr", "127.0.0.1:0")
	m := debugListener.FindStringSubmatch(s.Log.String())
	if m == nil {
		t.Fatalf("node %s: no debug listener in its log:\n%s", name, s.Log.String())
	}
	return clusterNode{Server: s, name: name, stats: m[1]}
}

// sockets is how many sockets n holds open.
func (n clusterNode) sockets(t *testing.T) int {
	t.Helper()
	resp, body := apptest.Request(t, "GET", n.stats, "", "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("node %s: GET /debug/stats: got %d %s, want 200", n.name, resp.StatusCode, body)
	}
	var st struct {
		Sockets int `json:"sockets"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("node %s: /debug/stats: %v in %s", n.name, err, body)
	}
	return st.Sockets
}

// waitNoSockets waits until n holds no socket.
func (n clusterNode) waitNoSockets(t *testing.T) {
	t.Helper()
	for end := time.Now().Add(apptest.WaitLimit); ; time.Sleep(e2ePoll) {
		s := n.sockets(t)
		if s == 0 {
			return
		}
		if time.Now().After(end) {
			t.Errorf("node %s holds %d sockets %v after the sign-out, want 0", n.name, s, apptest.WaitLimit)
			return
		}
	}
}

// host is the node's host:port.
func (n clusterNode) host(t *testing.T) string {
	t.Helper()
	u, err := url.Parse(n.Base)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// wantSocketOn checks that p's guard is connected to n: its socket URL
// names n's host, and n holds exactly one socket (the test opens one tab
// per node).
func (p *tab) wantSocketOn(n clusterNode) {
	p.t.Helper()
	u, err := url.Parse(eval[string](p, `__idleguard.config.socketURL`))
	if err != nil {
		p.t.Fatalf("%s: socket URL: %v", p.name, err)
	}
	if u.Host != n.host(p.t) {
		p.t.Errorf("%s: socket on %s, want node %s (%s)", p.name, u.Host, n.name, n.host(p.t))
	}
	if got := n.sockets(p.t); got != 1 {
		p.t.Errorf("node %s holds %d sockets, want 1 (%s's)", n.name, got, p.name)
	}
}

// wantTogether fails if the two landings were more than within apart
// wherever in their intervals they really were.
func wantTogether(t *testing.T, a, b *tab, la, lb landing, within time.Duration) {
	t.Helper()
	if la.at.from.IsZero() || lb.at.from.IsZero() {
		t.Logf("%s and %s: a landing with no earlier bound (%v, %v): not compared", a.name, b.name, la.at, lb.at)
		return
	}
	// The least the intervals allow between the two landings.
	apart := max(la.at.from.Sub(lb.at.to), lb.at.from.Sub(la.at.to), 0)
	if apart > within {
		t.Errorf("%s landed %v, %s %v: at least %v apart, want within %v", a.name, la.at, b.name, lb.at, apart.Round(time.Millisecond), within)
		return
	}
	t.Logf("%s and %s landed at most %v apart (%v, %v)", a.name, b.name,
		max(la.at.to.Sub(lb.at.from), lb.at.to.Sub(la.at.from)).Round(time.Millisecond), la.at, lb.at)
}

// Two tabs of one cashier on two nodes: the cashier signs in on node a in
// tab A, tab B opens the POS on node b; each guard's socket is on its own
// node. Typing in tab A alone keeps tab B on the POS, with no warning, for
// two Expiration Times: node b hears a's input only through Redis. When
// the typing stops, both tabs land on /login with the idle reason
// together, each from its own node, no earlier than the Expiration Time
// after the last key and within a second of it.
func TestE2EClusterTwoTabsTwoNodes(t *testing.T) {
	const (
		seconds  = 4 // the Expiration Time the test shortens to
		n        = seconds * time.Second
		together = 500 * time.Millisecond // how far apart the two landings may be
	)
	c := newTestCluster(t)
	na := c.start(t, "a")
	// The session starts under startExpiration and is shortened once both
	// guards are up (shortenExpiration says why). It is set before node b
	// starts, which reads it from the store: a change published in the
	// moment after a node answers /healthz, before its subscription to
	// Redis is up, is never applied on that node (its first subscription
	// does not re-read the settings), and tab B would keep 2 days.
	apptest.SetExpiration(t, na.Base, int(startExpiration/time.Second))
	nb := c.start(t, "b")
	nodes := []clusterNode{na, nb}
	b := newE2EBrowser(t)

	a := b.isolatedTab(t, "tab A (node a)")
	a.signIn(na.Base, "cashier", "demo")
	// A browser's cookies are per host, not per port (RFC 6265 8.5): the
	// host-only cookie node a set for 127.0.0.1 is sent to node b, on
	// another port of 127.0.0.1, too. So tab B, in tab A's browser
	// context, carries the same session to node b without any help.
	tabB := a.sibling(t, "tab B (node b)", false)
	tabB.navigate(nb.Base + "/pos")
	if got := tabB.path(); got != "/pos" {
		t.Fatalf("tab B: node b's /pos went to %q, want the POS: the cookie of node a did not reach node b, or node b refused it", got)
	}
	if ca, cb := a.domainCookie(na.host(t)), tabB.domainCookie(nb.host(t)); ca.Value != cb.Value {
		t.Fatalf("the cookies for node a and node b differ: want one cookie for both ports of 127.0.0.1")
	}
	a.waitGuard()
	tabB.waitGuard()
	tabB.waitTrue(`__idleguard.state.expiration_seconds === `+strconv.Itoa(int(startExpiration/time.Second)), "the starting Expiration Time from node b")
	a.wantSocketOn(na)
	tabB.wantSocketOn(nb)

	a.shortenExpiration(na.Base, seconds)
	tabB.waitTrue(`__idleguard.state.expiration_seconds === `+strconv.Itoa(seconds), "the new Expiration Time from node b")
	// Tab B's own countdown, from the last remaining time it heard, would
	// sign it out 2 s (the guard's grace for the server's word) after that
	// ran out, inside the two Expiration Times below: tab B stays only if
	// node b keeps telling it of a's input. It records what it hears.
	eval[bool](tabB, recordStates)
	stop := a.keepTyping(typingEvery)
	for end := time.Now().Add(2 * n); time.Now().Before(end); time.Sleep(e2ePoll) {
		for _, p := range []*tab{tabB, a} {
			if look := eval[pageLook](p, lookExpr); look.Path != "/pos" || look.Open {
				stop()
				href, _ := try[string](p, "location.href")
				t.Fatalf("%s while tab A types: got %+v (at %s), want /pos with no warning", p.name, look, href)
			}
		}
	}
	last, err := stop()
	if err != nil {
		t.Fatalf("typing in tab A: %v", err)
	}
	var heard []time.Duration
	for _, st := range eval[[]stateEvent](tabB, `__e2eStates`) {
		if st.RemainingMs != nil {
			heard = append(heard, time.Duration(*st.RemainingMs)*time.Millisecond)
		}
	}
	t.Logf("while tab A typed for %v, tab B heard from node b the remaining times %v", 2*n, heard)
	for _, on := range []struct {
		p    *tab
		node clusterNode
	}{{a, na}, {tabB, nb}} {
		if st := on.p.state(); !st.Connected || st.ExpirationSeconds != seconds {
			t.Fatalf("%s after %v of typing in tab A: guard state %+v, want connected with %v", on.p.name, 2*n, st, n)
		}
		on.p.wantSocketOn(on.node) // still on its own node
	}

	got := waitSignedOut(t, last.to.Add(n), a, tabB)
	wantOnTime(t, a.name, last, got[0], n)
	wantOnTime(t, tabB.name, last, got[1], n)
	wantTogether(t, a, tabB, got[0], got[1], together)
	wantIdleReason(t, a, got[0], strconv.Itoa(seconds))
	wantIdleReason(t, tabB, got[1], strconv.Itoa(seconds))
	for _, node := range nodes {
		node.waitNoSockets(t)
	}
}
