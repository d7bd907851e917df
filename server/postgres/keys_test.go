package postgres

import (
	"testing"

	"idleguard/server/internal/storetest"
	"idleguard/server/pos"
)

// TestKeyContract runs the behaviour every pos.KeyStore shares on a real
// PostgreSQL server, a new database for each test: nodes that start
// together make one key, rotations, the order SigningKeys reads, drops.
func TestKeyContract(t *testing.T) {
	storetest.KeyContract(t, storetest.KeyImpl{
		New: func(t *testing.T) func(t *testing.T) pos.KeyStore {
			url := pg.Database(t)
			return func(t *testing.T) pos.KeyStore { return mustOpen(t, url) }
		},
	})
}

// TestSigningKeysRefusesForgedKid: a row whose kid is not its key's
// thumbprint (written by hand, not by this package) is an error, not a
// key a verifier would accept under another key's name.
func TestSigningKeysRefusesForgedKid(t *testing.T) {
	db := mustOpen(t, pg.Database(t))
	ctx := t.Context()
	if _, err := db.pool.Exec(ctx,
		`INSERT INTO signing_keys (kid, seed, created) VALUES ('someone-else', $1, 0)`, make([]byte, 32)); err != nil {
		t.Fatal(err)
	}
	if keys, err := db.SigningKeys(ctx); err == nil {
		t.Fatalf("SigningKeys: got %v, want an error", keys)
	}
}
