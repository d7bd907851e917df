package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"idleguard/server/app"
	"idleguard/server/internal/apptest"
)

// Two POS businesses on one server (-domain-suffix .localhost -demo seeds
// acme and globex, each with admin, viewer and cashier): each page names
// its domain, each host keeps its own host-only cookie, one domain's token
// is refused by the other, and an Expiration Time set in one domain
// reaches only that domain's tabs. Chromium resolves every *.localhost
// name to loopback by itself; the Go client here connects to 127.0.0.1
// and names the domain in the Host header.

// domainHost is domain's host on s: "acme.localhost:PORT".
func domainHost(t *testing.T, s *apptest.Server, domain string) string {
	t.Helper()
	u, err := url.Parse(s.Base)
	if err != nil {
		t.Fatal(err)
	}
	return domain + ".localhost:" + u.Port()
}

// hostRequest sends one request to s for host (the Host header), with the
// headers h and, unless nil, body as JSON.
func hostRequest(t *testing.T, s *apptest.Server, host, method, path string, h http.Header, body []byte) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, s.Base+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for k, v := range h {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return apptest.Do(t, req)
}

// hostLogin signs user in with the demo password on host, or fails, and
// returns the token and the answer.
func hostLogin(t *testing.T, s *apptest.Server, host, user string) (string, *http.Response) {
	t.Helper()
	login, _ := json.Marshal(map[string]string{"username": user, "password": "demo"})
	resp, body := hostRequest(t, s, host, "POST", "/api/login", nil, login)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login %s on %s: got %d %s, want 200", user, host, resp.StatusCode, body)
	}
	var out struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.Token == "" {
		t.Fatalf("login %s on %s: got %s, want a token", user, host, body)
	}
	return out.Token, resp
}

// await evaluates expr, a promise, and returns what it resolves to.
func await[T any](p *tab, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, apptest.WaitLimit)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("%s: evaluate %s: %v", p.name, expr, err)
	}
	return v
}

// domainCookie is the one idleguard_token cookie the browser would send
// to host.
func (p *tab) domainCookie(host string) *network.Cookie {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, apptest.WaitLimit)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{"http://" + host + "/"}})
	if err != nil {
		p.t.Fatalf("%s: cookies of %s: %v", p.name, host, err)
	}
	var found *network.Cookie
	for _, c := range res.Cookies {
		if c.Name != "idleguard_token" {
			continue
		}
		if found != nil {
			p.t.Fatalf("%s: two idleguard_token cookies reach %s (domains %q and %q)", p.name, host, found.Domain, c.Domain)
		}
		found = c
	}
	if found == nil {
		p.t.Fatalf("%s: no idleguard_token cookie for %s", p.name, host)
	}
	return found
}

// wantDomainShown checks that the page on screen names domain in its
// title ("<title> · <domain> · idleguard POS") and in its header.
func (p *tab) wantDomainShown(domain, title string) {
	p.t.Helper()
	if got, want := eval[string](p, `document.title`), title+" · "+domain+" · idleguard POS"; got != want {
		p.t.Errorf("%s: title on %s: got %q, want %q", p.name, p.path(), got, want)
	}
	if got := p.text("domain"); got != domain {
		p.t.Errorf("%s: the header's domain on %s: got %q, want %q", p.name, p.path(), got, domain)
	}
}

// wantSessionUser checks that GET /api/session from p's page names user of
// domain.
func (p *tab) wantSessionUser(domain, user string) {
	p.t.Helper()
	type sessionUser struct {
		User struct {
			Domain string `json:"domain"`
			Name   string `json:"name"`
		} `json:"user"`
	}
	got := await[sessionUser](p, `fetch('/api/session', {cache: 'no-store'}).then(r => r.json())`)
	if got.User.Domain != domain || got.User.Name != user {
		p.t.Errorf("%s: GET /api/session names %+v, want %s of %s", p.name, got.User, user, domain)
	}
}

// bearerStatus is the status GET /api/session gets from p's page with
// token as the bearer and no cookie.
func (p *tab) bearerStatus(token string) int {
	p.t.Helper()
	return await[int](p, `fetch('/api/session', {cache: 'no-store', credentials: 'omit',
		headers: {Authorization: 'Bearer ' + `+jsString(token)+`}}).then(r => r.status)`)
}

// recordInSession makes the page keep, in sessionStorage (which outlives
// the sign-out's navigation on this origin), the Expiration Time of every
// idleguard:state and the remaining time of every idleguard:warning it
// gets from now on.
const recordInSession = `(() => {
	const push = (key, v) => {
		const list = JSON.parse(sessionStorage.getItem(key) || '[]');
		list.push(v);
		sessionStorage.setItem(key, JSON.stringify(list));
	};
	addEventListener('idleguard:state', e => push('e2e.expirations', e.detail.expiration_seconds));
	addEventListener('idleguard:warning', e => push('e2e.warnings', e.detail.remaining_ms));
	return true;
})()`

// recorded reads what recordInSession kept under key.
func recorded(p *tab, key string) []int64 {
	p.t.Helper()
	return eval[[]int64](p, `JSON.parse(sessionStorage.getItem(`+jsString(key)+`) || '[]')`)
}

// typeHeard types text into the JWT tab's field and waits until the server
// counts the session's idle time from that typing: the page reports input
// on its own schedule (every 5 s under the default Expiration Time). It
// returns the typing's instant. A report that comes later than within
// budget of the typing is not used: it types again, so that what follows
// finds the session idle for less than budget.
func (p *tab) typeHeard(text string, expiration, budget time.Duration) instant {
	p.t.Helper()
	end := time.Now().Add(apptest.WaitLimit)
	for {
		time.Sleep(time.Second) // any input before the typing is older than this
		typed := timed(func() { p.retype("expiration-seconds", text) })
		for {
			rem, asked := p.serverRemaining()
			// Counted from the typing (or later), the remaining time is at
			// least this (5 ms for whole-millisecond rounding); counted from
			// input before the pause, a second less.
			if rem >= expiration-asked.to.Sub(typed.from)-5*time.Millisecond {
				break
			}
			if time.Now().After(end) {
				p.t.Fatalf("%s: the server's remaining time is %v %v after the typing: the typing was not reported", p.name, rem, time.Since(typed.to).Round(time.Millisecond))
			}
			time.Sleep(e2ePoll)
		}
		if time.Since(typed.from) < budget {
			return typed
		}
		if time.Now().After(end) {
			p.t.Fatalf("%s: for %v no report of the typing came within %v of it", p.name, apptest.WaitLimit, budget)
		}
	}
}

// One browser, two domains: admin signs in on acme.localhost and admin (the
// same name, another user) on globex.localhost, in two tabs that share one
// cookie jar. Each page names its domain; each host has its own host-only
// cookie, and acme's token gets 401 from globex. Acme's admin then sets the
// Expiration Time to 15 s on acme's JWT tab: acme's tab takes it, warns and
// signs out for 15 s without activity; globex's tab, open all along, keeps
// its 2 days and hears nothing of it.
func TestE2EDomainsOneBrowser(t *testing.T) {
	const (
		short   = 15 * time.Second    // acme's new Expiration Time
		initial = 172800              // both domains' Expiration Time until then (the default), seconds
		kept    = 172800*1000 - 600e3 // globex's remaining ms stays above this (10 minutes of slack)
	)
	s := apptest.Start(t, app.RunReady, "-domain-suffix", ".localhost")
	acmeHost, globexHost := domainHost(t, s, "acme"), domainHost(t, s, "globex")
	acmeBase, globexBase := "http://"+acmeHost, "http://"+globexHost
	b := newE2EBrowser(t)

	acme := b.isolatedTab(t, "acme admin")
	acme.navigate(acmeBase + "/login")
	acme.wantDomainShown("acme", "Sign in")
	acme.signInHere("admin", "demo", "/pos")
	acme.wantDomainShown("acme", "Register")

	// The second tab shares the first's browser context, so its cookie jar,
	// in a window of its own, so that neither tab is hidden.
	globex := acme.sibling(t, "globex admin", false)
	globex.navigate(globexBase + "/login")
	globex.wantDomainShown("globex", "Sign in")
	globex.signInHere("admin", "demo", "/pos")
	globex.wantDomainShown("globex", "Register")
	acme.waitGuard()
	globex.waitGuard()
	acme.wantSessionUser("acme", "admin")
	globex.wantSessionUser("globex", "admin")

	wantHostOnlyCookies(t, s, acme, acmeHost, globexHost)
	wantTokenRefusedElsewhere(t, s, acme, globex, acmeHost, globexHost)
	wantForbiddenPageNamed(t, s, globexHost, "globex")
	if t.Failed() {
		t.FailNow()
	}

	// Acme's admin opens the JWT tab and types the new time. The save
	// waits until the server has heard that typing: counted from an older
	// input, the session might be idle past 15 s already and sign out at
	// once for the setting change, not 15 s after the last input.
	acme.navigate(acmeBase + "/admin")
	acme.wantDomainShown("acme", "Developer Configuration")
	acme.waitSettingsLoaded("admin", strconv.Itoa(initial))
	acme.waitGuard()
	eval[bool](acme, recordInSession)
	eval[bool](globex, recordInSession)
	acme.typeHeard(strconv.Itoa(int(short/time.Second)), initial*time.Second, short/2)
	acme.do(clickID("save"))
	acme.waitTrue(`document.getElementById('save-status').textContent.includes('15 seconds')`, "the save confirmation")
	saved := time.Now()

	// Acme's tab follows: the new time in its state, the warning, then the
	// login page for having been idle 15 s.
	got := waitSignedOut(t, saved.Add(short), acme)[0]
	u, err := url.Parse(got.href)
	if err != nil {
		t.Fatalf("acme: landed on %q: %v", got.href, err)
	}
	if q := u.Query(); u.Host != acmeHost || q.Get("reason") != "idle" || q.Get("expiration") != "15" {
		t.Errorf("acme: landed on %q, want %s/login with reason=idle and expiration=15", got.href, acmeBase)
	}
	if text := acme.text("login-reason"); !strings.Contains(text, "after 15 seconds without activity") {
		t.Errorf("acme: #login-reason says %q, want it to name 15 seconds without activity", text)
	}
	acme.wantDomainShown("acme", "Sign in")
	if exps := recorded(acme, "e2e.expirations"); len(exps) == 0 || exps[len(exps)-1] != 15 {
		t.Errorf("acme: the Expiration Times of its states since the JWT tab opened: %v, want the last 15", exps)
	}
	if warns := recorded(acme, "e2e.warnings"); len(warns) == 0 {
		t.Errorf("acme: no warning before the sign-out")
	} else {
		for _, ms := range warns {
			if ms <= 0 || ms > short.Milliseconds()/4 {
				t.Errorf("acme: a warning with %d ms left, want within the last quarter of %v", ms, short)
			}
		}
		t.Logf("acme: warnings with %v ms left", warns)
	}

	// Globex's tab, open all along in the same browser, heard nothing of it.
	if look := eval[pageLook](globex, lookExpr); look.Path != "/pos" || look.Open {
		t.Errorf("globex: after acme's sign-out got %+v, want /pos with no warning", look)
	}
	st := globex.state()
	if !st.Connected || st.ExpirationSeconds != initial || st.RemainingMs == nil || *st.RemainingMs < kept {
		t.Errorf("globex: guard state %+v, want connected with %d s and its remaining time kept", st, initial)
	}
	for _, e := range recorded(globex, "e2e.expirations") {
		if e != initial {
			t.Errorf("globex: a state with Expiration Time %d s, want only %d s", e, initial)
		}
	}
	if warns := recorded(globex, "e2e.warnings"); len(warns) > 0 {
		t.Errorf("globex: warnings %v, want none", warns)
	}
	if rem, _ := globex.serverRemaining(); rem < kept*time.Millisecond {
		t.Errorf("globex: the server gives it %v left, want its 2 days less its idle time", rem)
	}
	type jwtSetting struct {
		ExpirationSeconds int64 `json:"expiration_seconds"`
	}
	jwt := await[jwtSetting](globex, `fetch('/api/settings/jwt', {cache: 'no-store'}).then(r => r.json())`)
	if jwt.ExpirationSeconds != initial {
		t.Errorf("globex: GET /api/settings/jwt says %d s, want %d s", jwt.ExpirationSeconds, initial)
	}
	globex.wantDomainShown("globex", "Register")
}

// wantHostOnlyCookies checks that the browser of p holds one cookie per
// host, each host-only (the server sends no Domain attribute), so that
// one domain's cookie never reaches another's host.
func wantHostOnlyCookies(t *testing.T, s *apptest.Server, p *tab, hosts ...string) {
	t.Helper()
	values := map[string]bool{}
	for _, host := range hosts {
		c := p.domainCookie(host)
		// Chromium shows a cookie set with a Domain attribute as ".host",
		// a host-only one as the bare host.
		name, _, _ := strings.Cut(host, ":")
		if c.Domain != name || !c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict {
			t.Errorf("cookie for %s: domain %q, HttpOnly %v, SameSite %q; want host-only (%q), HttpOnly, Strict",
				host, c.Domain, c.HTTPOnly, c.SameSite, name)
		}
		if values[c.Value] {
			t.Errorf("cookie for %s: the same token as another host's", host)
		}
		values[c.Value] = true
	}
	_, resp := hostLogin(t, s, hosts[len(hosts)-1], "cashier")
	for _, sc := range resp.Header.Values("Set-Cookie") {
		if strings.Contains(strings.ToLower(sc), "domain=") {
			t.Errorf("Set-Cookie %q: has a Domain attribute, want a host-only cookie", sc)
		}
	}
}

// wantTokenRefusedElsewhere checks that the token of own's session is
// refused (401) on other's host, as a bearer from other's page, as a
// cookie and on the socket, while own's host takes it.
func wantTokenRefusedElsewhere(t *testing.T, s *apptest.Server, own, other *tab, ownHost, otherHost string) {
	t.Helper()
	tok := own.domainCookie(ownHost).Value
	if got := other.bearerStatus(tok); got != http.StatusUnauthorized {
		t.Errorf("%s's token as a bearer from %s's page: got %d, want 401", own.name, other.name, got)
	}
	if got := own.bearerStatus(tok); got != http.StatusOK {
		t.Errorf("%s's token as a bearer from its own page: got %d, want 200", own.name, got)
	}
	cookie := http.Header{"Cookie": {"idleguard_token=" + tok}}
	for host, want := range map[string]int{ownHost: http.StatusOK, otherHost: http.StatusUnauthorized} {
		if resp, body := hostRequest(t, s, host, "GET", "/api/session", cookie, nil); resp.StatusCode != want {
			t.Errorf("%s's cookie sent to %s: got %d %s, want %d", own.name, host, resp.StatusCode, body, want)
		}
	}
	h := apptest.Bearer(tok)
	h.Set("Host", otherHost) // the dialer takes the Host from here
	ws, resp, err := apptest.Dialer.Dial(s.WSURL(), h)
	switch {
	case err == nil:
		ws.Close()
		t.Errorf("socket on %s with %s's token: opened, want 401", otherHost, own.name)
	case resp == nil:
		t.Errorf("socket on %s with %s's token: %v, want 401", otherHost, own.name, err)
	case resp.StatusCode != http.StatusUnauthorized:
		t.Errorf("socket on %s with %s's token: got %d, want 401", otherHost, own.name, resp.StatusCode)
	}
}

// wantForbiddenPageNamed checks that the 403 page, which a cashier gets
// for Developer Configuration, names domain.
func wantForbiddenPageNamed(t *testing.T, s *apptest.Server, host, domain string) {
	t.Helper()
	tok, _ := hostLogin(t, s, host, "cashier")
	resp, body := hostRequest(t, s, host, "GET", "/admin", apptest.Bearer(tok), nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("/admin for %s's cashier: got %d, want 403", domain, resp.StatusCode)
	}
	for _, want := range []string{"<title>Not allowed · " + domain + " · idleguard POS</title>", ">" + domain + "</span>"} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("%s's 403 page does not contain %q", domain, want)
		}
	}
}
