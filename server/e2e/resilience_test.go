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
// long the session has left: GET /api/session, which is not activity.
func (p *tab) serverRemaining() time.Duration {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, apptest.WaitLimit)
	defer cancel()
	ms, err := chromedp.Run(ctx, chromedp.Evaluate[int64](
		`fetch('/api/session', {cache: 'no-store'}).then(r => r.json()).then(b => b.remaining_ms)`,
		chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("%s: GET /api/session: %v", p.name, err)
	}
	return time.Duration(ms) * time.Millisecond
}

// keyAfterIdle leaves the page idle for a second, presses a key, and waits
// until the server's deadline counts from that key, so that what follows
// (the server going away) cannot overtake the report: a deadline from any
// earlier input is a second shorter. It returns when the key was pressed.
func (p *tab) keyAfterIdle(n time.Duration) (last instant) {
	p.t.Helper()
	time.Sleep(time.Second)
	last = p.pressKey()
	for {
		rem := p.serverRemaining()
		if rem > n-time.Since(last.to)-500*time.Millisecond {
			return last
		}
		if time.Since(last.to) > n/2 {
			p.t.Fatalf("%s: the server's remaining time is %v %v after the key: the key was not reported", p.name, rem, time.Since(last.to).Round(time.Millisecond))
		}
		time.Sleep(e2ePoll)
	}
}

// consoleReports sends what follows "e2e:signout " in the page's console
// lines (reportSignOut's JSON) on the returned channel.
func (p *tab) consoleReports() <-chan string {
	ch := make(chan string, 16)
	msgs := chromedp.Console(p.ctx) // subscribed now
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if _, rest, ok := strings.Cut(m.Text, "e2e:signout "); ok {
				select {
				case ch <- rest:
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
	var report string
	for report == "" {
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
	after := time.Since(last.to)
	var r signOutReport
	if err := json.Unmarshal([]byte(report), &r); err != nil {
		t.Fatalf("sign-out report %q: %v", report, err)
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
	// As above: room for a slow graceful shutdown before the deadline.
	const n = 8 * time.Second
	s := apptest.Start(t, app.RunReady)
	// The page reconnects to the address it loaded from: restart there.
	s.Args = append(s.Args, "-addr", strings.TrimPrefix(s.Base, "http://"))
	apptest.SetExpiration(t, s.Base, 8)
	b := newE2EBrowser(t)

	pos := b.isolatedTab(t, "POS tab")
	pos.signIn(s.Base, "cashier", "demo")
	pos.waitGuard()
	eval[bool](pos, recordStates)
	last := pos.keyAfterIdle(n)

	began := time.Now()
	s.Restart(t)
	t.Logf("server restarted on %s in %v", s.Base, time.Since(began).Round(time.Millisecond))

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
	for {
		st, ok := reconnected()
		if ok {
			t.Logf("reconnected %v after the last key; remaining %dms", time.Since(last.to).Round(time.Millisecond), *st.RemainingMs)
			break
		}
		if p := pos.path(); p != "/pos" {
			t.Fatalf("left the POS for %q before reconnecting", p)
		}
		if time.Since(last.to) > n {
			t.Fatalf("not reconnected %v after the last key; states %s", n, eval[string](pos, `JSON.stringify(__e2eStates)`))
		}
		time.Sleep(e2ePoll)
	}
	got := waitSignedOut(t, last.to.Add(n), pos)
	wantOnTime(t, "POS tab", last, got[0], n)
	wantIdleReason(t, pos, got[0], "8")
}
