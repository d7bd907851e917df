package app

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"idleguard/server/internal/apptest"
	"idleguard/server/token"
)

// claimsOf reads a token's claims without verifying it.
func claimsOf(t *testing.T, tok string) jwt.MapClaims {
	t.Helper()
	c := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(tok, c); err != nil {
		t.Fatalf("parse %q: %v", tok, err)
	}
	return c
}

// sign signs claims with method and key and sets kid.
func sign(t *testing.T, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tk := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tk.Header["kid"] = kid
	}
	s, err := tk.SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

// with returns a copy of c with changes applied; a nil value deletes.
func with(c jwt.MapClaims, changes map[string]any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	for k, v := range changes {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

// tamper changes one character in the middle of segment seg (0, 1 or 2).
// The middle, not the end: a last base64 character may carry only padding
// bits that decode to the same bytes.
func tamper(tok string, seg int) string {
	parts := strings.Split(tok, ".")
	b := []byte(parts[seg])
	i := len(b) / 2
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	parts[seg] = string(b)
	return strings.Join(parts, ".")
}

// Tokens that are not ours, not valid, or whose session is not alive get
// 401 over HTTP and on the socket upgrade, whether sent as a bearer header
// or as the cookie.
func TestTokensRefused(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t, RunReady)
	key, err := token.LoadOrCreateKey(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	kid := token.Thumbprint(pub)
	live, _ := apptest.MustLogin(t, s.Base, "cashier", "demo")
	good := claimsOf(t, live)
	if h := strings.Split(live, ".")[0]; !strings.Contains(decodeSegment(t, h), kid) {
		t.Fatalf("login token header %s does not carry kid %s", decodeSegment(t, h), kid)
	}
	revoked, _ := apptest.MustLogin(t, s.Base, "viewer", "demo")
	if resp, body := apptest.Request(t, "POST", s.Base+"/api/logout", revoked, "application/json", nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: got %d %s, want 204", resp.StatusCode, body)
	}
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Now()

	// The control: a token we sign the server's way is accepted, so the
	// refusals below are about what each case changes.
	forged := sign(t, jwt.SigningMethodEdDSA, key, kid, good)
	for _, h := range authHeaders(forged) {
		if code, body := statusWith(t, s, h); code != http.StatusOK {
			t.Fatalf("control token (%v): got %d %s, want 200", h, code, body)
		}
		if code := apptest.DialStatus(t, s, h); code != http.StatusSwitchingProtocols {
			t.Fatalf("control token socket (%v): got %d, want 101", h, code)
		}
	}

	for _, tc := range []struct{ name, token string }{
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid, good)},
		{"HS256 with the public key", sign(t, jwt.SigningMethodHS256, []byte(pub), kid, good)},
		{"HS256 with the JWK x", sign(t, jwt.SigningMethodHS256, []byte(base64.RawURLEncoding.EncodeToString(pub)), kid, good)},
		{"other Ed25519 key", sign(t, jwt.SigningMethodEdDSA, other, kid, good)},
		{"wrong kid", sign(t, jwt.SigningMethodEdDSA, key, "not-our-key", good)},
		{"no kid", sign(t, jwt.SigningMethodEdDSA, key, "", good)},
		{"wrong iss", sign(t, jwt.SigningMethodEdDSA, key, kid, with(good, map[string]any{"iss": "someone-else"}))},
		{"no iss", sign(t, jwt.SigningMethodEdDSA, key, kid, with(good, map[string]any{"iss": nil}))},
		{"wrong aud", sign(t, jwt.SigningMethodEdDSA, key, kid, with(good, map[string]any{"aud": "backoffice"}))},
		{"no aud", sign(t, jwt.SigningMethodEdDSA, key, kid, with(good, map[string]any{"aud": nil}))},
		// An exp in the past is no refusal while the session lives (the
		// session decides: TestExpiredTokenOfLiveSession); one not after
		// iat is no token we issue.
		{"exp before iat", sign(t, jwt.SigningMethodEdDSA, key, kid, with(good, map[string]any{"iat": now.Add(-10 * time.Second).Unix(), "exp": now.Add(-time.Hour).Unix()}))},
		{"exp as a string", sign(t, jwt.SigningMethodEdDSA, key, kid, with(good, map[string]any{"exp": strconv.FormatInt(now.Add(time.Hour).Unix(), 10)}))},
		{"no exp", sign(t, jwt.SigningMethodEdDSA, key, kid, with(good, map[string]any{"exp": nil}))},
		{"iat in the future", sign(t, jwt.SigningMethodEdDSA, key, kid, with(good, map[string]any{"iat": now.Add(time.Hour).Unix()}))},
		{"tampered signature", tamper(live, 2)},
		{"tampered payload", tamper(live, 1)},
		{"missing sid", sign(t, jwt.SigningMethodEdDSA, key, kid, with(good, map[string]any{"sid": nil}))},
		{"unknown sid", sign(t, jwt.SigningMethodEdDSA, key, kid, with(good, map[string]any{"sid": "never-existed-0123456789"}))},
		{"revoked sid", revoked},
		{"revoked sid re-signed", sign(t, jwt.SigningMethodEdDSA, key, kid, claimsOf(t, revoked))},
		{"garbage", "not.a.token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, h := range authHeaders(tc.token) {
				if code, body := statusWith(t, s, h); code != http.StatusUnauthorized {
					t.Errorf("GET /api/session (%s): got %d %s, want 401", authKind(h), code, body)
				}
				if code := apptest.DialStatus(t, s, h); code != http.StatusUnauthorized {
					t.Errorf("socket upgrade (%s): got %d, want 401", authKind(h), code)
				}
			}
		})
	}
	// The real token was never harmed by all that.
	if code, body := apptest.SessionStatus(t, s.Base, live); code != http.StatusOK {
		t.Errorf("live token afterwards: got %d %s, want 200", code, body)
	}
}

func decodeSegment(t *testing.T, seg string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func authHeaders(tok string) []http.Header {
	return []http.Header{apptest.Bearer(tok), {"Cookie": {"idleguard_token=" + tok}}}
}

func authKind(h http.Header) string {
	if h.Get("Authorization") != "" {
		return "bearer"
	}
	return "cookie"
}

func statusWith(t *testing.T, s *apptest.Server, h http.Header) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", s.Base+"/api/session", nil)
	for k, v := range h {
		req.Header[k] = v
	}
	resp, body := apptest.Do(t, req)
	return resp.StatusCode, body
}

// Sign-in failures say nothing about which part was wrong, are rate
// limited, and the token lives in a strict cookie, never in a URL.
func TestLogin(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t, RunReady)

	wrongPass, body1 := apptest.Login(t, s.Base, "admin", "wrong")
	noUser, body2 := apptest.Login(t, s.Base, "nobody", "demo")
	if wrongPass.StatusCode != http.StatusUnauthorized || noUser.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bad logins: got %d and %d, want 401 and 401", wrongPass.StatusCode, noUser.StatusCode)
	}
	if string(body1) != string(body2) {
		t.Errorf("wrong password said %s, unknown user said %s, want the same", body1, body2)
	}
	if len(wrongPass.Cookies()) != 0 {
		t.Errorf("failed login set cookies %v", wrongPass.Header["Set-Cookie"])
	}

	// Five free failures and the one that starts the backoff; then this
	// user from this address waits (security_test.go: not from elsewhere).
	for i := 1; i <= 7; i++ {
		resp, body := apptest.Login(t, s.Base, "cashier", "wrong")
		want := http.StatusUnauthorized
		if i == 7 {
			want = http.StatusTooManyRequests
			if resp.Header.Get("Retry-After") == "" {
				t.Errorf("bad attempt %d: 429 without Retry-After", i)
			}
		}
		if resp.StatusCode != want {
			t.Fatalf("bad attempt %d: got %d %s, want %d", i, resp.StatusCode, body, want)
		}
	}
	if resp, _ := apptest.Login(t, s.Base, "cashier", "demo"); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("right password after the limit: got %d, want 429", resp.StatusCode)
	}

	tok, cookie := apptest.MustLogin(t, s.Base, "viewer", "demo")
	if !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/" || cookie.Secure {
		t.Errorf("cookie: got HttpOnly=%v SameSite=%v Path=%q Secure=%v, want HttpOnly, Strict, /, not Secure without TLS",
			cookie.HttpOnly, cookie.SameSite, cookie.Path, cookie.Secure)
	}

	// No redirect carries the token, whether signed in, out, or ended.
	withCookie := func(path string) *http.Response {
		resp, _ := apptest.GetWithCookie(t, s.Base+path, cookie)
		return resp
	}
	check := func(what string, resp *http.Response, wantStatus int, wantPath string) {
		t.Helper()
		loc := resp.Header.Get("Location")
		if resp.StatusCode != wantStatus {
			t.Errorf("%s: got %d (Location %q), want %d", what, resp.StatusCode, loc, wantStatus)
		}
		if strings.Contains(loc, tok) || strings.Contains(strings.ToLower(loc), "token") {
			t.Errorf("%s: Location %q carries a token", what, loc)
		}
		if wantPath != "" {
			if u, err := url.Parse(loc); err != nil || u.Path != wantPath {
				t.Errorf("%s: got Location %q, want path %s", what, loc, wantPath)
			}
		}
	}
	resp, _ := apptest.Request(t, "GET", s.Base+"/", "", "", nil)
	check("GET /", resp, http.StatusSeeOther, "/pos")
	check("GET /pos signed in", withCookie("/pos"), http.StatusOK, "")
	check("GET /admin signed in (viewer)", withCookie("/admin"), http.StatusOK, "")
	resp, _ = apptest.Request(t, "GET", s.Base+"/pos", "", "", nil)
	check("GET /pos signed out", resp, http.StatusSeeOther, "/login")
	if resp, body := apptest.Request(t, "POST", s.Base+"/api/logout", tok, "application/json", nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: got %d %s", resp.StatusCode, body)
	}
	resp = withCookie("/pos")
	check("GET /pos after sign-out", resp, http.StatusSeeOther, "/login")
	if u, _ := url.Parse(resp.Header.Get("Location")); u == nil || u.Query().Get("reason") != "signed_out" || u.Query().Get("next") != "/pos" {
		t.Errorf("GET /pos after sign-out: got Location %q, want next=/pos and reason=signed_out", resp.Header.Get("Location"))
	}
}

// The published key set verifies a login token on its own.
func TestJWKSVerifiesLoginToken(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t, RunReady)
	tok, _ := apptest.MustLogin(t, s.Base, "cashier", "demo")
	resp, body := apptest.Request(t, "GET", s.Base+"/.well-known/jwks.json", "", "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET jwks: got %d %s", resp.StatusCode, body)
	}
	var set struct {
		Keys []struct{ Kty, Crv, X, Kid, Alg, Use string } `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("jwks: got %s (%v), want one key", body, err)
	}
	k := set.Keys[0]
	if k.Kty != "OKP" || k.Crv != "Ed25519" || k.Alg != "EdDSA" || k.Use != "sig" || k.Kid == "" {
		t.Fatalf("jwk: got %+v, want an OKP Ed25519 EdDSA signing key with a kid", k)
	}
	x, err := base64.RawURLEncoding.DecodeString(k.X)
	if err != nil || len(x) != ed25519.PublicKeySize {
		t.Fatalf("jwk x: got %q (%v), want 32 bytes of base64url", k.X, err)
	}
	pub := ed25519.PublicKey(x)
	if got := token.Thumbprint(pub); got != k.Kid {
		t.Errorf("kid: got %s, want the key's thumbprint %s", k.Kid, got)
	}
	claims := jwt.MapClaims{}
	parsed, err := jwt.ParseWithClaims(tok, claims, func(tk *jwt.Token) (any, error) {
		if tk.Header["kid"] != k.Kid {
			t.Errorf("token kid: got %v, want %s", tk.Header["kid"], k.Kid)
		}
		return pub, nil
	}, jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithIssuer("idleguard"), jwt.WithAudience("pos"),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	if err != nil || !parsed.Valid {
		t.Fatalf("verify the login token with the JWKS key: %v", err)
	}
	if claims["sub"] != "cashier" || claims["sid"] == nil || claims["sid"] == "" {
		t.Errorf("claims: got %v, want sub cashier and a sid", claims)
	}
}
