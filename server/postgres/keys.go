package postgres

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"idleguard/server/pos"
)

// The signing keys live in signing_keys, one row a key: its kid, its
// Ed25519 seed (the private key: this database holds a secret, see
// pos.KeyStore), when it was created and, once another key replaced it,
// when it was retired. A unique index allows one current key.

var _ pos.KeyStore = (*DB)(nil)

// keysLock is the advisory lock that EnsureSigningKey and
// RotateSigningKey hold for their transaction, so that the first key is
// made once and rotations follow one another ("idlekey" in ASCII; not
// migrateLock, which only Open takes).
const keysLock int64 = 0x69646c656b6579

// EnsureSigningKey makes the first key unless there is one. A node that
// starts on a database with a key reads that and is done; on a new
// database the callers queue on keysLock, the first makes the key and
// commits, and each after it finds the key. (READ COMMITTED: the count
// after the lock sees what the holder before committed.)
func (db *DB) EnsureSigningKey(ctx context.Context, gen func() (ed25519.PrivateKey, error), at time.Time) error {
	const op = "ensure signing key"
	var n int
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM signing_keys`).Scan(&n); err != nil || n > 0 {
		return wrap(op, err)
	}
	return db.write(ctx, op, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, keysLock); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM signing_keys`).Scan(&n); err != nil || n > 0 {
			return err
		}
		k, err := gen()
		if err != nil {
			return fmt.Errorf("generate: %w", err)
		}
		return insertKey(ctx, tx, k, at)
	})
}

// RotateSigningKey retires the current key and adds k as the current one
// in one transaction, under keysLock: a second rotation waits for the
// first and then retires the key the first added. A k already stored is
// ECONFLICT.
func (db *DB) RotateSigningKey(ctx context.Context, k ed25519.PrivateKey, at time.Time) error {
	return db.write(ctx, "rotate signing key", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, keysLock); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL`, millis(at)); err != nil {
			return err
		}
		return insertKey(ctx, tx, k, at)
	})
}

// insertKey stores k as the current key, named by its own thumbprint.
func insertKey(ctx context.Context, tx pgx.Tx, k ed25519.PrivateKey, at time.Time) error {
	if !wellFormedKey(k) {
		return errors.New("not an Ed25519 private key")
	}
	kid := pos.KeyID(k.Public().(ed25519.PublicKey))
	tag, err := tx.Exec(ctx, `
		INSERT INTO signing_keys (kid, seed, created) VALUES ($1, $2, $3)
		ON CONFLICT (kid) DO NOTHING`,
		kid, k.Seed(), millis(at))
	if err == nil && tag.RowsAffected() == 0 {
		return pos.Errorf(pos.ECONFLICT, "signing key %s exists", kid)
	}
	return err
}

// wellFormedKey reports whether k is an Ed25519 private key whose public
// half is its seed's: only the seed is stored, so a key with another
// public half would come back as a different key.
func wellFormedKey(k ed25519.PrivateKey) bool {
	return len(k) == ed25519.PrivateKeySize &&
		ed25519.NewKeyFromSeed(k.Seed()).Public().(ed25519.PublicKey).Equal(k.Public())
}

// SigningKeys reads every key, the current one first, then the retired
// ones by retirement, newest first. A row whose kid is not its key's
// thumbprint is refused, not handed to a verifier.
func (db *DB) SigningKeys(ctx context.Context) ([]pos.SigningKey, error) {
	const op = "signing keys"
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	rows, _ := db.pool.Query(ctx, `
		SELECT kid, seed, created, retired_at FROM signing_keys
		ORDER BY retired_at DESC NULLS FIRST, created DESC, kid`)
	keys, err := collect(rows, func(row pgx.CollectableRow) (pos.SigningKey, error) {
		var (
			k       pos.SigningKey
			seed    []byte
			created int64
			retired *int64
		)
		if err := row.Scan(&k.ID, &seed, &created, &retired); err != nil {
			return k, err
		}
		if len(seed) != ed25519.SeedSize {
			return k, fmt.Errorf("key %s: seed of %d bytes", k.ID, len(seed))
		}
		k.Private = ed25519.NewKeyFromSeed(seed)
		if kid := pos.KeyID(k.Private.Public().(ed25519.PublicKey)); kid != k.ID {
			return k, fmt.Errorf("key %s: its key's thumbprint is %s", k.ID, kid)
		}
		k.Created = fromMillis(created)
		if retired != nil {
			k.RetiredAt = fromMillis(*retired)
		}
		return k, nil
	})
	if err != nil {
		return nil, wrap(op, err)
	}
	return keys, nil
}

// DropRetiredKeys deletes the keys retired before retiredBefore; the
// current key's retired_at is NULL, which no comparison matches.
func (db *DB) DropRetiredKeys(ctx context.Context, retiredBefore time.Time) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	tag, err := db.pool.Exec(ctx, `DELETE FROM signing_keys WHERE retired_at < $1`, millis(retiredBefore))
	if err != nil {
		return 0, wrap("drop retired keys", err)
	}
	return int(tag.RowsAffected()), nil
}
