package app

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"idleguard/server/internal/apptest"
	"idleguard/server/internal/clustertest"
	"idleguard/server/protocol"
)

// The faults of a cluster (issue 10, point 5), each with real processes:
// a node killed with SIGKILL, Redis restarted, Redis unreachable (SIGSTOP),
// PostgreSQL unreachable and PostgreSQL silent (a TCP proxy between the
// nodes and the package's PostgreSQL, which the other tests keep using,
// cut or holding every byte). Two of them fail today, each saying why:
// TestClusterRedisUnreachableKeepsInputOfOtherNodes and
// TestClusterPostgresSilent.

// typist types in one tab (activity frames every gap) from its own
// goroutine, as a cashier does while the test looks elsewhere.
type typist struct {
	stop chan struct{}
	done chan struct{}

	mu   sync.Mutex
	last time.Time // when the last frame was sent
	err  error
}

func startTyping(ws *websocket.Conn, gap time.Duration) *typist {
	ty := &typist{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(ty.done)
		for {
			now := time.Now()
			ws.SetWriteDeadline(now.Add(apptest.WaitLimit))
			err := ws.WriteMessage(websocket.TextMessage, []byte("activity ago=0"))
			ty.mu.Lock()
			if err != nil {
				ty.err = err
			} else {
				ty.last = now
			}
			ty.mu.Unlock()
			if err != nil {
				return
			}
			select {
			case <-ty.stop:
				return
			case <-time.After(gap):
			}
		}
	}()
	return ty
}

// halt stops the typing and returns when the last frame was sent; a
// failed send fails t.
func (ty *typist) halt(t *testing.T) time.Time {
	t.Helper()
	close(ty.stop)
	<-ty.done
	ty.mu.Lock()
	defer ty.mu.Unlock()
	if ty.err != nil && !t.Failed() { // after a failure, the tab may be closed
		t.Fatalf("typing: %v", ty.err)
	}
	return ty.last
}

// gone reads the tab until its connection ends, which must come without a
// logout frame (the node died: nothing was said).
func (tb *tab) gone(t *testing.T) {
	t.Helper()
	for {
		e := tb.next(t)
		if e.End {
			return
		}
		if e.Frame.Kind == protocol.Logout {
			t.Fatalf("tab %s: got %q from a dying node, want the connection to drop", tb.name, e.Raw)
		}
	}
}

// kill -9 of one node of three while its tabs and the others' are in
// use: its tabs lose their connection without a word, reconnect to the
// other nodes with the same token and find their session with its
// deadline (not reset by the reconnect, not lost); the sessions signed in
// on it live on; nobody is signed out early. Half the sessions are typed
// in on a surviving node throughout, half were last typed in on the dead
// node.
func TestClusterNodeKilled(t *testing.T) {
	t.Parallel()
	bin := clustertest.Build(t)
	c := clustertest.New(t, pg.Database(t))
	var nodes []*apptest.Server
	var procs []*clustertest.Proc
	for i, name := range clustertest.Names[:3] {
		p := c.StartProc(t, bin, name)
		procs = append(procs, p)
		nodes = append(nodes, p.Server())
		c.WaitSubscribed(t, i+1)
	}
	const exp = 4 * time.Second
	setClusterExpiration(t, nodes, 4)
	living, dead := nodes[:2], nodes[2]

	type session struct {
		tok          string
		kept, onDead *tab
		busy         *typist // typing on kept throughout; nil: typed on the dead node
		last         time.Time
	}
	var sessions []*session
	for i := range 12 {
		tok, _ := apptest.MustLogin(t, nodes[i%3].Base, "cashier", "demo")
		s := &session{tok: tok}
		s.kept, _ = openTab(t, living[i%2], tok, clustertest.Names[i%2]+" of session "+string(rune('A'+i)))
		s.onDead, _ = openTab(t, dead, tok, "c of session "+string(rune('A'+i)))
		if i%2 == 0 {
			s.busy = startTyping(s.kept.ws, 300*time.Millisecond)
		}
		sessions = append(sessions, s)
	}
	for range 5 {
		for _, s := range sessions {
			if s.busy == nil {
				s.last = time.Now()
				s.onDead.send(t, "activity ago=0")
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	// What the dead node heard has had time to reach the layer: it records
	// input every 100 ms, and a crash may lose only that much.
	time.Sleep(600 * time.Millisecond)

	procs[2].Kill(t)
	for _, s := range sessions {
		s.onDead.gone(t)
	}
	for i, s := range sessions {
		wantAlive(t, living, s.tok)
		dial := time.Now()
		tb, first := openTab(t, living[(i+1)%2], s.tok, clustertest.Names[(i+1)%2]+" of session "+string(rune('A'+i))+", reconnected")
		s.onDead = tb
		if first.RemainingMs <= 0 {
			t.Errorf("tab %s: remaining %d ms, want the session alive", tb.name, first.RemainingMs)
		}
		if s.busy == nil {
			// Not reset by the reconnect: the deadline is the last input's.
			if most := exp - dial.Sub(s.last) + 250*time.Millisecond; time.Duration(first.RemainingMs)*time.Millisecond > most {
				t.Errorf("tab %s: remaining %d ms, want at most %v (the deadline of the last input)", tb.name, first.RemainingMs, most)
			}
		}
	}
	for _, s := range sessions {
		if s.busy == nil {
			s.kept.signedOut(t, protocol.ReasonIdle, s.last.Add(exp))
			s.onDead.signedOut(t, protocol.ReasonIdle, s.last.Add(exp))
			wantEndedEverywhere(t, living, s.tok, "idle")
		}
	}
	for _, s := range sessions {
		if s.busy != nil {
			s.kept.stayOpen(t, 10*time.Millisecond)
			s.onDead.open(t)
			s.last = s.busy.halt(t)
		}
	}
	for _, s := range sessions {
		if s.busy != nil {
			s.kept.signedOut(t, protocol.ReasonIdle, s.last.Add(exp))
			s.onDead.signedOut(t, protocol.ReasonIdle, s.last.Add(exp))
		}
	}
}

// Redis restarted, losing everything it held: the open sockets stay open;
// a session left idle is signed out at its deadline on every node, never
// early; the nodes subscribe again by themselves, and input on one node
// keeps the session's tabs on the others open again (so they hear each
// other once more), until a sign-out on one node closes them all.
func TestClusterRedisRestarted(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	const exp = 4 * time.Second
	setClusterExpiration(t, c.Nodes, 4)
	start := time.Now()
	quietTok, _ := apptest.MustLogin(t, c.Nodes[0].Base, "cashier", "demo")
	workTok, _ := apptest.MustLogin(t, c.Nodes[1].Base, "viewer", "demo")
	var quiet, work []*tab
	for i, n := range c.Nodes {
		tb, _ := openTab(t, n, quietTok, "quiet on "+clustertest.Names[i])
		quiet = append(quiet, tb)
		tb, _ = openTab(t, n, workTok, "work on "+clustertest.Names[i])
		work = append(work, tb)
	}
	typing := startTyping(work[0].ws, 300*time.Millisecond)
	time.Sleep(time.Second)

	c.Redis.Restart()
	restarted := time.Now()
	c.WaitSubscribed(t, len(c.Nodes))
	t.Logf("every node subscribed again %v after the restart", time.Since(restarted).Round(time.Millisecond))
	for _, tb := range quiet {
		tb.signedOut(t, protocol.ReasonIdle, start.Add(exp))
	}
	// Open for over an Expiration Time since Redis came back empty: only
	// what the typing node recorded since then keeps b and c from ending it.
	for _, tb := range work {
		tb.stayOpen(t, time.Until(restarted.Add(exp+time.Second)))
	}
	typing.halt(t)
	resp, body := apptest.Request(t, "POST", c.Nodes[2].Base+"/api/logout", workTok, "application/json", nil)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST /api/logout on c: got %d %s, want 204", resp.StatusCode, body)
	}
	for _, tb := range work {
		tb.signedOut(t, protocol.ReasonSignedOut, time.Time{})
	}
	wantEndedEverywhere(t, c.Nodes, quietTok, "idle")
	wantEndedEverywhere(t, c.Nodes, workTok, "signed_out")
}

// Redis unreachable for 10 s (stopped with SIGSTOP: connections stay up,
// nothing answers): open sockets stay open (a session typed in on its
// node keeps its tab); a session left idle is signed out at its deadline
// on every node, never early; when Redis answers again the nodes resume
// by themselves: input on one node keeps the tabs on the others open past
// a deadline, and a sign-out on one closes them all.
func TestClusterRedisUnreachable(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	const exp = 3 * time.Second
	setClusterExpiration(t, c.Nodes, 3)
	start := time.Now()
	quietTok, _ := apptest.MustLogin(t, c.Nodes[0].Base, "cashier", "demo")
	localTok, _ := apptest.MustLogin(t, c.Nodes[1].Base, "viewer", "demo")
	var quiet []*tab
	for i, n := range c.Nodes {
		tb, _ := openTab(t, n, quietTok, "quiet on "+clustertest.Names[i])
		quiet = append(quiet, tb)
	}
	local, _ := openTab(t, c.Nodes[1], localTok, "local on b")
	typingLocal := startTyping(local.ws, 300*time.Millisecond)
	time.Sleep(500 * time.Millisecond)

	c.Redis.Freeze()
	frozen := time.Now()
	for _, tb := range quiet {
		tb.signedOut(t, protocol.ReasonIdle, start.Add(exp))
	}
	local.stayOpen(t, time.Until(frozen.Add(10*time.Second)))
	c.Redis.Thaw()
	thawed := time.Now()
	c.WaitSubscribed(t, len(c.Nodes))
	t.Logf("every node subscribed again %v after Redis answered", time.Since(thawed).Round(time.Millisecond))
	typingLocal.halt(t)
	wantEndedEverywhere(t, c.Nodes, quietTok, "idle")
	wantAlive(t, c.Nodes, localTok)

	// Resumed: a new session typed in on a keeps its tabs on b and c past
	// its Expiration Time; a sign-out on b closes every tab.
	tok, _ := apptest.MustLogin(t, c.Nodes[0].Base, "cashier", "demo")
	var tabs []*tab
	for i, n := range c.Nodes {
		tb, _ := openTab(t, n, tok, "after on "+clustertest.Names[i])
		tabs = append(tabs, tb)
	}
	typing := startTyping(tabs[0].ws, 300*time.Millisecond)
	for _, tb := range tabs[1:] {
		tb.stayOpen(t, exp+time.Second)
	}
	typing.halt(t)
	resp, body := apptest.Request(t, "POST", c.Nodes[1].Base+"/api/logout", tok, "application/json", nil)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST /api/logout on b: got %d %s, want 204", resp.StatusCode, body)
	}
	for _, tb := range tabs {
		tb.signedOut(t, protocol.ReasonSignedOut, time.Time{})
	}
}

// While Redis is unreachable (10 s, SIGSTOP), a session typed in on node a
// is not signed out early by its tabs on b and c, which cannot hear of the
// input: never early holds across the outage.
//
// It fails today: b and c recheck the deadline with the layer, which does
// not answer, and then trust their own view (sessions.sharedClock.Idle),
// in which the last input is the last one heard before the outage; they
// end the session an Expiration Time after it, and a hears of the end from
// the store's session end log and closes its tab too.
func TestClusterRedisUnreachableKeepsInputOfOtherNodes(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	setClusterExpiration(t, c.Nodes, 3)
	tok, _ := apptest.MustLogin(t, c.Nodes[2].Base, "cashier", "demo")
	var tabs []*tab
	for i, n := range c.Nodes {
		tb, _ := openTab(t, n, tok, clustertest.Names[i])
		tabs = append(tabs, tb)
	}
	typing := startTyping(tabs[0].ws, 300*time.Millisecond)
	time.Sleep(500 * time.Millisecond)

	c.Redis.Freeze()
	frozen := time.Now()
	ended := endsWithin(tabs, frozen, 10*time.Second)
	for i, tb := range tabs {
		if ended[i] != 0 {
			t.Errorf("tab %s: signed out %v into the outage, while the session was typed in on a", tb.name, ended[i].Round(time.Millisecond))
		}
	}
	c.Redis.Thaw()
	c.WaitSubscribed(t, len(c.Nodes))
	time.Sleep(2 * time.Second) // the nodes' logs read, their signals heard
	typing.halt(t)
	wantAlive(t, c.Nodes, tok)
	// Whatever happened, the nodes must agree afterwards: a tab kept open
	// (and typed in) on a session the store has ended is a till that
	// looks signed in and is not.
	tabs[0].open(t)
	if code, _ := apptest.SessionStatus(t, c.Nodes[0].Base, tok); ended[0] == 0 && code == http.StatusUnauthorized {
		t.Errorf("tab a: still open 2 s after the outage, while its node answers 401 for the session: the nodes disagree for good (another node's idle end is neither signalled nor in the session end log)")
	}
}

// endsWithin watches tabs until from+d and returns, for each, how long
// after from it was signed out or closed (0: it stayed open).
func endsWithin(tabs []*tab, from time.Time, d time.Duration) []time.Duration {
	ended := make([]time.Duration, len(tabs))
	for time.Since(from) < d {
		for i, tb := range tabs {
			select {
			case e := <-tb.ev:
				if (e.End || e.Frame.Kind == protocol.Logout) && ended[i] == 0 {
					ended[i] = e.At.Sub(from)
				}
			default:
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return ended
}

// PostgreSQL unreachable (the proxy between the nodes and it cut: every
// connection dropped, new ones refused): sign-ins and setting changes
// answer 503 with a clear message on every node; open sessions keep
// working (their sockets stay open, input on one node reaches the others,
// a session left idle is signed out at its deadline); once PostgreSQL is
// reachable again, every node signs in and changes settings again without
// a restart, and the sign-outs of the outage are in the store.
func TestClusterPostgresUnreachable(t *testing.T) {
	t.Parallel()
	db := pg.Database(t)
	proxy := clustertest.NewProxy(t, clustertest.TargetOf(t, db))
	c := clustertest.Start(t, RunReady, proxy.ProxyURL(t, db), 3)
	const exp = 3 * time.Second
	admin := setClusterExpiration(t, c.Nodes, 3)
	adminTab, _ := openTab(t, c.Nodes[1], admin, "admin on b")
	typingAdmin := startTyping(adminTab.ws, 300*time.Millisecond)
	workTok, _ := apptest.MustLogin(t, c.Nodes[0].Base, "viewer", "demo")
	var work, quiet []*tab
	for i, n := range c.Nodes {
		tb, _ := openTab(t, n, workTok, "work on "+clustertest.Names[i])
		work = append(work, tb)
	}
	typingWork := startTyping(work[0].ws, 300*time.Millisecond)
	start := time.Now()
	quietTok, _ := apptest.MustLogin(t, c.Nodes[2].Base, "cashier", "demo")
	for i, n := range c.Nodes {
		tb, _ := openTab(t, n, quietTok, "quiet on "+clustertest.Names[i])
		quiet = append(quiet, tb)
	}

	proxy.Cut()
	defer proxy.Restore(t) // before the nodes stop: their last flush needs it
	cut := time.Now()
	for i, n := range c.Nodes {
		resp, body := apptest.Login(t, n.Base, "cashier", "demo")
		wantUnavailable(t, "sign-in on "+clustertest.Names[i], resp, body)
		resp, body = apptest.PutExpiration(t, n.Base, admin, `{"expiration_seconds":60}`, "application/json")
		wantUnavailable(t, "setting change on "+clustertest.Names[i], resp, body)
	}
	for _, tb := range quiet {
		tb.signedOut(t, protocol.ReasonIdle, start.Add(exp))
	}
	// Past an Expiration Time of the outage, the tabs on b and c are still
	// open: the input on a reached them through Redis.
	for _, tb := range work {
		tb.stayOpen(t, time.Until(cut.Add(exp+time.Second)))
	}
	work[2].send(t, "sync")
	if e := work[2].nextOf(t, protocol.State); e.Frame.RemainingMs <= 0 || e.Frame.ExpirationS != 3 {
		t.Errorf("tab %s: sync during the outage: got %q, want its state", work[2].name, e.Raw)
	}

	proxy.Restore(t)
	restored := time.Now()
	for i, n := range c.Nodes {
		for {
			resp, body := apptest.Login(t, n.Base, "cashier", "demo")
			if resp.StatusCode == http.StatusOK {
				t.Logf("node %s signs in again %v after PostgreSQL came back", clustertest.Names[i], time.Since(restored).Round(time.Millisecond))
				break
			}
			if time.Since(restored) > apptest.WaitLimit {
				t.Fatalf("sign-in on %s %v after PostgreSQL came back: got %d %s, want 200", clustertest.Names[i], apptest.WaitLimit, resp.StatusCode, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	apptest.MustSetExpiration(t, c.Nodes[1].Base, admin, 4)
	for _, tb := range work {
		for e := tb.nextOf(t, protocol.State); e.Frame.ExpirationS != 4; e = tb.nextOf(t, protocol.State) {
		}
	}
	wantEndedEverywhere(t, c.Nodes, quietTok, "idle")
	typingWork.halt(t)
	typingAdmin.halt(t)
	wantAlive(t, c.Nodes, workTok)
}

// wantUnavailable checks a 503 that says the store cannot be reached.
func wantUnavailable(t *testing.T, what string, resp *http.Response, body []byte) {
	t.Helper()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("%s while PostgreSQL is unreachable: got %d %s, want 503", what, resp.StatusCode, body)
		return
	}
	if e := apptest.DecodeError(t, body); e.Error.Message != "the store is unreachable; try again" {
		t.Errorf("%s while PostgreSQL is unreachable: got message %q, want that the store is unreachable", what, e.Error.Message)
	}
}

// PostgreSQL silent (the proxy holds every byte: connections stay up,
// nothing answers, as in a network partition) for 10 s: sign-ins and
// setting changes still answer, 503, rather than hang; open sessions keep
// working (a session typed in on one node keeps its tabs on every node, a
// session left idle is signed out at its deadline); when PostgreSQL
// answers again every node signs in again.
//
// It fails today: no call to the store has a deadline. Sign-ins and
// setting changes hang until the client gives up. A socket's reader, and
// the node's delivery of the other nodes' signals, stop at the first token
// renewal (sessions.Service.stateFrame reads the session from the store),
// so the typing is never seen, and the session is signed out idle on
// every node while the cashier types. A node told to stop waits out its
// final flush.
func TestClusterPostgresSilent(t *testing.T) {
	t.Parallel()
	db := pg.Database(t)
	proxy := clustertest.NewProxy(t, clustertest.TargetOf(t, db))
	c := clustertest.Start(t, RunReady, proxy.ProxyURL(t, db), 3)
	const exp = 3 * time.Second
	admin := setClusterExpiration(t, c.Nodes, 3)
	adminTab, _ := openTab(t, c.Nodes[1], admin, "admin on b")
	typingAdmin := startTyping(adminTab.ws, 300*time.Millisecond)
	workTok, _ := apptest.MustLogin(t, c.Nodes[0].Base, "viewer", "demo")
	var work, quiet []*tab
	for i, n := range c.Nodes {
		tb, _ := openTab(t, n, workTok, "work on "+clustertest.Names[i])
		work = append(work, tb)
	}
	typingWork := startTyping(work[0].ws, 300*time.Millisecond)
	start := time.Now()
	quietTok, _ := apptest.MustLogin(t, c.Nodes[2].Base, "cashier", "demo")
	for i, n := range c.Nodes {
		tb, _ := openTab(t, n, quietTok, "quiet on "+clustertest.Names[i])
		quiet = append(quiet, tb)
	}

	proxy.Silence()
	defer proxy.Restore(t) // before the nodes stop: their last flush needs it
	silenced := time.Now()
	client := &http.Client{Timeout: 8 * time.Second}
	answers := make(chan string, 2*len(c.Nodes))
	for i, n := range c.Nodes {
		go func() {
			resp, err := client.Post(n.Base+"/api/login", "application/json", strings.NewReader(`{"username":"cashier","password":"demo"}`))
			answers <- answer("sign-in on "+clustertest.Names[i], resp, err, time.Since(silenced))
		}()
		go func() {
			req, _ := http.NewRequest("PUT", n.Base+"/api/settings/jwt", strings.NewReader(`{"expiration_seconds":60}`))
			req.Header.Set("Authorization", "Bearer "+admin)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			answers <- answer("setting change on "+clustertest.Names[i], resp, err, time.Since(silenced))
		}()
	}
	for _, tb := range quiet {
		tb.signedOut(t, protocol.ReasonIdle, start.Add(exp))
	}
	ended := endsWithin(work, silenced, 10*time.Second)
	for i, tb := range work {
		if ended[i] != 0 {
			t.Errorf("tab %s: signed out %v into the silence, while the session was typed in on a", tb.name, ended[i].Round(time.Millisecond))
		}
	}
	for range 2 * len(c.Nodes) {
		if a := <-answers; a != "" {
			t.Error(a)
		}
	}

	proxy.Restore(t)
	restored := time.Now()
	for i, n := range c.Nodes {
		for {
			resp, err := client.Post(n.Base+"/api/login", "application/json", strings.NewReader(`{"username":"cashier","password":"demo"}`))
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Since(restored) > apptest.WaitLimit {
				t.Fatalf("sign-in on %s %v after PostgreSQL answered again: got %v %v, want 200", clustertest.Names[i], apptest.WaitLimit, resp, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	typingWork.halt(t)
	typingAdmin.halt(t)
	wantAlive(t, c.Nodes, workTok)
	wantEndedEverywhere(t, c.Nodes, quietTok, "idle")
}

// answer is "" for a 503 that says the store is unreachable, else what
// came instead.
func answer(what string, resp *http.Response, err error, after time.Duration) string {
	if err != nil {
		return fmt.Sprintf("%s while PostgreSQL is silent: no answer after %v (%v), want 503", what, after.Round(time.Millisecond), err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "the store is unreachable") {
		return fmt.Sprintf("%s while PostgreSQL is silent: got %d %s after %v, want 503", what, resp.StatusCode, body, after.Round(time.Millisecond))
	}
	return ""
}
