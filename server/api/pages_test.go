package api

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Pages answer a signed-in user, send everyone else to the login page with
// where they were going (and why they were signed out), and never put a
// token in the address (fixture.serve checks every Location).
func TestPages(t *testing.T) {
	f := newFixture(t)
	cashier, _ := f.login(t, "cashier")
	viewer, _ := f.login(t, "viewer")
	ended, _ := f.login(t, "cashier")
	if resp := f.serve(t, request("POST", "/api/logout", "", "Content-Type", "application/json", "Cookie", cookieHeader(ended))); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: got %d", resp.StatusCode)
	}
	for _, tc := range []struct {
		name, target, tok string
		status            int
		location, body    string
	}{
		{"root", "/", "", http.StatusSeeOther, "/pos", ""},
		{"login page", "/login", "", http.StatusOK, "", "page login.html of default"},
		{"pos, signed in", "/pos", cashier, http.StatusOK, "", "page pos.html of default"},
		{"pos, not signed in", "/pos", "", http.StatusSeeOther, "/login?next=%2Fpos", ""},
		{"pos, a token in the query", "/pos?token=" + cashier, "", http.StatusSeeOther, "/login?next=%2Fpos", ""},
		{"pos, signed out", "/pos", ended, http.StatusSeeOther, "/login?next=%2Fpos&reason=signed_out", ""},
		{"pos, a garbled token", "/pos", "x.y.z", http.StatusSeeOther, "/login?next=%2Fpos", ""},
		{"admin without Developer View", "/admin", cashier, http.StatusForbidden, "", "page forbidden.html of default"},
		{"admin with Developer View", "/admin", viewer, http.StatusOK, "", "page admin.html of default"},
		{"admin, not signed in", "/admin", "", http.StatusSeeOther, "/login?next=%2Fadmin", ""},
		{"a static file the pages lack", "/favicon.ico", "", http.StatusNotFound, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := request("GET", tc.target, "")
			if tc.tok != "" {
				r.Header.Set("Cookie", cookieHeader(tc.tok))
			}
			resp := f.serve(t, r)
			if resp.StatusCode != tc.status {
				t.Fatalf("status: got %d, want %d", resp.StatusCode, tc.status)
			}
			if got := resp.Header.Get("Location"); got != tc.location {
				t.Errorf("Location: got %q, want %q", got, tc.location)
			}
			if tc.body == "" {
				return
			}
			if got := readBody(t, resp); got != tc.body {
				t.Errorf("body: got %q, want %q", got, tc.body)
			}
			if csp, cc := resp.Header.Get("Content-Security-Policy"), resp.Header.Get("Cache-Control"); csp != stubCSP || cc != "no-store" {
				t.Errorf("page headers: got CSP %q Cache-Control %q, want the page's own policy and no-store", csp, cc)
			}
		})
	}
}

// API answers carry the strict defaults, and an unknown API is a JSON 404.
func TestAPIHeadersAndNotFound(t *testing.T) {
	f := newFixture(t)
	for _, target := range []string{"/api/nope", "/api/login"} {
		resp := f.serve(t, request("GET", target, ""))
		d := apiError(t, resp, http.StatusNotFound)
		if !strings.Contains(d.Message, "GET "+target) {
			t.Errorf("%s: got %q, want it to name the request", target, d.Message)
		}
		for name, want := range map[string]string{
			"X-Content-Type-Options":  "nosniff",
			"X-Frame-Options":         "DENY",
			"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
			"Referrer-Policy":         "same-origin",
		} {
			if got := resp.Header.Get(name); got != want {
				t.Errorf("%s %s: got %q, want %q", target, name, got, want)
			}
		}
	}
	if resp := f.serve(t, request("GET", "/healthz", "")); resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz: got %d, want 200", resp.StatusCode)
	}
	resp := f.serve(t, request("GET", "/.well-known/jwks.json", ""))
	if body := readBody(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(body, `"alg":"EdDSA"`) {
		t.Errorf("JWKS: got %d %s, want the EdDSA key", resp.StatusCode, body)
	}
}

// /readyz is 503 while the store refuses writes and ok again once the
// write-behind loop has written what was pending.
func TestReadyz(t *testing.T) {
	f := newFixture(t)
	ready := func() (int, string) {
		resp := f.serve(t, request("GET", "/readyz", ""))
		return resp.StatusCode, readBody(t, resp)
	}
	if status, body := ready(); status != http.StatusOK || body != "ok\n" {
		t.Fatalf("/readyz: got %d %q, want 200 ok", status, body)
	}
	tok, _ := f.login(t, "cashier")
	f.store.Failing.Store(true)
	f.serve(t, request("POST", "/api/logout", "", "Content-Type", "application/json", "Cookie", cookieHeader(tok)))
	if status, body := ready(); status != http.StatusServiceUnavailable || !strings.HasPrefix(body, "store failing since ") {
		t.Fatalf("/readyz with a failing store: got %d %q, want 503 saying since when", status, body)
	}

	f.store.Failing.Store(false)
	before := f.clock.Pending()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.svc.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after its context was cancelled")
		}
	}()
	waitFor(t, "Run's tickers", func() bool { return f.clock.Pending() >= before+4 })
	f.clock.Advance(time.Second) // a flush: the pending sign-out is written
	waitFor(t, "/readyz to recover", func() bool { status, _ := ready(); return status == http.StatusOK })
}

// waitFor polls cond until it holds, for at most 5 s: a guard against
// hanging on the Run goroutine, not a speed claim.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 5s for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
