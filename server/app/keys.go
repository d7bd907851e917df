package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"idleguard/server/pos"
	"idleguard/server/postgres"
	"idleguard/server/token"
)

const keyUsage = `usage:
  idleguard key rotate -postgres URL   a new signing key signs every token from now on; the one
                                       it replaces keeps verifying the tokens it signed
  idleguard key list -postgres URL     the keys: kid, created, and current or when retired

A cluster's nodes share their signing keys in PostgreSQL: -postgres URL (or
IDLEGUARD_POSTGRES). The first node to start makes the first key. After a
rotation every node signs with the new key within a minute (at once for a
node that meets a token of the new key), and every node, and its
/.well-known/jwks.json, keeps the retired key for the longest a token can
live (the longest Expiration Time, 365 days) and a day, then drops it.
Rotate when a key may have leaked, or on a schedule: the database holds
the private keys, so who can read it, or a backup of it, can sign tokens.
A single node's key is the file signing-key.pem in its data directory.
`

// runKey runs the key commands; args are what follows "idleguard key",
// the verb first.
func runKey(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, keyUsage)
		return errors.New("missing key command")
	}
	verb := args[0]
	switch verb {
	case "-h", "-help", "--help":
		fmt.Fprint(stdout, keyUsage)
		return nil
	case "rotate", "list":
	default:
		fmt.Fprint(stderr, keyUsage)
		return fmt.Errorf("unknown key command %q", verb)
	}
	fs := flag.NewFlagSet("idleguard key "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, keyUsage) }
	pgURL := fs.String("postgres", getenv("IDLEGUARD_POSTGRES"), "the cluster's PostgreSQL URL")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fmt.Fprint(stderr, keyUsage)
		return fmt.Errorf("key %s takes no arguments, got %q", verb, fs.Arg(0))
	}
	if *pgURL == "" {
		return errors.New("key commands act on a cluster's signing keys: give -postgres URL (or IDLEGUARD_POSTGRES); a single node's key is signing-key.pem in its data directory")
	}
	db, err := postgres.Open(ctx, *pgURL)
	if err != nil {
		return err
	}
	defer db.Close()

	if verb == "rotate" {
		return rotateKey(ctx, db, stdout)
	}
	keys, err := db.SigningKeys(ctx)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		fmt.Fprintln(stdout, "no signing key yet: the first node to start makes one")
	}
	for _, k := range keys {
		fmt.Fprintf(stdout, "%s\tcreated %s\t%s\n", k.ID, k.Created.UTC().Format(time.RFC3339), keyState(k))
	}
	return nil
}

// rotateKey adds a new current key and says what became of the old one.
func rotateKey(ctx context.Context, db *postgres.DB, stdout io.Writer) error {
	k, err := token.GenerateKey()
	if err != nil {
		return err
	}
	if err := db.RotateSigningKey(ctx, k, time.Now().Round(0)); err != nil {
		return err
	}
	keys, err := db.SigningKeys(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "key %s signs from now on (every node within %v)\n", keys[0].ID, token.ReloadInterval)
	if len(keys) > 1 && keys[1].RetiredAt.Equal(keys[0].Created) {
		fmt.Fprintf(stdout, "key %s: %s\n", keys[1].ID, keyState(keys[1]))
	}
	return nil
}

// keyState is "current", or when the key was retired and until when it
// verifies.
func keyState(k pos.SigningKey) string {
	if k.Current() {
		return "current"
	}
	return fmt.Sprintf("retired %s, verifies until %s", k.RetiredAt.UTC().Format(time.RFC3339),
		k.RetiredAt.Add(token.KeyRetention).UTC().Format(time.RFC3339))
}
