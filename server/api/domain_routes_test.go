package api

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"idleguard/server/internal/storetest"
	"idleguard/server/pos"
	"idleguard/server/seclog"
	"idleguard/server/sqlite"
	"idleguard/web"
)

// Hosts of the two-domain fixture (suffix .localhost).
const (
	defaultHost = "default.localhost"
	acmeHost    = "acme.localhost"
)

// twoDomains holds newFixture's domain default and a second domain, acme,
// with users of the same names whose password is "acme-demo" and an
// Expiration Time of 120 s.
var twoDomains = storetest.NewTemplate(func(ctx context.Context, db *sqlite.DB) error {
	if err := seed(ctx, db); err != nil {
		return err
	}
	if err := db.AddDomain(ctx, "acme", t0); err != nil {
		return err
	}
	return seedDomain(ctx, db, "acme", "acme-demo", 120)
})

// newDomainsFixture serves twoDomains with -domain-suffix .localhost:
// default on default.localhost, acme on acme.localhost, nothing elsewhere.
func newDomainsFixture(t *testing.T, pages Pages) *fixture {
	t.Helper()
	return newFixtureOf(t, twoDomains, Config{DomainSuffix: ".localhost"}, pages)
}

// on is target on host, for request.
func on(host, target string) string { return "http://" + host + target }

// An unknown host gets 404 before anything else runs: no sign-in, no
// token check (not even of a valid token of a served domain), no CSRF
// check, no redirect to the login page. Under /api/ it is the JSON error,
// elsewhere a plain page. The node's health answers on any host.
func TestUnknownDomain(t *testing.T) {
	f := newDomainsFixture(t, stubPages{})
	acme, _, _ := f.loginAt(t, acmeHost, "admin", "acme-demo")
	before := f.sec.Counts()
	login := `{"username":"admin","password":"acme-demo"}`
	refused := 0
	for _, host := range []string{"globex.localhost", "globex.localhost:8080", "example.com", "localhost",
		"a.acme.localhost", "acmelocalhost", "[::1]:8080", "127.0.0.1"} {
		t.Run(host, func(t *testing.T) {
			for _, tc := range []struct {
				name, method, target, body string
				headers                    []string
			}{
				{"session with another domain's token", "GET", "/api/session", "", []string{"Authorization", "Bearer " + acme}},
				{"session with its cookie", "GET", "/api/session", "", []string{"Cookie", cookieHeader(acme)}},
				{"session with a garbled token", "GET", "/api/session", "", []string{"Authorization", "Bearer x.y.z"}},
				{"session without a token", "GET", "/api/session", "", nil},
				{"settings with another domain's admin", "PUT", "/api/settings/jwt", `{"expiration_seconds":300}`, []string{"Cookie", cookieHeader(acme)}},
				{"login with another domain's password", "POST", "/api/login", login, nil},
				{"login from a foreign origin", "POST", "/api/login", login, []string{"Origin", "http://evil.example"}},
				{"logout with another domain's token", "POST", "/api/logout", "", []string{"Content-Type", "application/json", "Cookie", cookieHeader(acme)}},
				{"an unknown API", "GET", "/api/nope", "", nil},
			} {
				resp := f.serve(t, request(tc.method, on(host, tc.target), tc.body, tc.headers...))
				refused++
				d := apiError(t, resp, http.StatusNotFound)
				if d.Code != pos.ENOTFOUND || !strings.Contains(d.Message, "no POS domain here") {
					t.Errorf("%s: got %+v, want not_found saying there is no POS domain here", tc.name, d)
				}
				if c := resp.Header.Values("Set-Cookie"); len(c) != 0 {
					t.Errorf("%s: got Set-Cookie %q, want none", tc.name, c)
				}
			}
			for _, tc := range []struct {
				name, target string
				headers      []string
			}{
				{"the POS with another domain's cookie", "/pos", []string{"Cookie", cookieHeader(acme)}},
				{"the POS signed out", "/pos", nil},
				{"the admin page", "/admin", []string{"Cookie", cookieHeader(acme)}},
				{"the login page", "/login", nil},
				{"the root", "/", nil},
				{"a static file", "/idleguard.js", nil},
				{"the key set", "/.well-known/jwks.json", nil},
				{"the socket", "/ws", []string{"Cookie", cookieHeader(acme)}},
			} {
				resp := f.serve(t, request("GET", on(host, tc.target), "", tc.headers...))
				refused++
				body := readBody(t, resp)
				if resp.StatusCode != http.StatusNotFound || body != "No POS domain here: check the address.\n" {
					t.Errorf("%s: got %d %q, want 404 and the plain page", tc.name, resp.StatusCode, body)
				}
				if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
					t.Errorf("%s: Content-Type %q, want text/plain", tc.name, ct)
				}
				if loc, c := resp.Header.Get("Location"), resp.Header.Values("Set-Cookie"); loc != "" || len(c) != 0 {
					t.Errorf("%s: got Location %q and Set-Cookie %q, want neither", tc.name, loc, c)
				}
				if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
					t.Errorf("%s: X-Content-Type-Options %q, want the security headers", tc.name, got)
				}
			}
			for _, target := range []string{"/healthz", "/readyz"} {
				resp := f.serve(t, request("GET", on(host, target), ""))
				if body := readBody(t, resp); resp.StatusCode != http.StatusOK || body != "ok\n" {
					t.Errorf("%s: got %d %q, want 200 ok on any host", target, resp.StatusCode, body)
				}
			}
		})
	}

	// Nothing ran behind the 404s but the security log's line for each.
	after := f.sec.Counts()
	if got := after[string(seclog.DomainUnknown)] - before[string(seclog.DomainUnknown)]; got != uint64(refused) {
		t.Errorf("domain_unknown events: got %d, want one for each of the %d refused requests", got, refused)
	}
	for _, k := range seclog.Kinds {
		if k != seclog.DomainUnknown && after[string(k)] != before[string(k)] {
			t.Errorf("%s events: got %d more, want none: the request went past the domain check", k, after[string(k)]-before[string(k)])
		}
	}
	// acme's session, whose token and cookie the unknown hosts were shown,
	// and its setting are as they were.
	if resp := f.getSession(t, "Host", acmeHost, "Authorization", "Bearer "+acme); resp.StatusCode != http.StatusOK {
		t.Errorf("acme's session afterwards: got %d %s, want 200", resp.StatusCode, readBody(t, resp))
	}
	if got := f.expiration(t, "acme"); got != 120 {
		t.Errorf("acme's setting afterwards: got %d, want 120", got)
	}
}

// A server without a suffix serves default on every host, and nothing
// else, even a host named for another domain of the store.
func TestNoSuffixServesDefaultEverywhere(t *testing.T) {
	f := newFixtureOf(t, twoDomains, Config{}, stubPages{})
	for _, host := range []string{"example.com", acmeHost, "localhost:8080", "[::1]:8080", "127.0.0.1"} {
		_, _, body := f.loginAt(t, host, "admin", "demo")
		if body.User.Domain != pos.DefaultDomain || body.ExpiresIn != 60 {
			t.Errorf("login at %s: got %+v, want admin of default with 60 s", host, body.User)
		}
		resp := f.serve(t, request("POST", on(host, "/api/login"), `{"username":"admin","password":"acme-demo"}`))
		if d := apiError(t, resp, http.StatusUnauthorized); d.Code != pos.EUNAUTHORIZED {
			t.Errorf("acme's password at %s: got %+v, want unauthorized", host, d)
		}
	}
}

// Each domain signs in its own users with their own passwords, and its
// login answer and session name the domain.
func TestLoginNamesItsDomain(t *testing.T) {
	f := newDomainsFixture(t, stubPages{})
	for _, tc := range []struct {
		host, password, domain string
		expiration             int64
	}{
		{defaultHost, "demo", pos.DefaultDomain, 60},
		{acmeHost, "acme-demo", "acme", 120},
		{"ACME.localhost:8080", "acme-demo", "acme", 120},
	} {
		tok, _, body := f.loginAt(t, tc.host, "viewer", tc.password)
		if body.User.Domain != tc.domain || body.User.Name != "viewer" || body.ExpiresIn != tc.expiration {
			t.Errorf("login at %s: got %+v expires_in %d, want viewer of %s with %d s", tc.host, body.User, body.ExpiresIn, tc.domain, tc.expiration)
		}
		resp := f.getSession(t, "Host", tc.host, "Cookie", cookieHeader(tok))
		var s sessionResponse
		decodeJSON(t, resp, &s)
		if s.User.Domain != tc.domain || s.ExpirationSeconds != tc.expiration {
			t.Errorf("session at %s: got %+v, want viewer of %s with %d s", tc.host, s, tc.domain, tc.expiration)
		}
		if _, err := f.svc.Authenticate(context.Background(), tc.domain, tok); err != nil {
			t.Errorf("token from %s: got %v, want it to authenticate in %s", tc.host, err, tc.domain)
		}
	}
	// The same name with the other domain's password is a wrong password.
	for host, password := range map[string]string{defaultHost: "acme-demo", acmeHost: "demo"} {
		resp := f.serve(t, request("POST", on(host, "/api/login"), `{"username":"viewer","password":"`+password+`"}`))
		if d := apiError(t, resp, http.StatusUnauthorized); d.Message != "invalid username or password" {
			t.Errorf("login at %s with the other domain's password: got %+v", host, d)
		}
	}
}

// A token (or cookie) of one domain is refused by the other, even with a
// valid signature, on every route, the socket included; it changes nothing
// there and its own session lives on.
func TestTokenOfAnotherDomain(t *testing.T) {
	f := newDomainsFixture(t, stubPages{})
	acme, _, _ := f.loginAt(t, acmeHost, "admin", "acme-demo")
	def, _, _ := f.loginAt(t, defaultHost, "admin", "demo")
	for _, tc := range []struct{ from, to, tok string }{
		{"acme", defaultHost, acme},
		{"default", acmeHost, def},
	} {
		t.Run(tc.from+" at "+tc.to, func(t *testing.T) {
			before := f.sec.Counts()[string(seclog.TokenOtherDomain)]
			invalidBefore := f.sec.Counts()[string(seclog.TokenInvalid)]
			for _, h := range [][]string{{"Authorization", "Bearer " + tc.tok}, {"Cookie", cookieHeader(tc.tok)}} {
				for _, r := range []*http.Request{
					request("GET", on(tc.to, "/api/session"), "", h...),
					request("GET", on(tc.to, "/api/settings/jwt"), "", h...),
					request("GET", on(tc.to, "/api/settings/jwt/changes"), "", h...),
					request("PUT", on(tc.to, "/api/settings/jwt"), `{"expiration_seconds":300}`, h...),
					request("POST", on(tc.to, "/api/logout"), "", append([]string{"Content-Type", "application/json"}, h...)...),
					request("GET", on(tc.to, "/ws"), "", h...),
				} {
					d := apiError(t, f.serve(t, r), http.StatusUnauthorized)
					if d.Code != pos.EUNAUTHORIZED || d.Message != "invalid token" || d.Reason != "" {
						t.Errorf("%s %s with %s: got %+v, want unauthorized, invalid token, no reason", r.Method, r.URL.Path, h[0], d)
					}
				}
			}
			resp := f.serve(t, request("POST", on(tc.to, "/api/token"), "", "Content-Type", "application/json", "Authorization", "Bearer "+tc.tok))
			if d := apiError(t, resp, http.StatusUnauthorized); d.Message != "invalid token" {
				t.Errorf("POST /api/token: got %+v, want invalid token", d)
			}
			// A page sends the foreign cookie's holder to this domain's login.
			resp = f.serve(t, request("GET", on(tc.to, "/pos"), "", "Cookie", cookieHeader(tc.tok)))
			if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/login?next=%2Fpos" {
				t.Errorf("GET /pos: got %d to %q, want 303 to /login?next=%%2Fpos", resp.StatusCode, loc)
			}
			if got := f.sec.Counts()[string(seclog.TokenOtherDomain)] - before; got != 14 {
				t.Errorf("token_other_domain events: got %d, want 14: 2 ways to send it to 6 routes, POST /api/token, GET /pos", got)
			}
			if got := f.sec.Counts()[string(seclog.TokenInvalid)] - invalidBefore; got != 0 {
				t.Errorf("token_invalid events: got %d, want 0: each refusal is counted once, as token_other_domain", got)
			}
		})
	}
	// Nothing changed: both settings, both sessions.
	if a, d := f.expiration(t, "acme"), f.expiration(t, pos.DefaultDomain); a != 120 || d != 60 {
		t.Errorf("settings: got acme %d, default %d, want 120 and 60", a, d)
	}
	for host, tok := range map[string]string{acmeHost: acme, defaultHost: def} {
		if resp := f.getSession(t, "Host", host, "Cookie", cookieHeader(tok)); resp.StatusCode != http.StatusOK {
			t.Errorf("the session at its own %s: got %d %s, want 200", host, resp.StatusCode, readBody(t, resp))
		}
	}
}

// The socket upgrade takes only a token of the Host's domain; a socket
// hears its own domain's Expiration Time.
func TestSocketOfAnotherDomain(t *testing.T) {
	f := newDomainsFixture(t, stubPages{})
	srv := httptest.NewServer(f.h)
	t.Cleanup(srv.Close)
	port := srv.URL[strings.LastIndexByte(srv.URL, ':'):]
	acme, _, _ := f.loginAt(t, acmeHost, "cashier", "acme-demo")
	def, _, _ := f.loginAt(t, defaultHost, "cashier", "demo")
	// headers for an upgrade on host, as a page there sends them.
	headers := func(host, tok string) []string {
		return []string{"Host", host + port, "Origin", "http://" + host + port, "Cookie", cookieHeader(tok)}
	}
	for _, tc := range []struct {
		name    string
		headers []string
		status  int
	}{
		{"acme's cookie at default", headers(defaultHost, acme), http.StatusUnauthorized},
		{"default's cookie at acme", headers(acmeHost, def), http.StatusUnauthorized},
		{"acme's bearer token at default", []string{"Host", defaultHost + port, "Authorization", "Bearer " + acme}, http.StatusUnauthorized},
		{"acme's cookie at an unknown host", headers("globex.localhost", acme), http.StatusNotFound},
		{"acme's cookie at the bare suffix", headers("localhost", acme), http.StatusNotFound},
		{"acme's cookie at the server's address", []string{"Origin", srv.URL, "Cookie", cookieHeader(acme)}, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, status := dial(t, srv, "/ws", tc.headers...); status != tc.status {
				t.Errorf("upgrade: got %d, want %d", status, tc.status)
			}
		})
	}
	for _, tc := range []struct{ host, tok, state string }{
		{acmeHost, acme, "state remaining=120000 expiration=120 "},
		{defaultHost, def, "state remaining=60000 expiration=60 "},
	} {
		ws, status := dial(t, srv, "/ws", headers(tc.host, tc.tok)...)
		if status != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade at %s: got %d, want 101", tc.host, status)
		}
		if got := readFrame(t, ws); !strings.HasPrefix(got, tc.state) {
			t.Errorf("first frame at %s: got %q, want it to start %q", tc.host, got, tc.state)
		}
	}
}

// Each page names the domain it is served for.
func TestPagesNameTheirDomain(t *testing.T) {
	f := newDomainsFixture(t, stubPages{})
	for _, tc := range []struct {
		host, password, domain string
	}{
		{acmeHost, "acme-demo", "acme"},
		{"Acme.Localhost.:8080", "acme-demo", "acme"},
		{defaultHost, "demo", pos.DefaultDomain},
	} {
		cashier, _, _ := f.loginAt(t, tc.host, "cashier", tc.password)
		viewer, _, _ := f.loginAt(t, tc.host, "viewer", tc.password)
		for _, p := range []struct {
			target, tok string
			status      int
			page        string
		}{
			{"/login", "", http.StatusOK, "login.html"},
			{"/pos", cashier, http.StatusOK, "pos.html"},
			{"/admin", viewer, http.StatusOK, "admin.html"},
			{"/admin", cashier, http.StatusForbidden, "forbidden.html"},
		} {
			r := request("GET", on(tc.host, p.target), "")
			if p.tok != "" {
				r.Header.Set("Cookie", cookieHeader(p.tok))
			}
			resp := f.serve(t, r)
			want := "page " + p.page + " of " + tc.domain
			if body := readBody(t, resp); resp.StatusCode != p.status || body != want {
				t.Errorf("%s%s: got %d %q, want %d %q", tc.host, p.target, resp.StatusCode, body, p.status, want)
			}
		}
	}
}

// The embedded pages, served for a domain, are the pages with the domain's
// name for each {{domain}} and nothing else changed, under their own
// Content-Security-Policy.
func TestEmbeddedPagesNameTheirDomain(t *testing.T) {
	assets, err := web.NewAssets()
	if err != nil {
		t.Fatal(err)
	}
	f := newDomainsFixture(t, assets)
	cashier, _, _ := f.loginAt(t, acmeHost, "cashier", "acme-demo")
	viewer, _, _ := f.loginAt(t, acmeHost, "viewer", "acme-demo")
	for _, p := range []struct {
		target, tok string
		status      int
		page        string
	}{
		{"/login", "", http.StatusOK, "login.html"},
		{"/pos", cashier, http.StatusOK, "pos.html"},
		{"/admin", viewer, http.StatusOK, "admin.html"},
		{"/admin", cashier, http.StatusForbidden, "forbidden.html"},
	} {
		raw, ok := assets.Page(p.page)
		if !ok {
			t.Fatalf("no embedded %s", p.page)
		}
		if !bytes.Contains(raw, domainMark) {
			t.Errorf("embedded %s: no %s to fill in", p.page, domainMark)
		}
		r := request("GET", on(acmeHost, p.target), "")
		if p.tok != "" {
			r.Header.Set("Cookie", cookieHeader(p.tok))
		}
		resp := f.serve(t, r)
		body := readBody(t, resp)
		if want := strings.ReplaceAll(string(raw), string(domainMark), "acme"); resp.StatusCode != p.status || body != want {
			t.Errorf("%s: got %d and %d bytes, want %d and the page with acme for each %s", p.target, resp.StatusCode, len(body), p.status, domainMark)
		}
		if got, want := resp.Header.Get("Content-Security-Policy"), assets.CSP(p.page); got != want {
			t.Errorf("%s: Content-Security-Policy %q, want the page's own %q", p.target, got, want)
		}
	}
}

// sharedPage is a Pages whose Page hands out the same bytes every time.
type sharedPage struct{ body []byte }

func (sharedPage) ServeHTTP(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }
func (sharedPage) CSP(string) string                                { return stubCSP }
func (p sharedPage) Page(name string) ([]byte, bool) {
	if name != "page.html" {
		return nil, false
	}
	return p.body, true
}

// writePage fills in every {{domain}} with the HTML-escaped domain name,
// leaving the page it was given as it was.
func TestWritePageDomain(t *testing.T) {
	const page = `<title>Sign in · {{domain}}</title><span data-domain>{{domain}}</span>{{domain}}{{ domain }}`
	pages := sharedPage{body: []byte(page)}
	s := &server{assets: pages}
	for _, tc := range []struct{ domain, want string }{
		{"acme", `<title>Sign in · acme</title><span data-domain>acme</span>acme{{ domain }}`},
		{pos.DefaultDomain, `<title>Sign in · default</title><span data-domain>default</span>default{{ domain }}`},
		// Not a name forDomain lets through, but the page is HTML all the same.
		{`<b x="1">'&'</b>`, `<title>Sign in · &lt;b x=&#34;1&#34;&gt;&#39;&amp;&#39;&lt;/b&gt;</title>` +
			`<span data-domain>&lt;b x=&#34;1&#34;&gt;&#39;&amp;&#39;&lt;/b&gt;</span>&lt;b x=&#34;1&#34;&gt;&#39;&amp;&#39;&lt;/b&gt;{{ domain }}`},
		{"{{domain}}", `<title>Sign in · {{domain}}</title><span data-domain>{{domain}}</span>{{domain}}{{ domain }}`},
	} {
		r := httptest.NewRequest("GET", "/page", nil)
		r = r.WithContext(context.WithValue(r.Context(), domainKey{}, tc.domain))
		rec := httptest.NewRecorder()
		s.writePage(rec, r, http.StatusTeapot, "page.html")
		if rec.Code != http.StatusTeapot || rec.Body.String() != tc.want {
			t.Errorf("domain %q: got %d %q, want %d %q", tc.domain, rec.Code, rec.Body.String(), http.StatusTeapot, tc.want)
		}
		if h := rec.Header(); h.Get("Content-Type") != "text/html; charset=utf-8" || h.Get("Content-Security-Policy") != stubCSP {
			t.Errorf("domain %q: headers %v, want HTML under the page's policy", tc.domain, h)
		}
		if string(pages.body) != page {
			t.Fatalf("domain %q: the page it was given became %q", tc.domain, pages.body)
		}
	}
	rec := httptest.NewRecorder()
	s.writePage(rec, httptest.NewRequest("GET", "/", nil), http.StatusOK, "missing.html")
	if rec.Code != http.StatusNotFound {
		t.Errorf("a missing page: got %d, want 404", rec.Code)
	}
}
