package token

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"idleguard/server/pos"
)

// legacyToken is, byte for byte, what the release before domains issued
// on the RFC key at t0: Issue("alice", "s-1", t0+1m), with no dom. Its
// payload is
//
//	{"iss":"idleguard","sub":"alice","aud":["pos"],"exp":1772366460,"iat":1772366400,"sid":"s-1"}
const legacyToken = "eyJhbGciOiJFZERTQSIsImtpZCI6ImtQcktfcW14VldhWVZBOXd3QkY2SXVvM3ZWeno3VHhIQ1R3WEJ5Z3JTNGsiLCJ0eXAiOiJKV1QifQ" +
	".eyJpc3MiOiJpZGxlZ3VhcmQiLCJzdWIiOiJhbGljZSIsImF1ZCI6WyJwb3MiXSwiZXhwIjoxNzcyMzY2NDYwLCJpYXQiOjE3NzIzNjY0MDAsInNpZCI6InMtMSJ9" +
	".XQzeI6h7mDsbPS9eyxTeZeF4ymu98Yxm805P1gblqMKdhJAmNGWngwqrIRKbYL-lCV3daU9xjfuoB1awVdYBAQ"

func TestDomainRoundTrip(t *testing.T) {
	iss, _ := newIssuer(t)
	for _, domain := range []string{"acme", pos.DefaultDomain, "a", "0", "shop-3", strings.Repeat("z", pos.MaxDomainLen)} {
		t.Run(domain, func(t *testing.T) {
			tok, issued, err := iss.Issue(domain, "alice", "s-1", t0.Add(time.Minute))
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			if issued.Domain != domain {
				t.Errorf("got issued dom %q, want %q", issued.Domain, domain)
			}
			got, err := iss.Verify(tok)
			if err != nil {
				t.Fatalf("Verify: got %v, want nil", err)
			}
			if !sameClaims(got, issued) {
				t.Errorf("got claims %+v, want the issued %+v", got, issued)
			}
			var payload map[string]any
			if err := json.Unmarshal(segment(t, tok, 1), &payload); err != nil {
				t.Fatal(err)
			}
			if payload["dom"] != domain {
				t.Errorf("got payload dom %#v, want the string %q", payload["dom"], domain)
			}
		})
	}
}

// TestVerifyWithoutDomIsDefault: a token from before domains keeps its
// session through the upgrade, in the default domain, where the upgrade
// put a single shop's sessions.
func TestVerifyWithoutDomIsDefault(t *testing.T) {
	iss, now := newIssuer(t)
	want := Claims{Domain: pos.DefaultDomain, Subject: "alice", SessionID: "s-1", IssuedAt: t0, ExpiresAt: t0.Add(time.Minute)}
	if strings.Contains(string(segment(t, legacyToken, 1)), "dom") {
		t.Fatalf("got payload %s, want the previous release's, without dom", segment(t, legacyToken, 1))
	}

	t.Run("the previous release's token", func(t *testing.T) {
		got, err := iss.Verify(legacyToken)
		if err != nil {
			t.Fatalf("got %v, want valid", err)
		}
		if !sameClaims(got, want) {
			t.Errorf("got claims %+v, want %+v", got, want)
		}
	})
	t.Run("the previous release's token, idle past exp", func(t *testing.T) {
		defer func() { *now = t0 }()
		*now = t0.Add(time.Hour)
		got, err := iss.Verify(legacyToken)
		wantUnauthorized(t, err, "token expired")
		if !sameClaims(got, want) {
			t.Errorf("got claims %+v, want %+v", got, want)
		}
	})
	t.Run("hand-built without dom", func(t *testing.T) {
		tok := sign(t, jwt.SigningMethodEdDSA, testKey(t), nil, goodClaims(map[string]any{"dom": nil}))
		got, err := iss.Verify(tok)
		if err != nil {
			t.Fatalf("got %v, want valid", err)
		}
		if !sameClaims(got, want) {
			t.Errorf("got claims %+v, want %+v", got, want)
		}
	})
	t.Run("a dom of default reads the same", func(t *testing.T) {
		tok := sign(t, jwt.SigningMethodEdDSA, testKey(t), nil, goodClaims(map[string]any{"dom": pos.DefaultDomain}))
		got, err := iss.Verify(tok)
		if err != nil {
			t.Fatalf("got %v, want valid", err)
		}
		if !sameClaims(got, want) {
			t.Errorf("got claims %+v, want %+v", got, want)
		}
	})
}

// TestVerifyRefusesBadDom: a dom that is present must be one string that
// names a domain; nothing else passes for "no dom" or for another domain.
func TestVerifyRefusesBadDom(t *testing.T) {
	iss, now := newIssuer(t)
	ours := testKey(t)
	ourSigned := func(change map[string]any) string {
		return sign(t, jwt.SigningMethodEdDSA, ours, nil, goodClaims(change))
	}
	payload := jsonText(goodClaims(nil))
	raw := func(payload string) string { return signRaw(t, ours, goodHeader, payload) }
	acme, _, err := iss.Issue("acme", "alice", "s-1", t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	// The same token, its dom changed after signing.
	otherDom := replaceSegment(acme, 1, b64.EncodeToString([]byte(
		strings.Replace(string(segment(t, acme, 1)), `"dom":"acme"`, `"dom":"other"`, 1))))
	if otherDom == acme {
		t.Fatalf("payload %s has no acme dom", segment(t, acme, 1))
	}

	refused := []struct{ name, token string }{
		{"empty", ourSigned(map[string]any{"dom": ""})},
		{"a number", ourSigned(map[string]any{"dom": 1})},
		{"null", ourSigned(map[string]any{"dom": json.RawMessage("null")})},
		{"true", ourSigned(map[string]any{"dom": true})},
		{"in an array", ourSigned(map[string]any{"dom": []string{"acme"}})},
		{"an object", ourSigned(map[string]any{"dom": map[string]any{"name": "acme"}})},
		{"twice", raw(withMember(payload, `"dom":"other"`))},
		{"twice, the same", raw(withMember(payload, `"dom":"acme"`))},
		{"twice, once escaped", raw(withMember(payload, `"\u0064om":"other"`))},
		{"DOM for dom", ourSigned(map[string]any{"dom": nil, "DOM": "acme"})},
		{"Dom beside dom", ourSigned(map[string]any{"Dom": "other"})},
		{"changed after signing", otherDom},
	}
	for _, bad := range []string{
		"Acme", "ACME", "-acme", "acme-", "a.b", "acme.pos.example.com", "a_b", "a b", " acme", "acme\n",
		"ac\u212Ae", // Kelvin sign, which strings.ToLower folds to k
		"\u0430cme", // Cyrillic a
		"a\x00", "*", strings.Repeat("a", pos.MaxDomainLen+1),
	} {
		refused = append(refused, struct{ name, token string }{"not a domain name: " + strconv.QuoteToASCII(bad), ourSigned(map[string]any{"dom": bad})})
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			got, err := iss.Verify(tc.token)
			if err == nil {
				t.Fatalf("got valid %+v, want invalid token", got)
			}
			if got != (Claims{}) {
				t.Errorf("got claims %+v with the error, want none", got)
			}
			wantUnauthorized(t, err, "invalid token")
		})
	}

	// Past exp a bad dom is still a bad token, not an expired one whose
	// claims the caller might take.
	t.Run("not a domain name, and expired", func(t *testing.T) {
		defer func() { *now = t0 }()
		*now = t0.Add(time.Hour)
		got, err := iss.Verify(ourSigned(map[string]any{"dom": "Acme"}))
		if got != (Claims{}) {
			t.Errorf("got claims %+v, want none", got)
		}
		wantUnauthorized(t, err, "invalid token")
		if errors.Is(err, ErrExpired) {
			t.Error("got ErrExpired, want only invalid token")
		}
	})
}
