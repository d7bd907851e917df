package e2e

import (
	"context"
	"strconv"
	"strings"
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

// pressKey sends one real key press (keydown, keyup) to the focused
// element and returns the time just after it was dispatched.
func (p *tab) pressKey() time.Time {
	p.t.Helper()
	p.do(chromedp.KeyEvent("k"))
	return time.Now()
}

// keepTyping presses a key every interval in its own goroutine (the test
// goes on meanwhile) until the returned stop is called. A key in flight
// completes first, so stop returns the time just after the last key the
// page got, and the first error if a key failed.
func (p *tab) keepTyping(every time.Duration) (stop func() (time.Time, error)) {
	quit := make(chan struct{})
	type result struct {
		last time.Time
		err  error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			ctx, cancel := context.WithTimeout(p.ctx, apptest.WaitLimit)
			err := chromedp.Do(ctx, chromedp.KeyEvent("k"))
			cancel()
			if err != nil {
				r.err = err
				done <- r
				return
			}
			r.last = time.Now()
			select {
			case <-quit:
				done <- r
				return
			case <-tick.C:
			}
		}
	}()
	return func() (time.Time, error) {
		close(quit)
		r := <-done
		return r.last, r.err
	}
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

// landing is when a tab reached /login, measured from a start time.
type landing struct {
	after time.Duration
	href  string
}

// waitSignedOut polls the tabs every e2ePoll until each shows /login, and
// returns how long after since each got there (its href too). It fails the
// test if a tab is not there within limit.
func waitSignedOut(t *testing.T, since time.Time, limit time.Duration, tabs ...*tab) []landing {
	t.Helper()
	got := make([]landing, len(tabs))
	left := len(tabs)
	for left > 0 {
		for i, p := range tabs {
			if got[i].href != "" {
				continue
			}
			if href, ok := try[string](p, `location.pathname === "/login" ? location.href : ""`); ok && href != "" {
				got[i] = landing{after: time.Since(since), href: href}
				left--
			}
		}
		if left > 0 && time.Since(since) > limit {
			for i, p := range tabs {
				if got[i].href == "" {
					t.Fatalf("%s: still on %q %v after the last input, want /login", p.name, p.path(), time.Since(since).Round(time.Millisecond))
				}
			}
		}
		time.Sleep(e2ePoll)
	}
	return got
}

// wantOnTime checks the bound: signed out no earlier than the
// Expiration Time after the last input and no later than one second after.
func wantOnTime(t *testing.T, name string, got landing, expiration time.Duration) {
	t.Helper()
	if got.after < expiration || got.after > expiration+time.Second {
		t.Errorf("%s: on /login %v after the last input, want between %v and %v",
			name, got.after.Round(time.Millisecond), expiration, expiration+time.Second)
	} else {
		t.Logf("%s: on /login %v after the last input (Expiration Time %v)", name, got.after.Round(time.Millisecond), expiration)
	}
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

// clickID is a real mouse click on the element with that id.
func clickID(id string) chromedp.Action[chromedp.Void] {
	return chromedp.Click(chromedp.ID(id))
}

// jsString is s as a JavaScript string literal.
func jsString(s string) string { return strconv.Quote(s) }
