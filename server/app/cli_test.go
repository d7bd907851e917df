package app

import (
	"idleguard/server/internal/apptest"
	"net/http"
	"strings"
	"testing"
)

// The user and group commands manage the store without -demo, also beside
// a running server.
func TestUserCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mustRun := func(stdin string, args ...string) string {
		t.Helper()
		out, err := apptest.RunCommand(t, RunReady, stdin, args...)
		if err != nil {
			t.Fatalf("%v: got error %v (%s), want success", args, err, out)
		}
		return out
	}
	mustFail := func(stdin, wantErr string, args ...string) {
		t.Helper()
		out, err := apptest.RunCommand(t, RunReady, stdin, args...)
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%v: got error %v (%s), want one saying %q", args, err, out, wantErr)
		}
	}

	for _, what := range []string{"domain", "user", "group", "session"} {
		if out := mustRun("", what, "-h"); !strings.Contains(out, "idleguard domain add NAME") || !strings.Contains(out, "-domain NAME") {
			t.Errorf("%s -h: got %q, want the usage on stdout", what, out)
		}
	}
	mustRun("", "group", "put", "cashiers", "-data", dir)
	mustFail("", "unknown permission", "group", "put", "gods", "-perm", "developer.view,root", "-data", dir)
	if out := mustRun("", "group", "list", "-data", dir); strings.Contains(out, "gods") {
		t.Errorf("group list after a refused put: got %q, want no gods", out)
	}
	mustRun("s3cret-pw\n", "user", "add", "alice", "-group", "cashiers", "-data", dir)
	mustFail("s3cret-pw\n", "", "user", "add", "alice", "-group", "cashiers", "-data", dir)
	mustFail("s3cret-pw\n", "", "user", "add", "carol", "-group", "nosuchgroup", "-data", dir)
	mustFail("abc\n", "password", "user", "add", "dave", "-group", "cashiers", "-data", dir)
	if out := mustRun("", "user", "list", "-data", dir); !strings.Contains(out, "alice\tcashiers") {
		t.Errorf("user list: got %q, want alice in cashiers", out)
	}

	s := apptest.StartIn(t, RunReady, dir, "-demo=false")
	apptest.MustLogin(t, s.Base, "alice", "s3cret-pw")
	if resp, _ := apptest.Login(t, s.Base, "alice", "demo"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("alice with a wrong password: got %d, want 401", resp.StatusCode)
	}
	if resp, _ := apptest.Login(t, s.Base, "admin", "demo"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("admin without -demo: got %d, want 401", resp.StatusCode)
	}

	// Beside the running server.
	mustRun("b0b-password\n", "user", "add", "bob", "-data", dir, "-group", "cashiers")
	apptest.MustLogin(t, s.Base, "bob", "b0b-password")
	mustRun("", "user", "del", "alice", "-data", dir)
	if resp, _ := apptest.Login(t, s.Base, "alice", "s3cret-pw"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("alice after user del: got %d, want 401", resp.StatusCode)
	}
	mustFail("", "unknown command", "user", "frobnicate", "-data", dir)
}
