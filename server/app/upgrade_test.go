package app

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"idleguard/server/internal/apptest"
	"idleguard/server/pos"
	"idleguard/server/sqlite"
)

// testdata/v3-datadir is a data directory made by the release before
// domains (schema 3): -demo, the admin set the Expiration Time to 7200 s,
// the CLI added user ann (password pw-of-ann), and the cashier signed in;
// v3-cashier-token.txt is the token that release issued (no "dom" claim).
// Upgrading it must put everything into domain default, nothing lost.
func TestUpgradeOldDataDirIntoDefault(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, name := range []string{sqlite.FileName, "signing-key.pem"} {
		b, err := os.ReadFile(filepath.Join("testdata", "v3-datadir", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(filepath.Join("testdata", "v3-cashier-token.txt"))
	if err != nil {
		t.Fatal(err)
	}
	oldTok := strings.TrimSpace(string(raw))
	if _, ok := claimsOf(t, oldTok)["dom"]; ok {
		t.Fatal("the old token has a dom claim; the fixture is not what it says")
	}

	// The fixture's session was last active when it was made; make it
	// recent (through the upgraded store) so that it is still alive.
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatalf("open (and upgrade) the old database: %v", err)
	}
	sid := sidOf(t, oldTok)
	sess, err := db.Session(ctx, sid)
	if err != nil || sess.Domain != pos.DefaultDomain || sess.Username != "cashier" || sess.Revoked {
		t.Fatalf("the old session after the upgrade: got %+v %v, want cashier's, live, in default", sess, err)
	}
	if err := db.SaveActivity(ctx, []pos.Activity{{SessionID: sid, LastActivity: time.Now().Round(0)}}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s := apptest.StartIn(t, RunReady, dir)
	// The old token still speaks for its session, in default.
	if code, body := apptest.SessionStatus(t, s.Base, oldTok); code != http.StatusOK || !strings.Contains(string(body), `"domain":"default"`) {
		t.Fatalf("the old token after the upgrade: got %d %s, want 200 in default", code, body)
	}
	admin, _ := apptest.MustLogin(t, s.Base, "admin", "demo")
	apptest.MustLogin(t, s.Base, "ann", "pw-of-ann")
	if st := apptest.GetSettings(t, s.Base, admin); st.ExpirationSeconds != 7200 || st.UpdatedBy != "admin" {
		t.Fatalf("settings after the upgrade: got %+v, want 7200 by admin", st)
	}
	if c := apptest.GetChanges(t, s.Base, admin); len(c) != 1 || c[0].New != 7200 {
		t.Fatalf("change record after the upgrade: got %+v, want the one change to 7200", c)
	}
	s.Stop(t)
	out, err := apptest.RunCommand(t, RunReady, "", "domain", "list", "-data", dir)
	if err != nil || strings.TrimSpace(out) == "" || !strings.HasPrefix(out, "default\t4 user(s)") || strings.Count(out, "\n") != 1 {
		t.Fatalf("domain list after the upgrade: got %q %v, want only default, with its 4 users", out, err)
	}
	out, err = apptest.RunCommand(t, RunReady, "", "user", "list", "-data", dir)
	for _, u := range []string{"admin\tadministrators", "viewer\tsupervisors", "cashier\tcashiers", "ann\tcashiers"} {
		if err != nil || !strings.Contains(out, u) {
			t.Fatalf("user list after the upgrade: got %q %v, want %q", out, err, u)
		}
	}
}
