package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"idleguard/server/internal/apptest"
	"idleguard/server/internal/headless"
	"idleguard/web"
)

// The end-to-end tests (TestE2E...) drive the real pages in headless
// Chromium (Debian's chromium, through chromedp) against the program run
// in-process by startServer. Input is real: Input.dispatchKeyEvent and
// Input.dispatchMouseEvent reach the page with isTrusted true. Waiting is
// real too: the tests poll the page every e2ePoll. The only time bounds
// they assert are the issue's own: signed out no earlier than the
// Expiration Time N and no later than N + 1 s after the last input, and an
// admin's change followed within 1 s. Every other wait is bounded by
// apptest.WaitLimit, against hanging.
//
// The test cannot see the instant a key reached the page or the page
// reached /login, only an interval around it (an instant): a key happened
// during the DevTools call that sent it, a landing between the last poll
// that saw the tab elsewhere and the first that saw it there. On a busy
// machine those intervals widen; a bound is failed only when every instant
// the intervals allow breaks it, so that the harness's own delays (a slow
// DevTools answer, a late poll) are never counted against the product.

// e2ePoll is how often the tests look at a page.
const e2ePoll = 50 * time.Millisecond

// chromiumPath finds Debian's chromium (TestMain skips the package
// without it), or fails the test.
func chromiumPath(t *testing.T) string {
	t.Helper()
	p, err := headless.Path()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// requireModule fails the test unless the guard module was built (by make
// wasm) before this test binary embedded web/build.
func requireModule(t *testing.T) {
	t.Helper()
	a, err := web.NewAssets()
	if err != nil {
		t.Fatalf("web assets: %v", err)
	}
	if a.WasmURL() == "" {
		t.Fatal("web/build/idleguard.wasm is not built: run make wasm first")
	}
}

// e2eBrowser is one headless Chromium with a fresh profile, stopped when
// the test ends.
type e2eBrowser struct {
	ctx context.Context     // the browser's first context; tabs are its children
	out *apptest.SyncBuffer // the browser's own output, shown if the test fails
}

func newE2EBrowser(t *testing.T) *e2eBrowser {
	t.Helper()
	exe := chromiumPath(t)
	requireModule(t)
	b := &e2eBrowser{out: &apptest.SyncBuffer{}}
	alloc, cancelAlloc := headless.Allocator(context.Background(), exe, t.TempDir(), chromedp.CombinedOutput(b.out))
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		if t.Failed() {
			if out := browserLog(b.out.String()); out != "" {
				t.Logf("chromium output:\n%s", out)
			}
		}
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	b.ctx = ctx
	return b
}

// browserLog is the last lines of Chromium's output, without its
// complaints about the D-Bus a container does not have.
func browserLog(out string) string {
	var keep []string
	for line := range strings.SplitSeq(out, "\n") {
		if line != "" && !strings.Contains(line, "dbus") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep[max(0, len(keep)-40):], "\n")
}

// tab is one page target.
type tab struct {
	t    *testing.T
	name string // in failure messages
	ctx  context.Context
}

// isolatedTab opens a tab in a new browser context: its own cookies and
// storage, like another browser profile.
func (b *e2eBrowser) isolatedTab(t *testing.T, name string) *tab {
	t.Helper()
	return openTab(t, b.ctx, name, chromedp.WithNewBrowserContext())
}

// sibling opens another tab that shares p's browser context (the same
// cookie, so the same session). With background, it opens in p's window
// and comes to the front, so that p's page is hidden; otherwise it gets a
// window of its own and both stay visible.
func (p *tab) sibling(t *testing.T, name string, background bool) *tab {
	t.Helper()
	if background {
		// A tab that shares a window opens in the active one.
		p.bringToFront()
	}
	return openTab(t, p.ctx, name, chromedp.WithNewWindow(!background))
}

func openTab(t *testing.T, parent context.Context, name string, opts ...chromedp.ContextOption) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(parent, opts...)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("%s: open tab: %v", name, err)
	}
	return &tab{t: t, name: name, ctx: ctx}
}

// do runs actions, failing the test on error.
func (p *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, apptest.WaitLimit)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
}

// eval evaluates a JavaScript expression, failing the test on error.
func eval[T any](p *tab, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, apptest.WaitLimit)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("%s: evaluate %s: %v", p.name, expr, err)
	}
	return v
}

// try evaluates expr with a short timeout and reports whether it could:
// while the page navigates there may be no document to ask.
func try[T any](p *tab, expr string) (T, bool) {
	ctx, cancel := context.WithTimeout(p.ctx, time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	return v, err == nil
}

// path is the page's location.pathname, "" while it cannot be read.
func (p *tab) path() string {
	v, _ := try[string](p, "location.pathname")
	return v
}

// navigate loads url and waits for its load event.
func (p *tab) navigate(url string) {
	p.t.Helper()
	p.do(chromedp.Navigate(url))
}

// text is an element's text once it is visible.
func (p *tab) text(id string) string {
	p.t.Helper()
	p.do(chromedp.WaitVisible(chromedp.ID(id)))
	ctx, cancel := context.WithTimeout(p.ctx, apptest.WaitLimit)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID(id)))
	if err != nil {
		p.t.Fatalf("%s: text of #%s: %v", p.name, id, err)
	}
	return s
}

// instant is when something happened, as far as the test can tell: not
// before from and not after to. A zero from means no earlier bound.
type instant struct{ from, to time.Time }

func (i instant) String() string {
	if i.from.IsZero() {
		return "at the latest " + i.to.Format("15:04:05.000")
	}
	return fmt.Sprintf("%s+%v", i.from.Format("15:04:05.000"), i.to.Sub(i.from).Round(time.Millisecond))
}

// timed runs f and returns the instant around it.
func timed(f func()) instant {
	from := time.Now()
	f()
	return instant{from: from, to: time.Now()}
}

// pressKey sends one real key press (keydown, keyup) to the focused
// element and returns the instant of the key: the DevTools call answers
// once the page has handled the event.
func (p *tab) pressKey() instant {
	p.t.Helper()
	return timed(func() { p.do(chromedp.KeyEvent("k")) })
}

// keepTyping presses a key every interval in its own goroutine (the test
// goes on meanwhile) until the returned stop is called. A key in flight
// completes first, so stop returns the instant of the last key the page
// got, and the first error if a key failed.
func (p *tab) keepTyping(every time.Duration) (stop func() (instant, error)) {
	quit := make(chan struct{})
	type result struct {
		last instant
		err  error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			ctx, cancel := context.WithTimeout(p.ctx, apptest.WaitLimit)
			from := time.Now()
			err := chromedp.Do(ctx, chromedp.KeyEvent("k"))
			cancel()
			if err != nil {
				r.err = err
				done <- r
				return
			}
			r.last = instant{from: from, to: time.Now()}
			select {
			case <-quit:
				done <- r
				return
			case <-tick.C:
			}
		}
	}()
	return func() (instant, error) {
		close(quit)
		r := <-done
		return r.last, r.err
	}
}

// pageClock ties a page's clock (performance.now(), in ms) to the test's:
// the page read ms somewhere between from and to. Both are the machine's
// monotonic clock, so they do not drift apart.
type pageClock struct {
	ms       float64
	from, to time.Time
}

// clock reads the page's clock a few times and keeps the tightest reading.
func (p *tab) clock() pageClock {
	p.t.Helper()
	var best pageClock
	for i := range 5 {
		from := time.Now()
		ms := eval[float64](p, "performance.now()")
		c := pageClock{ms: ms, from: from, to: time.Now()}
		if i == 0 || c.to.Sub(c.from) < best.to.Sub(best.from) {
			best = c
		}
	}
	return best
}

// at is the instant on the test's clock when the page's clock read ms.
func (c pageClock) at(ms float64) instant {
	d := time.Duration((ms - c.ms) * float64(time.Millisecond))
	return instant{from: c.from.Add(d), to: c.to.Add(d)}
}

// signIn opens /login and signs user in with the demo password, through
// the form, and waits for the POS (or next) page to load.
func (p *tab) signIn(base, user, pass string) {
	p.t.Helper()
	p.navigate(base + "/login")
	p.signInHere(user, pass, "/pos")
}

// signInHere signs in through the login form already on screen and waits
// until the page is want.
func (p *tab) signInHere(user, pass, want string) {
	p.t.Helper()
	p.do(
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), user),
		chromedp.SendKeys(chromedp.ID("password"), pass),
		chromedp.Click(chromedp.ID("signin")),
	)
	p.waitPath(want)
	p.do(chromedp.WaitReady(chromedp.CSS("body")))
}

// waitPath polls until location.pathname is want.
func (p *tab) waitPath(want string) {
	p.t.Helper()
	p.waitTrue(`location.pathname === `+jsString(want), "location.pathname "+jsString(want))
}

// waitGuard polls until the guard reports its socket connected and a
// remaining time heard from the server.
func (p *tab) waitGuard() {
	p.t.Helper()
	p.waitTrue(`(() => { const s = globalThis.__idleguard && __idleguard.state;
		return !!(s && s.connected && s.remaining_ms !== null); })()`, "the guard connected")
}

// startExpiration is the Expiration Time a session starts under when a
// test wants a shorter one (shortenExpiration): long enough for a loaded
// machine to start the page's guard (seconds of loading and compiling the
// module), short enough that the page reports input every second.
const startExpiration = 10 * time.Second

// shortenExpiration sets the Expiration Time to seconds once p's guard is
// connected, just after the server has heard a key from p. Set before the
// sign-in, a short Expiration Time races the guard's start: input the page
// reports after the deadline is refused, however recent. Set while the
// session is idle longer than it, it would sign the session out. The
// session must have started under startExpiration.
func (p *tab) shortenExpiration(base string, seconds int) {
	p.t.Helper()
	p.waitGuard()
	admin, _ := apptest.MustLogin(p.t, base, "admin", "demo")
	key := p.pressKey()
	for {
		rem, asked := p.serverRemaining()
		// Counted from the key (or later input), the remaining time is at
		// least this (5 ms for whole-millisecond rounding).
		if rem >= startExpiration-asked.to.Sub(key.from)-5*time.Millisecond {
			changed := timed(func() { apptest.MustSetExpiration(p.t, base, admin, seconds) })
			// The server was idle for at most startExpiration-rem when it
			// answered, no earlier than asked.from.
			idle := startExpiration - rem + time.Millisecond + changed.to.Sub(asked.from)
			if idle >= time.Duration(seconds)*time.Second {
				p.t.Fatalf("%s: the Expiration Time of %d s may have found the session idle for %v: the machine was too slow for this test",
					p.name, seconds, idle.Round(time.Millisecond))
			}
			p.waitTrue(`__idleguard.state.expiration_seconds === `+strconv.Itoa(seconds), "the new Expiration Time")
			return
		}
		if time.Since(key.to) > startExpiration/2 {
			p.t.Fatalf("%s: the server's remaining time is %v %v after the key: the key was not reported", p.name, rem, time.Since(key.to).Round(time.Millisecond))
		}
		time.Sleep(e2ePoll)
	}
}

// waitTrue polls a boolean expression until it is true.
func (p *tab) waitTrue(expr, what string) {
	p.t.Helper()
	end := time.Now().Add(apptest.WaitLimit)
	for {
		if ok, _ := try[bool](p, expr); ok {
			return
		}
		if time.Now().After(end) {
			p.t.Fatalf("%s: waited %v for %s (on %q)", p.name, apptest.WaitLimit, what, p.path())
		}
		time.Sleep(e2ePoll)
	}
}

// guardState is __idleguard.state, the last idleguard:state detail.
type guardState struct {
	RemainingMs       *int64 `json:"remaining_ms"`
	ExpirationSeconds int64  `json:"expiration_seconds"`
	WarningMs         int64  `json:"warning_ms"`
	Connected         bool   `json:"connected"`
}

func (p *tab) state() guardState {
	p.t.Helper()
	return eval[guardState](p, `globalThis.__idleguard && __idleguard.state || {}`)
}

// landing is when a tab reached /login, and the address it landed on.
type landing struct {
	at   instant
	href string
}

// waitSignedOut polls every tab at once, each every e2ePoll, until each
// shows /login, and returns when each got there: after the start of the
// last poll that saw it elsewhere (zero if none did) and before the end of
// the first that saw /login. Polling the tabs together keeps one tab's
// slow answer from widening another's landing. It fails the test if a tab
// is not there apptest.WaitLimit after due, when the sign-out is due.
func waitSignedOut(t *testing.T, due time.Time, tabs ...*tab) []landing {
	t.Helper()
	end := due.Add(apptest.WaitLimit)
	got := make([]landing, len(tabs))
	var wg sync.WaitGroup
	for i, p := range tabs {
		wg.Go(func() { got[i] = p.watchLanding(end) })
	}
	wg.Wait()
	for i, p := range tabs {
		if got[i].href == "" {
			t.Fatalf("%s: still on %q %v after the sign-out was due, want /login", p.name, p.path(), apptest.WaitLimit)
		}
	}
	return got
}

// watchLanding is waitSignedOut for one tab, until end (href "" then). It
// runs in its own goroutine, so it reports rather than fails.
func (p *tab) watchLanding(end time.Time) landing {
	var elsewhere time.Time // the start of the last poll that saw another page
	for {
		asked := time.Now()
		href, ok := try[string](p, `location.pathname === "/login" ? location.href : ""`)
		switch {
		case ok && href != "":
			return landing{at: instant{from: elsewhere, to: time.Now()}, href: href}
		case ok:
			elsewhere = asked
		}
		// A failed poll (the page between documents) tells nothing.
		if time.Now().After(end) {
			return landing{}
		}
		time.Sleep(e2ePoll)
	}
}

// wantOnTime checks the bound: signed out no earlier than the
// Expiration Time after the last input and no later than one second after.
// It fails only a landing that breaks the bound wherever in their
// intervals the last input and the landing really were.
func wantOnTime(t *testing.T, name string, last instant, got landing, expiration time.Duration) {
	t.Helper()
	latest := got.at.to.Sub(last.from) // the longest the page can have taken
	switch {
	case latest < expiration:
		t.Errorf("%s: on /login at most %v after the last input (input %v, landing %v), want from %v",
			name, latest.Round(time.Millisecond), last, got.at, expiration)
	case !got.at.from.IsZero() && got.at.from.Sub(last.to) > expiration+time.Second:
		t.Errorf("%s: on /login at least %v after the last input (input %v, landing %v), want within %v",
			name, got.at.from.Sub(last.to).Round(time.Millisecond), last, got.at, expiration+time.Second)
	default:
		t.Logf("%s: on /login %s after the last input (Expiration Time %v)", name, spread(last, got.at), expiration)
	}
}

// spread is how long from a to b, from the least to the most the two
// intervals allow, for logs: "3.05s-3.31s".
func spread(a, b instant) string {
	most := b.to.Sub(a.from).Round(time.Millisecond)
	if b.from.IsZero() {
		return "up to " + most.String()
	}
	return b.from.Sub(a.to).Round(time.Millisecond).String() + "-" + most.String()
}

// bringToFront makes p the active tab of its window.
func (p *tab) bringToFront() {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, apptest.WaitLimit)
	defer cancel()
	if _, err := chromedp.Call(ctx, page.BringToFront, cdp.Empty{}); err != nil {
		p.t.Fatalf("%s: bring to front: %v", p.name, err)
	}
}

// retype replaces an input's value with text, typing as a person would:
// click into it, End, Backspace over what is there, then the new text.
func (p *tab) retype(id, text string) {
	p.t.Helper()
	p.do(chromedp.WaitVisible(chromedp.ID(id)))
	ctx, cancel := context.WithTimeout(p.ctx, apptest.WaitLimit)
	defer cancel()
	old, err := chromedp.Run(ctx, chromedp.Value(chromedp.ID(id)))
	if err != nil {
		p.t.Fatalf("%s: value of #%s: %v", p.name, id, err)
	}
	p.do(
		chromedp.Click(chromedp.ID(id)),
		chromedp.KeyEvent(kb.End),
		chromedp.KeyEvent(strings.Repeat(kb.Backspace, len([]rune(old)))),
		chromedp.SendKeys(chromedp.ID(id), text),
	)
	if got := eval[string](p, `document.getElementById(`+jsString(id)+`).value`); got != text {
		p.t.Fatalf("%s: #%s holds %q after typing, want %q", p.name, id, got, text)
	}
}

// clickNow is a real mouse click on the middle of the element with that
// id, found first, and returns the instant of the click: only the press
// and the release, not the finding.
func (p *tab) clickNow(id string) instant {
	p.t.Helper()
	type point struct {
		X float64 `json:"x"`
		Y float64 `json:"y"`
	}
	at := eval[point](p, `(() => { const r = document.getElementById(`+jsString(id)+`).getBoundingClientRect();
		return {x: r.left + r.width / 2, y: r.top + r.height / 2}; })()`)
	return timed(func() { p.do(chromedp.MouseClickXY(at.X, at.Y)) })
}

// clickID is a real mouse click on the element with that id.
func clickID(id string) chromedp.Action[chromedp.Void] {
	return chromedp.Click(chromedp.ID(id))
}

// jsString is s as a JavaScript string literal.
func jsString(s string) string { return strconv.Quote(s) }
