package app

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"idleguard/server/internal/apptest"
	"idleguard/server/protocol"
)

// Domains (issue 9), against the real program started with
// -domain-suffix .localhost -demo (acme and globex, each with admin,
// viewer and cashier). Requests name their domain by Host, as a browser
// does: apptest dials *.localhost on loopback.

func startDomains(t *testing.T, args ...string) (srv, acme, globex *apptest.Server) {
	t.Helper()
	srv = apptest.Start(t, RunReady, append([]string{"-domain-suffix", ".localhost"}, args...)...)
	return srv, srv.Domain("acme"), srv.Domain("globex")
}

// The same name in two domains is two users: each password signs in to its
// own domain only, and the token says which.
func TestDomainsSameNameTwoUsers(t *testing.T) {
	t.Parallel()
	srv, acme, globex := startDomains(t)
	if out, err := apptest.RunCommand(t, RunReady, "globex-secret\n", "user", "passwd", "admin", "-domain", "globex", "-data", srv.Dir); err != nil {
		t.Fatalf("user passwd -domain globex: %v %s", err, out)
	}
	acmeTok, _ := apptest.MustLogin(t, acme.Base, "admin", "demo")
	if got := claimsOf(t, acmeTok)["dom"]; got != "acme" {
		t.Fatalf("acme's token: dom %v, want acme", got)
	}
	globexTok, _ := apptest.MustLogin(t, globex.Base, "admin", "globex-secret")
	if got := claimsOf(t, globexTok)["dom"]; got != "globex" {
		t.Fatalf("globex's token: dom %v, want globex", got)
	}
	if resp, body := apptest.Login(t, globex.Base, "admin", "demo"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("acme's password on globex: got %d %s, want 401", resp.StatusCode, body)
	}
	if resp, body := apptest.Login(t, acme.Base, "admin", "globex-secret"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("globex's password on acme: got %d %s, want 401", resp.StatusCode, body)
	}
	var who struct {
		User struct{ Domain, Name string } `json:"user"`
	}
	code, body := apptest.SessionStatus(t, acme.Base, acmeTok)
	if err := json.Unmarshal(body, &who); code != http.StatusOK || err != nil || who.User.Domain != "acme" || who.User.Name != "admin" {
		t.Fatalf("GET /api/session on acme: got %d %s, want acme's admin", code, body)
	}
	// The CLI lists each domain's own users.
	out, err := apptest.RunCommand(t, RunReady, "", "domain", "list", "-data", srv.Dir)
	if err != nil || !strings.Contains(out, "acme\t3 user(s)") || !strings.Contains(out, "globex\t3 user(s)") {
		t.Fatalf("domain list: got %q %v, want acme and globex with 3 users each", out, err)
	}
}

// A token is refused by every domain but its own, over HTTP and on the
// socket, though its signature is valid: the same key signs every domain's.
func TestDomainsTokenRefusedElsewhere(t *testing.T) {
	t.Parallel()
	_, acme, globex := startDomains(t)
	tok, cookie := apptest.MustLogin(t, acme.Base, "admin", "demo")
	if cookie.Domain != "" {
		t.Fatalf("cookie Domain %q, want none (host-only)", cookie.Domain)
	}
	if code, body := apptest.SessionStatus(t, globex.Base, tok); code != http.StatusUnauthorized {
		t.Fatalf("acme's token on globex's /api/session: got %d %s, want 401", code, body)
	}
	resp, _ := apptest.GetWithCookie(t, globex.Base+"/admin", cookie)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("acme's cookie on globex's /admin: got %d, want 303 to the login page", resp.StatusCode)
	}
	if code := apptest.DialStatus(t, globex, apptest.Bearer(tok)); code != http.StatusUnauthorized {
		t.Fatalf("acme's token on globex's socket: got %d, want 401", code)
	}
	if code, body := apptest.SessionStatus(t, acme.Base, tok); code != http.StatusOK {
		t.Fatalf("acme's token at home: got %d %s, want 200", code, body)
	}
	// JWKS is every domain's.
	for _, d := range []*apptest.Server{acme, globex} {
		resp, body := apptest.Request(t, "GET", d.Base+"/.well-known/jwks.json", "", "", nil)
		if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"keys"`)) {
			t.Fatalf("GET %s/.well-known/jwks.json: got %d %s", d.Base, resp.StatusCode, body)
		}
	}
}

// An admin sets only their own domain's Expiration Time, and a change
// reaches every socket of that domain and no other's.
func TestDomainsSettingStaysHome(t *testing.T) {
	t.Parallel()
	_, acme, globex := startDomains(t)
	acmeAdmin, _ := apptest.MustLogin(t, acme.Base, "admin", "demo")
	globexAdmin, _ := apptest.MustLogin(t, globex.Base, "admin", "demo")
	before := apptest.GetSettings(t, globex.Base, globexAdmin)

	// acme's admin, on globex's host, is nobody there.
	body, _ := json.Marshal(map[string]int{"expiration_seconds": 600})
	if resp, b := apptest.PutExpiration(t, globex.Base, acmeAdmin, string(body), "application/json"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("acme's admin PUT on globex: got %d %s, want 401", resp.StatusCode, b)
	}
	if resp, b := apptest.Request(t, "GET", globex.Base+"/api/settings/jwt", acmeAdmin, "", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("acme's admin GET on globex: got %d %s, want 401", resp.StatusCode, b)
	}

	var acmeSockets, globexSockets []*websocket.Conn
	for _, user := range []string{"cashier", "viewer"} {
		a, _ := apptest.MustLogin(t, acme.Base, user, "demo")
		g, _ := apptest.MustLogin(t, globex.Base, user, "demo")
		for range 2 {
			acmeSockets = append(acmeSockets, apptest.DialSocket(t, acme, a, ""))
			globexSockets = append(globexSockets, apptest.DialSocket(t, globex, g, ""))
		}
	}
	for _, ws := range append(append([]*websocket.Conn(nil), acmeSockets...), globexSockets...) {
		apptest.ReadState(t, ws)
	}
	apptest.MustSetExpiration(t, acme.Base, acmeAdmin, 600)
	for i, ws := range acmeSockets {
		if m := apptest.ReadState(t, ws); m.ExpirationS != 600 || m.RemainingMs > 600_000 {
			t.Fatalf("acme socket %d: got %+v, want the new 600 s", i, m)
		}
	}
	// Nothing for globex: a Sync is answered with its unchanged state, and
	// nothing came before it.
	for i, ws := range globexSockets {
		apptest.Send(t, ws, "sync")
		if m := apptest.ReadFrame(t, ws); m.Kind != protocol.State || m.ExpirationS != before.ExpirationSeconds {
			t.Fatalf("globex socket %d after acme's change: got %+v, want its own state, expiration %d", i, m, before.ExpirationSeconds)
		}
	}
	if after := apptest.GetSettings(t, globex.Base, globexAdmin); after.Body != before.Body {
		t.Fatalf("globex's setting changed with acme's: %s, was %s", after.Body, before.Body)
	}
	if got := apptest.GetSettings(t, acme.Base, acmeAdmin); got.ExpirationSeconds != 600 {
		t.Fatalf("acme's setting: got %d, want 600", got.ExpirationSeconds)
	}
	if c := apptest.GetChanges(t, globex.Base, globexAdmin); len(c) != 0 {
		t.Fatalf("globex's change record: got %+v, want none", c)
	}
}

// The sign-in throttle's buckets are per domain: acme's admin, locked out
// by an attack, leaves globex's admin untouched, from the same address.
func TestDomainsThrottleSeparate(t *testing.T) {
	t.Parallel()
	_, acme, globex := startDomains(t)
	throttled := false
	for range 40 {
		resp, _ := apptest.Login(t, acme.Base, "admin", "wrong")
		if resp.StatusCode == http.StatusTooManyRequests {
			throttled = true
			break
		}
	}
	if !throttled {
		t.Fatal("40 wrong passwords for acme/admin: never throttled")
	}
	if resp, body := apptest.Login(t, globex.Base, "admin", "demo"); resp.StatusCode != http.StatusOK {
		t.Fatalf("globex/admin from the same address: got %d %s, want 200", resp.StatusCode, body)
	}
	if resp, body := apptest.Login(t, globex.Base, "admin", "wrong"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a wrong password for globex/admin: got %d %s, want 401, not throttled", resp.StatusCode, body)
	}
}

// A host that names no domain gets 404 before anything else: no sign-in,
// no authentication, no page; the node's health answers on any host.
func TestDomainsUnknownHost404(t *testing.T) {
	t.Parallel()
	srv, acme, _ := startDomains(t)
	tok, _ := apptest.MustLogin(t, acme.Base, "admin", "demo")
	for _, base := range []string{srv.Domain("initech").Base, srv.Base, srv.Domain("a.acme").Base} {
		resp, body := apptest.Login(t, base, "admin", "demo")
		if resp.StatusCode != http.StatusNotFound || apptest.DecodeError(t, body).Error.Code != "not_found" {
			t.Fatalf("POST %s/api/login: got %d %s, want a 404 JSON error", base, resp.StatusCode, body)
		}
		if code, body := apptest.SessionStatus(t, base, tok); code != http.StatusNotFound {
			t.Fatalf("GET %s/api/session with a valid token: got %d %s, want 404", base, code, body)
		}
		resp, body = apptest.Request(t, "GET", base+"/pos", "", "", nil)
		if resp.StatusCode != http.StatusNotFound || strings.Contains(resp.Header.Get("Content-Type"), "json") {
			t.Fatalf("GET %s/pos: got %d %q %s, want a plain 404 page", base, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		if resp, _ := apptest.Request(t, "GET", base+"/healthz", "", "", nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s/healthz: got %d, want 200", base, resp.StatusCode)
		}
	}
	// The port and letter case do not matter; the page shows its domain.
	resp, body := apptest.Request(t, "GET", strings.Replace(acme.Base, "acme", "ACME", 1)+"/login", "", "", nil)
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("acme")) || bytes.Contains(body, []byte("{{domain}}")) {
		t.Fatalf("GET ACME.localhost/login: got %d, want 200 naming acme", resp.StatusCode)
	}
}

// A domain the CLI adds is served by the running server within a flush or
// so, and one it removes is no longer: its sessions end live and its host
// answers 404. A domain with users is removed only with -force.
func TestDomainsAddedAndRemovedLive(t *testing.T) {
	t.Parallel()
	srv, acme, _ := startDomains(t)
	initech := srv.Domain("initech")
	for _, bad := range [][]string{{"domain", "add", "Initech"}, {"domain", "add", "-initech"}, {"domain", "add", "acme"}, {"user", "list", "-domain", "no_such"}} {
		if out, err := apptest.RunCommand(t, RunReady, "", append(bad, "-data", srv.Dir)...); err == nil {
			t.Fatalf("%v: got success %q, want an error", bad, out)
		}
	}
	run := func(stdin string, args ...string) {
		t.Helper()
		if out, err := apptest.RunCommand(t, RunReady, stdin, append(args, "-data", srv.Dir)...); err != nil {
			t.Fatalf("%v: %v %s", args, err, out)
		}
	}
	run("", "domain", "add", "initech")
	run("", "group", "put", "staff", "-domain", "initech")
	run("initech-pass\n", "user", "add", "peter", "-group", "staff", "-domain", "initech")
	var tok string
	waitFor(t, "initech served", func() bool {
		resp, body := apptest.Login(t, initech.Base, "peter", "initech-pass")
		if resp.StatusCode == http.StatusOK {
			var out struct{ Token string }
			json.Unmarshal(body, &out)
			tok = out.Token
		}
		return resp.StatusCode == http.StatusOK
	})
	ws := apptest.DialSocket(t, initech, tok, "")
	apptest.ReadState(t, ws)

	if out, err := apptest.RunCommand(t, RunReady, "", "domain", "remove", "initech", "-data", srv.Dir); err == nil || !strings.Contains(err.Error(), "user") {
		t.Fatalf("domain remove with users, no -force: got %q %v, want refused", out, err)
	}
	if code, _ := apptest.SessionStatus(t, initech.Base, tok); code != http.StatusOK {
		t.Fatalf("after a refused remove: got %d, want the session alive", code)
	}
	run("", "domain", "remove", "initech", "-force")
	apptest.WantSignOut(t, ws, protocol.ReasonRevoked, protocol.CloseRevoked)
	waitFor(t, "initech 404", func() bool {
		code, _ := apptest.SessionStatus(t, initech.Base, tok)
		return code == http.StatusNotFound
	})
	if code, _ := apptest.SessionStatus(t, acme.Base, tok); code != http.StatusUnauthorized {
		t.Fatalf("initech's token on acme: got %d, want 401", code)
	}
}

// waitFor polls cond until it holds, failing after apptest.WaitLimit: for
// what the server learns on its next flush (about a second).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(apptest.WaitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, apptest.WaitLimit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
