package e2e

import (
	"context"
	"encoding/json"
	"idleguard/server/app"
	"idleguard/server/internal/apptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The page when the server goes away: stopped for good, it still signs
// itself out when its own countdown ends; restarted, it reconnects and the
// deadline it had still holds.

// reportSignOut makes the page write one console line when idleguard:signout
// fires: how long after the last trusted input (on the page's clock) and the
// detail. The page then leaves; the console line has already gone out.
const reportSignOut = `(() => {
	addEventListener('idleguard:signout', e => console.info('e2e:signout ' + JSON.stringify({
		idle_ms: performance.now() - __idleguard.input.last, detail: e.detail,
		connected: !!(__idleguard.state && __idleguard.state.connected)})));
	return true;
})()`

type signOutReport struct {
	IdleMs    float64 `json:"idle_ms"`
	Connected bool    `json:"connected"` // the guard's socket was up at the sign-out
	Detail    struct {
		Reason            string `json:"reason"`
		ExpirationSeconds int64  `json:"expiration_seconds"`
	} `json:"detail"`
}

// serverRemaining asks the server, from the page (with its cookie), how
// long the session has left: GET /api/session, which is not activity. The
// server worked it out during the returned instant.
func (p *tab) serverRemaining() (time.Duration, instant) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, apptest.WaitLimit)
	defer cancel()
	asked := time.Now()
	ms, err := chromedp.Run(ctx, chromedp.Evaluate[int64](
		`fetch('/api/session', {cache: 'no-store'}).then(r => r.json()).then(b => b.remaining_ms)`,
		chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("%s: GET /api/session: %v", p.name, err)
	}
	return time.Duration(ms) * time.Millisecond, instant{from: asked, to: time.Now()}
}

// keyAfterIdle leaves the page idle for a second, presses a key, and waits
// until the server's deadline counts from that key (the page reports input
// on its own schedule, up to a tenth of n later), so that what follows
// cannot overtake the report. It returns the key's instant.
//
// Counted from the key, the server's remaining time is at least n less the
// time since the key's instant began; counted from any earlier input, at
// least a second less than that, if the question took under half a second.
// A slower answer decides nothing and the question is asked again.
func (p *tab) keyAfterIdle(n time.Duration) instant {
	p.t.Helper()
	time.Sleep(time.Second)
	key := p.pressKey()
	for {
		rem, asked := p.serverRemaining()
		// 5 ms for whole-millisecond rounding on the page and the server.
		if asked.to.Sub(asked.from) < 500*time.Millisecond && rem >= n-asked.to.Sub(key.from)-5*time.Millisecond {
			return key
		}
		if time.Since(key.to) > n/2 {
			p.t.Fatalf("%s: the server's remaining time is %v %v after the key: the key was not reported", p.name, rem, time.Since(key.to).Round(time.Millisecond))
		}
		time.Sleep(e2ePoll)
	}
}

// consoleReport is one reportSignOut line and when the test got it.
type consoleReport struct {
	text string
	at   time.Time
}

// consoleReports sends what follows "e2e:signout " in the page's console
// lines (reportSignOut's JSON) on the returned channel, with the time each
// came in.
func (p *tab) consoleReports() <-chan consoleReport {
	ch := make(chan consoleReport, 16)
	msgs := chromedp.Console(p.ctx) // subscribed now
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if _, rest, ok := strings.Cut(m.Text, "e2e:signout "); ok {
				select {
				case ch <- consoleReport{text: rest, at: time.Now()}:
				default:
				}
			}
		}
	}()
	return ch
}

// With the server stopped, the open page counts down on its own, shows the
// warning, and at zero signs itself out and heads for the login page.
func TestE2EServerUnreachable(t *testing.T) {
	// Long enough for a graceful shutdown to end well before the deadline:
	// net/http's Shutdown may wait up to 5 s for a connection the browser
	// opened ahead of need, and the sockets stay up until it returns.
	const n = 8 * time.Second
	s := apptest.Start(t, app.RunReady)
	apptest.SetExpiration(t, s.Base, 8)
	b := newE2EBrowser(t)

	pos := b.isolatedTab(t, "POS tab")
	pos.signIn(s.Base, "cashier", "demo")
	pos.waitGuard()
	reports := pos.consoleReports()
	eval[bool](pos, reportSignOut)
	last := pos.keyAfterIdle(n)
	s.Stop(t)
	t.Logf("server stopped %v after the last key", time.Since(last.to).Round(time.Millisecond))
	if time.Since(last.to) > n-2*time.Second {
		t.Fatalf("the server took until %v after the last key to stop: too near the deadline to see the page on its own", time.Since(last.to).Round(time.Millisecond))
	}

	var warned bool
	var report consoleReport
	for report.text == "" {
		select {
		case report = <-reports:
			continue
		default:
		}
		if !warned && warningOpen(pos) {
			warned = true
		}
		if time.Since(last.to) > apptest.WaitLimit {
			t.Fatalf("no idleguard:signout %v after the last key", apptest.WaitLimit)
		}
		time.Sleep(e2ePoll)
	}
	// The least time the trip can have taken: from the latest the key can
	// have been to when its report came in (not when the poll saw it).
	after := report.at.Sub(last.to)
	var r signOutReport
	if err := json.Unmarshal([]byte(report.text), &r); err != nil {
		t.Fatalf("sign-out report %q: %v", report.text, err)
	}
	if r.Detail.Reason != "idle" || r.Detail.ExpirationSeconds != 8 {
		t.Errorf("idleguard:signout detail %+v, want reason idle, expiration 8", r.Detail)
	}
	if r.Connected {
		t.Errorf("the guard's socket was up at the sign-out, want the page on its own")
	}
	// On the page's own clock: not before the countdown reached zero (less
	// a millisecond of rounding); and the whole trip within a second of it.
	idle := time.Duration(r.IdleMs * float64(time.Millisecond))
	if idle < n-time.Millisecond || after > n+time.Second {
		t.Errorf("signed out %v after the last key (page clock), %v by the test's clock; want from %v, within %v",
			idle.Round(time.Millisecond), after.Round(time.Millisecond), n, n+time.Second)
	} else {
		t.Logf("signed out locally %v after the last key (page clock), %v by the test's clock", idle.Round(time.Millisecond), after.Round(time.Millisecond))
	}
	if !warned {
		t.Errorf("the page did not show the warning before signing itself out")
	}

	// It heads for the login page; with no server there, that load fails,
	// so look at where the tab was sent, not at a page.
	var target string
	for end := time.Now().Add(apptest.WaitLimit); time.Now().Before(end); time.Sleep(e2ePoll) {
		ctx, cancel := context.WithTimeout(pos.ctx, time.Second)
		h, err := chromedp.Run(ctx, chromedp.NavigationEntries())
		cancel()
		if err == nil && h.CurrentIndex >= 0 && int(h.CurrentIndex) < len(h.Entries) {
			if target = h.Entries[h.CurrentIndex].URL; strings.Contains(target, "/login") {
				break
			}
		}
	}
	if !strings.HasPrefix(target, s.Base+"/login?") || !strings.Contains(target, "reason=idle") {
		t.Errorf("the tab was sent to %q, want %s/login?reason=idle...", target, s.Base)
	}
}

// A restart of the server (same data, same address) while a page is open:
// the page reconnects, and the session ends at the deadline it already had;
// the reconnect is not activity.
func TestE2EServerRestart(t *testing.T) {
	// Room for the slowest graceful stop before the deadline, so that the
	// page reconnects to a session still alive: the program gives net/http
	// and the hub 10 s between them to shut down (net/http alone may wait
	// 5 s for a connection the browser opened ahead of need), and the
	// sockets stay up until the hub's turn.
	const n = 15 * time.Second
	s := apptest.Start(t, app.RunReady)
	// The page reconnects to the address it loaded from: restart there.
	s.Args = append(s.Args, "-addr", strings.TrimPrefix(s.Base, "http://"))
	apptest.SetExpiration(t, s.Base, 15)
	b := newE2EBrowser(t)

	pos := b.isolatedTab(t, "POS tab")
	pos.signIn(s.Base, "cashier", "demo")
	pos.waitGuard()
	eval[bool](pos, recordStates)
	last := pos.keyAfterIdle(n)

	stopped := timed(func() { s.Stop(t) })
	s.Start(t)
	t.Logf("server stopped in %v, up again on %s %v after the last key",
		stopped.to.Sub(stopped.from).Round(time.Millisecond), s.Base, time.Since(last.to).Round(time.Millisecond))

	// The page saw the socket drop, then connected again.
	reconnected := func() (guardState, bool) {
		down := false
		for _, st := range eval[[]stateEvent](pos, `__e2eStates`) {
			down = down || !st.Connected
			if down && st.Connected {
				return st.guardState, true
			}
		}
		return guardState{}, false
	}
	// The guard's own next attempt would come at a random time: its backoff
	// has full jitter, up to 10 s, and the attempts that failed while the
	// server was down have already raised it (the module's unit tests check
	// the backoff). Rather than hope it comes before the deadline, the test
	// tells the page what the browser tells it when the network comes back
	// ('online'), on which the guard dials at once. That event is not
	// input: it cannot move the deadline.
	up := time.Now()
	for {
		st, ok := reconnected()
		if ok {
			t.Logf("reconnected %v after the last key; remaining %dms", time.Since(last.to).Round(time.Millisecond), *st.RemainingMs)
			break
		}
		if p := pos.path(); p != "/pos" {
			t.Fatalf("left the POS for %q before reconnecting", p)
		}
		if time.Since(up) > apptest.WaitLimit {
			t.Fatalf("not reconnected %v after the server was up; states %s", apptest.WaitLimit, eval[string](pos, `JSON.stringify(__e2eStates)`))
		}
		eval[bool](pos, `(dispatchEvent(new Event('online')), true)`)
		time.Sleep(e2ePoll)
	}
	got := waitSignedOut(t, last.to.Add(n), pos)
	wantOnTime(t, "POS tab", last, got[0], n)
	wantIdleReason(t, pos, got[0], "15")
}
