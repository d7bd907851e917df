package token

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"strings"
)

// The parser decodes header and payload with encoding/json, which is
// lenient where a token must not be: it matches struct fields to keys
// case-insensitively (with Unicode folding: "ſub" is sub), lets the last of
// two equal keys win, and reads a NumericDate from a JSON string. Another
// verifier reading the same bytes could then see other claims than we do.
// strictHeader and strictPayload read the raw JSON first and refuse all of
// that, so the parser only ever sees one reading.

// maxDepth bounds the nesting of values in unknown claims; ours have none.
const maxDepth = 16

// maxDateDigits bounds exp, iat and nbf: whole seconds that a float64 (what
// jwt converts a NumericDate through) holds exactly.
const maxDateDigits = 15

var segmentEncoding = base64.RawURLEncoding.Strict()

// registered are the payload claims the parser reads into sessionClaims.
// dom is private, not registered, but the parser reads it as the others.
var registered = [...]string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "sid", "dom"}

// strictHeader reports whether the header segment is a JSON object whose
// members are alg and kid (strings) and optionally typ ("JWT"), each at
// most once. Anything else, crit included, is refused: a verifier must
// refuse a crit it does not implement (RFC 7515 4.1.11), and we implement
// none.
func strictHeader(seg string) bool {
	return strictObject(seg, func(dec *json.Decoder, key string) bool {
		switch key {
		case "alg", "kid":
			_, ok := stringToken(dec)
			return ok
		case "typ":
			s, ok := stringToken(dec)
			return ok && s == "JWT"
		}
		return false
	})
}

// strictPayload reports whether the payload segment is a JSON object with
// no key twice (at any depth), no key that only case-folds to a registered
// claim's name, exp/iat/nbf as whole non-negative JSON numbers, iss, sub,
// sid, jti and dom as strings and aud a string or an array of strings.
// Other claims may hold any JSON value. (Whether dom names a domain is
// Validate's check, after the signature's.)
func strictPayload(seg string) bool {
	return strictObject(seg, func(dec *json.Decoder, key string) bool {
		switch key {
		case "iss", "sub", "sid", "jti", "dom":
			_, ok := stringToken(dec)
			return ok
		case "exp", "iat", "nbf":
			return wholeSeconds(dec)
		case "aud":
			return audience(dec)
		}
		for _, name := range registered {
			if strings.EqualFold(key, name) {
				return false
			}
		}
		return skipValue(dec, 1)
	})
}

// strictObject decodes seg, checks it is one JSON object with distinct
// keys and nothing after it, and hands each member's key to member, which
// must consume the value.
func strictObject(seg string, member func(dec *json.Decoder, key string) bool) bool {
	// The caller has bounded the token by MaxTokenLen, and so seg.
	raw, err := segmentEncoding.DecodeString(seg)
	if err != nil {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if !delim(dec, '{') {
		return false
	}
	var keys keySet
	for dec.More() {
		key, ok := stringToken(dec)
		if !ok || !keys.add(key) || !member(dec, key) {
			return false
		}
	}
	if !delim(dec, '}') {
		return false
	}
	_, err = dec.Token()
	return err == io.EOF
}

// skipValue consumes one value, checking any object in it for repeated
// keys.
func skipValue(dec *json.Decoder, depth int) bool {
	t, err := dec.Token()
	if err != nil {
		return false
	}
	d, ok := t.(json.Delim)
	if !ok {
		return true // a scalar
	}
	if depth > maxDepth {
		return false
	}
	switch d {
	case '{':
		var keys keySet
		for dec.More() {
			key, ok := stringToken(dec)
			if !ok || !keys.add(key) || !skipValue(dec, depth+1) {
				return false
			}
		}
		return delim(dec, '}')
	case '[':
		for dec.More() {
			if !skipValue(dec, depth+1) {
				return false
			}
		}
		return delim(dec, ']')
	}
	return false
}

// wholeSeconds consumes a JSON number of at most maxDateDigits digits and
// nothing else: no sign, fraction or exponent. A string ("1999999999") is
// refused, though json.Number would read it; a fraction is refused because
// jwt truncates it to the second, so two spellings would mean one instant.
func wholeSeconds(dec *json.Decoder) bool {
	t, err := dec.Token()
	if err != nil {
		return false
	}
	n, ok := t.(json.Number)
	if !ok || len(n) == 0 || len(n) > maxDateDigits {
		return false
	}
	for i := 0; i < len(n); i++ {
		if n[i] < '0' || n[i] > '9' {
			return false
		}
	}
	return true
}

// audience consumes a string or an array of strings.
func audience(dec *json.Decoder) bool {
	t, err := dec.Token()
	if err != nil {
		return false
	}
	if _, ok := t.(string); ok {
		return true
	}
	if t != json.Delim('[') {
		return false
	}
	for dec.More() {
		if _, ok := stringToken(dec); !ok {
			return false
		}
	}
	return delim(dec, ']')
}

func stringToken(dec *json.Decoder) (string, bool) {
	t, err := dec.Token()
	if err != nil {
		return "", false
	}
	s, ok := t.(string)
	return s, ok
}

func delim(dec *json.Decoder, want json.Delim) bool {
	t, err := dec.Token()
	return err == nil && t == want
}

// keySet holds an object's keys: a slice for the few a token has, a map
// past that so that many keys do not cost quadratic time.
type keySet struct {
	few  [8]string
	n    int
	many map[string]struct{}
}

// add reports whether key was new.
func (s *keySet) add(key string) bool {
	if s.many != nil {
		if _, dup := s.many[key]; dup {
			return false
		}
		s.many[key] = struct{}{}
		return true
	}
	for _, k := range s.few[:s.n] {
		if k == key {
			return false
		}
	}
	if s.n < len(s.few) {
		s.few[s.n] = key
		s.n++
		return true
	}
	s.many = make(map[string]struct{}, 2*len(s.few))
	for _, k := range s.few {
		s.many[k] = struct{}{}
	}
	s.many[key] = struct{}{}
	return true
}
