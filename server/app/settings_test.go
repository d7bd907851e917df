package app

import (
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"idleguard/server/internal/apptest"
	"idleguard/server/protocol"
)

// A change reaches open sockets at once, and a session already idle longer
// than the new Expiration Time is signed out at once.
func TestSettingsChangeReachesSockets(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t, RunReady)
	admin := apptest.SetExpiration(t, s.Base, 60)
	idleTok, _ := apptest.MustLogin(t, s.Base, "cashier", "demo")
	idleSince := time.Now() // the session's last activity is before this
	idleWS := apptest.DialSocket(t, s, idleTok, "")
	if m := apptest.ReadState(t, idleWS); m.ExpirationS != 60 {
		t.Fatalf("first state: got %+v, want expiration=60", m)
	}

	apptest.MustSetExpiration(t, s.Base, admin, 30)
	if m := apptest.ReadState(t, idleWS); m.ExpirationS != 30 || m.RemainingMs > 30000 || m.RemainingMs <= 0 {
		t.Fatalf("after PUT 30: got %+v, want state expiration=30 and 0 < remaining <= 30000", m)
	}

	// The cashier stays idle past the new Expiration Time; the viewer is
	// active just before the change and must stay signed in.
	const short = 2 * time.Second
	time.Sleep(short - time.Since(idleSince) + 200*time.Millisecond)
	activeTok, _ := apptest.MustLogin(t, s.Base, "viewer", "demo")
	activeWS := apptest.DialSocket(t, s, activeTok, "")
	apptest.ReadState(t, activeWS)
	stay := time.Now() // the viewer's last activity is after this
	apptest.Send(t, activeWS, "stay")
	apptest.ReadState(t, activeWS) // the stay is in
	apptest.MustSetExpiration(t, s.Base, admin, int(short/time.Second))
	code, body := apptest.SessionStatus(t, s.Base, activeTok)
	// The viewer was idle for less than this at the change and at that
	// answer. Past the Expiration Time it would have been signed out,
	// rightly, and the test could tell nothing.
	if d := time.Since(stay); d >= short {
		t.Fatalf("the change and GET /api/session took %v after the viewer's stay, want under %v: the machine was too slow for this test", d.Round(time.Millisecond), short)
	} else {
		t.Logf("the change and GET /api/session took %v after the viewer's stay", d.Round(time.Millisecond))
	}
	if code != http.StatusOK {
		t.Errorf("active session after PUT 2: got %d %s, want 200", code, body)
	}
	// Within the warning lead of the new deadline, the viewer's warning
	// may come before its state: ReadState reads past it.
	if m := apptest.ReadState(t, activeWS); m.ExpirationS != 2 || m.RemainingMs > 2000 {
		t.Fatalf("active session after PUT 2: got %+v, want state expiration=2 remaining <= 2000", m)
	}

	frames := apptest.WantSignOut(t, idleWS, protocol.ReasonSettingChanged, protocol.CloseSettingChanged)
	if got := frames[len(frames)-1].ExpirationS; got != 2 {
		t.Errorf("logout expiration: got %d, want 2", got)
	}
	apptest.WantEnded(t, s, idleTok, "setting_changed")
}

// Every bad input gets 400 naming the field and the range, and changes
// neither the setting nor the change record.
func TestSettingsValidation(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t, RunReady, "-min-expiration", "60")
	admin, _ := apptest.MustLogin(t, s.Base, "admin", "demo")
	before := apptest.GetSettings(t, s.Base, admin)
	if before.ExpirationSeconds != 172800 || before.MinExpirationSeconds != 60 || before.MaxExpirationSeconds != 31536000 {
		t.Fatalf("initial settings: got %+v, want 172800 in [60, 31536000]", before)
	}
	if c := apptest.GetChanges(t, s.Base, admin); len(c) != 0 {
		t.Fatalf("initial changes: got %v, want none", c)
	}

	apptest.MustSetExpiration(t, s.Base, admin, 120)
	changes := apptest.GetChanges(t, s.Base, admin)
	if len(changes) != 1 || changes[0].By != "admin" || changes[0].Old != 172800 || changes[0].New != 120 || changes[0].At == "" {
		t.Fatalf("changes after PUT 120: got %+v, want one by admin from 172800 to 120", changes)
	}
	want := apptest.GetSettings(t, s.Base, admin)
	if want.ExpirationSeconds != 120 || want.UpdatedBy != "admin" {
		t.Fatalf("settings after PUT 120: got %+v, want 120 by admin", want)
	}

	const json = "application/json"
	for _, tc := range []struct{ name, body, contentType string }{
		{"text", `{"expiration_seconds":"abc"}`, json},
		{"number as string", `{"expiration_seconds":"60"}`, json},
		{"negative", `{"expiration_seconds":-5}`, json},
		{"zero", `{"expiration_seconds":0}`, json},
		{"minus zero", `{"expiration_seconds":-0}`, json},
		{"fraction", `{"expiration_seconds":1.5}`, json},
		{"whole fraction", `{"expiration_seconds":90.0}`, json},
		{"exponent", `{"expiration_seconds":1e3}`, json},
		{"null", `{"expiration_seconds":null}`, json},
		{"bool", `{"expiration_seconds":true}`, json},
		{"array", `{"expiration_seconds":[90]}`, json},
		{"missing", `{}`, json},
		{"unknown field", `{"expiration_seconds":60,"x":1}`, json},
		{"wrong content type", `{"expiration_seconds":90}`, "text/plain"},
		{"no content type", `{"expiration_seconds":90}`, ""},
		{"over 4 KiB", `{"expiration_seconds":90` + strings.Repeat(" ", 4<<10) + `}`, json},
		{"not JSON", `expiration_seconds=90`, json},
		{"empty", ``, json},
		{"trailing garbage", `{"expiration_seconds":90} x`, json},
		{"two objects", `{"expiration_seconds":90}{"expiration_seconds":91}`, json},
		{"below min", `{"expiration_seconds":59}`, json},
		{"above max", `{"expiration_seconds":31536001}`, json},
		{"overflow", `{"expiration_seconds":99999999999999999999}`, json},
		{"not an object", `90`, json},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := apptest.PutExpiration(t, s.Base, admin, tc.body, tc.contentType)
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("got %d %s, want 400", resp.StatusCode, body)
			}
			e := apptest.DecodeError(t, body)
			if e.Error.Code != "invalid" || e.Error.Field != "expiration_seconds" {
				t.Errorf("got code %q field %q, want invalid expiration_seconds", e.Error.Code, e.Error.Field)
			}
			if !strings.Contains(e.Error.Message, "from 60 to 31536000") {
				t.Errorf("got message %q, want it to name the range from 60 to 31536000", e.Error.Message)
			}
			if got := apptest.GetSettings(t, s.Base, admin); got != want {
				t.Errorf("settings after the bad PUT: got %+v, want %+v", got, want)
			}
			if got := apptest.GetChanges(t, s.Base, admin); !reflect.DeepEqual(got, changes) {
				t.Errorf("changes after the bad PUT: got %+v, want %+v", got, changes)
			}
		})
	}

	// The range's ends are accepted.
	for _, n := range []int{60, 31536000} {
		apptest.MustSetExpiration(t, s.Base, admin, n)
		if got := apptest.GetSettings(t, s.Base, admin).ExpirationSeconds; got != int64(n) {
			t.Errorf("after PUT %d: got %d", n, got)
		}
	}
	if got := apptest.GetChanges(t, s.Base, admin); len(got) != 3 || got[0].Old != 60 || got[0].New != 31536000 {
		t.Errorf("changes: got %+v, want 3, newest 60 -> 31536000", got)
	}
}

// Developer View may read the JWT tab, Developer Edit may save it; nobody
// else may do either.
func TestSettingsPermissions(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t, RunReady)
	viewer, _ := apptest.MustLogin(t, s.Base, "viewer", "demo")
	before := apptest.GetSettings(t, s.Base, viewer)
	apptest.GetChanges(t, s.Base, viewer)
	resp, body := apptest.PutExpiration(t, s.Base, viewer, `{"expiration_seconds":90}`, "application/json")
	if resp.StatusCode != http.StatusForbidden || apptest.DecodeError(t, body).Error.Code != "forbidden" {
		t.Errorf("viewer PUT: got %d %s, want 403 forbidden", resp.StatusCode, body)
	}
	if got := apptest.GetSettings(t, s.Base, viewer); got != before {
		t.Errorf("after viewer PUT: got %+v, want %+v", got, before)
	}

	cashier, cookie := apptest.MustLogin(t, s.Base, "cashier", "demo")
	for _, path := range []string{"/api/settings/jwt", "/api/settings/jwt/changes"} {
		if resp, body := apptest.Request(t, "GET", s.Base+path, cashier, "", nil); resp.StatusCode != http.StatusForbidden {
			t.Errorf("cashier GET %s: got %d %s, want 403", path, resp.StatusCode, body)
		}
	}
	if resp, body := apptest.PutExpiration(t, s.Base, cashier, `{"expiration_seconds":90}`, "application/json"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("cashier PUT: got %d %s, want 403", resp.StatusCode, body)
	}
	resp, body = apptest.GetWithCookie(t, s.Base+"/admin", cookie)
	if resp.StatusCode != http.StatusForbidden || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("cashier /admin: got %d %s, want 403 HTML", resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/api/settings/jwt", ""},
		{"PUT", "/api/settings/jwt", `{"expiration_seconds":90}`},
		{"GET", "/api/settings/jwt/changes", ""},
		{"GET", "/api/session", ""},
		{"POST", "/api/logout", ""},
	} {
		resp, body := apptest.Request(t, tc.method, s.Base+tc.path, "", "application/json", strings.NewReader(tc.body))
		if resp.StatusCode != http.StatusUnauthorized || apptest.DecodeError(t, body).Error.Code != "unauthorized" {
			t.Errorf("signed out %s %s: got %d %s, want 401", tc.method, tc.path, resp.StatusCode, body)
		}
	}
	resp, _ = apptest.Request(t, "GET", s.Base+"/admin", "", "", nil)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || loc == nil || loc.Path != "/login" || loc.Query().Get("next") != "/admin" {
		t.Errorf("signed out /admin: got %d Location %q, want 303 to /login?next=/admin", resp.StatusCode, resp.Header.Get("Location"))
	}

	admin, _ := apptest.MustLogin(t, s.Base, "admin", "demo")
	if got := apptest.GetSettings(t, s.Base, admin); got != before {
		t.Errorf("after all refusals: got %+v, want %+v", got, before)
	}
	if c := apptest.GetChanges(t, s.Base, admin); len(c) != 0 {
		t.Errorf("changes after all refusals: got %+v, want none", c)
	}
}
