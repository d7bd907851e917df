package e2e

import (
	"idleguard/server/app"
	"idleguard/server/internal/apptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The idle sign-out as a cashier lives it: typing keeps the session,
// silence brings the warning and then the login page with the reason, in
// every tab of the session, visible or not.

// typingEvery is how often a typing cashier presses a key.
const typingEvery = 250 * time.Millisecond

// pageLook is what the poll reads from a POS page in one evaluation.
type pageLook struct {
	Path      string `json:"path"`
	Open      bool   `json:"open"`      // the warning dialog is open
	Role      string `json:"role"`      // its role attribute
	Countdown string `json:"countdown"` // its countdown text
}

const lookExpr = `(() => {
	const d = document.getElementById('idleguard-warning');
	const c = document.getElementById('idleguard-countdown');
	return {path: location.pathname, open: !!(d && d.open), role: d ? d.getAttribute('role') : '',
		countdown: c ? c.textContent : ''};
})()`

// warningOpenExpr is true while the warning dialog is open.
const warningOpenExpr = `(() => { const d = document.getElementById('idleguard-warning'); return !!(d && d.open); })()`

// warningOpen reports whether the warning dialog is open in p.
func warningOpen(p *tab) bool {
	open, _ := try[bool](p, warningOpenExpr)
	return open
}

// wantPOSFor polls p for d: it must stay on /pos with no warning. On a
// failure it calls stop (ending the typing) before failing the test.
func (p *tab) wantPOSFor(d time.Duration, what string, stop func() (instant, error)) {
	p.t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(e2ePoll) {
		if look := eval[pageLook](p, lookExpr); look.Path != "/pos" || look.Open {
			stop()
			href, _ := try[string](p, "location.href")
			p.t.Fatalf("%s %s: got %+v (at %s), want /pos with no warning", p.name, what, look, href)
		}
	}
}

// wantIdleReason checks the login page's reason banner and URL after an idle
// sign-out.
func wantIdleReason(t *testing.T, p *tab, got landing, seconds string) {
	t.Helper()
	u, err := url.Parse(got.href)
	if err != nil {
		t.Fatalf("%s: landed on %q: %v", p.name, got.href, err)
	}
	if q := u.Query(); q.Get("reason") != "idle" || q.Get("expiration") != seconds {
		t.Errorf("%s: landed on %q, want reason=idle and expiration=%s", p.name, got.href, seconds)
	}
	want := "after " + seconds + " seconds without activity"
	if s := p.text("login-reason"); !strings.Contains(s, want) {
		t.Errorf("%s: #login-reason says %q, want it to say %q", p.name, s, want)
	}
}

// The seed scenario: the admin sets 3 s on the JWT tab; a cashier who keeps
// typing for 6 s stays; after the last key the warning counts down and the
// page lands on /login with the reason between 3 and 4 s after that key.
func TestE2ESeedScenario(t *testing.T) {
	const n = 3 * time.Second
	s := apptest.Start(t, app.RunReady)
	b := newE2EBrowser(t)

	admin := b.isolatedTab(t, "admin")
	admin.signIn(s.Base, "admin", "demo")
	admin.navigate(s.Base + "/admin")
	admin.waitTrue(`document.getElementById('expiration-seconds').value === '172800'`, "the saved value")
	save := func(seconds, preview string) {
		t.Helper()
		admin.retype("expiration-seconds", seconds)
		if got := admin.text("expiration-preview"); got != preview {
			t.Errorf("preview: got %q, want %q", got, preview)
		}
		admin.do(clickID("save"))
		admin.waitTrue(`document.getElementById('save-status').textContent.includes('`+strings.TrimPrefix(preview, "= ")+`')`, "the save confirmation")
		t.Logf("admin: %q", admin.text("save-status"))
	}
	// First startExpiration, then 3 s once the cashier's guard is connected
	// and typing: set before the sign-in, 3 s races the module's start on a
	// busy machine (input reported after the deadline is refused), and set
	// from 2 days it may find the last report (every 5 s under 2 days) older
	// than 3 s and sign the typing cashier out.
	save(strconv.Itoa(int(startExpiration/time.Second)), "= 10 seconds")
	adminTyping := admin.keepTyping(typingEvery) // the admin, too, must not idle out meanwhile
	cashier := b.isolatedTab(t, "cashier")
	cashier.signIn(s.Base, "cashier", "demo")
	// The mouse rests mid-screen, where the warning will open: a dialog
	// appearing under a still pointer must not count as input.
	cashier.do(chromedp.MouseEvent(chromedp.MouseMoved, 640, 360))
	stop := cashier.keepTyping(typingEvery)
	cashier.waitGuard()

	if _, err := adminTyping(); err != nil {
		t.Fatalf("admin typing: %v", err)
	}
	save("3", "= 3 seconds")
	cashier.waitTrue(`__idleguard.state.expiration_seconds === 3`, "the new Expiration Time")
	cashier.wantPOSFor(2*n, "while typing", stop)
	last, err := stop()
	if err != nil {
		t.Fatalf("typing: %v", err)
	}
	if st := cashier.state(); !st.Connected || st.ExpirationSeconds != 3 {
		t.Fatalf("after %v of typing: guard state %+v, want connected with 3 s", 2*n, st)
	}

	// Silence: watch the warning come and count down, then the sign-out.
	var warned []string     // countdown texts seen while the dialog was open
	var elsewhere time.Time // the start of the last look that was not /login
	var arrived landing
	for arrived.href == "" {
		asked := time.Now()
		look, ok := try[pageLook](cashier, lookExpr)
		switch {
		case ok && look.Path == "/login":
			arrived = landing{at: instant{from: elsewhere, to: time.Now()}}
			arrived.href = eval[string](cashier, "location.href")
		case ok:
			elsewhere = asked
			if look.Open {
				if look.Role != "alertdialog" {
					t.Errorf("warning dialog: role %q, want alertdialog", look.Role)
				}
				if len(warned) == 0 || warned[len(warned)-1] != look.Countdown {
					warned = append(warned, look.Countdown)
				}
			}
		}
		if time.Since(last.to) > apptest.WaitLimit {
			t.Fatalf("still on %q %v after the last key", look.Path, apptest.WaitLimit)
		}
		if arrived.href == "" {
			time.Sleep(e2ePoll)
		}
	}
	wantOnTime(t, "cashier", last, arrived, n)
	if len(warned) == 0 {
		t.Errorf("no warning dialog was seen between the last key and the sign-out")
	}
	countdown := regexp.MustCompile(`^0:0[0-3]$`)
	for _, c := range warned {
		if !countdown.MatchString(c) {
			t.Errorf("countdown showed %q, want 0:0s within the 3 s", c)
		}
	}
	t.Logf("countdown seen: %v", warned)
	wantIdleReason(t, cashier, arrived, "3")
}

// Two tabs of one session: typing in tab A keeps tab B signed in past the
// Expiration Time; at the deadline both land on /login together.
func TestE2ETwoTabs(t *testing.T) {
	const n = 3 * time.Second
	s := apptest.Start(t, app.RunReady)
	// Set before the sign-in, not shortened once the guards are up
	// (shortenExpiration): tab B hears of A's typing only through the
	// states that token renewals bring to every tab, and the token issued
	// under the longer time is not renewed until the deadline passes its
	// exp; meanwhile B's own countdown runs out and B signs itself out.
	apptest.SetExpiration(t, s.Base, 3)
	b := newE2EBrowser(t)

	a := b.isolatedTab(t, "tab A")
	a.signIn(s.Base, "cashier", "demo")
	stop := a.keepTyping(typingEvery)
	tabB := a.sibling(t, "tab B", false)
	tabB.navigate(s.Base + "/pos")
	a.waitGuard()
	tabB.waitGuard()
	tabB.wantPOSFor(2*n, "while A types", stop)
	last, err := stop()
	if err != nil {
		t.Fatalf("typing in tab A: %v", err)
	}
	if st := tabB.state(); !st.Connected {
		t.Fatalf("tab B after %v: guard state %+v, want connected", 2*n, st)
	}

	got := waitSignedOut(t, last.to.Add(n), a, tabB)
	wantOnTime(t, "tab A", last, got[0], n)
	wantOnTime(t, "tab B", last, got[1], n)
	wantIdleReason(t, a, got[0], "3")
	wantIdleReason(t, tabB, got[1], "3")
}

// recordWarnings makes the page count the warnings it shows (each
// idleguard:warning) in window.__e2eWarnings.
const recordWarnings = `(() => {
	window.__e2eWarnings = [];
	addEventListener('idleguard:warning', e => __e2eWarnings.push(e.detail.remaining_ms));
	return true;
})()`

// "Stay signed in" in one tab's warning closes the warning in every tab
// and moves the deadline for all of them.
func TestE2EStaySignedIn(t *testing.T) {
	// Long enough that the warning (a quarter of it, 1.5 s) leaves time to
	// see it in both tabs and click.
	const n = 6 * time.Second
	s := apptest.Start(t, app.RunReady)
	apptest.SetExpiration(t, s.Base, int(startExpiration/time.Second))
	b := newE2EBrowser(t)

	a := b.isolatedTab(t, "tab A")
	a.signIn(s.Base, "cashier", "demo")
	tabB := a.sibling(t, "tab B", false)
	tabB.navigate(s.Base + "/pos")
	a.shortenExpiration(s.Base, 6)
	tabB.waitTrue(`__idleguard.state.expiration_seconds === 6`, "the new Expiration Time")
	eval[bool](a, recordWarnings)

	// Nobody touches anything: the warning shows. B's is clicked as soon as
	// the test sees it, so that the click has as much of the warning's
	// 1.5 s as the machine allows; A's is checked after, from its record.
	tabB.waitTrue(warningOpenExpr, "the warning in tab B")
	// The warning shows a quarter of n before the deadline: the old
	// deadline is no later than that from now.
	oldDeadline := time.Now().Add(n / 4)
	// The click is the last input: it happened during the DevTools calls
	// that press and release the button (its handler sends "stay" then),
	// not when they answered.
	clicked := tabB.clickNow("idleguard-stay")
	t.Logf("clicked Stay signed in %v before the old deadline", oldDeadline.Sub(clicked.to).Round(time.Millisecond))
	// The server warns every tab of the session with one frame each.
	a.waitTrue(`__e2eWarnings.length > 0`, "the warning in tab A")

	for warningOpen(a) || warningOpen(tabB) {
		if time.Since(clicked.to) > apptest.WaitLimit {
			t.Fatalf("warning still open %v after Stay signed in (A %v, B %v), want closed in both",
				apptest.WaitLimit, warningOpen(a), warningOpen(tabB))
		}
		time.Sleep(e2ePoll)
	}
	t.Logf("the warning closed in both tabs %v after the click", time.Since(clicked.to).Round(time.Millisecond))

	// Past the old deadline (and the guard's grace for the server's word):
	// both tabs are still on the POS.
	time.Sleep(time.Until(oldDeadline.Add(time.Second)))
	for _, p := range []*tab{a, tabB} {
		if look := eval[pageLook](p, lookExpr); look.Path != "/pos" || look.Open {
			t.Fatalf("%s a second after the old deadline: got %+v, want /pos with no warning", p.name, look)
		}
	}

	// The click was the last input: the new deadline counts from it.
	got := waitSignedOut(t, clicked.to.Add(n), a, tabB)
	wantOnTime(t, "tab A", clicked, got[0], n)
	wantOnTime(t, "tab B", clicked, got[1], n)
}

// A tab in the background (hidden behind another tab of its window) is
// signed out on time: the server ends the session, not the page's timers.
func TestE2EHiddenTab(t *testing.T) {
	const n = 4 * time.Second
	s := apptest.Start(t, app.RunReady)
	apptest.SetExpiration(t, s.Base, int(startExpiration/time.Second))
	b := newE2EBrowser(t)

	pos := b.isolatedTab(t, "POS tab")
	pos.signIn(s.Base, "cashier", "demo")
	pos.shortenExpiration(s.Base, 4)
	last := pos.pressKey()
	front := pos.sibling(t, "front tab", true)
	front.navigate("about:blank")
	if vis := eval[string](pos, "document.visibilityState"); vis != "hidden" {
		t.Fatalf("POS tab behind another tab: visibilityState %q, want hidden", vis)
	}
	if vis := eval[string](front, "document.visibilityState"); vis != "visible" {
		t.Errorf("front tab: visibilityState %q, want visible", vis)
	}
	got := waitSignedOut(t, last.to.Add(n), pos)
	wantOnTime(t, "hidden POS tab", last, got[0], n)
	if vis := eval[string](pos, "document.visibilityState"); vis != "hidden" {
		t.Errorf("POS tab at sign-out: visibilityState %q, want still hidden", vis)
	}
}
