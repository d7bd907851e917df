package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"idleguard/server/app"
	"idleguard/server/internal/apptest"
	"idleguard/web"
)

// The pages' defences as a browser applies them: the sign-in redirect stays
// on this site, the Content-Security-Policy lets every page and the guard
// run and blocks anything else, and every state-changing request the pages
// and the module send is JSON (the server refuses other types, which a
// cross-site form could send).

// securityProbe runs in every document of a probed tab before the page's
// own scripts (through the DevTools protocol, so the page's CSP does not
// apply to it). It records, in sessionStorage so that the record survives
// the tab's navigations on this origin:
//
//	e2e.csp     every securitypolicyviolation: {page, directive, blocked, source, sample}
//	e2e.writes  every fetch that is not GET or HEAD: {page, method, path, type, body}
//
// and, while sessionStorage holds e2e.dropSends, swallows what the page
// sends on its WebSockets (a server that never answers "Sign out now").
const securityProbe = `(() => {
	let store;
	try { store = sessionStorage; store.getItem('e2e'); } catch (err) { return; } // about:blank
	const push = (key, v) => {
		const list = JSON.parse(store.getItem(key) || '[]');
		list.push(v);
		store.setItem(key, JSON.stringify(list));
	};
	addEventListener('securitypolicyviolation', e => push('e2e.csp', {
		page: location.pathname, directive: e.effectiveDirective, blocked: e.blockedURI,
		source: e.sourceFile + ':' + e.lineNumber, sample: e.sample
	}), true);
	const realFetch = globalThis.fetch;
	globalThis.fetch = function (input, init) {
		const method = String(init && init.method || (input && input.method) || 'GET').toUpperCase();
		if (method !== 'GET' && method !== 'HEAD') {
			push('e2e.writes', {
				page: location.pathname, method: method,
				path: new URL(String(input && input.url || input), location.href).pathname,
				type: new Headers(init && init.headers || {}).get('Content-Type'),
				body: init && typeof init.body === 'string' ? init.body : null
			});
		}
		return realFetch.apply(globalThis, arguments);
	};
	const RealWebSocket = globalThis.WebSocket;
	globalThis.WebSocket = class extends RealWebSocket {
		send(data) { if (!store.getItem('e2e.dropSends')) super.send(data); }
	};
})();`

// probe installs securityProbe in p's future documents.
func (p *tab) probe() {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, apptest.WaitLimit)
	defer cancel()
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument,
		page.AddScriptToEvaluateOnNewDocumentParams{Source: securityProbe}); err != nil {
		p.t.Fatalf("%s: install the probe: %v", p.name, err)
	}
}

// cspViolation is one securitypolicyviolation event.
type cspViolation struct {
	Page      string `json:"page"`
	Directive string `json:"directive"`
	Blocked   string `json:"blocked"`
	Source    string `json:"source"`
	Sample    string `json:"sample"`
}

func (p *tab) violations() []cspViolation {
	p.t.Helper()
	return eval[[]cspViolation](p, `JSON.parse(sessionStorage.getItem('e2e.csp') || '[]')`)
}

// wantNoViolations fails the test if any page of p's tab so far broke its
// policy.
func (p *tab) wantNoViolations(where string) {
	p.t.Helper()
	if v := p.violations(); len(v) > 0 {
		p.t.Errorf("%s on %s: %d Content-Security-Policy violations, want none: %+v", p.name, where, len(v), v)
	}
}

// waitClean polls a boolean expression until it is true, like waitTrue,
// but fails at once with the violations if the page breaks its policy
// meanwhile: a blocked script shows as what it blocked, not as a timeout.
func (p *tab) waitClean(expr, what string) {
	p.t.Helper()
	type look struct {
		OK         bool           `json:"ok"`
		Violations []cspViolation `json:"violations"`
	}
	probe := `(() => ({ok: !!(` + expr + `), violations: JSON.parse(sessionStorage.getItem('e2e.csp') || '[]')}))()`
	for end := time.Now().Add(apptest.WaitLimit); ; time.Sleep(e2ePoll) {
		l, _ := try[look](p, probe)
		if len(l.Violations) > 0 {
			p.t.Fatalf("%s: waiting for %s on %q: %d Content-Security-Policy violations: %+v", p.name, what, p.path(), len(l.Violations), l.Violations)
		}
		if l.OK {
			return
		}
		if time.Now().After(end) {
			p.t.Fatalf("%s: waited %v for %s (on %q), with no violation recorded", p.name, apptest.WaitLimit, what, p.path())
		}
	}
}

// guardConnected is waitGuard's condition.
const guardConnected = `(() => { const s = globalThis.__idleguard && __idleguard.state;
	return !!(s && s.connected && s.remaining_ms !== null); })()`

// openPage loads url and checks the answer's status and that it carries
// exactly the page's own policy.
func (p *tab) openPage(url string, status int, csp string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, apptest.WaitLimit)
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(url))
	if err != nil {
		p.t.Fatalf("%s: open %s: %v", p.name, url, err)
	}
	if resp.Status != int64(status) {
		p.t.Errorf("%s: %s answered %d, want %d", p.name, url, resp.Status, status)
	}
	var got []string
	for k, v := range resp.Headers {
		if strings.EqualFold(k, "Content-Security-Policy") {
			got = append(got, strings.Split(v.(string), "\n")...)
		}
	}
	if len(got) != 1 || got[0] != csp {
		p.t.Errorf("%s: %s has Content-Security-Policy %q, want exactly %q", p.name, url, got, csp)
	}
}

// waitFor polls a boolean expression until it is true, for up to limit.
func (p *tab) waitFor(expr, what string, limit time.Duration) {
	p.t.Helper()
	for end := time.Now().Add(limit); ; time.Sleep(e2ePoll) {
		if ok, _ := try[bool](p, expr); ok {
			return
		}
		if time.Now().After(end) {
			p.t.Fatalf("%s: waited %v for %s (on %q)", p.name, limit, what, p.path())
		}
	}
}

// Sign-in follows ?next= only to a page of this site. Each evil value is one
// a pattern on the string let through: browsers drop tab, CR and LF from a
// URL and read a backslash as a slash, so "/\t/host" is "//host", another
// site. The other site here is a real server on another port.
func TestE2ESecurityOpenRedirect(t *testing.T) {
	s := apptest.Start(t, app.RunReady)
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, `<!doctype html><title>another site</title><p id="evil">another site</p>`)
	}))
	t.Cleanup(evil.Close)
	evilHost := strings.TrimPrefix(evil.URL, "http://")
	home, err := url.Parse(s.Base)
	if err != nil {
		t.Fatal(err)
	}
	b := newE2EBrowser(t)

	users := []string{"cashier", "viewer", "admin"} // the login limit is per user
	for i, c := range []struct {
		name, next string // next as it stands in the query, percent-encoded
		user, want string // want: the path landed on, "" for any path of this site
	}{
		{name: "tab", next: "/%09/" + evilHost + "/", want: "/pos"},
		{name: "LF", next: "/%0a/" + evilHost + "/", want: "/pos"},
		{name: "CR", next: "/%0d/" + evilHost + "/", want: "/pos"},
		{name: "tab backslash", next: "/%09%5C" + evilHost + "/", want: "/pos"},
		{name: "protocol-relative", next: "//" + evilHost + "/", want: "/pos"},
		{name: "backslash", next: "/%5C" + evilHost + "/", want: "/pos"},
		{name: "absolute", next: url.QueryEscape(evil.URL + "/"), want: "/pos"},
		{name: "javascript", next: url.QueryEscape("javascript:location='" + evil.URL + "'"), want: "/pos"},
		// The path of this one is //host: taken as a path it would be
		// protocol-relative again. It must stay on this site.
		{name: "dot segment", next: "/.//" + evilHost + "/", want: ""},
		{name: "this site", next: "%2Fadmin%3Ftab%3Djwt", user: "admin", want: "/admin"},
	} {
		t.Run(c.name, func(t *testing.T) {
			user := c.user
			if user == "" {
				user = users[i%len(users)]
			}
			p := b.isolatedTab(t, c.name)
			start := s.Base + "/login?next=" + c.next
			p.navigate(start)
			p.do(
				chromedp.WaitVisible(chromedp.ID("username")),
				chromedp.SendKeys(chromedp.ID("username"), user),
				chromedp.SendKeys(chromedp.ID("password"), "demo"),
				chromedp.Click(chromedp.ID("signin")),
			)
			p.waitTrue(`location.href !== `+jsString(start)+` && document.readyState === 'complete'`, "the page after sign-in")
			type where struct{ Origin, Path, Href string }
			got := eval[where](p, `({Origin: location.origin, Path: location.pathname, Href: location.href})`)
			if got.Origin != home.Scheme+"://"+home.Host {
				t.Fatalf("next=%s: signed in and landed on %s, want this server (%s)", c.next, got.Href, s.Base)
			}
			if c.want != "" && got.Path != c.want {
				t.Errorf("next=%s: landed on %s, want %s", c.next, got.Href, c.want)
			}
			t.Logf("next=%s: %s", c.next, got.Href)
		})
	}
}

// Every page works under its Content-Security-Policy with nothing blocked:
// the login, POS, admin and 403 pages, their inline scripts, the loader,
// wasm_exec.js, the module's compilation, its fetches and its socket. Then
// the recorder proves it would have seen a violation: a script and a style
// attribute added to the page are blocked and reported.
func TestE2ESecurityCSP(t *testing.T) {
	s := apptest.Start(t, app.RunReady)
	b := newE2EBrowser(t)
	assets, err := web.NewAssets()
	if err != nil {
		t.Fatal(err)
	}

	cashier := b.isolatedTab(t, "cashier")
	cashier.probe()
	cashier.openPage(s.Base+"/login", http.StatusOK, assets.CSP("login"))
	cashier.waitClean(`!!globalThis.idleguardPages && document.activeElement === document.getElementById('username')`,
		"the login page's scripts to run")
	cashier.wantNoViolations("/login")

	cashier.signInHere("cashier", "demo", "/pos")
	cashier.openPage(s.Base+"/pos", http.StatusOK, assets.CSP("pos"))
	cashier.waitClean(guardConnected, "the guard connected")
	cashier.waitClean(`document.getElementById('pos-user').textContent.startsWith('cashier')`, "the POS script to show the user")
	cashier.do(clickID("product-latte"))
	if got := cashier.text("cart-total"); got != "$4.20" {
		t.Errorf("cart total after one latte: %q, want $4.20", got)
	}
	cashier.wantNoViolations("/pos")

	cashier.openPage(s.Base+"/admin", http.StatusForbidden, assets.CSP("forbidden"))
	cashier.waitClean(guardConnected, "the guard connected on the 403 page")
	cashier.wantNoViolations("the 403 page")

	admin := b.isolatedTab(t, "admin")
	admin.probe()
	admin.signIn(s.Base, "admin", "demo")
	admin.openPage(s.Base+"/admin", http.StatusOK, assets.CSP("admin"))
	admin.waitClean(guardConnected, "the guard connected")
	admin.waitClean(`document.getElementById('expiration-seconds').value === '172800' &&
		document.getElementById('admin-user').textContent.startsWith('admin (')`, "the JWT tab to load")
	admin.wantNoViolations("/admin")
	if t.Failed() {
		return
	}

	// The negative control, on the same page with the same recorder.
	eval[bool](admin, `(() => {
		const s = document.createElement('script');
		s.textContent = 'globalThis.e2eInlineRan = true;';
		document.body.append(s);
		return true;
	})()`)
	admin.waitTrue(`JSON.parse(sessionStorage.getItem('e2e.csp') || '[]').length > 0`, "the injected script's violation")
	time.Sleep(200 * time.Millisecond) // a second report, if any, arrives
	v := admin.violations()
	if len(v) != 1 || v[0].Directive != "script-src-elem" || v[0].Page != "/admin" {
		t.Errorf("after injecting an inline script: %+v, want one script-src-elem violation on /admin", v)
	}
	if ran, _ := try[bool](admin, `globalThis.e2eInlineRan === true`); ran {
		t.Error("the injected inline script ran: the policy does not block inline scripts")
	}
	eval[bool](admin, `(document.getElementById('save').setAttribute('style', 'outline: 3px solid red'), true)`)
	admin.waitTrue(`JSON.parse(sessionStorage.getItem('e2e.csp') || '[]').length > 1`, "the style attribute's violation")
	if v := admin.violations(); len(v) != 2 || v[1].Directive != "style-src-attr" {
		t.Errorf("after setting a style attribute: %+v, want a second violation, style-src-attr", v)
	}
}

// writeRecord is one state-changing fetch the probe saw.
type writeRecord struct {
	Page   string  `json:"page"`
	Method string  `json:"method"`
	Path   string  `json:"path"`
	Type   *string `json:"type"`
	Body   *string `json:"body"`
}

func (p *tab) writes() []writeRecord {
	p.t.Helper()
	return eval[[]writeRecord](p, `JSON.parse(sessionStorage.getItem('e2e.writes') || '[]')`)
}

// tokenCookie is the tab's idleguard_token cookie (HttpOnly: read through
// the DevTools protocol).
func (p *tab) tokenCookie(base string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, apptest.WaitLimit)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{base + "/"}})
	if err != nil {
		p.t.Fatalf("%s: cookies: %v", p.name, err)
	}
	for _, c := range res.Cookies {
		if c.Name == "idleguard_token" {
			return c.Value
		}
	}
	return ""
}

// wantJSONWrites checks that every state-changing request so far was sent
// as JSON with a JSON body, and returns them.
func (p *tab) wantJSONWrites() []writeRecord {
	p.t.Helper()
	w := p.writes()
	for _, r := range w {
		if r.Type == nil || !strings.HasPrefix(strings.ToLower(*r.Type), "application/json") {
			p.t.Errorf("%s: %s %s from %s sent Content-Type %v, want application/json", p.name, r.Method, r.Path, r.Page, deref(r.Type))
		}
		if r.Body == nil || !json.Valid([]byte(*r.Body)) {
			p.t.Errorf("%s: %s %s from %s sent body %v, want JSON", p.name, r.Method, r.Path, r.Page, deref(r.Body))
		}
	}
	return w
}

func deref(s *string) string {
	if s == nil {
		return "(none)"
	}
	return `"` + *s + `"`
}

// countWrites counts the records of method path sent from page.
func countWrites(w []writeRecord, method, path, page string) int {
	n := 0
	for _, r := range w {
		if r.Method == method && r.Path == path && r.Page == page {
			n++
		}
	}
	return n
}

// wantSignedOut checks on the server that token's session ended because
// someone signed out (not because it went idle).
func wantSignedOut(t *testing.T, base, token, what string) {
	t.Helper()
	code, body := apptest.SessionStatus(t, base, token)
	if code != http.StatusUnauthorized {
		t.Fatalf("%s: the session still answers %d %s: the server did not take the sign-out", what, code, body)
	}
	if e := apptest.DecodeError(t, body); e.Error.Reason != "signed_out" {
		t.Errorf("%s: session ended with reason %q, want signed_out", what, e.Error.Reason)
	}
}

// Every POST the pages and the module send is JSON, and the server takes
// it: the module's token renewal (POST /api/token) and its fallback sign-out
// (POST /api/logout, when the socket does not answer "Sign out now"), and
// the Sign out buttons of the POS and admin pages. The warning dialog is
// shown under the page's policy on the way.
func TestE2ESecurityStateChangesAreJSON(t *testing.T) {
	const expiration = 16 // s: the warning shows 4 s before the end
	s := apptest.Start(t, app.RunReady)
	apptest.SetExpiration(t, s.Base, expiration)
	b := newE2EBrowser(t)

	p := b.isolatedTab(t, "cashier")
	p.probe()
	p.signIn(s.Base, "cashier", "demo")
	p.waitGuard()
	first := p.tokenCookie(s.Base)
	if first == "" {
		t.Fatal("no idleguard_token cookie after sign-in")
	}

	// Typing for half the Expiration Time brings a renewed token.
	stop := p.keepTyping(typingEvery)
	p.waitFor(`JSON.parse(sessionStorage.getItem('e2e.writes') || '[]').some(r => r.path === '/api/token')`,
		"the module to renew the token", expiration*time.Second)
	if _, err := stop(); err != nil {
		t.Fatalf("typing: %v", err)
	}
	var renewed string
	for end := time.Now().Add(apptest.WaitLimit); time.Now().Before(end); time.Sleep(e2ePoll) {
		if renewed = p.tokenCookie(s.Base); renewed != first {
			break
		}
	}
	if renewed == first {
		t.Errorf("the cookie still holds the first token after POST /api/token: the server did not take it")
	}

	// Silence: the warning. The server never hears "Sign out now", so the
	// module signs out with POST /api/logout.
	p.waitFor(warningOpenExpr, "the warning", expiration*time.Second)
	p.wantNoViolations("/pos with the warning open")
	eval[bool](p, `(sessionStorage.setItem('e2e.dropSends', '1'), true)`)
	p.do(clickID("idleguard-signout"))
	p.waitPath("/login")
	eval[bool](p, `(sessionStorage.removeItem('e2e.dropSends'), true)`)
	wantSignedOut(t, s.Base, renewed, "the module's POST /api/logout")
	if w := p.writes(); countWrites(w, "POST", "/api/logout", "/pos") != 1 {
		t.Errorf("after Sign out now with no answer on the socket: writes %+v, want one POST /api/logout from /pos", w)
	}

	// The POS page's own Sign out button.
	p.signInHere("cashier", "demo", "/pos")
	p.waitGuard()
	tok := p.tokenCookie(s.Base)
	p.do(clickID("signout"))
	p.waitPath("/login")
	wantSignedOut(t, s.Base, tok, "the POS page's Sign out")
	w := p.wantJSONWrites()
	if countWrites(w, "POST", "/api/logout", "/pos") != 2 || countWrites(w, "POST", "/api/login", "/login") != 2 {
		t.Errorf("cashier tab: writes %+v, want two POST /api/login from /login and a second POST /api/logout from /pos", w)
	}

	// The admin page's.
	a := b.isolatedTab(t, "admin")
	a.probe()
	a.signIn(s.Base, "admin", "demo")
	a.navigate(s.Base + "/admin")
	a.waitGuard()
	a.waitTrue(`document.getElementById('admin-user').textContent.startsWith('admin (')`, "the admin page to know the user")
	tok = a.tokenCookie(s.Base)
	a.do(clickID("signout"))
	a.waitPath("/login")
	wantSignedOut(t, s.Base, tok, "the admin page's Sign out")
	w = a.wantJSONWrites()
	if countWrites(w, "POST", "/api/logout", "/admin") != 1 || countWrites(w, "POST", "/api/login", "/login") != 1 {
		t.Errorf("admin tab: writes %+v, want POST /api/login from /login and POST /api/logout from /admin", w)
	}
	p.wantNoViolations("the cashier's pages")
	a.wantNoViolations("the admin's pages")
}
