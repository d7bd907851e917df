package token

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestEncodingJSONIsLenient shows what the strict checks are for: the
// encoding/json the jwt parser decodes with reads each of these payloads
// as claims, though none spells them as Issue does.
func TestEncodingJSONIsLenient(t *testing.T) {
	for _, tc := range []struct {
		name, payload string
		read          func(c *sessionClaims) bool
	}{
		{"exp as a string", `{"exp":"1999999999"}`, func(c *sessionClaims) bool { return c.ExpiresAt != nil && c.ExpiresAt.Unix() == 1999999999 }},
		{"EXP", `{"EXP":1999999999}`, func(c *sessionClaims) bool { return c.ExpiresAt != nil }},
		{"Sid", `{"Sid":"s-1"}`, func(c *sessionClaims) bool { return c.Sid == "s-1" }},
		{"DOM", `{"DOM":"acme"}`, func(c *sessionClaims) bool { return c.Dom != nil && *c.Dom == "acme" }},
		{"dom twice, the last wins", `{"dom":"acme","dom":"other"}`, func(c *sessionClaims) bool { return c.Dom != nil && *c.Dom == "other" }},
		{"long s in sub", `{"ſub":"alice"}`, func(c *sessionClaims) bool { return c.Subject == "alice" }},
		{"sub twice, the last wins", `{"sub":"alice","sub":"mallory"}`, func(c *sessionClaims) bool { return c.Subject == "mallory" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c sessionClaims
			if err := json.Unmarshal([]byte(tc.payload), &c); err != nil || !tc.read(&c) {
				t.Errorf("got %+v, %v from %s; the strict check guards against a reading encoding/json no longer makes", c, err, tc.payload)
			}
			if strictPayload(b64.EncodeToString([]byte(tc.payload))) {
				t.Errorf("got %s accepted by strictPayload, want refused", tc.payload)
			}
		})
	}
}

func TestVerifyStrictJSON(t *testing.T) {
	iss, _ := newIssuer(t)
	ours := testKey(t)
	payload := jsonText(goodClaims(nil))
	// Each token below is signed with our key and differs from this valid
	// one only by what its name says.
	if _, err := iss.Verify(signRaw(t, ours, goodHeader, payload)); err != nil {
		t.Fatalf("the unchanged token: got %v, want valid", err)
	}
	ourSigned := func(change map[string]any) string {
		return sign(t, jwt.SigningMethodEdDSA, ours, nil, goodClaims(change))
	}
	withHeader := func(change map[string]any) string {
		return sign(t, jwt.SigningMethodEdDSA, ours, change, goodClaims(nil))
	}
	raw := func(header, payload string) string { return signRaw(t, ours, header, payload) }
	expText := strconv.FormatInt(t0.Add(time.Minute).Unix(), 10)
	exp := t0.Add(time.Minute).Unix()

	refused := []struct{ name, token string }{
		// exp, iat and nbf: whole seconds, as JSON numbers.
		{"exp as a string", ourSigned(map[string]any{"exp": expText})},
		{"iat as a string", ourSigned(map[string]any{"iat": strconv.FormatInt(t0.Unix(), 10)})},
		{"nbf as a string", ourSigned(map[string]any{"nbf": strconv.FormatInt(t0.Unix(), 10)})},
		{"exp with a fraction", ourSigned(map[string]any{"exp": json.Number(expText + ".5")})},
		{"exp with a zero fraction", ourSigned(map[string]any{"exp": json.Number(expText + ".0")})},
		{"exp with an exponent", ourSigned(map[string]any{"exp": json.Number(expText + "e0")})},
		{"iat negative", ourSigned(map[string]any{"iat": json.Number("-1")})},
		{"iat minus zero", ourSigned(map[string]any{"iat": json.Number("-0")})},
		{"exp of 16 digits", ourSigned(map[string]any{"exp": json.Number("1000000000000000")})},
		{"exp null", ourSigned(map[string]any{"exp": json.RawMessage("null")})},
		{"exp true", ourSigned(map[string]any{"exp": true})},
		{"exp in an array", ourSigned(map[string]any{"exp": []int64{exp}})},
		{"exp an object", ourSigned(map[string]any{"exp": map[string]any{"v": exp}})},

		// Registered names exactly as registered.
		{"EXP for exp", ourSigned(map[string]any{"exp": nil, "EXP": exp})},
		{"Exp beside exp", ourSigned(map[string]any{"Exp": t0.Add(-time.Hour).Unix()})},
		{"IAT for iat", ourSigned(map[string]any{"iat": nil, "IAT": t0.Unix()})},
		{"nBf beside", ourSigned(map[string]any{"nBf": t0.Add(time.Hour).Unix()})},
		{"Sid for sid", ourSigned(map[string]any{"sid": nil, "Sid": "s-1"})},
		{"SID beside sid", ourSigned(map[string]any{"SID": "s-2"})},
		{"DOM for dom", ourSigned(map[string]any{"dom": nil, "DOM": "acme"})},
		{"Dom beside dom", ourSigned(map[string]any{"Dom": "other"})},
		{"SUB for sub", ourSigned(map[string]any{"sub": nil, "SUB": "alice"})},
		{"ISS for iss", ourSigned(map[string]any{"iss": nil, "ISS": "idleguard"})},
		{"Aud for aud", ourSigned(map[string]any{"aud": nil, "Aud": "pos"})},
		{"JTI", ourSigned(map[string]any{"JTI": "j-1"})},
		{"long s in sub", ourSigned(map[string]any{"sub": nil, "ſub": "alice"})},
		{"long s in sid", ourSigned(map[string]any{"sid": nil, "ſid": "s-1"})},
		{"long s in iss", ourSigned(map[string]any{"iss": nil, "iſs": "idleguard"})},

		// Types of the other registered claims.
		{"sub a number", ourSigned(map[string]any{"sub": 1})},
		{"sub null", ourSigned(map[string]any{"sub": json.RawMessage("null")})},
		{"sub in an array", ourSigned(map[string]any{"sub": []string{"alice"}})},
		{"sid an object", ourSigned(map[string]any{"sid": map[string]any{}})},
		{"dom a number", ourSigned(map[string]any{"dom": 1})},
		{"dom null", ourSigned(map[string]any{"dom": json.RawMessage("null")})},
		{"dom false", ourSigned(map[string]any{"dom": false})},
		{"dom in an array", ourSigned(map[string]any{"dom": []string{"acme"}})},
		{"dom an object", ourSigned(map[string]any{"dom": map[string]any{"name": "acme"}})},
		{"iss a number", ourSigned(map[string]any{"iss": 1})},
		{"jti a number", ourSigned(map[string]any{"jti": 7})},
		{"aud a number", ourSigned(map[string]any{"aud": 1})},
		{"aud null", ourSigned(map[string]any{"aud": json.RawMessage("null")})},
		{"aud list with a number", ourSigned(map[string]any{"aud": []any{"pos", 1}})},
		{"aud list with a list", ourSigned(map[string]any{"aud": []any{"pos", []string{"pos"}}})},
		{"aud an object", ourSigned(map[string]any{"aud": map[string]any{"pos": true}})},

		// One key, one value.
		{"sub twice", raw(goodHeader, withMember(payload, `"sub":"mallory"`))},
		{"sub twice, once escaped", raw(goodHeader, withMember(payload, `"\u0073ub":"mallory"`))},
		{"exp twice, the later last", raw(goodHeader, strings.TrimSuffix(payload, "}")+`,"exp":9999999999}`)},
		{"sid twice", raw(goodHeader, withMember(payload, `"sid":"s-2"`))},
		{"dom twice", raw(goodHeader, withMember(payload, `"dom":"other"`))},
		{"dom twice, the same", raw(goodHeader, withMember(payload, `"dom":"acme"`))},
		{"dom twice, once escaped", raw(goodHeader, withMember(payload, `"\u0064om":"other"`))},
		{"unknown claim twice", raw(goodHeader, withMember(payload, `"pad":1,"pad":2`))},
		{"key twice inside a claim", raw(goodHeader, withMember(payload, `"ctx":{"a":1,"a":2}`))},
		{"key twice in an object in a list", raw(goodHeader, withMember(payload, `"ctx":[{"a":1,"a":2}]`))},

		// One JSON object, and only that.
		{"nested too deep", raw(goodHeader, withMember(payload, `"ctx":`+strings.Repeat("[", maxDepth+1)+strings.Repeat("]", maxDepth+1)))},
		{"payload then another object", raw(goodHeader, payload+"{}")},
		{"payload then garbage", raw(goodHeader, payload+"x")},
		{"payload in a list", raw(goodHeader, "["+payload+"]")},
		{"payload with a trailing comma", raw(goodHeader, strings.TrimSuffix(payload, "}")+",}")},
		{"payload a string", raw(goodHeader, `"x"`)},

		// Header: alg, kid and typ "JWT", once each; crit never.
		{"crit", withHeader(map[string]any{"crit": []string{"exp"}})},
		{"crit empty", withHeader(map[string]any{"crit": []string{}})},
		{"crit b64", withHeader(map[string]any{"crit": []string{"b64"}, "b64": false})},
		{"jku", withHeader(map[string]any{"jku": "https://evil.example/jwks.json"})},
		{"jwk", withHeader(map[string]any{"jwk": map[string]any{"kty": "OKP", "crv": "Ed25519", "x": rfcX}})},
		{"x5u", withHeader(map[string]any{"x5u": "https://evil.example/cert"})},
		{"cty", withHeader(map[string]any{"cty": "JWT"})},
		{"typ in lower case", withHeader(map[string]any{"typ": "jwt"})},
		{"typ JWS", withHeader(map[string]any{"typ": "JWS"})},
		{"typ a number", withHeader(map[string]any{"typ": 1})},
		{"typ null", withHeader(map[string]any{"typ": json.RawMessage("null")})},
		{"kid in a list", withHeader(map[string]any{"kid": []string{rfcKid}})},
		{"ALG beside alg", withHeader(map[string]any{"ALG": "none"})},
		{"Kid beside kid", withHeader(map[string]any{"Kid": "other"})},
		{"alg twice", raw(withMember(goodHeader, `"alg":"none"`), payload)},
		{"kid twice", raw(withMember(goodHeader, `"kid":"other"`), payload)},
		{"typ twice", raw(withMember(goodHeader, `"typ":"JWT"`), payload)},
		{"header then garbage", raw(goodHeader+"x", payload)},
		{"header in a list", raw("["+goodHeader+"]", payload)},
	}
	for _, tc := range refused {
		t.Run("refused: "+tc.name, func(t *testing.T) {
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

	many := map[string]any{}
	for n := range 40 {
		many["pad"+strconv.Itoa(n)] = n
	}
	indented, err := json.MarshalIndent(goodClaims(nil), " ", "\t")
	if err != nil {
		t.Fatal(err)
	}
	accepted := []struct{ name, token string }{
		{"aud a list", ourSigned(map[string]any{"aud": []string{"other", "pos"}})},
		{"no typ", withHeader(map[string]any{"typ": nil})},
		{"jti", ourSigned(map[string]any{"jti": "j-1"})},
		{"nbf now", ourSigned(map[string]any{"nbf": t0.Unix()})},
		{"iat zero", ourSigned(map[string]any{"iat": 0})},
		{"unknown claims of every shape", ourSigned(map[string]any{
			"ctx": map[string]any{"a": []any{1, "x", nil, true, 2.5, map[string]any{"b": -1e3}}},
			"Pad": "not a registered name",
		})},
		{"many unknown claims", ourSigned(many)},
		{"nested up to the limit", raw(goodHeader, withMember(payload, `"ctx":`+strings.Repeat("[", maxDepth)+strings.Repeat("]", maxDepth)))},
		{"whitespace", raw(" "+goodHeader+"\n", "\n"+string(indented)+"\t")},
		{"an escaped name, once", raw(goodHeader, strings.Replace(payload, `"sub"`, `"\u0073ub"`, 1))},
	}
	for _, tc := range accepted {
		t.Run("accepted: "+tc.name, func(t *testing.T) {
			got, err := iss.Verify(tc.token)
			if err != nil {
				t.Fatalf("got %v, want valid", err)
			}
			if got.Domain != "acme" || got.Subject != "alice" || got.SessionID != "s-1" {
				t.Errorf("got dom %q sub %q sid %q, want acme alice s-1", got.Domain, got.Subject, got.SessionID)
			}
		})
	}
}
