package app

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"idleguard/server/internal/apptest"
	"idleguard/server/internal/clustertest"
	"idleguard/server/protocol"
)

// The cluster's behaviour (issue 10, point 3), against three real nodes of
// the program (a, b, c: -postgres, -redis, -node) sharing one PostgreSQL
// database and one redis-server, each test its own. A session's tabs sit on
// different nodes. The tests wait for what must happen with generous
// bounds and assert order and "never before the deadline", never speed:
// the latencies the design promises (250 ms, 1 s) are only logged, and
// measured by the bench. The faults (point 5) are in
// cluster_faults_test.go, the clock skew (point 4) in cluster_skew_test.go;
// the nodes and their engines are clustertest's.

// startCluster starts nodes a, b and c on a new database and a new
// redis-server.
func startCluster(t *testing.T, args ...string) *clustertest.Cluster {
	t.Helper()
	return clustertest.Start(t, RunReady, pg.Database(t), 3, args...)
}

// setClusterExpiration has the admin of nodes' domain set the Expiration
// Time on the first node and waits until every node applies it; it
// returns the admin's token.
func setClusterExpiration(t *testing.T, nodes []*apptest.Server, seconds int) string {
	t.Helper()
	admin := apptest.SetExpiration(t, nodes[0].Base, seconds)
	for _, n := range nodes {
		waitExpiration(t, n, admin, seconds)
	}
	return admin
}

// waitExpiration polls node n until a new socket's state says seconds.
func waitExpiration(t *testing.T, n *apptest.Server, tok string, seconds int) {
	t.Helper()
	deadline := time.Now().Add(apptest.WaitLimit)
	for {
		ws, resp, err := apptest.Dialer.Dial(n.WSURL(), apptest.Bearer(tok))
		if err != nil {
			status, body := 0, []byte(nil)
			if resp != nil {
				status = resp.StatusCode
				body, _ = io.ReadAll(resp.Body)
			}
			t.Fatalf("dial %s: %v (status %d %s)", n.Base, err, status, body)
		}
		m := apptest.ReadState(t, ws)
		ws.Close()
		if m.ExpirationS == int64(seconds) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s: expiration %d s after %v, want %d s", n.Base, m.ExpirationS, apptest.WaitLimit, seconds)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tab is one watched socket of a session: a browser tab on some node.
type tab struct {
	name string
	ws   *websocket.Conn
	ev   <-chan apptest.Event
}

// openTab opens a socket on n with tok and reads its first frame, a state.
func openTab(t *testing.T, n *apptest.Server, tok, name string) (*tab, protocol.Message) {
	t.Helper()
	ws := apptest.DialSocket(t, n, tok, "")
	tb := &tab{name: name, ws: ws, ev: apptest.Watch(ws)}
	e := apptest.NextEvent(t, tb.ev)
	if e.End || e.Frame.Kind != protocol.State {
		t.Fatalf("tab %s: first frame %q (end %v), want a state", name, e.Raw, e.End)
	}
	return tb, e.Frame
}

func (tb *tab) send(t *testing.T, frame string) {
	t.Helper()
	apptest.Send(t, tb.ws, frame)
}

// next is the tab's next frame or end.
func (tb *tab) next(t *testing.T) apptest.Event {
	t.Helper()
	select {
	case e, ok := <-tb.ev:
		if !ok {
			t.Fatalf("tab %s: watcher ended", tb.name)
		}
		return e
	case <-time.After(apptest.WaitLimit):
		t.Fatalf("tab %s: nothing within %v", tb.name, apptest.WaitLimit)
	}
	return apptest.Event{}
}

// nextOf reads past other frames (states, warnings) to the next frame of
// kind; a sign-out or the end on the way fails t.
func (tb *tab) nextOf(t *testing.T, kind protocol.Kind) apptest.Event {
	t.Helper()
	for {
		e := tb.next(t)
		switch {
		case e.End:
			t.Fatalf("tab %s: closed (%d) while waiting for a %v frame", tb.name, e.Code, kind)
		case e.Frame.Kind == kind:
			return e
		case e.Frame.Kind == protocol.Logout:
			t.Fatalf("tab %s: got %q while waiting for a %v frame", tb.name, e.Raw, kind)
		}
	}
}

// open checks that nothing signed the tab out or closed it so far.
func (tb *tab) open(t *testing.T) {
	t.Helper()
	for {
		select {
		case e := <-tb.ev:
			if e.End || e.Frame.Kind == protocol.Logout {
				t.Fatalf("tab %s: got %q (end %v, code %d), want it open", tb.name, e.Raw, e.End, e.Code)
			}
		default:
			return
		}
	}
}

// stayOpen checks that the tab is neither signed out nor closed for d
// (what came before counts too).
func (tb *tab) stayOpen(t *testing.T, d time.Duration) {
	t.Helper()
	until := time.After(d)
	for {
		tb.open(t)
		select {
		case e, ok := <-tb.ev:
			if !ok || e.End || e.Frame.Kind == protocol.Logout {
				t.Fatalf("tab %s: got %q (end %v, code %d), want it open", tb.name, e.Raw, e.End, e.Code)
			}
		case <-until:
			tb.open(t)
			return
		}
	}
}

// signedOut reads the tab to its logout frame, which must carry reason and
// come no sooner than notBefore (zero: no bound), then to the close with
// the reason's code; it returns when the logout came.
func (tb *tab) signedOut(t *testing.T, reason protocol.Reason, notBefore time.Time) time.Time {
	t.Helper()
	var at time.Time
	for {
		e := tb.next(t)
		if e.End {
			t.Fatalf("tab %s: closed (%d, %s) without a logout frame", tb.name, e.Code, e.Raw)
		}
		if e.Frame.Kind == protocol.Logout {
			if e.Frame.Reason != reason {
				t.Errorf("tab %s: logout reason %v, want %v", tb.name, e.Frame.Reason, reason)
			}
			at = e.At
			break
		}
	}
	if !notBefore.IsZero() {
		if at.Before(notBefore) {
			t.Errorf("tab %s: signed out %v before the deadline, want never early", tb.name, notBefore.Sub(at))
		} else {
			t.Logf("tab %s: signed out %v after the deadline", tb.name, at.Sub(notBefore).Round(time.Millisecond))
		}
	}
	if e := tb.next(t); !e.End || e.Code != reason.CloseCode() {
		t.Errorf("tab %s after the logout: got %q (end %v, code %d), want close %d", tb.name, e.Raw, e.End, e.Code, reason.CloseCode())
	}
	return at
}

// typeFor sends activity on tb every gap for d and returns when the last
// was sent.
func (tb *tab) typeFor(t *testing.T, d, gap time.Duration) time.Time {
	t.Helper()
	var last time.Time
	for start := time.Now(); time.Since(start) < d; time.Sleep(gap) {
		last = time.Now()
		tb.send(t, "activity ago=0")
	}
	return last
}

// wantAlive checks that tok's session is alive on every node.
func wantAlive(t *testing.T, nodes []*apptest.Server, tok string) {
	t.Helper()
	for _, n := range nodes {
		if code, body := apptest.SessionStatus(t, n.Base, tok); code != http.StatusOK {
			t.Errorf("GET /api/session on %s: got %d %s, want 200", n.Base, code, body)
		}
	}
}

// wantEndedEverywhere checks that tok is refused with reason on every node.
func wantEndedEverywhere(t *testing.T, nodes []*apptest.Server, tok, reason string) {
	t.Helper()
	for _, n := range nodes {
		apptest.WantEnded(t, n, tok, reason)
	}
}

// kidOf is a token's kid header.
func kidOf(t *testing.T, tok string) string {
	t.Helper()
	tk, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
	if err != nil {
		t.Fatalf("parse %q: %v", tok, err)
	}
	kid, _ := tk.Header["kid"].(string)
	return kid
}

// Typing in a tab on node a keeps the session's tab on node b open past
// the deadline it had before (a's input moves b's deadline); once the
// typing stops, both are signed out idle, never before the Expiration
// Time has passed since the last input.
func TestClusterActivityMovesEveryDeadline(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	a, b := c.Nodes[0], c.Nodes[1]
	const exp = 3 * time.Second
	setClusterExpiration(t, c.Nodes, 3)
	tok, _ := apptest.MustLogin(t, a.Base, "cashier", "demo")
	onA, _ := openTab(t, a, tok, "a")
	onB, _ := openTab(t, b, tok, "b")

	last := onA.typeFor(t, 2*exp, 300*time.Millisecond)
	onB.open(t)
	onA.open(t)
	for _, tb := range []*tab{onA, onB} {
		tb.signedOut(t, protocol.ReasonIdle, last.Add(exp))
	}
	wantEndedEverywhere(t, c.Nodes, tok, "idle")
}

// A warning showing in tabs on nodes b and c closes when there is input
// on node a: plain activity, or the dialog's "Stay signed in".
func TestClusterWarningClosesOnActivityElsewhere(t *testing.T) {
	t.Parallel()
	testWarningClosedElsewhere(t, "activity ago=0")
}

func TestClusterStayClosesWarningElsewhere(t *testing.T) {
	t.Parallel()
	testWarningClosedElsewhere(t, "stay")
}

// testWarningClosedElsewhere: the warning comes on b and c; frame, sent on
// a, closes it on both (a state frame whose remaining time is beyond the
// warning lead) before the deadline the warning announced: so by the
// signal between the nodes, not by the recheck at the deadline.
func testWarningClosedElsewhere(t *testing.T, frame string) {
	c := startCluster(t)
	// 8 s: a warning lead of 2 s, time enough to act on the warning.
	setClusterExpiration(t, c.Nodes, 8)
	tok, _ := apptest.MustLogin(t, c.Nodes[0].Base, "cashier", "demo")
	onA, _ := openTab(t, c.Nodes[0], tok, "a")
	others := []*tab{}
	for i, n := range c.Nodes[1:] {
		tb, _ := openTab(t, n, tok, clustertest.Names[i+1])
		others = append(others, tb)
	}
	deadlines := make([]time.Time, len(others))
	for i, tb := range others {
		w := tb.nextOf(t, protocol.Warning)
		deadlines[i] = w.At.Add(time.Duration(w.Frame.RemainingMs) * time.Millisecond)
	}
	sent := time.Now()
	onA.send(t, frame)
	for i, tb := range others {
		e := tb.nextOf(t, protocol.State)
		if e.Frame.RemainingMs <= e.Frame.WarnMs {
			t.Errorf("tab %s: state %q after the input on a, want more than the warning lead left (the warning closed)", tb.name, e.Raw)
		}
		if !e.At.Before(deadlines[i]) {
			t.Errorf("tab %s: the warning closed %v after its deadline, want before it", tb.name, e.At.Sub(deadlines[i]))
		}
		t.Logf("tab %s: the warning closed %v after the input on a", tb.name, e.At.Sub(sent).Round(time.Millisecond))
		tb.open(t)
	}
	onA.open(t)
	wantAlive(t, c.Nodes, tok)
}

// At the deadline every socket of the session, on every node, gets the
// idle sign-out and its close code, never before; its token is refused on
// every node from then on.
func TestClusterIdleSignsOutEveryNode(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	const exp = 2 * time.Second
	setClusterExpiration(t, c.Nodes, 2)
	start := time.Now() // the session's last activity is after this
	tok, _ := apptest.MustLogin(t, c.Nodes[1].Base, "cashier", "demo")
	var tabs []*tab
	for _, name := range []string{"a1", "a2", "b", "c"} {
		n := c.Nodes[strings.Index("abc", name[:1])]
		tb, _ := openTab(t, n, tok, name)
		tabs = append(tabs, tb)
	}
	for _, tb := range tabs {
		tb.signedOut(t, protocol.ReasonIdle, start.Add(exp))
	}
	wantEndedEverywhere(t, c.Nodes, tok, "idle")
}

// An Expiration Time change on node a reaches every socket of its domain
// on every node, and signs out on every node the sessions already idle
// longer than the new time; another domain's sockets hear nothing and
// keep their setting.
func TestClusterExpirationChangeReachesEveryNode(t *testing.T) {
	t.Parallel()
	c := startCluster(t, "-domain-suffix", ".localhost")
	acme, globex := c.Domain("acme"), c.Domain("globex")
	admin, _ := apptest.MustLogin(t, acme[0].Base, "admin", "demo")
	idleTok, _ := apptest.MustLogin(t, acme[0].Base, "cashier", "demo")
	activeTok, _ := apptest.MustLogin(t, acme[1].Base, "viewer", "demo")
	otherTok, _ := apptest.MustLogin(t, globex[2].Base, "cashier", "demo")
	var idleTabs, activeTabs, otherTabs []*tab
	for i, name := range clustertest.Names[:3] {
		tb, _ := openTab(t, acme[i], idleTok, "idle on "+name)
		idleTabs = append(idleTabs, tb)
		tb, _ = openTab(t, acme[i], activeTok, "active on "+name)
		activeTabs = append(activeTabs, tb)
		tb, first := openTab(t, globex[i], otherTok, "globex on "+name)
		if first.ExpirationS != 172800 {
			t.Fatalf("tab %s: expiration %d, want the default 172800", tb.name, first.ExpirationS)
		}
		otherTabs = append(otherTabs, tb)
	}

	// The idle session is idle for more than 2 s; the active one has input
	// on c just before the change.
	time.Sleep(2500 * time.Millisecond)
	activeTabs[2].send(t, "stay")
	activeTabs[2].nextOf(t, protocol.State)
	// Time for the other nodes to hear of it: each node applies the change
	// to its own view of the session, without asking the layer.
	time.Sleep(300 * time.Millisecond)
	changed := time.Now()
	apptest.MustSetExpiration(t, acme[0].Base, admin, 2)

	for _, tb := range activeTabs {
		// Past the states of before (the stay's, with a renewed token).
		e := tb.nextOf(t, protocol.State)
		for e.Frame.ExpirationS == 172800 {
			e = tb.nextOf(t, protocol.State)
		}
		if e.Frame.ExpirationS != 2 || e.Frame.RemainingMs > 2000 {
			t.Errorf("tab %s after the change: got %q, want expiration=2 and remaining <= 2000", tb.name, e.Raw)
		}
		t.Logf("tab %s: the change arrived %v after the PUT was sent", tb.name, e.At.Sub(changed).Round(time.Millisecond))
	}
	for _, tb := range idleTabs {
		tb.signedOut(t, protocol.ReasonSettingChanged, time.Time{})
	}
	wantEndedEverywhere(t, acme, idleTok, "setting_changed")

	for _, tb := range otherTabs {
		tb.stayOpen(t, 500*time.Millisecond)
		select {
		case e := <-tb.ev:
			t.Errorf("tab %s of globex: got %q after acme's change, want nothing", tb.name, e.Raw)
		default:
		}
		tb.send(t, "sync")
		if e := tb.nextOf(t, protocol.State); e.Frame.ExpirationS != 172800 {
			t.Errorf("tab %s of globex: got %q, want expiration=172800 still", tb.name, e.Raw)
		}
	}
	globexAdmin, _ := apptest.MustLogin(t, globex[1].Base, "admin", "demo")
	for _, n := range globex {
		if got := apptest.GetSettings(t, n.Base, globexAdmin).ExpirationSeconds; got != 172800 {
			t.Errorf("globex's setting on %s: got %d, want 172800", n.Base, got)
		}
	}
	wantAlive(t, globex, otherTok)
}

// Signing out on one node closes every tab of the session on every node,
// whether by the logout API, a tab's "Sign out now" (the signout frame)
// or the CLI's session revoke on the cluster's store; the token is
// refused everywhere after.
func TestClusterSignOutEverywhere(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	for _, tc := range []struct {
		name    string
		on      int // the node it happens on
		reason  protocol.Reason
		signOut func(t *testing.T, tok string, tabs []*tab)
	}{
		{"logout API", 1, protocol.ReasonSignedOut, func(t *testing.T, tok string, _ []*tab) {
			resp, body := apptest.Request(t, "POST", c.Nodes[1].Base+"/api/logout", tok, "application/json", nil)
			if resp.StatusCode != http.StatusNoContent {
				t.Fatalf("POST /api/logout on b: got %d %s, want 204", resp.StatusCode, body)
			}
		}},
		{"signout frame", 2, protocol.ReasonSignedOut, func(t *testing.T, _ string, tabs []*tab) {
			tabs[len(tabs)-1].send(t, "signout") // the tab on c
		}},
		{"session revoke", 0, protocol.ReasonRevoked, func(t *testing.T, tok string, _ []*tab) {
			sid, _ := claimsOf(t, tok)["sid"].(string)
			out, err := apptest.RunCommand(t, RunReady, "", "session", "revoke", sid, "-postgres", c.Postgres)
			if err != nil || !strings.Contains(out, "ended 1 session(s)") {
				t.Fatalf("session revoke %s: got %v %q, want it ended", sid, err, out)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, _ := apptest.MustLogin(t, c.Nodes[tc.on].Base, "cashier", "demo")
			var tabs []*tab
			for i, n := range c.Nodes {
				for j := range 2 {
					tb, _ := openTab(t, n, tok, clustertest.Names[i]+string(rune('1'+j)))
					tabs = append(tabs, tb)
				}
			}
			sent := time.Now()
			tc.signOut(t, tok, tabs)
			for _, tb := range tabs {
				at := tb.signedOut(t, tc.reason, time.Time{})
				t.Logf("tab %s: signed out %v after the sign-out was sent", tb.name, at.Sub(sent).Round(time.Millisecond))
			}
			wantEndedEverywhere(t, c.Nodes, tok, tc.reason.String())
		})
	}
}

// Every node verifies every node's tokens, over HTTP and on the socket;
// after key rotate, tokens of the old key still verify everywhere, and a
// token of the new key (from a node restarted after the rotation, as a
// rolling deploy does) makes every other node load the new key, which it
// then signs with. Every node's JWKS lists both keys, the new one first.
func TestClusterTokensVerifyOnEveryNode(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	tokens := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		tokens[i], _ = apptest.MustLogin(t, n.Base, "cashier", "demo")
	}
	oldKid := kidOf(t, tokens[0])
	for i, tok := range tokens {
		if kid := kidOf(t, tok); kid != oldKid {
			t.Errorf("token of node %s: kid %s, want the cluster's one key %s", clustertest.Names[i], kid, oldKid)
		}
		for j, n := range c.Nodes {
			wantAlive(t, []*apptest.Server{n}, tok)
			openTab(t, n, tok, "token of "+clustertest.Names[i]+" on "+clustertest.Names[j])
		}
	}
	for _, n := range c.Nodes {
		if kids := jwksKids(t, n); len(kids) != 1 || kids[0] != oldKid {
			t.Errorf("JWKS of %s: got %v, want [%s]", n.Base, kids, oldKid)
		}
	}

	out, err := apptest.RunCommand(t, RunReady, "", "key", "rotate", "-postgres", c.Postgres)
	if err != nil {
		t.Fatalf("key rotate: %v %s", err, out)
	}
	newKid, _, _ := strings.Cut(strings.TrimPrefix(out, "key "), " ")
	if newKid == "" || newKid == oldKid || !strings.Contains(out, "signs from now on") {
		t.Fatalf("key rotate: got %q, want a new key", out)
	}
	for _, tok := range tokens {
		wantAlive(t, c.Nodes, tok)
	}

	a := c.Nodes[0]
	a.Restart(t)
	fresh, _ := apptest.MustLogin(t, a.Base, "cashier", "demo")
	if kid := kidOf(t, fresh); kid != newKid {
		t.Fatalf("token of the restarted node a: kid %s, want the new %s", kid, newKid)
	}
	for i, n := range c.Nodes[1:] {
		wantAlive(t, []*apptest.Server{n}, fresh) // n reloads for the unknown kid
		openTab(t, n, fresh, "new key's token on "+clustertest.Names[i+1])
		tok, _ := apptest.MustLogin(t, n.Base, "cashier", "demo")
		if kid := kidOf(t, tok); kid != newKid {
			t.Errorf("node %s after meeting the new key: signs with %s, want %s", clustertest.Names[i+1], kid, newKid)
		}
		wantAlive(t, c.Nodes, tok)
	}
	for _, tok := range tokens {
		wantAlive(t, c.Nodes, tok)
	}
	for _, n := range c.Nodes {
		if kids := jwksKids(t, n); len(kids) != 2 || kids[0] != newKid || kids[1] != oldKid {
			t.Errorf("JWKS of %s after the rotation: got %v, want [%s %s]", n.Base, kids, newKid, oldKid)
		}
	}
}

// jwksKids are the kids of n's /.well-known/jwks.json, in its order.
func jwksKids(t *testing.T, n *apptest.Server) []string {
	t.Helper()
	resp, body := apptest.Request(t, "GET", n.Base+"/.well-known/jwks.json", "", "", nil)
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); resp.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("GET jwks on %s: got %d %s (%v)", n.Base, resp.StatusCode, body, err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	return kids
}
