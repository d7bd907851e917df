package token

import (
	"bytes"
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
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"idleguard/server/pos"
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
// a nil value deletes the claim. Its domain is acme, not the default, so
// that a token read as the default one is seen to be.
func goodClaims(change map[string]any) jwt.MapClaims {
	c := jwt.MapClaims{
		"dom": "acme",
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

// signRaw signs header and payload JSON exactly as written, for what a map
// cannot spell: repeated keys, their order, whitespace.
func signRaw(t testing.TB, key ed25519.PrivateKey, header, payload string) string {
	t.Helper()
	return signSegments(t, key, b64.EncodeToString([]byte(header))+"."+b64.EncodeToString([]byte(payload)))
}

// signSegments appends the EdDSA signature of in ("header.payload").
func signSegments(t testing.TB, key ed25519.PrivateKey, in string) string {
	t.Helper()
	sig, err := jwt.SigningMethodEdDSA.Sign(in, key)
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + b64.EncodeToString(sig)
}

// goodHeader is the header JSON Issue writes.
var goodHeader = jsonText(map[string]any{"alg": "EdDSA", "typ": "JWT", "kid": rfcKid})

// withMember puts member (`"key":value`) first in the JSON object obj.
func withMember(obj, member string) string { return "{" + member + "," + obj[1:] }

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func enc(v any) string { return b64.EncodeToString([]byte(jsonText(v))) }

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
	var ge *pos.Error
	if !errors.As(err, &ge) {
		t.Fatalf("got error %v (%T), want *pos.Error", err, err)
	}
	if ge.Code != pos.EUNAUTHORIZED {
		t.Errorf("got code %q, want %q", ge.Code, pos.EUNAUTHORIZED)
	}
	if wantMsg != "" && ge.Message != wantMsg {
		t.Errorf("got message %q, want %q", ge.Message, wantMsg)
	}
	if got, want := errors.Is(err, ErrExpired), ge.Message == "token expired"; got != want {
		t.Errorf("got errors.Is(err, ErrExpired) %v for %q, want %v", got, ge.Message, want)
	}
	if !onlyOurErrors(err) {
		t.Errorf("got %#v, want nothing in its chain but our own errors (no jwt detail)", err)
	}
}

// sameClaims compares instants with Equal: Verify's times are in
// time.Local, Issue's in the clock's location.
func sameClaims(a, b Claims) bool {
	return a.Domain == b.Domain && a.Subject == b.Subject && a.SessionID == b.SessionID &&
		a.IssuedAt.Equal(b.IssuedAt) && a.ExpiresAt.Equal(b.ExpiresAt)
}

// onlyOurErrors reports whether err's whole tree is the package's own
// errors, so that nothing of jwt's reaches a caller.
func onlyOurErrors(err error) bool {
	switch e := err.(type) {
	case *pos.Error:
		return true
	case *expiredError:
		for _, u := range e.Unwrap() {
			if !onlyOurErrors(u) {
				return false
			}
		}
		return true
	}
	return err == ErrExpired
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
			tok, issued, err := iss.Issue("acme", "alice", "s-1", tc.deadline)
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			got, err := iss.Verify(tok)
			if err != nil {
				t.Fatalf("Verify: got %v, want nil", err)
			}
			if got.Domain != "acme" || got.Subject != "alice" || got.SessionID != "s-1" {
				t.Errorf("got dom %q sub %q sid %q, want acme alice s-1", got.Domain, got.Subject, got.SessionID)
			}
			if issued.Domain != "acme" {
				t.Errorf("got issued dom %q, want acme", issued.Domain)
			}
			if !got.IssuedAt.Equal(issued.IssuedAt) || !got.ExpiresAt.Equal(issued.ExpiresAt) {
				t.Errorf("got iat %v exp %v, want the issued %v %v", got.IssuedAt, got.ExpiresAt, issued.IssuedAt, issued.ExpiresAt)
			}
			if want := now.Truncate(time.Second); !got.IssuedAt.Equal(want) {
				t.Errorf("got iat %v, want %v", got.IssuedAt, want)
			}

			if h := strings.Split(tok, ".")[0]; h != iss.keys.Load().header {
				t.Errorf("got header segment %q, want %q, which Verify need not read again", h, iss.keys.Load().header)
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
			for _, k := range []string{"iss", "aud", "sub", "sid", "iat", "exp", "dom"} {
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
			tok, c, err := iss.Issue("acme", "alice", "s-1", tc.deadline)
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
		name                 string
		domain, subject, sid string
		deadline             time.Time
	}{
		{"empty domain", "", "alice", "s-1", t0.Add(time.Minute)},
		{"domain in upper case", "Acme", "alice", "s-1", t0.Add(time.Minute)},
		{"domain with a dot", "acme.example", "alice", "s-1", t0.Add(time.Minute)},
		{"domain too long", strings.Repeat("a", pos.MaxDomainLen+1), "alice", "s-1", t0.Add(time.Minute)},
		{"empty subject", "acme", "", "s-1", t0.Add(time.Minute)},
		{"empty sid", "acme", "alice", "", t0.Add(time.Minute)},
		{"deadline now", "acme", "alice", "s-1", t0},
		{"deadline past", "acme", "alice", "s-1", t0.Add(-time.Second)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, c, err := iss.Issue(tc.domain, tc.subject, tc.sid, tc.deadline)
			if err == nil {
				t.Fatalf("got token %q, want an error", tok)
			}
			if tok != "" || c != (Claims{}) {
				t.Errorf("got token %q and claims %+v with the error, want none", tok, c)
			}
			// A caller's bug, not a user's mistake: no EINVALID to show.
			if code := pos.ErrorCode(err); code != pos.EINTERNAL {
				t.Errorf("got code %q, want %q", code, pos.EINTERNAL)
			}
		})
	}
}

func TestVerifyExpiry(t *testing.T) {
	iss, now := newIssuer(t)
	tok, issued, err := iss.Issue("acme", "alice", "s-1", t0.Add(90*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	exp := issued.ExpiresAt
	for _, tc := range []struct {
		name    string
		now     time.Time
		wantErr string // "" for valid
	}{
		{"at iat", t0, ""},
		{"clock stepped back 1 s", t0.Add(-time.Second), ""},
		{"clock stepped back by the leeway", t0.Add(-Leeway), ""},
		{"clock stepped back past the leeway", t0.Add(-Leeway - 1), "invalid token"},
		{"exactly at exp", exp, ""},
		{"one nanosecond before exp+Leeway", exp.Add(Leeway - 1), ""},
		{"exactly at exp+Leeway", exp.Add(Leeway), "token expired"},
		{"one nanosecond after exp+Leeway", exp.Add(Leeway + 1), "token expired"},
		{"a day after exp", exp.Add(24 * time.Hour), "token expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			*now = tc.now
			got, err := iss.Verify(tok)
			switch tc.wantErr {
			case "":
				if err != nil {
					t.Fatalf("got %v, want valid", err)
				}
			case "token expired":
				wantUnauthorized(t, err, tc.wantErr)
			default:
				wantUnauthorized(t, err, tc.wantErr)
				if got != (Claims{}) {
					t.Errorf("got claims %+v with %v, want none", got, err)
				}
				return
			}
			// Valid or only expired: the claims as issued.
			if !sameClaims(got, issued) {
				t.Errorf("got claims %+v, want the issued %+v", got, issued)
			}
		})
	}
}

// TestVerifyExpiredOnlyFault: a token past its exp gives its claims (with
// ErrExpired) only when its signature is ours and exp is its one fault.
func TestVerifyExpiredOnlyFault(t *testing.T) {
	iss, now := newIssuer(t)
	ours := testKey(t)
	later := t0.Add(time.Hour) // every goodClaims token is 59 minutes past exp
	*now = later
	ourSigned := func(change map[string]any) string {
		return sign(t, jwt.SigningMethodEdDSA, ours, nil, goodClaims(change))
	}
	want := Claims{Domain: "acme", Subject: "alice", SessionID: "s-1", IssuedAt: t0, ExpiresAt: t0.Add(time.Minute)}

	t.Run("issued, then idle past exp", func(t *testing.T) {
		*now = t0
		tok, issued, err := iss.Issue("acme", "alice", "s-1", t0.Add(90*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		*now = later
		got, err := iss.Verify(tok)
		wantUnauthorized(t, err, "token expired")
		if !sameClaims(got, issued) {
			t.Errorf("got claims %+v, want the issued %+v", got, issued)
		}
		if pos.ErrorCode(err) != pos.EUNAUTHORIZED || !errors.Is(err, ErrExpired) {
			t.Errorf("got code %q and errors.Is(ErrExpired) %v, want %q and true", pos.ErrorCode(err), errors.Is(err, ErrExpired), pos.EUNAUTHORIZED)
		}
	})
	for _, tc := range []struct {
		name  string
		token string
		want  Claims
	}{
		{"59 minutes past exp", ourSigned(nil), want},
		{"just past the leeway", ourSigned(map[string]any{"exp": later.Add(-Leeway).Unix()}),
			Claims{Domain: "acme", Subject: "alice", SessionID: "s-1", IssuedAt: t0, ExpiresAt: later.Add(-Leeway)}},
		{"with an nbf in the past", ourSigned(map[string]any{"nbf": t0.Unix()}), want},
		{"without dom (issued before domains)", ourSigned(map[string]any{"dom": nil}),
			Claims{Domain: pos.DefaultDomain, Subject: "alice", SessionID: "s-1", IssuedAt: t0, ExpiresAt: t0.Add(time.Minute)}},
	} {
		t.Run("expired: "+tc.name, func(t *testing.T) {
			got, err := iss.Verify(tc.token)
			wantUnauthorized(t, err, "token expired")
			if !sameClaims(got, tc.want) {
				t.Errorf("got claims %+v, want %+v", got, tc.want)
			}
		})
	}
	t.Run("valid: inside the leeway", func(t *testing.T) {
		if _, err := iss.Verify(ourSigned(map[string]any{"exp": later.Add(-Leeway + time.Second).Unix()})); err != nil {
			t.Errorf("got %v, want valid", err)
		}
	})

	expired := ourSigned(nil)
	tamperedSub := replaceSegment(expired, 1, b64.EncodeToString([]byte(
		strings.Replace(string(segment(t, expired, 1)), `"alice"`, `"admin"`, 1))))
	tamperedSig := func() string {
		sig := segment(t, expired, 2)
		sig[0] ^= 0x80
		return replaceSegment(expired, 2, b64.EncodeToString(sig))
	}()
	for _, tc := range []struct{ name, token string }{
		{"forged signature (other key)", sign(t, jwt.SigningMethodEdDSA, otherEd25519(t), nil, goodClaims(nil))},
		{"tampered payload", tamperedSub},
		{"tampered signature", tamperedSig},
		{"no signature", replaceSegment(expired, 2, "")},
		{"alg none", enc(map[string]any{"alg": "none", "kid": rfcKid}) + "." + strings.Split(expired, ".")[1] + "."},
		{"HS256 with the public key as secret", sign(t, jwt.SigningMethodHS256, []byte(ours.Public().(ed25519.PublicKey)), nil, goodClaims(nil))},
		{"wrong kid", sign(t, jwt.SigningMethodEdDSA, ours, map[string]any{"kid": "other"}, goodClaims(nil))},
		{"wrong iss", ourSigned(map[string]any{"iss": "evil"})},
		{"missing iss", ourSigned(map[string]any{"iss": nil})},
		{"wrong aud", ourSigned(map[string]any{"aud": "admin"})},
		{"missing aud", ourSigned(map[string]any{"aud": nil})},
		{"missing sub", ourSigned(map[string]any{"sub": nil})},
		{"missing sid", ourSigned(map[string]any{"sid": nil})},
		{"empty dom", ourSigned(map[string]any{"dom": ""})},
		{"dom not a domain name", ourSigned(map[string]any{"dom": "Acme"})},
		{"dom not a string", ourSigned(map[string]any{"dom": 1})},
		{"dom twice", signRaw(t, ours, goodHeader, withMember(jsonText(goodClaims(nil)), `"dom":"default"`))},
		{"missing iat", ourSigned(map[string]any{"iat": nil})},
		{"iat in the future", ourSigned(map[string]any{"iat": later.Add(Leeway + time.Second).Unix()})},
		{"nbf in the future", ourSigned(map[string]any{"nbf": later.Add(Leeway + time.Second).Unix()})},
		{"exp before iat", ourSigned(map[string]any{"exp": t0.Add(-time.Second).Unix()})},
		{"exp equals iat", ourSigned(map[string]any{"exp": t0.Unix()})},
		{"exp as a string", ourSigned(map[string]any{"exp": strconv.FormatInt(t0.Add(time.Minute).Unix(), 10)})},
		{"exp twice", signRaw(t, ours, goodHeader, withMember(jsonText(goodClaims(nil)), `"exp":1`))},
		{"missing exp", ourSigned(map[string]any{"exp": nil})},
	} {
		t.Run("invalid: "+tc.name, func(t *testing.T) {
			got, err := iss.Verify(tc.token)
			if got != (Claims{}) {
				t.Errorf("got claims %+v, want none", got)
			}
			wantUnauthorized(t, err, "invalid token")
		})
	}
}

func TestVerifyRefuses(t *testing.T) {
	iss, _ := newIssuer(t)
	ours := testKey(t)
	valid, _, err := iss.Issue("acme", "alice", "s-1", t0.Add(time.Minute))
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
		{"missing exp", ourSigned(map[string]any{"exp": nil}), "invalid token"},
		{"missing iat", ourSigned(map[string]any{"iat": nil}), "invalid token"},
		{"iat in the future", ourSigned(map[string]any{"iat": t0.Add(Leeway + time.Second).Unix()}), "invalid token"},
		{"missing sid", ourSigned(map[string]any{"sid": nil}), "invalid token"},
		{"empty sid", ourSigned(map[string]any{"sid": ""}), "invalid token"},
		{"sid not a string", ourSigned(map[string]any{"sid": 7}), "invalid token"},
		{"missing sub", ourSigned(map[string]any{"sub": nil}), "invalid token"},
		{"empty dom", ourSigned(map[string]any{"dom": ""}), "invalid token"},
		{"dom not a domain name", ourSigned(map[string]any{"dom": "acme.example"}), "invalid token"},
		{"dom not a string", ourSigned(map[string]any{"dom": true}), "invalid token"},
		{"nbf in the future", ourSigned(map[string]any{"nbf": t0.Add(Leeway + time.Second).Unix()}), "invalid token"},
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
	// The pad leaves room for the other claims (dom among them) and the
	// base64 and signature overhead.
	tok := sign(t, jwt.SigningMethodEdDSA, testKey(t), nil, goodClaims(map[string]any{"pad": strings.Repeat("x", MaxTokenLen*5/8-16)}))
	if len(tok) > MaxTokenLen || len(tok) < MaxTokenLen-64 {
		t.Fatalf("got length %d, want at most %d and within 64 of it", len(tok), MaxTokenLen)
	}
	if _, err := iss.Verify(tok); err != nil {
		t.Errorf("got %v, want valid", err)
	}
}

func TestErrorsAreFresh(t *testing.T) {
	iss, _ := newIssuer(t)
	_, err1 := iss.Verify("x")
	var ge *pos.Error
	if !errors.As(err1, &ge) {
		t.Fatalf("got %T, want *pos.Error", err1)
	}
	ge.Message = "changed"
	_, err2 := iss.Verify("x")
	if got := pos.ErrorMessage(err2); got != "invalid token" {
		t.Errorf("got message %q, want %q", got, "invalid token")
	}

	expired := sign(t, jwt.SigningMethodEdDSA, testKey(t), nil, goodClaims(map[string]any{"exp": t0.Add(-time.Hour).Unix(), "iat": t0.Add(-2 * time.Hour).Unix()}))
	_, err1 = iss.Verify(expired)
	if !errors.As(err1, &ge) {
		t.Fatalf("got %T, want a *pos.Error in the chain", err1)
	}
	ge.Message = "changed"
	_, err2 = iss.Verify(expired)
	if got := pos.ErrorMessage(err2); got != "token expired" {
		t.Errorf("got message %q, want %q", got, "token expired")
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

	tok, _, err := iss.Issue("acme", "alice", "s-1", t0.Add(time.Minute))
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
	tok, _, err := iss.Issue("acme", "alice", "s-1", time.Now().Add(time.Minute))
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
				tok, _, err := iss.Issue("acme", "alice", "s-1", t0.Add(time.Minute))
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

func TestLoadOrCreateKeyOtherOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: only root can chown the key file to another uid")
	}
	const otherUID = 4242
	dir := t.TempDir()
	k1, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, KeyFile)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, otherUID, -1); err != nil {
		t.Fatal(err)
	}
	k, err := LoadOrCreateKey(dir)
	if err == nil {
		t.Fatalf("got key %x from a file owned by uid %d, want an error", k.Public(), otherUID)
	}
	for _, want := range []string{"owned by uid 4242", fmt.Sprintf("chown %d %s", os.Geteuid(), path), "remove it"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("got %q, want it to contain %q", err, want)
		}
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
		t.Error("got the file rewritten, want it left alone")
	}

	// Doing what the error says fixes it.
	if err := os.Chown(path, os.Geteuid(), -1); err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatalf("after chown back: got %v, want the key", err)
	}
	if !k1.Equal(k2) {
		t.Error("got a different key, want the first one")
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

// FuzzVerify feeds Verify the input as a token and, so that what comes
// after the signature check is fuzzed too, signed with our key: the
// input's first two segments re-signed, and an input that starts with "{"
// read as payload JSON (or "header JSON\npayload JSON") and signed.
func FuzzVerify(f *testing.F) {
	iss, now := newIssuer(f)
	ours := testKey(f)
	valid, _, err := iss.Issue("acme", "alice", "s-1", t0.Add(time.Minute))
	if err != nil {
		f.Fatal(err)
	}
	ourSigned := func(change map[string]any) string {
		return sign(f, jwt.SigningMethodEdDSA, ours, nil, goodClaims(change))
	}
	payload := enc(goodClaims(nil))
	f.Add(valid)
	f.Add(ourSigned(map[string]any{"aud": []string{"x", "pos"}}))
	f.Add(enc(map[string]any{"alg": "none", "kid": rfcKid}) + "." + payload + ".")
	f.Add(sign(f, jwt.SigningMethodHS256, []byte(ours.Public().(ed25519.PublicKey)), nil, goodClaims(nil)))
	f.Add(ourSigned(map[string]any{"sid": nil}))
	f.Add(ourSigned(map[string]any{"dom": nil})) // issued before domains: read as default
	f.Add(ourSigned(map[string]any{"dom": ""}))
	f.Add(ourSigned(map[string]any{"dom": "Acme"}))
	f.Add(ourSigned(map[string]any{"dom": 1}))
	f.Add(legacyToken)
	f.Add(ourSigned(map[string]any{"exp": 1e300}))
	f.Add(ourSigned(map[string]any{"iat": -1.5}))
	f.Add(replaceSegment(valid, 1, payload))
	f.Add("")
	f.Add("a.b.c")
	f.Add("..")
	f.Add("eyJhbGciOiJFZERTQSJ9.e30.")
	// The strict checks' cases, as tokens and as raw JSON.
	expText := strconv.FormatInt(t0.Add(time.Minute).Unix(), 10)
	claimsJSON := jsonText(goodClaims(nil))
	for _, p := range []string{
		jsonText(goodClaims(map[string]any{"exp": expText})),
		jsonText(goodClaims(map[string]any{"exp": json.Number(expText + ".5")})),
		jsonText(goodClaims(map[string]any{"exp": nil, "EXP": t0.Add(time.Minute).Unix()})),
		jsonText(goodClaims(map[string]any{"sid": nil, "Sid": "s-1"})),
		jsonText(goodClaims(map[string]any{"sub": nil, "SUB": "alice"})),
		jsonText(goodClaims(map[string]any{"sub": nil, "ſub": "alice"})),
		jsonText(goodClaims(map[string]any{"dom": nil, "DOM": "acme"})),
		jsonText(goodClaims(map[string]any{"dom": nil})),
		jsonText(goodClaims(map[string]any{"dom": "a-b.c"})),
		jsonText(goodClaims(map[string]any{"dom": []string{"acme"}})),
		withMember(claimsJSON, `"sub":"mallory"`),
		withMember(claimsJSON, `"dom":"other"`),
		withMember(claimsJSON, `"\u0064om":"other"`),
		withMember(claimsJSON, `"\u0073ub":"mallory"`),
		withMember(claimsJSON, `"ctx":{"a":[1,{"b":2,"b":3}]}`),
		jsonText(goodClaims(map[string]any{"exp": t0.Add(-time.Hour).Unix(), "iat": t0.Add(-2 * time.Hour).Unix()})), // expired only
		claimsJSON,
	} {
		f.Add(signRaw(f, ours, goodHeader, p))
		f.Add(p)
	}
	for _, h := range []string{
		jsonText(map[string]any{"alg": "EdDSA", "typ": "JWT", "kid": rfcKid, "crit": []string{"exp"}}),
		withMember(goodHeader, `"alg":"none"`),
		jsonText(map[string]any{"alg": "EdDSA", "typ": "jwt", "kid": rfcKid}),
		goodHeader,
	} {
		f.Add(signRaw(f, ours, h, claimsJSON))
		f.Add(h + "\n" + claimsJSON)
	}
	f.Fuzz(func(t *testing.T, in string) {
		*now = t0
		checkVerify(t, iss, in)
		if h, rest, ok := strings.Cut(in, "."); ok {
			p, _, _ := strings.Cut(rest, ".")
			checkVerify(t, iss, signSegments(t, ours, h+"."+p))
		}
		if strings.HasPrefix(in, "{") {
			h, p, ok := strings.Cut(in, "\n")
			if !ok {
				h, p = goodHeader, in
			}
			checkVerify(t, iss, signRaw(t, ours, h, p))
		}
	})
}

// checkVerify verifies tok with iss's clock at t0 and checks what must
// hold of every answer.
func checkVerify(t *testing.T, iss *Issuer, tok string) {
	t.Helper()
	c, err := iss.Verify(tok)
	if err != nil {
		if code := pos.ErrorCode(err); code != pos.EUNAUTHORIZED {
			t.Fatalf("%q: got code %q, want %q", tok, code, pos.EUNAUTHORIZED)
		}
		if !errors.Is(err, ErrExpired) {
			if c != (Claims{}) || pos.ErrorMessage(err) != "invalid token" {
				t.Fatalf("%q: got claims %+v and %v, want none and invalid token", tok, c, err)
			}
			return
		}
		if msg := pos.ErrorMessage(err); msg != "token expired" {
			t.Fatalf("%q: got %q with ErrExpired, want token expired", tok, msg)
		}
		if c.ExpiresAt.Add(Leeway).After(t0) {
			t.Errorf("%q: expired with exp %v, want exp+Leeway not after %v", tok, c.ExpiresAt, t0)
		}
	} else if !c.ExpiresAt.Add(Leeway).After(t0) {
		t.Errorf("%q: accepted with exp %v, want exp+Leeway after %v", tok, c.ExpiresAt, t0)
	}

	// Claims came back (valid, or only expired): the token must be ours,
	// say so again, and read one way only.
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("%q: got claims %+v for %d segments", tok, c, len(parts))
	}
	sig, serr := b64.DecodeString(parts[2])
	if serr != nil || !ed25519.Verify(iss.PublicKey(), []byte(parts[0]+"."+parts[1]), sig) {
		t.Fatalf("%q: got claims %+v for a signature that is not ours", tok, c)
	}
	if c.Subject == "" || c.SessionID == "" {
		t.Errorf("%q: got sub %q sid %q, want both non-empty", tok, c.Subject, c.SessionID)
	}
	if err := pos.ValidateDomain(c.Domain); err != nil {
		t.Errorf("%q: got dom %q: %v, want a domain name", tok, c.Domain, err)
	}
	if c.IssuedAt.After(t0.Add(Leeway)) {
		t.Errorf("%q: got iat %v, want not after %v", tok, c.IssuedAt, t0.Add(Leeway))
	}
	if !c.ExpiresAt.After(c.IssuedAt) {
		t.Errorf("%q: got exp %v not after iat %v", tok, c.ExpiresAt, c.IssuedAt)
	}
	again, err2 := iss.Verify(tok)
	if again != c || (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
		t.Errorf("%q: verified again, got %+v, %v, want %+v, %v", tok, again, err2, c, err)
	}
	payload, perr := b64.DecodeString(parts[1])
	if perr != nil {
		t.Fatalf("%q: got claims from a payload that is not base64url: %v", tok, perr)
	}
	checkOneReading(t, payload, c)
}

// checkOneReading checks that an accepted payload has no repeated key at
// any depth and no case variant of a registered claim, and that a plain
// map reads from it the claims Verify gave: dom as Verify gave it, or no
// dom and the default domain.
func checkOneReading(t *testing.T, payload []byte, c Claims) {
	t.Helper()
	if err := keysOnce(payload, true); err != nil {
		t.Fatalf("accepted payload %s: %v", payload, err)
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("accepted payload %s: %v", payload, err)
	}
	for k, want := range map[string]any{
		"sub": c.Subject,
		"sid": c.SessionID,
		"iat": json.Number(strconv.FormatInt(c.IssuedAt.Unix(), 10)),
		"exp": json.Number(strconv.FormatInt(c.ExpiresAt.Unix(), 10)),
	} {
		if m[k] != want {
			t.Errorf("accepted payload %s: got %s %#v read plainly, want %#v as Verify gave", payload, k, m[k], want)
		}
	}
	if dom, ok := m["dom"]; ok && dom != c.Domain || !ok && c.Domain != pos.DefaultDomain {
		t.Errorf("accepted payload %s: got dom %#v (present %v) read plainly, want Verify's %q", payload, dom, ok, c.Domain)
	}
}

// keysOnce walks a JSON value with Decode (not the Token walk the package
// uses) and reports a repeated key, or at the top a case variant of a
// registered claim.
func keysOnce(v json.RawMessage, top bool) error {
	dec := json.NewDecoder(bytes.NewReader(v))
	open, err := dec.Token()
	if err != nil {
		return err
	}
	switch open {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return err
			}
			key := k.(string)
			if seen[key] {
				return fmt.Errorf("key %q twice", key)
			}
			seen[key] = true
			if top {
				for _, name := range []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "sid", "dom"} {
					if key != name && strings.EqualFold(key, name) {
						return fmt.Errorf("key %q is a case variant of %q", key, name)
					}
				}
			}
			var sub json.RawMessage
			if err := dec.Decode(&sub); err != nil {
				return err
			}
			if err := keysOnce(sub, false); err != nil {
				return err
			}
		}
	case json.Delim('['):
		for dec.More() {
			var sub json.RawMessage
			if err := dec.Decode(&sub); err != nil {
				return err
			}
			if err := keysOnce(sub, false); err != nil {
				return err
			}
		}
	}
	return nil
}

func BenchmarkIssue(b *testing.B) {
	iss, _ := newIssuer(b)
	deadline := t0.Add(48 * time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := iss.Issue("acme", "alice", "s-1", deadline); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	iss, _ := newIssuer(b)
	tok, _, err := iss.Issue("acme", "alice", "s-1", t0.Add(48*time.Hour))
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
