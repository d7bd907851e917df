package api

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"idleguard/server/clock"
	"idleguard/server/hub"
	"idleguard/server/internal/storetest"
	"idleguard/server/pos"
	"idleguard/server/seclog"
	"idleguard/server/sessions"
	"idleguard/server/sqlite"
	"idleguard/server/token"
)

// These tests drive the whole HTTP surface with httptest against the real
// sessions service: a real SQLite file in a temp dir, the real hub, a fake
// clock, and a stub for the embedded pages.

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// stubPages stands in for the embedded static files: every page is its
// name and the domain's mark in a fixed body ("page pos.html of
// {{domain}}", which the server fills in), with a fixed policy; every
// other file is missing.
type stubPages struct{}

const stubCSP = "default-src 'self'; script-src 'sha256-stub'"

func (stubPages) ServeHTTP(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }
func (stubPages) Page(name string) ([]byte, bool) {
	return []byte("page " + name + " of {{domain}}"), true
}
func (stubPages) CSP(string) string { return stubCSP }

type fixture struct {
	h     http.Handler
	svc   *sessions.Service
	store *storetest.Faulty
	clock *clock.Fake
	hub   *hub.Hub
	sec   *seclog.Log

	mu     sync.Mutex
	tokens []string // every token a response carried, for the Location check
}

// newFixture serves the API over a fresh store holding, in domain default
// (the one domain of a server without a domain suffix), cashier (no
// permissions), viewer (Developer View) and admin (Developer View and
// Edit), password "demo", with an Expiration Time of 60 s and the clock at
// t0. A hub with room for two sockets a session holds the sockets.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureOf(t, template, Config{}, stubPages{})
}

// newFixtureOf is newFixture over a copy of tpl, with cfg and pages.
func newFixtureOf(t *testing.T, tpl *storetest.Template, cfg Config, pages Pages) *fixture {
	t.Helper()
	ctx := context.Background()
	db := tpl.Open(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f := &fixture{store: &storetest.Faulty{DB: db}, clock: clock.NewFake(t0)}
	f.sec = seclog.New(log, f.clock)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	tokens := token.New(key, token.Config{Issuer: token.DefaultIssuer, Audience: token.DefaultAudience, Now: f.clock.Now})
	f.hub = hub.New(log, hub.Config{MaxPerSession: 2})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		f.hub.Shutdown(ctx)
	})
	var err error
	f.svc, err = sessions.New(ctx, log, f.clock, f.store, tokens, f.hub,
		sessions.Config{MinExpirationSeconds: 1, PasswordCost: bcrypt.MinCost, Security: f.sec})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Security = f.sec
	f.h = NewServer(log, cfg, f.svc, pages)
	return f
}

// template holds newFixture's users and setting (seed), copied per test.
var template = storetest.NewTemplate(seed)

func seed(ctx context.Context, db *sqlite.DB) error {
	return seedDomain(ctx, db, pos.DefaultDomain, "demo", 60)
}

// seedDomain fills an existing domain with cashier, viewer and admin, all
// with password, in their groups, and an Expiration Time of expiration s
// set by "fixture" at t0.
func seedDomain(ctx context.Context, db *sqlite.DB, domain, password string, expiration int64) error {
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		return err
	}
	for _, g := range []pos.Group{
		{Name: "cashiers"},
		{Name: "viewers", Permissions: []pos.Permission{pos.DeveloperView}},
		{Name: "developers", Permissions: []pos.Permission{pos.DeveloperView, pos.DeveloperEdit}},
	} {
		g.Domain = domain
		if err := db.PutGroup(ctx, g); err != nil {
			return err
		}
	}
	for _, u := range []pos.User{
		{Name: "cashier", Group: "cashiers"},
		{Name: "viewer", Group: "viewers"},
		{Name: "admin", Group: "developers"},
	} {
		u.Domain, u.PasswordHash = domain, hash
		if _, err := db.AddUser(ctx, u); err != nil {
			return err
		}
	}
	return db.SaveSettings(ctx, domain, pos.Settings{ExpirationSeconds: expiration, UpdatedBy: "fixture", UpdatedAt: t0},
		pos.SettingsChange{At: t0, By: "fixture", Old: pos.DefaultExpirationSeconds, New: expiration})
}

// request builds a request to the fixture's host (example.com, as
// httptest names it, unless target is absolute or a Host header says
// otherwise); headers come in name, value pairs. A body is sent as
// JSON unless a Content-Type header says otherwise.
func request(method, target, body string, headers ...string) *http.Request {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, target, rd)
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i] == "Host" {
			r.Host = headers[i+1] // what net/http does with the header
			continue
		}
		r.Header.Set(headers[i], headers[i+1])
	}
	return r
}

// serve runs r through the handler. No answer may carry a token in its
// Location: DESIGN.md invariant 6, a token never travels in a URL.
func (f *fixture) serve(t *testing.T, r *http.Request) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, r)
	resp := rec.Result()
	t.Cleanup(func() { resp.Body.Close() })
	for _, c := range resp.Cookies() {
		if c.Value != "" {
			f.noteToken(c.Value)
		}
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		f.mu.Lock()
		seen := append([]string(nil), f.tokens...)
		f.mu.Unlock()
		for _, tok := range seen {
			if strings.Contains(loc, tok) {
				t.Errorf("%s %s: Location %q carries a token", r.Method, r.URL, loc)
			}
		}
		if strings.Contains(loc, "eyJ") {
			t.Errorf("%s %s: Location %q looks like it carries a JWT", r.Method, r.URL, loc)
		}
	}
	return resp
}

func (f *fixture) noteToken(tok string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens = append(f.tokens, tok)
}

// login signs user in through POST /api/login and returns the token from
// its body and its cookie.
func (f *fixture) login(t *testing.T, user string) (string, *http.Cookie) {
	t.Helper()
	tok, c, _ := f.loginAt(t, "example.com", user, "demo")
	return tok, c
}

// loginAt is login on host (which names the domain) with password, and
// also returns the answer's body.
func (f *fixture) loginAt(t *testing.T, host, user, password string) (string, *http.Cookie, loginResponse) {
	t.Helper()
	resp := f.serve(t, request("POST", "http://"+host+"/api/login", `{"username":"`+user+`","password":"`+password+`"}`))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login %s at %s: got %d %s, want 200", user, host, resp.StatusCode, readBody(t, resp))
	}
	var body loginResponse
	decodeJSON(t, resp, &body)
	f.noteToken(body.Token)
	c := cookie(t, resp, CookieName)
	return body.Token, c, body
}

// cookie is resp's Set-Cookie of the given name.
func cookie(t *testing.T, resp *http.Response, name string) *http.Cookie {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no %s cookie set; Set-Cookie: %q", name, resp.Header.Values("Set-Cookie"))
	return nil
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// decodeJSON reads resp's body into v, refusing fields v lacks.
func decodeJSON(t *testing.T, resp *http.Response, v any) {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type: got %q, want application/json; charset=utf-8", ct)
	}
	dec := json.NewDecoder(resp.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %T: %v", v, err)
	}
}

// apiError checks that resp is the error JSON with the given status and
// returns its detail: the one shape every error answer has.
func apiError(t *testing.T, resp *http.Response, status int) errorDetail {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status: got %d, want %d", resp.StatusCode, status)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control: got %q, want no-store", cc)
	}
	var body errorBody
	decodeJSON(t, resp, &body)
	d := body.Error
	if d.Code == "" || d.Message == "" {
		t.Errorf("error body: got %+v, want a code and a message", d)
	}
	if got := statusFor(d.Code); got != status {
		t.Errorf("error code %q: maps to %d, answered %d", d.Code, got, status)
	}
	return d
}

// getSession is GET /api/session with the given headers.
func (f *fixture) getSession(t *testing.T, headers ...string) *http.Response {
	t.Helper()
	return f.serve(t, request("GET", "/api/session", "", headers...))
}

func cookieHeader(tok string) string { return CookieName + "=" + tok }
