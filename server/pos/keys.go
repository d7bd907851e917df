package pos

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"time"
)

// SigningKey is one Ed25519 key that signs session tokens, as the nodes
// of a cluster share it through a KeyStore. One key is current and signs;
// the retired ones only verify the tokens they signed while they were
// current, until those can no longer be accepted.
type SigningKey struct {
	ID        string // kid: KeyID of the public key
	Private   ed25519.PrivateKey
	Created   time.Time
	RetiredAt time.Time // zero while the key is current
}

// Current reports whether k is the key that signs.
func (k SigningKey) Current() bool { return k.RetiredAt.IsZero() }

// KeyID is the kid of the Ed25519 key whose public key is pub: its
// RFC 7638 JWK thumbprint, base64url(SHA-256 of
// {"crv":"Ed25519","kty":"OKP","x":"..."}), members in lexicographic
// order, no whitespace. A KeyStore names each key by it, so that the kid
// a token carries is the key's own and not a name anyone chose.
func KeyID(pub ed25519.PublicKey) string {
	canon := `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	sum := sha256.Sum256([]byte(canon))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// KeyStore holds the signing keys every node of a cluster signs and
// verifies tokens with, so that any node accepts any node's tokens. When
// it adds or retires a key, nodes learn it when they read SigningKeys
// again (token.KeyRing does so on a schedule and on a token with an
// unknown kid).
//
// It holds private keys: whoever can read them (a database role, a
// backup, a replica, a dump) can sign a token for any user of any domain.
// Its access control and its backups need the care the keys themselves
// do, and a key that may have leaked must be rotated out.
//
// Which retired keys are still needed is the token package's rule
// (token.KeyRetention); the store keeps every key until DropRetiredKeys.
type KeyStore interface {
	// EnsureSigningKey makes the first signing key, with gen, if the store
	// has none: however many nodes call it at once, on a new store,
	// exactly one key is created, and every caller returns after it has
	// been. gen is called only when there is no key yet. Created is at.
	EnsureSigningKey(ctx context.Context, gen func() (ed25519.PrivateKey, error), at time.Time) error
	// SigningKeys returns the current key first, then the retired ones,
	// most recently retired first; nil if there is none.
	SigningKeys(ctx context.Context) ([]SigningKey, error)
	// RotateSigningKey adds k as the current key, created at at, and
	// retires the previous current key at at, in one step: there is
	// always exactly one current key. Two rotations at once both happen,
	// one after the other.
	RotateSigningKey(ctx context.Context, k ed25519.PrivateKey, at time.Time) error
	// DropRetiredKeys deletes the keys retired before retiredBefore and
	// returns how many it deleted. The current key is never dropped.
	DropRetiredKeys(ctx context.Context, retiredBefore time.Time) (int, error)
}
