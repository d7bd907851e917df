// Package token issues and verifies idleguard's session JWTs.
//
// Tokens are signed with an Ed25519 key (alg EdDSA, the only algorithm
// accepted), carry the key's RFC 7638 thumbprint as kid, and always have
// iss, aud, sub, sid, iat and exp, and dom: the domain (POS business) the
// session belongs to. An Issuer signs with one key and verifies with a set
// of keys, the kid choosing one: a single node's set is its one key, from
// the data directory (LoadOrCreateKey); a cluster's is the current key and
// the retired ones still needed, from a pos.KeyStore, kept current by a
// KeyRing (keyring.go). Verify checks the token alone; whether its session
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
// iat, nbf and exp are checked with a Leeway of 15 s, so that a step of
// the wall clock (NTP stepping it back a second), or another node's clock
// 10 s off, does not refuse the token just issued.
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
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
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
// a step of the wall clock between Issue and Verify, and the difference
// between two nodes of a cluster: each may be 5 s off, so 10 s apart, and a
// token one node just renewed must verify on the other at once. Liveness
// is decided by the session, not by exp, so the extra seconds at the end
// grant nothing.
const Leeway = 15 * time.Second

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

// Issuer signs tokens with its current key and verifies them with any key
// of its set. It is safe for concurrent use, SetKeys included.
type Issuer struct {
	keys   atomic.Pointer[signingKeys]
	cfg    Config
	parser *jwt.Parser // signature, alg and kid only: WithoutClaimsValidation

	validator    *jwt.Validator // every claim
	validatorNow *jwt.Validator // every claim but exp

	// reload, when set (by NewKeyRing, before the Issuer is shared), is
	// called by Verify for a token whose kid is not in the set; it reports
	// whether the keys have been reloaded since, and so are worth trying.
	reload func() bool
}

// signingKeys is an Issuer's keys at one moment. It is never changed once
// built: SetKeys swaps in another, so that Issue and Verify each read one
// set, whole.
type signingKeys struct {
	key    ed25519.PrivateKey // the current key, which signs
	pub    ed25519.PublicKey
	kid    string
	header string                       // the header segment Issue writes
	byKid  map[string]ed25519.PublicKey // every key of the set, the current one too
	jwks   []byte
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

// New returns an Issuer whose one key is key: the single node's, from
// LoadOrCreateKey. It panics if key is not an Ed25519 private key or cfg
// lacks Issuer or Audience (an empty issuer would switch the iss check
// off).
func New(key ed25519.PrivateKey, cfg Config) *Issuer {
	if len(key) != ed25519.PrivateKeySize {
		panic("token.New: bad Ed25519 private key")
	}
	i := newUnkeyed(cfg, "token.New")
	set, err := newSigningKeys([]pos.SigningKey{{ID: Thumbprint(key.Public().(ed25519.PublicKey)), Private: key}})
	if err != nil {
		panic("token.New: " + err.Error())
	}
	i.keys.Store(set)
	return i
}

// newUnkeyed is an Issuer with no keys yet; caller names the constructor
// in its panic.
func newUnkeyed(cfg Config, caller string) *Issuer {
	if cfg.Issuer == "" || cfg.Audience == "" {
		panic(caller + ": Config needs Issuer and Audience")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	claimChecks := []jwt.ParserOption{
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(cfg.Now),
	}
	return &Issuer{
		cfg: cfg,
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
// lexicographic order, no whitespace. It is pos.KeyID, the name a
// pos.KeyStore gives a key.
func Thumbprint(pub ed25519.PublicKey) string { return pos.KeyID(pub) }

// KeyID is the kid in the header of every token Issue signs now: the
// current key's RFC 7638 thumbprint.
func (i *Issuer) KeyID() string { return i.keys.Load().kid }

// PublicKey is the current key's public key, which verifies the tokens
// Issue signs now.
func (i *Issuer) PublicKey() ed25519.PublicKey { return i.keys.Load().pub }

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

// JWKS is the public key set served at /.well-known/jwks.json: every key
// Verify accepts, the current one first. Each call returns a fresh copy.
func (i *Issuer) JWKS() []byte { return append([]byte(nil), i.keys.Load().jwks...) }

// SetKeys replaces the Issuer's keys, at once for every Issue and Verify
// that starts after it: keys[0] must be the current key, which signs, and
// the rest retired keys, which only verify (as pos.KeyStore.SigningKeys
// lists them). Each key's ID must be its public key's thumbprint, so that
// a kid always names the key that verifies it, and no ID may appear
// twice. On error the Issuer keeps the keys it had.
func (i *Issuer) SetKeys(keys []pos.SigningKey) error {
	set, err := newSigningKeys(keys)
	if err != nil {
		return err
	}
	i.keys.Store(set)
	return nil
}

// newSigningKeys checks keys as SetKeys says and builds the set.
func newSigningKeys(keys []pos.SigningKey) (*signingKeys, error) {
	if len(keys) == 0 {
		return nil, errors.New("token: no signing key")
	}
	set := &signingKeys{byKid: make(map[string]ed25519.PublicKey, len(keys))}
	var jwks jwkSet
	for n, k := range keys {
		if len(k.Private) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("token: key %d (%s): not an Ed25519 private key", n, k.ID)
		}
		if k.Current() != (n == 0) {
			return nil, fmt.Errorf("token: key %d (%s): want the current key first and only there", n, k.ID)
		}
		pub := k.Private.Public().(ed25519.PublicKey)
		if kid := Thumbprint(pub); k.ID != kid {
			return nil, fmt.Errorf("token: key %d: kid %q is not its thumbprint %q", n, k.ID, kid)
		}
		if _, dup := set.byKid[k.ID]; dup {
			return nil, fmt.Errorf("token: key %d: kid %q twice", n, k.ID)
		}
		set.byKid[k.ID] = pub
		jwks.Keys = append(jwks.Keys, jwk{
			Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(pub), Kid: k.ID, Alg: "EdDSA", Use: "sig",
		})
	}
	var err error
	if set.jwks, err = json.Marshal(jwks); err != nil {
		return nil, err // cannot happen: plain strings
	}
	set.key, set.kid = keys[0].Private, keys[0].ID
	set.pub = set.byKid[set.kid]
	// The header Issue writes, as jwt encodes it, is strict by
	// construction; Verify compares it instead of reading it again.
	t := jwt.New(jwt.SigningMethodEdDSA)
	t.Header["kid"] = set.kid
	signing, err := t.SigningString()
	if err != nil {
		return nil, err // cannot happen: plain strings
	}
	set.header, _, _ = strings.Cut(signing, ".")
	if !strictHeader(set.header) {
		return nil, errors.New("token: jwt writes a header Verify would refuse: " + set.header)
	}
	return set, nil
}

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
	set := i.keys.Load()
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
	t.Header["kid"] = set.kid
	s, err := t.SignedString(set.key)
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
//
// The kid picks the key of the set that must have signed the token; a
// token signed by any other key, whichever kid it names, is invalid. On
// an Issuer of a KeyRing, a kid not in the set first reloads the ring
// (at most once a second: Verify may wait up to that, and the reload),
// so that a key another node has just rotated in verifies here too.
func (i *Issuer) Verify(token string) (Claims, error) {
	if len(token) > MaxTokenLen || !wellFormed(token) {
		return Claims{}, errInvalid()
	}
	header, rest, _ := strings.Cut(token, ".")
	payload, _, _ := strings.Cut(rest, ".")
	set := i.keys.Load()
	if (header != set.header && !strictHeader(header)) || !strictPayload(payload) {
		return Claims{}, errInvalid()
	}
	var c sessionClaims
	err := i.checkSignature(set, token, &c)
	if errors.Is(err, errUnknownKid) && i.reload != nil && i.reload() {
		c = sessionClaims{}
		err = i.checkSignature(i.keys.Load(), token, &c)
	}
	if err != nil {
		// c may be filled in, from a token whose signature is not known good.
		return Claims{}, errInvalid()
	}
	// From here on the signature is one of ours.
	err = i.validator.Validate(&c)
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

// errUnknownKid is in checkSignature's error when the token names a kid
// that is not in the set.
var errUnknownKid = errors.New("unknown kid")

// checkSignature parses token into c and checks its algorithm, kid and
// signature against set; nil means exactly that they are good.
func (i *Issuer) checkSignature(set *signingKeys, token string, c *sessionClaims) error {
	t, err := i.parser.ParseWithClaims(token, c, set.keyFunc)
	if err == nil && !t.Valid {
		err = errors.New("not valid")
	}
	return err
}

// keyFunc hands the parser the public key the token's kid names, and only
// for the pinned algorithm.
func (s *signingKeys) keyFunc(t *jwt.Token) (any, error) {
	if t.Method != jwt.SigningMethodEdDSA {
		return nil, errors.New("unexpected signing method")
	}
	kid, _ := t.Header["kid"].(string)
	pub, ok := s.byKid[kid]
	switch {
	case ok:
		return pub, nil
	case !thumbprintShaped(kid):
		return nil, errors.New("kid is no thumbprint") // no key of any set: not worth a reload
	}
	return nil, errUnknownKid
}

// thumbprintShaped reports whether kid could be a Thumbprint: 43
// base64url characters, a SHA-256 sum.
func thumbprintShaped(kid string) bool {
	if len(kid) != 43 {
		return false
	}
	for i := 0; i < len(kid); i++ {
		switch c := kid[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
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
