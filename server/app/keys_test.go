package app

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"idleguard/server/postgres"
	"idleguard/server/token"
)

// runKeyCommand runs "idleguard key ARGS" with env as the environment
// and returns its output, stdout then stderr.
func runKeyCommand(env map[string]string, args ...string) (string, error) {
	var out bytes.Buffer
	err := runKey(context.Background(), args, func(k string) string { return env[k] }, &out, &out)
	return out.String(), err
}

// TestKeyRotate: on a cluster's database, key rotate adds a key that a
// node signs with once it reloads, while the node still verifies the
// tokens of the key it replaced; key list shows both, current first.
func TestKeyRotate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pg.Database(t)
	mustRun := func(env map[string]string, args ...string) string {
		t.Helper()
		out, err := runKeyCommand(env, args...)
		if err != nil {
			t.Fatalf("key %v: got error %v (%s), want success", args, err, out)
		}
		return out
	}

	if out := mustRun(nil, "list", "-postgres", url); !strings.Contains(out, "no signing key yet") {
		t.Errorf("key list of a new database: got %q, want that there is none", out)
	}

	// A node: its ring makes the first key.
	db, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ring, err := token.NewKeyRing(ctx, db, token.Config{Issuer: token.DefaultIssuer, Audience: token.DefaultAudience})
	if err != nil {
		t.Fatal(err)
	}
	iss := ring.Issuer()
	oldKid := iss.KeyID()
	oldTok, _, err := iss.Issue("default", "alice", "s-1", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}

	out := mustRun(map[string]string{"IDLEGUARD_POSTGRES": url}, "rotate")
	keys, err := db.SigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[1].ID != oldKid || keys[0].Current() == keys[1].Current() {
		t.Fatalf("keys after key rotate: got %+v, want a new current key and %s retired", keys, oldKid)
	}
	newKid := keys[0].ID
	if !strings.Contains(out, "key "+newKid+" signs from now on") || !strings.Contains(out, "key "+oldKid+": retired ") {
		t.Errorf("key rotate: got %q, want the new kid %s and the old %s retired", out, newKid, oldKid)
	}

	if err := ring.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if iss.KeyID() != newKid {
		t.Errorf("the node's kid after its reload: got %s, want %s", iss.KeyID(), newKid)
	}
	if _, err := iss.Verify(oldTok); err != nil {
		t.Errorf("the old key's token after the rotation: got %v, want valid", err)
	}

	lines := strings.Split(strings.TrimSpace(mustRun(nil, "list", "-postgres", url)), "\n")
	if len(lines) != 2 {
		t.Fatalf("key list: got %q, want two keys", lines)
	}
	for i, want := range []string{newKid + "\tcreated ", oldKid + "\tcreated "} {
		if !strings.HasPrefix(lines[i], want) {
			t.Errorf("key list line %d: got %q, want it to start %q", i, lines[i], want)
		}
	}
	if !strings.HasSuffix(lines[0], "\tcurrent") || !strings.Contains(lines[1], "\tretired ") || !strings.Contains(lines[1], "verifies until ") {
		t.Errorf("key list: got %q, want the new key current and the old one retired", lines)
	}
}

// TestKeyCommandRefuses: what key refuses, with the reason.
func TestKeyCommandRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"nothing", nil, "missing key command"},
		{"unknown verb", []string{"delete", "-postgres", "postgres://x"}, `unknown key command "delete"`},
		{"no store", []string{"rotate"}, "-postgres URL"},
		{"an argument", []string{"list", "kid", "-postgres", "postgres://x"}, "takes no arguments"},
		{"unknown flag", []string{"rotate", "-data", "dir"}, "flag provided but not defined"},
		{"no server", []string{"list", "-postgres", "postgres://idleguard@127.0.0.1:1/x?sslmode=disable&connect_timeout=2"}, "postgres: open"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runKeyCommand(nil, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("key %v: got error %v (%s), want one saying %q", tc.args, err, out, tc.wantErr)
			}
		})
	}
	out, err := runKeyCommand(nil, "-h")
	if err != nil || !strings.Contains(out, "idleguard key rotate -postgres URL") {
		t.Errorf("key -h: got %v, %q, want the usage", err, out)
	}
}
