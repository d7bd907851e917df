package app

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"idleguard/server/internal/apptest"
	"idleguard/server/pos"
	"idleguard/server/protocol"
	"idleguard/server/sqlite"
	"idleguard/server/token"
)

// Regression tests for the findings of the outside security test (issue 7),
// against the real program. Each names the finding it guards.

// sidOf is the session id inside a token.
func sidOf(t *testing.T, tok string) string {
	t.Helper()
	sid, _ := claimsOf(t, tok)["sid"].(string)
	if sid == "" {
		t.Fatalf("token %q has no sid", tok)
	}
	return sid
}

// Finding 1 and 5: a deleted user's session must never pass to the next
// user created, and deleting or changing a user from the CLI (another
// process) ends their sessions live, in every tab.
func TestDeletedUserSessionNeverPassesOn(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t, RunReady)
	tok, cookie := apptest.MustLogin(t, s.Base, "cashier", "demo")
	ws := apptest.DialSocket(t, s, tok, "")
	apptest.ReadFrame(t, ws)

	out, err := apptest.RunCommand(t, RunReady, "", "user", "del", "cashier", "-data", s.Dir)
	if err != nil || !strings.Contains(out, "ended 1 session") {
		t.Fatalf("user del: got %q %v, want one session ended", out, err)
	}
	apptest.WantSignOut(t, ws, protocol.ReasonRevoked, protocol.CloseRevoked)
	apptest.WantEnded(t, s, tok, "revoked")

	// The next user gets a fresh id: the fired cashier's token is nobody's.
	if out, err := apptest.RunCommand(t, RunReady, "new-pass\n", "user", "add", "newadmin", "-group", "administrators", "-data", s.Dir); err != nil {
		t.Fatalf("user add: %v %s", err, out)
	}
	if code, body := apptest.SessionStatus(t, s.Base, tok); code != http.StatusUnauthorized {
		t.Fatalf("old token after a new user was added: got %d %s, want 401", code, body)
	}
	resp, _ := apptest.GetWithCookie(t, s.Base+"/admin", cookie)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("GET /admin with the old cookie: got %d, want 303 to the login page", resp.StatusCode)
	}
	newTok, _ := apptest.MustLogin(t, s.Base, "newadmin", "new-pass")
	if got := claimsOf(t, newTok)["sub"]; got != "newadmin" {
		t.Fatalf("new admin's token: sub %v, want newadmin", got)
	}
}

// Finding 5: a password or group change ends the user's sessions; `session
// revoke` ends one session, or every session of a user.
func TestCLIEndsSessionsLive(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t, RunReady)
	for _, tc := range []struct {
		name string
		args func(sid string) []string
		in   string
	}{
		{"passwd", func(string) []string { return []string{"user", "passwd", "cashier"} }, "another-pass\n"},
		{"group", func(string) []string { return []string{"user", "group", "viewer", "cashiers"} }, ""},
		{"revoke one", func(sid string) []string { return []string{"session", "revoke", sid} }, ""},
		{"revoke user", func(string) []string { return []string{"session", "revoke", "-user", "admin"} }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			user := map[string]string{"passwd": "cashier", "group": "viewer", "revoke one": "admin", "revoke user": "admin"}[tc.name]
			tok, _ := apptest.MustLogin(t, s.Base, user, "demo")
			a, b := apptest.DialSocket(t, s, tok, ""), apptest.DialSocket(t, s, tok, "")
			apptest.ReadFrame(t, a)
			apptest.ReadFrame(t, b)
			if tc.name == "revoke one" {
				out, err := apptest.RunCommand(t, RunReady, "", "session", "list", "-user", user, "-data", s.Dir)
				if err != nil || !strings.Contains(out, sidOf(t, tok)) {
					t.Fatalf("session list: got %q %v, want the session listed", out, err)
				}
			}
			out, err := apptest.RunCommand(t, RunReady, tc.in, append(tc.args(sidOf(t, tok)), "-data", s.Dir)...)
			if err != nil {
				t.Fatalf("%v: %v %s", tc.args(""), err, out)
			}
			apptest.WantSignOut(t, a, protocol.ReasonRevoked, protocol.CloseRevoked)
			apptest.WantSignOut(t, b, protocol.ReasonRevoked, protocol.CloseRevoked)
			apptest.WantEnded(t, s, tok, "revoked")
		})
	}
	if _, err := apptest.RunCommand(t, RunReady, "", "session", "revoke", "no-such-session", "-data", s.Dir); err == nil {
		t.Error("session revoke of an unknown id: got success, want an error")
	}
}

// Finding 11: one name rule for the CLI, and what is printed is escaped.
func TestNamesValidatedAndEscaped(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := apptest.RunCommand(t, RunReady, "", "group", "put", "staff", "-data", dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", " admin", "Admin", "adm\nin", "a\x1b[31m", "аdmin" /* Cyrillic а */, strings.Repeat("a", 65), "-x"} {
		if out, err := apptest.RunCommand(t, RunReady, "password\n", "user", "add", name, "-group", "staff", "-data", dir); err == nil {
			t.Errorf("user add %q: got success %q, want refused", name, out)
		}
		if _, err := apptest.RunCommand(t, RunReady, "", "group", "put", name, "-data", dir); err == nil {
			t.Errorf("group put %q: got success, want refused", name)
		}
	}
	// A name stored before the rule is printed quoted, on one line.
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.AddUser(ctx, pos.User{Domain: pos.DefaultDomain, Name: "evil\nadmin\tadministrators\t\x1b[2J", Group: "staff"}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	out, err := apptest.RunCommand(t, RunReady, "", "user", "list", "-data", dir)
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 1 || strings.ContainsRune(out, '\x1b') {
		t.Fatalf("user list: got %q, want one escaped line", out)
	}
}

// loginFrom signs in as if from addr, through a trusted proxy on loopback.
func loginFrom(t *testing.T, base, addr, user, pass string) *http.Response {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"username": user, "password": pass})
	req, _ := http.NewRequest("POST", base+"/api/login", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", addr)
	resp, _ := apptest.Do(t, req)
	return resp
}

// Finding 4: failures are throttled per user and address; an attacker
// elsewhere never keeps the real cashier out of their own till, and a
// success never costs anything.
func TestLoginThrottleKeepsTheCashierIn(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t, RunReady, "-trusted-proxies", "127.0.0.1")
	const till, attacker = "10.0.0.5", "203.0.113.66"
	if resp := loginFrom(t, s.Base, till, "cashier", "demo"); resp.StatusCode != http.StatusOK {
		t.Fatalf("cashier at the till: got %d, want 200", resp.StatusCode)
	}
	throttled := false
	for i := range 40 {
		resp := loginFrom(t, s.Base, attacker, "cashier", "wrong")
		switch resp.StatusCode {
		case http.StatusUnauthorized:
		case http.StatusTooManyRequests:
			throttled = true
			if resp.Header.Get("Retry-After") == "" {
				t.Fatalf("attempt %d: 429 without Retry-After", i)
			}
		default:
			t.Fatalf("attacker attempt %d: got %d, want 401 or 429", i, resp.StatusCode)
		}
	}
	if !throttled {
		t.Fatal("40 wrong passwords from one address: never throttled, want 429 with backoff")
	}
	// Case variants are the same user, and the till still gets in.
	for _, name := range []string{"cashier", "CASHIER", "Cashier"} {
		if resp := loginFrom(t, s.Base, till, name, "demo"); resp.StatusCode != http.StatusOK {
			t.Fatalf("%s at the till after the attack: got %d, want 200", name, resp.StatusCode)
		}
	}
	// Many successful sign-ins in a row are never throttled.
	for i := range 12 {
		if resp := loginFrom(t, s.Base, "10.0.0.7", "viewer", "demo"); resp.StatusCode != http.StatusOK {
			t.Fatalf("sign-in %d of a real user: got %d, want 200", i, resp.StatusCode)
		}
	}
	// Without a trusted proxy, X-Forwarded-For is the client's claim and
	// ignored: the attacker cannot pose as the till.
	plain := apptest.Start(t, RunReady)
	for range 40 {
		loginFrom(t, plain.Base, till, "cashier", "wrong")
	}
	if resp := loginFrom(t, plain.Base, "10.9.9.9", "cashier", "wrong"); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a forged X-Forwarded-For from an untrusted peer: got %d, want 429 (one address)", resp.StatusCode)
	}
}

// Informational: bcrypt ignores bytes past 72, so longer is refused.
func TestLongPasswordRefused(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t, RunReady)
	resp, body := apptest.Login(t, s.Base, "cashier", "demo"+strings.Repeat("x", 69))
	if resp.StatusCode != http.StatusBadRequest || apptest.DecodeError(t, body).Error.Field != "password" {
		t.Fatalf("73-byte password: got %d %s, want 400 naming password", resp.StatusCode, body)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idleguard test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// wantSecureCookie checks a sign-in answer over HTTPS: the __Host- cookie,
// Secure, Path=/, no Domain, and HSTS.
func wantSecureCookie(t *testing.T, resp *http.Response) {
	t.Helper()
	var found bool
	for _, line := range resp.Header.Values("Set-Cookie") {
		if !strings.HasPrefix(line, "__Host-idleguard_token=") {
			t.Errorf("Set-Cookie %q: want only __Host-idleguard_token", line)
			continue
		}
		found = true
		for _, want := range []string{"; Path=/", "; HttpOnly", "; Secure", "; SameSite=Strict"} {
			if !strings.Contains(line, want) {
				t.Errorf("Set-Cookie %q: missing %q", line, want)
			}
		}
		if strings.Contains(strings.ToLower(line), "domain=") {
			t.Errorf("Set-Cookie %q: has a Domain, want host-only", line)
		}
	}
	if !found {
		t.Errorf("no __Host-idleguard_token cookie in %q", resp.Header.Values("Set-Cookie"))
	}
	if h := resp.Header.Get("Strict-Transport-Security"); !strings.Contains(h, "max-age=") {
		t.Errorf("Strict-Transport-Security: got %q, want max-age", h)
	}
}

// Finding 6 and 8: over TLS, served by the binary or by a trusted proxy,
// the cookie is Secure under the __Host- prefix and HSTS is sent; the
// socket works over TLS too.
func TestTLSCookie(t *testing.T) {
	t.Parallel()
	t.Run("tls", func(t *testing.T) {
		cert, key := selfSigned(t, t.TempDir())
		s := apptest.Start(t, RunReady, "-tls-cert", cert, "-tls-key", key)
		resp, body := apptest.Login(t, s.Base, "cashier", "demo")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("login over TLS: got %d %s", resp.StatusCode, body)
		}
		wantSecureCookie(t, resp)
		var out struct{ Token string }
		json.Unmarshal(body, &out)
		ws := apptest.DialSocket(t, s, out.Token, "")
		if m := apptest.ReadFrame(t, ws); m.Kind != protocol.State {
			t.Fatalf("wss: got %v, want a state frame", m.Kind)
		}
		// Over HTTPS only the __Host- cookie is read: a bare one (planted
		// over plain http by a same-site page) is nobody.
		req, _ := http.NewRequest("GET", s.Base+"/api/session", nil)
		req.AddCookie(&http.Cookie{Name: "idleguard_token", Value: out.Token})
		if resp, _ := apptest.Do(t, req); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("bare cookie over HTTPS: got %d, want 401", resp.StatusCode)
		}
	})
	t.Run("trusted proxy", func(t *testing.T) {
		s := apptest.Start(t, RunReady, "-trusted-proxies", "127.0.0.1/32")
		body, _ := json.Marshal(map[string]string{"username": "cashier", "password": "demo"})
		req, _ := http.NewRequest("POST", s.Base+"/api/login", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-Proto", "https")
		resp, b := apptest.Do(t, req)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("login through the proxy: got %d %s", resp.StatusCode, b)
		}
		wantSecureCookie(t, resp)
	})
	t.Run("untrusted header", func(t *testing.T) {
		s := apptest.Start(t, RunReady)
		body, _ := json.Marshal(map[string]string{"username": "cashier", "password": "demo"})
		req, _ := http.NewRequest("POST", s.Base+"/api/login", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-Proto", "https")
		resp, _ := apptest.Do(t, req)
		if c := resp.Header.Get("Set-Cookie"); !strings.HasPrefix(c, "idleguard_token=") || resp.Header.Get("Strict-Transport-Security") != "" {
			t.Errorf("X-Forwarded-Proto from an untrusted peer: got cookie %q HSTS %q, want it ignored",
				c, resp.Header.Get("Strict-Transport-Security"))
		}
	})
}

// Finding 7: a state-changing request from another origin (another site,
// port or sibling subdomain) or without a JSON content type is refused and
// changes nothing.
func TestCSRFRefused(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t, RunReady)
	admin, _ := apptest.MustLogin(t, s.Base, "admin", "demo")
	before := apptest.GetSettings(t, s.Base, admin)
	tok, _ := apptest.MustLogin(t, s.Base, "cashier", "demo")
	for _, tc := range []struct {
		name, method, path, body, contentType string
		header                                map[string]string
		want                                  int
	}{
		{"other site", "POST", "/api/logout", "{}", "application/json", map[string]string{"Origin": "https://evil.example"}, 403},
		{"other port", "POST", "/api/logout", "{}", "application/json", map[string]string{"Origin": "http://127.0.0.1:1"}, 403},
		{"sibling", "POST", "/api/logout", "{}", "application/json", map[string]string{"Origin": "http://shop.localhost"}, 403},
		{"fetch metadata", "POST", "/api/logout", "{}", "application/json", map[string]string{"Sec-Fetch-Site": "same-site"}, 403},
		{"form post", "POST", "/api/logout", "", "application/x-www-form-urlencoded", nil, 400},
		{"no type", "POST", "/api/logout", "", "", nil, 400},
		{"settings", "PUT", "/api/settings/jwt", `{"expiration_seconds":61}`, "application/json", map[string]string{"Origin": "http://127.0.0.1:1"}, 403},
		{"login", "POST", "/api/login", `{"username":"admin","password":"demo"}`, "application/json", map[string]string{"Origin": "null"}, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bearerTok := tok
			if tc.method == "PUT" {
				bearerTok = admin
			}
			req, _ := http.NewRequest(tc.method, s.Base+tc.path, strings.NewReader(tc.body))
			req.Header.Set("Authorization", "Bearer "+bearerTok)
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			if resp, body := apptest.Do(t, req); resp.StatusCode != tc.want {
				t.Fatalf("got %d %s, want %d", resp.StatusCode, body, tc.want)
			}
		})
	}
	if code, body := apptest.SessionStatus(t, s.Base, tok); code != http.StatusOK {
		t.Errorf("cashier after the refused sign-outs: got %d %s, want still signed in", code, body)
	}
	if got := apptest.GetSettings(t, s.Base, admin); got != before {
		t.Errorf("settings after a refused PUT: got %+v, want %+v", got, before)
	}
	// The page's own origin is allowed.
	req, _ := http.NewRequest("POST", s.Base+"/api/logout", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", s.Base)
	if resp, body := apptest.Do(t, req); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("sign-out from the page's own origin: got %d %s, want 204", resp.StatusCode, body)
	}
}

// Finding 8: a request carrying two session cookies (one planted with a
// narrower path by a same-site page) is refused, whichever comes first.
func TestSeveralSessionCookiesRefused(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t, RunReady)
	victim, _ := apptest.MustLogin(t, s.Base, "admin", "demo")
	attacker, _ := apptest.MustLogin(t, s.Base, "cashier", "demo")
	for _, order := range [][]string{{attacker, victim}, {victim, attacker}} {
		req, _ := http.NewRequest("GET", s.Base+"/api/session", nil)
		for _, v := range order {
			req.AddCookie(&http.Cookie{Name: "idleguard_token", Value: v})
		}
		resp, body := apptest.Do(t, req)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "more than one") {
			t.Fatalf("two cookies: got %d %s, want 401 naming the conflict", resp.StatusCode, body)
		}
	}
}

// Finding 14: a token whose exp has passed while its session lives (the
// deadline moved with activity) still loads pages and opens sockets, and
// the browser gets a fresh token; once the session ends, the reason given
// is the true one.
func TestExpiredTokenOfLiveSession(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t, RunReady)
	apptest.SetExpiration(t, s.Base, 3)
	tok, cookie := apptest.MustLogin(t, s.Base, "cashier", "demo")
	ws := apptest.DialSocket(t, s, tok, "")
	apptest.ReadFrame(t, ws)
	exp := time.Unix(int64(claimsOf(t, tok)["exp"].(float64)), 0)
	// Keep the session busy until the first token is well past its exp
	// (and past the verifier's leeway).
	for time.Now().Before(exp.Add(token.Leeway + time.Second)) {
		apptest.Send(t, ws, "activity ago=0")
		time.Sleep(300 * time.Millisecond)
	}
	resp, _ := apptest.GetWithCookie(t, s.Base+"/pos", cookie)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /pos with the expired token of a live session: got %d, want 200", resp.StatusCode)
	}
	var fresh string
	for _, c := range resp.Cookies() {
		if c.Name == "idleguard_token" && c.Value != "" {
			fresh = c.Value
		}
	}
	if fresh == "" || fresh == tok {
		t.Fatalf("GET /pos: want a fresh token cookie, got %q", resp.Header.Values("Set-Cookie"))
	}
	if code := apptest.DialStatus(t, s, apptest.Bearer(tok)); code != http.StatusSwitchingProtocols {
		t.Fatalf("reconnect with the expired token of a live session: got %d, want 101", code)
	}
	// Now let it end: the old token gets the idle reason, not "revoked".
	ws.Close()
	ws2 := apptest.DialSocket(t, s, fresh, "")
	apptest.WantSignOut(t, ws2, protocol.ReasonIdle, protocol.CloseIdle)
	apptest.WantEnded(t, s, tok, "idle")
}

// Informational: the Authorization scheme is case-insensitive.
func TestBearerSchemeCaseInsensitive(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t, RunReady)
	tok, _ := apptest.MustLogin(t, s.Base, "cashier", "demo")
	for _, scheme := range []string{"bearer", "BEARER", "Bearer"} {
		req, _ := http.NewRequest("GET", s.Base+"/api/session", nil)
		req.Header.Set("Authorization", scheme+" "+tok)
		if resp, body := apptest.Do(t, req); resp.StatusCode != http.StatusOK {
			t.Errorf("%s: got %d %s, want 200", scheme, resp.StatusCode, body)
		}
	}
}

// Informational: duplicate and case-variant JSON keys are refused (a
// proxy that reads the first of two keys would see another request).
func TestDuplicateJSONKeysRefused(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t, RunReady)
	admin, _ := apptest.MustLogin(t, s.Base, "admin", "demo")
	before := apptest.GetSettings(t, s.Base, admin)
	for _, body := range []string{
		`{"expiration_seconds":60,"expiration_seconds":120}`,
		`{"Expiration_Seconds":120}`,
		`{"EXPIRATION_SECONDS":120}`,
	} {
		resp, b := apptest.PutExpiration(t, s.Base, admin, body, "application/json")
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("PUT %s: got %d %s, want 400", body, resp.StatusCode, b)
		}
	}
	if got := apptest.GetSettings(t, s.Base, admin); got != before {
		t.Errorf("settings after refused bodies: got %+v, want %+v", got, before)
	}
	resp, b := apptest.Request(t, "POST", s.Base+"/api/login", "", "application/json",
		strings.NewReader(`{"username":"cashier","password":"demo","username":"admin"}`))
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("login with a duplicate username: got %d %s, want 400", resp.StatusCode, b)
	}
}

// Finding 17: /readyz says whether the store takes writes; headers of
// finding 12 are on every answer.
func TestReadyAndHeaders(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t, RunReady)
	resp, body := apptest.Request(t, "GET", s.Base+"/readyz", "", "", nil)
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "ok" {
		t.Fatalf("GET /readyz: got %d %q, want 200 ok", resp.StatusCode, body)
	}
	for _, path := range []string{"/login", "/api/session", "/idleguard.js"} {
		resp, _ := apptest.Request(t, "GET", s.Base+path, "", "", nil)
		for _, h := range []string{"Content-Security-Policy", "Permissions-Policy", "Cross-Origin-Opener-Policy", "Cross-Origin-Resource-Policy", "X-Content-Type-Options"} {
			if resp.Header.Get(h) == "" {
				t.Errorf("GET %s: no %s header", path, h)
			}
		}
	}
}

// Finding 13: refusals reach the security log, structured and counted.
func TestSecurityLog(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t, RunReady)
	apptest.Login(t, s.Base, "cashier", "wrong")
	apptest.DialStatus(t, s, http.Header{"Origin": {"https://evil.example"}})
	apptest.SessionStatus(t, s.Base, "not.a.token")
	log := s.Log.String()
	for _, kind := range []string{"login_failed", "origin_refused", "token_invalid"} {
		if !strings.Contains(log, "kind="+kind) {
			t.Errorf("security log: no kind=%s line in\n%s", kind, log)
		}
	}
	if strings.Contains(log, "password=") || strings.Contains(log, "not.a.token") {
		t.Error("security log carries a secret")
	}
}
