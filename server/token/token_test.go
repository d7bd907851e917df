package token

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"idleguard/server/guard"
)

// The key of RFC 8037, appendix A.1, whose thumbprint A.3 gives.
const (
	rfcD   = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
	rfcX   = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
	rfcKid = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
)

// t0 is a whole second; tests move the fake clock around it.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

var b64 = base64.RawURLEncoding

func testKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	seed, err := b64.DecodeString(rfcD)
	if err != nil {
		t.Fatal(err)
	}
	return ed25519.NewKeyFromSeed(seed)
}

// newIssuer returns an Issuer on the RFC key whose clock reads *now.
func newIssuer(t testing.TB) (*Issuer, *time.Time) {
	t.Helper()
	now := new(time.Time)
	*now = t0
	return New(testKey(t), Config{Issuer: "idleguard", Audience: "pos", Now: func() time.Time { return *now }}), now
}

func otherEd25519(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// goodClaims are the claims of a valid token at t0 with one change applied;
// a nil value deletes the claim.
func goodClaims(change map[string]any) jwt.MapClaims {
	c := jwt.MapClaims{
		"iss": "idleguard",
		"aud": "pos",
		"sub": "alice",
		"sid": "s-1",
		"iat": t0.Unix(),
		"exp": t0.Add(time.Minute).Unix(),
	}
	override(c, change)
	return c
}

// override applies change to m; a nil value deletes the key.
func override(m, change map[string]any) {
	for k, v := range change {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
}

// sign builds a token with jwt's own signer; header entries override the
// defaults (a nil value deletes one).
func sign(t testing.TB, m jwt.SigningMethod, key any, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	tok.Header["kid"] = rfcKid
	override(tok.Header, header)
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", m.Alg(), err)
	}
	return s
}

func enc(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b64.EncodeToString(b)
}

// replaceSegment swaps part i of a token for s.
func replaceSegment(tok string, i int, s string) string {
	parts := strings.Split(tok, ".")
	parts[i] = s
	return strings.Join(parts, ".")
}

func segment(t testing.TB, tok string, i int) []byte {
	t.Helper()
	b, err := b64.DecodeString(strings.Split(tok, ".")[i])
	if err != nil {
		t.Fatalf("segment %d of %q: %v", i, tok, err)
	}
	return b
}

func wantUnauthorized(t *testing.T, err error, wantMsg string) {
	t.Helper()
	var ge *guard.Error
	if !errors.As(err, &ge) {
		t.Fatalf("got error %v (%T), want *guard.Error", err, err)
	}
	if ge.Code != guard.EUNAUTHORIZED {
		t.Errorf("got code %q, want %q", ge.Code, guard.EUNAUTHORIZED)
	}
	if wantMsg != "" && ge.Message != wantMsg {
		t.Errorf("got message %q, want %q", ge.Message, wantMsg)
	}
	if errors.Unwrap(err) != nil {
		t.Errorf("got a wrapped error %v, want none", errors.Unwrap(err))
	}
}

func TestKeyIDIsRFC7638Thumbprint(t *testing.T) {
	iss, _ := newIssuer(t)
	if got := b64.EncodeToString(iss.PublicKey()); got != rfcX {
		t.Fatalf("got x %q, want %q", got, rfcX)
	}
	if got := iss.KeyID(); got != rfcKid {
		t.Errorf("got kid %q, want %q (RFC 8037 A.3)", got, rfcKid)
	}
}

func TestRoundTrip(t *testing.T) {
	iss, now := newIssuer(t)
	wall := time.Now() // carries a monotonic reading
	for _, tc := range []struct {
		name     string
		now      time.Time
		deadline time.Time
	}{
		{"whole seconds", t0, t0.Add(time.Minute)},
		{"fractional now and deadline", t0.Add(300 * time.Millisecond), t0.Add(48*time.Hour + 1)},
		{"one nanosecond left", t0.Add(time.Second - 1), t0.Add(time.Second)},
		{"deadline with monotonic reading", wall, wall.Add(time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			*now = tc.now
			tok, issued, err := iss.Issue("alice", "s-1", tc.deadline)
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			got, err := iss.Verify(tok)
			if err != nil {
				t.Fatalf("Verify: got %v, want nil", err)
			}
			if got.Subject != "alice" || got.SessionID != "s-1" {
				t.Errorf("got sub %q sid %q, want alice s-1", got.Subject, got.SessionID)
			}
			if !got.IssuedAt.Equal(issued.IssuedAt) || !got.ExpiresAt.Equal(issued.ExpiresAt) {
				t.Errorf("got iat %v exp %v, want the issued %v %v", got.IssuedAt, got.ExpiresAt, issued.IssuedAt, issued.ExpiresAt)
			}
			if want := now.Truncate(time.Second); !got.IssuedAt.Equal(want) {
				t.Errorf("got iat %v, want %v", got.IssuedAt, want)
			}

			var header map[string]any
			if err := json.Unmarshal(segment(t, tok, 0), &header); err != nil {
				t.Fatal(err)
			}
			for k, want := range map[string]any{"alg": "EdDSA", "typ": "JWT", "kid": rfcKid} {
				if header[k] != want {
					t.Errorf("got header %s %v, want %v", k, header[k], want)
				}
			}
			var payload map[string]any
			if err := json.Unmarshal(segment(t, tok, 1), &payload); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"iss", "aud", "sub", "sid", "iat", "exp"} {
				if _, ok := payload[k]; !ok {
					t.Errorf("got payload %v, want a %q claim", payload, k)
				}
			}
		})
	}
}

func TestIssueRoundsExpUp(t *testing.T) {
	iss, _ := newIssuer(t)
	for _, tc := range []struct {
		name     string
		deadline time.Time
		want     time.Time
	}{
		{"whole second stays", t0.Add(60 * time.Second), t0.Add(60 * time.Second)},
		{"one nanosecond over", t0.Add(60*time.Second + 1), t0.Add(61 * time.Second)},
		{"half a second over", t0.Add(60*time.Second + 500*time.Millisecond), t0.Add(61 * time.Second)},
		{"just under the next second", t0.Add(61*time.Second - 1), t0.Add(61 * time.Second)},
		{"under a second away", t0.Add(1), t0.Add(time.Second)},
		{"other time zone", t0.Add(90*time.Second + 1).In(time.FixedZone("X", 5*3600+1800)), t0.Add(91 * time.Second)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, c, err := iss.Issue("alice", "s-1", tc.deadline)
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			if !c.ExpiresAt.Equal(tc.want) {
				t.Errorf("got exp %v, want %v", c.ExpiresAt, tc.want)
			}
			var payload struct {
				Exp json.Number `json:"exp"`
			}
			if err := json.Unmarshal(segment(t, tok, 1), &payload); err != nil {
				t.Fatal(err)
			}
			if got, want := string(payload.Exp), strconv.FormatInt(tc.want.Unix(), 10); got != want {
				t.Errorf("got exp %s in the payload, want %s", got, want)
			}
			if c.ExpiresAt.Before(tc.deadline) {
				t.Errorf("got exp %v before the deadline %v", c.ExpiresAt, tc.deadline)
			}
		})
	}
}

func TestIssueRefuses(t *testing.T) {
	iss, _ := newIssuer(t)
	for _, tc := range []struct {
		name         string
		subject, sid string
		deadline     time.Time
	}{
		{"empty subject", "", "s-1", t0.Add(time.Minute)},
		{"empty sid", "alice", "", t0.Add(time.Minute)},
		{"deadline now", "alice", "s-1", t0},
		{"deadline past", "alice", "s-1", t0.Add(-time.Second)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tok, _, err := iss.Issue(tc.subject, tc.sid, tc.deadline); err == nil {
				t.Errorf("got token %q, want an error", tok)
			}
		})
	}
}

func TestVerifyExpiry(t *testing.T) {
	iss, now := newIssuer(t)
	tok, c, err := iss.Issue("alice", "s-1", t0.Add(90*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	exp := c.ExpiresAt
	for _, tc := range []struct {
		name    string
		now     time.Time
		wantErr string // "" for valid
	}{
		{"at iat", t0, ""},
		{"one nanosecond before exp", exp.Add(-1), ""},
		{"exactly at exp", exp, "token expired"},
		{"one nanosecond after exp", exp.Add(1), "token expired"},
		{"a day after exp", exp.Add(24 * time.Hour), "token expired"},
		{"before iat (clock went back)", t0.Add(-time.Second), "invalid token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			*now = tc.now
			got, err := iss.Verify(tok)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("got %v, want valid", err)
				}
				if got.SessionID != "s-1" {
					t.Errorf("got sid %q, want s-1", got.SessionID)
				}
				return
			}
			if err == nil {
				t.Fatalf("got valid %+v, want %q", got, tc.wantErr)
			}
			wantUnauthorized(t, err, tc.wantErr)
		})
	}
}

func TestVerifyRefuses(t *testing.T) {
	iss, _ := newIssuer(t)
	ours := testKey(t)
	valid, _, err := iss.Issue("alice", "s-1", t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iss.Verify(valid); err != nil {
		t.Fatalf("the valid token: got %v, want nil", err)
	}
	// Our own signer with arbitrary claims, to show that a good signature
	// alone is not enough.
	ourSigned := func(change map[string]any) string {
		return sign(t, jwt.SigningMethodEdDSA, ours, nil, goodClaims(change))
	}
	if _, err := iss.Verify(ourSigned(nil)); err != nil {
		t.Fatalf("the hand-built valid token: got %v, want nil", err)
	}

	pub := ours.Public().(ed25519.PublicKey)
	pkix, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix})
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	noneHeader := enc(map[string]any{"alg": "none", "typ": "JWT", "kid": rfcKid})
	payload := enc(goodClaims(nil))
	validSig := strings.Split(valid, ".")[2]

	tamperedPayload := func() string {
		p := strings.Replace(string(segment(t, valid, 1)), `"alice"`, `"admin"`, 1)
		if !strings.Contains(p, "admin") {
			t.Fatalf("payload %s has no alice", p)
		}
		return replaceSegment(valid, 1, b64.EncodeToString([]byte(p)))
	}()
	tamperedSig := func() string {
		sig := segment(t, valid, 2)
		sig[10] ^= 0x01
		return replaceSegment(valid, 2, b64.EncodeToString(sig))
	}()
	// Same signature bytes, different spelling: the last base64 character
	// carries 4 unused bits, which only strict decoding refuses.
	loosePadding := func() string {
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		i := strings.IndexByte(alphabet, validSig[len(validSig)-1])
		return valid[:len(valid)-1] + string(alphabet[i^1])
	}()

	tests := []struct {
		name    string
		token   string
		wantMsg string
	}{
		{"alg none", noneHeader + "." + payload + ".", "invalid token"},
		{"alg none with a signature", noneHeader + "." + payload + "." + validSig, "invalid token"},
		{"alg None", enc(map[string]any{"alg": "None", "kid": rfcKid}) + "." + payload + ".", "invalid token"},
		{"no alg", enc(map[string]any{"typ": "JWT", "kid": rfcKid}) + "." + payload + "." + validSig, "invalid token"},
		{"HS256 with the raw public key as secret", sign(t, jwt.SigningMethodHS256, []byte(pub), nil, goodClaims(nil)), "invalid token"},
		{"HS256 with the PEM public key as secret", sign(t, jwt.SigningMethodHS256, pubPEM, nil, goodClaims(nil)), "invalid token"},
		{"HS256 with x as secret", sign(t, jwt.SigningMethodHS256, []byte(rfcX), nil, goodClaims(nil)), "invalid token"},
		{"RS256 other key", sign(t, jwt.SigningMethodRS256, rsaKey, nil, goodClaims(nil)), "invalid token"},
		{"ES256 other key", sign(t, jwt.SigningMethodES256, ecKey, nil, goodClaims(nil)), "invalid token"},
		{"EdDSA other key", sign(t, jwt.SigningMethodEdDSA, otherEd25519(t), nil, goodClaims(nil)), "invalid token"},
		{"wrong iss", ourSigned(map[string]any{"iss": "evil"}), "invalid token"},
		{"missing iss", ourSigned(map[string]any{"iss": nil}), "invalid token"},
		{"wrong aud", ourSigned(map[string]any{"aud": "admin"}), "invalid token"},
		{"wrong aud list", ourSigned(map[string]any{"aud": []string{"admin", "api"}}), "invalid token"},
		{"missing aud", ourSigned(map[string]any{"aud": nil}), "invalid token"},
		{"empty aud", ourSigned(map[string]any{"aud": ""}), "invalid token"},
		{"expired exp", ourSigned(map[string]any{"exp": t0.Add(-time.Second).Unix()}), "token expired"},
		{"exp equals now", ourSigned(map[string]any{"exp": t0.Unix()}), "token expired"},
		{"missing exp", ourSigned(map[string]any{"exp": nil}), "invalid token"},
		{"missing iat", ourSigned(map[string]any{"iat": nil}), "invalid token"},
		{"iat in the future", ourSigned(map[string]any{"iat": t0.Add(time.Second).Unix()}), "invalid token"},
		{"missing sid", ourSigned(map[string]any{"sid": nil}), "invalid token"},
		{"empty sid", ourSigned(map[string]any{"sid": ""}), "invalid token"},
		{"sid not a string", ourSigned(map[string]any{"sid": 7}), "invalid token"},
		{"missing sub", ourSigned(map[string]any{"sub": nil}), "invalid token"},
		{"nbf in the future", ourSigned(map[string]any{"nbf": t0.Add(time.Second).Unix()}), "invalid token"},
		{"wrong kid", sign(t, jwt.SigningMethodEdDSA, ours, map[string]any{"kid": "other"}, goodClaims(nil)), "invalid token"},
		{"missing kid", sign(t, jwt.SigningMethodEdDSA, ours, map[string]any{"kid": nil}, goodClaims(nil)), "invalid token"},
		{"kid not a string", sign(t, jwt.SigningMethodEdDSA, ours, map[string]any{"kid": 1}, goodClaims(nil)), "invalid token"},
		{"tampered payload", tamperedPayload, "invalid token"},
		{"tampered signature", tamperedSig, "invalid token"},
		{"truncated signature", valid[:len(valid)-4], "invalid token"},
		{"no signature", replaceSegment(valid, 2, ""), "invalid token"},
		{"signature padding bits", loosePadding, "invalid token"},
		{"base64 padding", valid + "==", "invalid token"},
		{"newline in the header", valid[:20] + "\n" + valid[20:], "invalid token"},
		{"newline in the signature", valid[:len(valid)-10] + "\n" + valid[len(valid)-10:], "invalid token"},
		{"CR LF in the signature", valid[:len(valid)-10] + "\r\n" + valid[len(valid)-10:], "invalid token"},
		{"trailing space", valid + " ", "invalid token"},
		{"Bearer prefix", "Bearer " + valid, "invalid token"},
		{"extra segment", valid + ".", "invalid token"},
		{"empty", "", "invalid token"},
		{"dots", "..", "invalid token"},
		{"two segments", "a.b", "invalid token"},
		{"garbage segments", "a.b.c", "invalid token"},
		{"words", "not a token", "invalid token"},
		{"binary", "\x00\xff.\x01.\x02", "invalid token"},
		{"json header not object", enc([]int{1}) + "." + payload + "." + validSig, "invalid token"},
		{"payload not json", strings.Split(valid, ".")[0] + "." + b64.EncodeToString([]byte("{")) + "." + validSig, "invalid token"},
		{"over-long, validly signed", ourSigned(map[string]any{"pad": strings.Repeat("x", MaxTokenLen)}), "invalid token"},
		{"over-long garbage", strings.Repeat("a", 1<<20), "invalid token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := iss.Verify(tc.token)
			if err == nil {
				t.Fatalf("got valid %+v, want %q", got, tc.wantMsg)
			}
			if got != (Claims{}) {
				t.Errorf("got claims %+v with the error, want none", got)
			}
			wantUnauthorized(t, err, tc.wantMsg)
		})
	}
}

func TestVerifyAcceptsPaddedJustUnderLimit(t *testing.T) {
	// A long but legal token still verifies: the cap is on length only.
	iss, _ := newIssuer(t)
	tok := sign(t, jwt.SigningMethodEdDSA, testKey(t), nil, goodClaims(map[string]any{"pad": strings.Repeat("x", 2000)}))
	if len(tok) > MaxTokenLen {
		t.Fatalf("got length %d, want at most %d", len(tok), MaxTokenLen)
	}
	if _, err := iss.Verify(tok); err != nil {
		t.Errorf("got %v, want valid", err)
	}
}

func TestErrorsAreFresh(t *testing.T) {
	iss, _ := newIssuer(t)
	_, err1 := iss.Verify("x")
	var ge *guard.Error
	if !errors.As(err1, &ge) {
		t.Fatalf("got %T, want *guard.Error", err1)
	}
	ge.Message = "changed"
	_, err2 := iss.Verify("x")
	if got := guard.ErrorMessage(err2); got != "invalid token" {
		t.Errorf("got message %q, want %q", got, "invalid token")
	}
}

func TestJWKS(t *testing.T) {
	iss, now := newIssuer(t)
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(iss.JWKS(), &set); err != nil {
		t.Fatalf("JWKS %s: %v", iss.JWKS(), err)
	}
	if len(set.Keys) != 1 {
		t.Fatalf("got %d keys, want 1", len(set.Keys))
	}
	k := set.Keys[0]
	for field, want := range map[string]string{"kty": "OKP", "crv": "Ed25519", "x": rfcX, "kid": rfcKid, "alg": "EdDSA", "use": "sig"} {
		if k[field] != want {
			t.Errorf("got %s %q, want %q", field, k[field], want)
		}
	}
	if _, ok := k["d"]; ok {
		t.Fatal("got a private d in the JWKS, want none")
	}
	x, err := b64.DecodeString(k["x"])
	if err != nil {
		t.Fatal(err)
	}
	rebuilt := ed25519.PublicKey(x)
	if !rebuilt.Equal(iss.PublicKey()) {
		t.Fatalf("got x %x, want the public key %x", x, iss.PublicKey())
	}
	if got := Thumbprint(rebuilt); got != k["kid"] {
		t.Errorf("got thumbprint %q of x, want kid %q", got, k["kid"])
	}

	tok, _, err := iss.Issue("alice", "s-1", t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.Parse(tok, func(t *jwt.Token) (any, error) {
		if t.Header["kid"] != k["kid"] {
			return nil, errors.New("kid")
		}
		return rebuilt, nil
	}, jwt.WithValidMethods([]string{k["alg"]}), jwt.WithTimeFunc(func() time.Time { return *now }))
	if err != nil || !parsed.Valid {
		t.Errorf("jwt.Parse with the JWKS key: got %v, want a valid token", err)
	}

	// Callers get a copy.
	b := iss.JWKS()
	b[0] = 'X'
	if iss.JWKS()[0] != '{' {
		t.Error("got JWKS changed through a returned slice, want a copy")
	}
}

func TestNewPanics(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  ed25519.PrivateKey
		cfg  Config
	}{
		{"nil key", nil, Config{Issuer: "i", Audience: "a"}},
		{"short key", make(ed25519.PrivateKey, 10), Config{Issuer: "i", Audience: "a"}},
		{"no issuer", testKey(t), Config{Audience: "a"}},
		{"no audience", testKey(t), Config{Issuer: "i"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("got no panic, want one")
				}
			}()
			New(tc.key, tc.cfg)
		})
	}
}

func TestNewDefaultClock(t *testing.T) {
	iss := New(testKey(t), Config{Issuer: "idleguard", Audience: "pos"})
	tok, _, err := iss.Issue("alice", "s-1", time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iss.Verify(tok); err != nil {
		t.Errorf("got %v, want valid", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	iss, _ := newIssuer(t)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 50; n++ {
				tok, _, err := iss.Issue("alice", "s-1", t0.Add(time.Minute))
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := iss.Verify(tok); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// Key file.

func TestLoadOrCreateKeyCreates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "keys")
	k1, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := di.Mode().Perm(); got != 0o700 {
		t.Errorf("got dir mode %#o, want 0700", got)
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("got file mode %#o, want 0600", got)
	}
	data, err := os.ReadFile(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if block, _ := pem.Decode(data); block == nil || block.Type != "PRIVATE KEY" {
		t.Errorf("got file %q, want a PEM PRIVATE KEY", data)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("got %d entries in the dir, want only the key file", len(entries))
	}

	k2, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatalf("reload: %v", err)
	}
	if !k1.Equal(k2) {
		t.Error("got a different key on reload, want the first one")
	}
}

func TestLoadOrCreateKeyConcurrent(t *testing.T) {
	dir := t.TempDir()
	keys := make([]ed25519.PrivateKey, 8)
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			keys[i], errs[i] = LoadOrCreateKey(dir)
		}()
	}
	wg.Wait()
	final, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range keys {
		if errs[i] != nil {
			t.Errorf("caller %d: got %v, want nil", i, errs[i])
		} else if !keys[i].Equal(final) {
			t.Errorf("caller %d: got a key other than the one on disk", i)
		}
	}
}

func TestLoadOrCreateKeyPermissions(t *testing.T) {
	for _, tc := range []struct {
		mode    os.FileMode
		wantErr bool
	}{
		{0o600, false},
		{0o400, false},
		{0o640, true},
		{0o604, true},
		{0o644, true},
		{0o660, true},
		{0o666, true},
		{0o610, true},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			k1, err := LoadOrCreateKey(dir)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, KeyFile)
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			k2, err := LoadOrCreateKey(dir)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("got a key, want an error for mode %#o", tc.mode)
				}
				if !strings.Contains(err.Error(), "mode") {
					t.Errorf("got %q, want it to mention the mode", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("got %v, want the key", err)
			}
			if !k1.Equal(k2) {
				t.Error("got a different key, want the first one")
			}
		})
	}
}

func TestLoadOrCreateKeyCorrupt(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	good, err := marshalKey(testKey(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"garbage", []byte("not a key\n")},
		{"truncated", good[:len(good)/2]},
		{"bad base64", []byte("-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n")},
		{"bad DER", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{0x30, 0x03, 1, 2, 3}})},
		{"wrong block type", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: ecDER})},
		{"ECDSA key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER})},
		{"trailing data", append(append([]byte{}, good...), "junk"...)},
		{"two keys", append(append([]byte{}, good...), good...)},
		{"too large", append(append([]byte{}, good...), make([]byte, maxKeyFile)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, KeyFile)
			if err := os.WriteFile(path, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			if k, err := LoadOrCreateKey(dir); err == nil {
				t.Fatalf("got key %x, want an error", k.Public())
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(after) != string(tc.data) {
				t.Error("got the file rewritten, want it left alone")
			}
		})
	}
}

func TestLoadOrCreateKeyAcceptsGoodFile(t *testing.T) {
	dir := t.TempDir()
	good, err := marshalKey(testKey(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, KeyFile), good, 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Equal(testKey(t)) {
		t.Error("got another key, want the file's")
	}
}

func TestLoadOrCreateKeyNotRegular(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, KeyFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(dir); err == nil {
		t.Error("got a key, want an error for a directory in the key's place")
	}
}

// Fuzz and benchmarks.

func FuzzVerify(f *testing.F) {
	iss, now := newIssuer(f)
	valid, _, err := iss.Issue("alice", "s-1", t0.Add(time.Minute))
	if err != nil {
		f.Fatal(err)
	}
	payload := enc(goodClaims(nil))
	f.Add(valid)
	f.Add(sign(f, jwt.SigningMethodEdDSA, testKey(f), nil, goodClaims(map[string]any{"aud": []string{"x", "pos"}})))
	f.Add(enc(map[string]any{"alg": "none", "kid": rfcKid}) + "." + payload + ".")
	f.Add(sign(f, jwt.SigningMethodHS256, []byte(testKey(f).Public().(ed25519.PublicKey)), nil, goodClaims(nil)))
	f.Add(sign(f, jwt.SigningMethodEdDSA, testKey(f), nil, goodClaims(map[string]any{"sid": nil})))
	f.Add(sign(f, jwt.SigningMethodEdDSA, testKey(f), nil, goodClaims(map[string]any{"exp": 1e300})))
	f.Add(sign(f, jwt.SigningMethodEdDSA, testKey(f), nil, goodClaims(map[string]any{"iat": -1.5})))
	f.Add(replaceSegment(valid, 1, payload))
	f.Add("")
	f.Add("a.b.c")
	f.Add("..")
	f.Add("eyJhbGciOiJFZERTQSJ9.e30.")
	f.Fuzz(func(t *testing.T, tok string) {
		*now = t0
		c, err := iss.Verify(tok)
		if err != nil {
			if code := guard.ErrorCode(err); code != guard.EUNAUTHORIZED {
				t.Fatalf("got code %q, want %q", code, guard.EUNAUTHORIZED)
			}
			return
		}
		if c.Subject == "" || c.SessionID == "" {
			t.Errorf("accepted %q with sub %q sid %q, want both non-empty", tok, c.Subject, c.SessionID)
		}
		if !c.ExpiresAt.After(t0) {
			t.Errorf("accepted %q with exp %v, want after %v", tok, c.ExpiresAt, t0)
		}
		if c.IssuedAt.After(t0) {
			t.Errorf("accepted %q with iat %v, want not after %v", tok, c.IssuedAt, t0)
		}
	})
}

func BenchmarkIssue(b *testing.B) {
	iss, _ := newIssuer(b)
	deadline := t0.Add(48 * time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := iss.Issue("alice", "s-1", deadline); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	iss, _ := newIssuer(b)
	tok, _, err := iss.Issue("alice", "s-1", t0.Add(48*time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := iss.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}
