// Package token issues and verifies idleguard's session JWTs.
//
// Tokens are signed with one Ed25519 key (alg EdDSA, the only algorithm
// accepted), carry the key's RFC 7638 thumbprint as kid, and always have
// iss, aud, sub, sid, iat and exp, and dom: the domain (POS business) the
// session belongs to. Verify checks the token alone; whether its session
// (sid) is still alive, and whether its domain is the one being served, are
// the caller's questions (DESIGN.md, invariant 5 and Domains).
//
// Tokens issued before domains existed have no dom; Verify reads them as
// pos.DefaultDomain, where an upgraded single shop's sessions live, so that
// they survive the upgrade.
//
// exp is the session's idle deadline when the token was issued, not the
// end of the session: a live session's token may be past its exp when the
// page reloads or reconnects. So Verify reports a token whose only fault is
// a passed exp with its claims and ErrExpired, and the caller decides by
// the session's own state.
//
// iat, nbf and exp are checked with a Leeway of 5 s, so that a small step
// of the wall clock (NTP stepping it back a second) does not refuse the
// token just issued.
//
// Header and payload JSON are read strictly before the jwt parser sees them
// (strict.go), so that no other verifier can read other claims from the
// same bytes: no repeated keys, no case variants of claim names, no crit,
// dates as whole JSON numbers.
//
// The package relies on jwt.TimePrecision being its default, one second,
// and never changes it.
package token

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"idleguard/server/pos"
	"idleguard/server/protocol"
)

// MaxTokenLen is the longest token Verify will look at: the one limit the
// socket protocol also applies to a token in a state frame. Ours are about
// 300 bytes; anything near this limit is not one of ours.
const MaxTokenLen = protocol.MaxTokenLen

// Leeway is how far the clock may be off when Verify checks iat, nbf and
// exp: a token is accepted from iat-Leeway and until exp+Leeway. It absorbs
// a step of the wall clock between Issue and Verify (or between two nodes);
// liveness is decided by the session, not by exp, so the extra seconds at
// the end grant nothing.
const Leeway = 5 * time.Second

// ErrExpired is in the error chain of Verify's error for a token that is
// valid in every way except that exp (plus Leeway) has passed; only then
// does Verify also return the token's claims.
var ErrExpired = errors.New("token: expired")

// The iss and aud every idleguard server issues and expects; a program that
// mints tokens for one (the load harness) must use the same.
const (
	DefaultIssuer   = "idleguard"
	DefaultAudience = "pos"
)

// Config names the token's issuer and audience and gives the clock.
type Config struct {
	Issuer   string           // iss, e.g. "idleguard"
	Audience string           // aud, e.g. "pos"
	Now      func() time.Time // clock for iat and for checking exp/iat; nil means time.Now
}

// Claims is what a token says, as Issue wrote it and Verify read it.
type Claims struct {
	Domain    string    // dom: the session's domain; pos.DefaultDomain for a token without dom
	Subject   string    // sub: the username
	SessionID string    // sid
	IssuedAt  time.Time // iat, whole seconds
	ExpiresAt time.Time // exp, whole seconds
}

// Issuer signs and verifies tokens with one key. It is safe for concurrent use.
type Issuer struct {
	key    ed25519.PrivateKey
	pub    ed25519.PublicKey
	kid    string
	header string // the header segment Issue writes
	jwks   []byte
	cfg    Config
	parser *jwt.Parser // signature, alg and kid only: WithoutClaimsValidation

	validator    *jwt.Validator // every claim
	validatorNow *jwt.Validator // every claim but exp
}

// sessionClaims is the JSON payload: the registered claims, sid and dom.
// Dom is a pointer so that a token without dom (issued before domains
// existed) is told apart from one with an empty dom, which is refused.
type sessionClaims struct {
	jwt.RegisteredClaims
	Sid string  `json:"sid"`
	Dom *string `json:"dom,omitempty"`
}

// Validate runs after the validator's own checks (exp, iat, nbf, iss,
// aud): it requires the claims jwt treats as optional, and a dom, when
// present, that names a domain.
func (c *sessionClaims) Validate() error {
	switch {
	case c.Subject == "":
		return errors.New("sub claim is required")
	case c.Sid == "":
		return errors.New("sid claim is required")
	case c.IssuedAt == nil:
		return errors.New("iat claim is required")
	case c.Dom != nil && pos.ValidateDomain(*c.Dom) != nil:
		return errors.New("dom claim is not a domain name")
	}
	return nil
}

// New returns an Issuer for key. It panics if key is not an Ed25519 private
// key or cfg lacks Issuer or Audience (an empty issuer would switch the iss
// check off).
func New(key ed25519.PrivateKey, cfg Config) *Issuer {
	if len(key) != ed25519.PrivateKeySize {
		panic("token.New: bad Ed25519 private key")
	}
	if cfg.Issuer == "" || cfg.Audience == "" {
		panic("token.New: Config needs Issuer and Audience")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	pub := key.Public().(ed25519.PublicKey)
	x := base64.RawURLEncoding.EncodeToString(pub)
	kid := Thumbprint(pub)
	jwks, err := json.Marshal(jwkSet{Keys: []jwk{{
		Kty: "OKP", Crv: "Ed25519", X: x, Kid: kid, Alg: "EdDSA", Use: "sig",
	}}})
	if err != nil {
		panic(err) // cannot happen: plain strings
	}
	// The header Issue writes, as jwt encodes it, is strict by
	// construction; Verify compares it instead of reading it again.
	t := jwt.New(jwt.SigningMethodEdDSA)
	t.Header["kid"] = kid
	signing, err := t.SigningString()
	if err != nil {
		panic(err) // cannot happen: plain strings
	}
	header, _, _ := strings.Cut(signing, ".")
	if !strictHeader(header) {
		panic("token.New: jwt writes a header Verify would refuse: " + header)
	}
	claimChecks := []jwt.ParserOption{
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(cfg.Now),
	}
	return &Issuer{
		key:    key,
		pub:    pub,
		kid:    kid,
		header: header,
		jwks:   jwks,
		cfg:    cfg,
		// The parser checks the signature before the claims, but fills the
		// claims in before either; with the claims check split off, a nil
		// error from it means exactly "signature, alg and kid are good".
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
			jwt.WithStrictDecoding(),
			jwt.WithoutClaimsValidation(),
		),
		validator:    jwt.NewValidator(append(claimChecks, jwt.WithExpirationRequired())...),
		validatorNow: jwt.NewValidator(claimChecks...),
	}
}

// Thumbprint is the RFC 7638 JWK thumbprint of an Ed25519 public key:
// base64url(SHA-256({"crv":"Ed25519","kty":"OKP","x":"..."})), members in
// lexicographic order, no whitespace.
func Thumbprint(pub ed25519.PublicKey) string {
	canon := `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	sum := sha256.Sum256([]byte(canon))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// KeyID is the kid in every token's header: the key's RFC 7638 thumbprint.
func (i *Issuer) KeyID() string { return i.kid }

// PublicKey is the key that verifies this Issuer's tokens.
func (i *Issuer) PublicKey() ed25519.PublicKey { return i.pub }

type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

type jwkSet struct {
	Keys []jwk `json:"keys"`
}

// JWKS is the public key set served at /.well-known/jwks.json. Each call
// returns a fresh copy.
func (i *Issuer) JWKS() []byte { return append([]byte(nil), i.jwks...) }

// Issue signs a token for subject's session sid in domain whose idle
// deadline is deadline. exp is deadline rounded up to the whole second, so
// the token never ends before the session; iat is Now() truncated to the
// second. An empty domain, subject or sid, a domain that is not a valid
// name (which Verify would refuse), or a deadline whose exp would not be
// after Now(), is a caller bug and returns a plain (internal) error.
func (i *Issuer) Issue(domain, subject, sid string, deadline time.Time) (string, Claims, error) {
	if domain == "" || subject == "" || sid == "" {
		return "", Claims{}, errors.New("token: Issue needs a domain, a subject and a session id")
	}
	if err := pos.ValidateDomain(domain); err != nil {
		// %v, not %w: the caller's bug is not the user's EINVALID.
		return "", Claims{}, fmt.Errorf("token: Issue: domain %q: %v", domain, err)
	}
	now := i.cfg.Now()
	iat := now.Truncate(time.Second)
	exp := ceilSecond(deadline)
	if !exp.After(now) {
		return "", Claims{}, fmt.Errorf("token: deadline %v is not after now %v", deadline, now)
	}
	c := sessionClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    i.cfg.Issuer,
			Subject:   subject,
			Audience:  jwt.ClaimStrings{i.cfg.Audience},
			ExpiresAt: jwt.NewNumericDate(exp),
			IssuedAt:  jwt.NewNumericDate(iat),
		},
		Sid: sid,
		Dom: &domain,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, &c)
	t.Header["kid"] = i.kid
	s, err := t.SignedString(i.key)
	if err != nil {
		return "", Claims{}, fmt.Errorf("token: sign: %w", err)
	}
	return s, Claims{Domain: domain, Subject: subject, SessionID: sid, IssuedAt: iat, ExpiresAt: exp}, nil
}

// ceilSecond rounds t up to the whole second (and drops its monotonic
// reading, which a JWT cannot carry).
func ceilSecond(t time.Time) time.Time {
	down := t.Truncate(time.Second)
	if down.Before(t) {
		return down.Add(time.Second)
	}
	return down
}

// Verify checks token's signature, algorithm, kid and claims and returns
// the claims. It does not know whether the session is still alive, nor
// which domain is being served: the caller must refuse a token whose
// Claims.Domain is not the request's domain (a token of one domain is
// refused by every other), and look the session up in that domain.
// A token without dom, issued before domains existed, has Domain
// pos.DefaultDomain; a dom that is present must be a valid domain name
// (pos.ValidateDomain), else the token is invalid. Every
// failure is a *pos.Error with code pos.EUNAUTHORIZED and zero Claims,
// with one exception: a token whose signature and claims are all valid
// except that exp+Leeway has passed gives its Claims and a "token expired"
// error for which errors.Is(err, ErrExpired) holds. The caller may then
// accept it if the session itself is still alive.
func (i *Issuer) Verify(token string) (Claims, error) {
	if len(token) > MaxTokenLen || !wellFormed(token) {
		return Claims{}, errInvalid()
	}
	header, rest, _ := strings.Cut(token, ".")
	payload, _, _ := strings.Cut(rest, ".")
	if (header != i.header && !strictHeader(header)) || !strictPayload(payload) {
		return Claims{}, errInvalid()
	}
	var c sessionClaims
	if t, err := i.parser.ParseWithClaims(token, &c, i.keyFunc); err != nil || !t.Valid {
		// c may be filled in, from a token whose signature is not known good.
		return Claims{}, errInvalid()
	}
	// From here on the signature is ours.
	err := i.validator.Validate(&c)
	if err == nil && c.ExpiresAt.After(c.IssuedAt.Time) {
		return c.claims(), nil
	}
	if !errors.Is(err, jwt.ErrTokenExpired) {
		return Claims{}, errInvalid()
	}
	// Expired, and maybe more: only if everything but exp holds are the
	// claims worth giving back. Issue always writes exp after iat.
	unexpired := c
	unexpired.ExpiresAt = nil
	if i.validatorNow.Validate(&unexpired) != nil || !c.ExpiresAt.After(c.IssuedAt.Time) {
		return Claims{}, errInvalid()
	}
	return c.claims(), errExpired()
}

func (c *sessionClaims) claims() Claims {
	domain := pos.DefaultDomain
	if c.Dom != nil {
		domain = *c.Dom
	}
	return Claims{
		Domain:    domain,
		Subject:   c.Subject,
		SessionID: c.Sid,
		IssuedAt:  c.IssuedAt.Time,
		ExpiresAt: c.ExpiresAt.Time,
	}
}

// errInvalid and errExpired build a fresh error each time, so that no
// caller can change another's.
func errInvalid() error { return pos.Errorf(pos.EUNAUTHORIZED, "invalid token") }
func errExpired() error {
	return &expiredError{pos.Errorf(pos.EUNAUTHORIZED, "token expired")}
}

// expiredError is the "token expired" *pos.Error, with ErrExpired in its
// chain.
type expiredError struct{ err *pos.Error }

func (e *expiredError) Error() string   { return e.err.Error() }
func (e *expiredError) Unwrap() []error { return []error{e.err, ErrExpired} }

// keyFunc hands the parser our public key, and only for a token that names
// it (kid) and the pinned algorithm.
func (i *Issuer) keyFunc(t *jwt.Token) (any, error) {
	if t.Method != jwt.SigningMethodEdDSA {
		return nil, errors.New("unexpected signing method")
	}
	if kid, _ := t.Header["kid"].(string); kid != i.kid {
		return nil, errors.New("unknown kid")
	}
	return i.pub, nil
}

// wellFormed reports whether s is three base64url segments joined by dots
// and nothing else. The base64 decoder skips CR and LF, so without this
// check one token would have many spellings.
func wellFormed(s string) bool {
	dots := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.':
			dots++
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return dots == 2
}
