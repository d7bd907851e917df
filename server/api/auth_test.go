package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"idleguard/server/pos"
	"idleguard/server/protocol"
	"idleguard/server/token"
)

func TestLogin(t *testing.T) {
	for _, tc := range []struct {
		name, target, cookie string
		secure               bool
	}{
		{"plain http", "/api/login", CookieName, false},
		{"https", "https://example.com/api/login", SecureCookieName, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			resp := f.serve(t, request("POST", tc.target, `{"username":"cashier","password":"demo"}`))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status: got %d %s, want 200", resp.StatusCode, readBody(t, resp))
			}
			var body loginResponse
			decodeJSON(t, resp, &body)
			if body.ExpiresIn != 60 || body.User.Domain != pos.DefaultDomain || body.User.Name != "cashier" || body.User.Group != "cashiers" ||
				body.User.Permissions == nil || len(body.User.Permissions) != 0 {
				t.Errorf("body: got %+v, want cashier of cashiers in domain default, no permissions, expires_in 60", body)
			}
			c := cookie(t, resp, tc.cookie)
			if c.Value != body.Token || c.Path != "/" || c.Domain != "" || !c.HttpOnly ||
				c.SameSite != http.SameSiteStrictMode || c.Secure != tc.secure ||
				c.MaxAge != pos.MaxExpirationSeconds {
				t.Errorf("cookie: got %+v, want the token, Path=/, no Domain, HttpOnly, SameSite=Strict, Secure=%v, Max-Age=%d",
					c, tc.secure, pos.MaxExpirationSeconds)
			}
			hsts := resp.Header.Get("Strict-Transport-Security")
			if tc.secure != (hsts != "") {
				t.Errorf("Strict-Transport-Security: got %q over %s", hsts, tc.name)
			}
			if _, err := f.svc.Authenticate(context.Background(), pos.DefaultDomain, body.Token); err != nil {
				t.Errorf("the token: got %v, want it to authenticate", err)
			}
		})
	}
}

// A wrong password and a name nobody has get the same answer, word for
// word, and no cookie.
func TestLoginRefused(t *testing.T) {
	f := newFixture(t)
	var first string
	for _, body := range []string{
		`{"username":"cashier","password":"wrong"}`,
		`{"username":"nobody","password":"demo"}`,
		`{"username":"CASHIER","password":"Demo"}`,
	} {
		resp := f.serve(t, request("POST", "/api/login", body))
		if len(resp.Cookies()) != 0 {
			t.Errorf("%s: got cookies %v, want none", body, resp.Cookies())
		}
		raw := readBody(t, resp)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s: got %d %s, want 401", body, resp.StatusCode, raw)
		}
		if first == "" {
			first = raw
			if want := `{"error":{"code":"unauthorized","message":"invalid username or password"}}` + "\n"; raw != want {
				t.Errorf("body: got %q, want %q", raw, want)
			}
		} else if raw != first {
			t.Errorf("%s: got %q, want the same answer as for a wrong password, %q", body, raw, first)
		}
	}
}

func TestLoginBadBody(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name, body, contentType, field string
	}{
		{"not JSON content", `{"username":"cashier","password":"demo"}`, "text/plain", "body"},
		{"a form", `username=cashier&password=demo`, "application/x-www-form-urlencoded", "body"},
		{"malformed", `{"username":"cashier","password":"demo"`, "", "body"},
		{"unknown field", `{"username":"cashier","password":"demo","remember":true}`, "", "body"},
		{"a key in another case", `{"Username":"cashier","password":"demo"}`, "", "body"},
		{"a repeated key", `{"username":"x","username":"cashier","password":"demo"}`, "", "username"},
		{"something after the object", `{"username":"cashier","password":"demo"} {}`, "", "body"},
		{"a number for a name", `{"username":7,"password":"demo"}`, "", "username"},
		{"no username", `{"password":"demo"}`, "", "username"},
		{"a blank username", `{"username":"  ","password":"demo"}`, "", "username"},
		{"no password", `{"username":"cashier"}`, "", "password"},
		{"a long username", `{"username":"` + strings.Repeat("u", 129) + `","password":"demo"}`, "", "username"},
		{"a password past bcrypt's 72 bytes", `{"username":"cashier","password":"` + strings.Repeat("p", 73) + `"}`, "", "password"},
		{"a body over 4 KiB", `{"username":"cashier","password":"demo","x":"` + strings.Repeat("x", 5000) + `"}`, "", "body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := request("POST", "/api/login", tc.body)
			if tc.contentType != "" {
				r.Header.Set("Content-Type", tc.contentType)
			}
			resp := f.serve(t, r)
			d := apiError(t, resp, http.StatusBadRequest)
			if d.Code != pos.EINVALID || d.Field != tc.field {
				t.Errorf("error: got %+v, want invalid naming %q", d, tc.field)
			}
			if len(resp.Cookies()) != 0 {
				t.Errorf("cookies: got %v, want none", resp.Cookies())
			}
		})
	}
}

// Repeated failures from one address are answered 429 with Retry-After;
// once that has passed, the right password gets in.
func TestLoginThrottled(t *testing.T) {
	f := newFixture(t)
	wrong := `{"username":"cashier","password":"wrong"}`
	failures := 0
	var resp *http.Response
	for {
		resp = f.serve(t, request("POST", "/api/login", wrong))
		if resp.StatusCode != http.StatusUnauthorized {
			break
		}
		if failures++; failures > 30 {
			t.Fatal("30 failed sign-ins and never throttled")
		}
	}
	if failures < 5 {
		t.Errorf("throttled after %d failures, want at least 5 free", failures)
	}
	d := apiError(t, resp, http.StatusTooManyRequests)
	if d.Code != pos.ETOOMANY {
		t.Errorf("code: got %q, want %q", d.Code, pos.ETOOMANY)
	}
	wait, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || wait < 1 {
		t.Fatalf("Retry-After: got %q, want whole seconds", resp.Header.Get("Retry-After"))
	}
	if !strings.Contains(d.Message, "try again in "+strconv.Itoa(wait)+" s") {
		t.Errorf("message: got %q, want it to say the Retry-After, %d s", d.Message, wait)
	}

	right := `{"username":"cashier","password":"demo"}`
	apiError(t, f.serve(t, request("POST", "/api/login", right)), http.StatusTooManyRequests)
	f.clock.Advance(time.Duration(wait) * time.Second)
	if resp := f.serve(t, request("POST", "/api/login", right)); resp.StatusCode != http.StatusOK {
		t.Errorf("after Retry-After: got %d, want 200", resp.StatusCode)
	}
}

func TestSessionAuthentication(t *testing.T) {
	f := newFixture(t)
	tok, _ := f.login(t, "cashier")
	other, _ := f.login(t, "viewer")
	for _, tc := range []struct {
		name    string
		headers []string
	}{
		{"Bearer", []string{"Authorization", "Bearer " + tok}},
		{"bearer", []string{"Authorization", "bearer " + tok}},
		{"BEARER", []string{"Authorization", "BEARER " + tok}},
		{"cookie", []string{"Cookie", cookieHeader(tok)}},
		{"cookie among others", []string{"Cookie", "theme=dark; " + cookieHeader(tok) + "; lang=en"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := f.getSession(t, tc.headers...)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status: got %d %s, want 200", resp.StatusCode, readBody(t, resp))
			}
			var body sessionResponse
			decodeJSON(t, resp, &body)
			if body.User.Domain != pos.DefaultDomain || body.User.Name != "cashier" || body.RemainingMs != 60000 || body.ExpirationSeconds != 60 || body.WarningSeconds != 15 {
				t.Errorf("body: got %+v, want cashier of default with 60000 ms of 60 s, warning 15 s", body)
			}
		})
	}
	for _, tc := range []struct {
		name, target string
		headers      []string
		message      string
	}{
		{"no token", "/api/session", nil, "sign in first"},
		{"Basic beside a good cookie", "/api/session",
			[]string{"Authorization", "Basic Y2FzaGllcjpkZW1v", "Cookie", cookieHeader(tok)}, "sign in first"},
		{"a token in the query", "/api/session?token=" + tok, nil, "sign in first"},
		{"a token as access_token", "/api/session?access_token=" + tok, nil, "sign in first"},
		{"two cookies", "/api/session", []string{"Cookie", cookieHeader(tok) + "; " + cookieHeader(other)}, "more than one idleguard cookie"},
		{"the same cookie twice", "/api/session", []string{"Cookie", cookieHeader(tok) + "; " + cookieHeader(tok)}, "more than one idleguard cookie"},
		{"a garbled token", "/api/session", []string{"Authorization", "Bearer " + tok[:len(tok)-4] + "AAAA"}, "invalid token"},
		{"the secure cookie over http", "/api/session", []string{"Cookie", SecureCookieName + "=" + tok}, "sign in first"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := apiError(t, f.serve(t, request("GET", tc.target, "", tc.headers...)), http.StatusUnauthorized)
			if d.Code != pos.EUNAUTHORIZED || !strings.Contains(d.Message, tc.message) || d.Reason != "" {
				t.Errorf("error: got %+v, want unauthorized saying %q", d, tc.message)
			}
		})
	}
}

// A token whose exp passed while its session lived on (a raised setting
// moved the deadline) is accepted; from the cookie it is replaced.
func TestExpiredTokenOfLiveSession(t *testing.T) {
	f := newFixture(t)
	tok, _ := f.login(t, "cashier")
	admin, _ := f.login(t, "admin")
	if resp := f.serve(t, request("PUT", "/api/settings/jwt", `{"expiration_seconds":120}`, "Authorization", "Bearer "+admin)); resp.StatusCode != http.StatusOK {
		t.Fatalf("raise the setting: got %d %s", resp.StatusCode, readBody(t, resp))
	}
	// exp was t0+60 s (accepted until Leeway after it); the session ends
	// at t0+120 s.
	f.clock.Advance(60*time.Second + token.Leeway + 5*time.Second)

	resp := f.getSession(t, "Authorization", "Bearer "+tok)
	if resp.StatusCode != http.StatusOK || len(resp.Cookies()) != 0 {
		t.Errorf("by header: got %d with cookies %v, want 200 and no cookie", resp.StatusCode, resp.Cookies())
	}
	resp = f.getSession(t, "Cookie", cookieHeader(tok))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("by cookie: got %d %s, want 200", resp.StatusCode, readBody(t, resp))
	}
	var body sessionResponse
	decodeJSON(t, resp, &body)
	if want := (60*time.Second - token.Leeway - 5*time.Second).Milliseconds(); body.RemainingMs != want {
		t.Errorf("remaining: got %d ms, want %d", body.RemainingMs, want)
	}
	fresh := cookie(t, resp, CookieName).Value
	if fresh == tok {
		t.Fatal("the cookie kept the expired token, want a fresh one")
	}
	p, err := f.svc.Authenticate(context.Background(), pos.DefaultDomain, fresh)
	if err != nil || p.Expired {
		t.Errorf("the fresh token: got expired=%v err=%v, want valid", p.Expired, err)
	}
}

// POST /api/token moves a token renewed over the socket into the cookie.
func TestTokenCookie(t *testing.T) {
	f := newFixture(t)
	tok, _ := f.login(t, "cashier")
	resp := f.serve(t, request("POST", "/api/token", "", "Content-Type", "application/json", "Authorization", "Bearer "+tok))
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("status: got %d %s, want 204", resp.StatusCode, readBody(t, resp))
	}
	if c := cookie(t, resp, CookieName); c.Value != tok || !c.HttpOnly {
		t.Errorf("cookie: got %+v, want the token, HttpOnly", c)
	}
	apiError(t, f.serve(t, request("POST", "/api/token", "", "Content-Type", "application/json", "Cookie", cookieHeader(tok))), http.StatusUnauthorized)
	apiError(t, f.serve(t, request("POST", "/api/token", "", "Authorization", "Bearer "+tok)), http.StatusBadRequest)
}

func TestLogout(t *testing.T) {
	for _, tc := range []struct {
		name    string
		failing bool
	}{
		{"", false},
		{"while the store fails", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tok, _ := f.login(t, "cashier")
			keep, _ := f.login(t, "cashier")
			f.store.Failing.Store(tc.failing)
			resp := f.serve(t, request("POST", "/api/logout", "", "Content-Type", "application/json", "Cookie", cookieHeader(tok)))
			if resp.StatusCode != http.StatusNoContent {
				t.Fatalf("status: got %d %s, want 204", resp.StatusCode, readBody(t, resp))
			}
			c := cookie(t, resp, CookieName)
			if c.Value != "" || c.MaxAge >= 0 || c.Path != "/" || !c.HttpOnly {
				t.Errorf("cookie: got %+v, want it cleared (empty, Max-Age=0, Path=/)", c)
			}
			d := apiError(t, f.getSession(t, "Cookie", cookieHeader(tok)), http.StatusUnauthorized)
			if d.Reason != protocol.ReasonSignedOut.String() {
				t.Errorf("after sign-out: got %+v, want reason signed_out", d)
			}
			if resp := f.getSession(t, "Cookie", cookieHeader(keep)); resp.StatusCode != http.StatusOK {
				t.Errorf("the user's other session: got %d, want 200", resp.StatusCode)
			}
		})
	}
}

// Every state-changing request must come from this origin and say JSON.
func TestCrossSiteRequestsRefused(t *testing.T) {
	f := newFixture(t)
	tok, _ := f.login(t, "cashier")
	admin, _ := f.login(t, "admin")
	login := `{"username":"cashier","password":"demo"}`
	for _, tc := range []struct {
		name, method, target, body string
		headers                    []string
		status                     int
	}{
		{"login from another site", "POST", "/api/login", login, []string{"Origin", "http://evil.example"}, http.StatusForbidden},
		{"login from another port", "POST", "/api/login", login, []string{"Origin", "http://example.com:8080"}, http.StatusForbidden},
		{"login from an opaque origin", "POST", "/api/login", login, []string{"Origin", "null"}, http.StatusForbidden},
		{"login, cross-site by Fetch Metadata", "POST", "/api/login", login, []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"login, same-site by Fetch Metadata", "POST", "/api/login", login, []string{"Sec-Fetch-Site", "same-site"}, http.StatusForbidden},
		{"login over https from the http origin", "POST", "https://example.com/api/login", login, []string{"Origin", "http://example.com"}, http.StatusForbidden},
		{"settings from another site", "PUT", "/api/settings/jwt", `{"expiration_seconds":120}`,
			[]string{"Origin", "http://evil.example", "Cookie", cookieHeader(admin)}, http.StatusForbidden},
		{"logout from another site", "POST", "/api/logout", "",
			[]string{"Origin", "http://evil.example", "Content-Type", "application/json", "Cookie", cookieHeader(tok)}, http.StatusForbidden},
		{"logout without a content type", "POST", "/api/logout", "", []string{"Cookie", cookieHeader(tok)}, http.StatusBadRequest},
		{"logout as a form", "POST", "/api/logout", "",
			[]string{"Content-Type", "application/x-www-form-urlencoded", "Cookie", cookieHeader(tok)}, http.StatusBadRequest},
		{"settings as text", "PUT", "/api/settings/jwt", `{"expiration_seconds":120}`,
			[]string{"Content-Type", "text/plain", "Cookie", cookieHeader(admin)}, http.StatusBadRequest},
		{"token cookie from another site", "POST", "/api/token", "",
			[]string{"Origin", "http://evil.example", "Content-Type", "application/json", "Authorization", "Bearer " + tok}, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := f.serve(t, request(tc.method, tc.target, tc.body, tc.headers...))
			d := apiError(t, resp, tc.status)
			if tc.status == http.StatusForbidden && d.Code != pos.EFORBIDDEN {
				t.Errorf("code: got %q, want forbidden", d.Code)
			}
			if len(resp.Cookies()) != 0 {
				t.Errorf("cookies: got %v, want none", resp.Cookies())
			}
		})
	}
	// Nothing happened: both sessions live, the setting as it was.
	for _, tk := range []string{tok, admin} {
		if resp := f.getSession(t, "Cookie", cookieHeader(tk)); resp.StatusCode != http.StatusOK {
			t.Errorf("session after refused requests: got %d, want 200", resp.StatusCode)
		}
	}
	if got := f.expiration(t, pos.DefaultDomain); got != 60 {
		t.Errorf("setting after refused requests: got %d, want 60", got)
	}
	// The page's own origin, either scheme for a plain-http server, passes.
	for _, origin := range []string{"http://example.com", "https://example.com", "HTTP://EXAMPLE.COM"} {
		if resp := f.serve(t, request("POST", "/api/login", login, "Origin", origin, "Sec-Fetch-Site", "same-origin")); resp.StatusCode != http.StatusOK {
			t.Errorf("login from %s: got %d, want 200", origin, resp.StatusCode)
		}
	}
}
