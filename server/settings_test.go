package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"idleguard/server/protocol"
)

type settingsJSON struct {
	ExpirationSeconds    int64   `json:"expiration_seconds"`
	WarningSeconds       float64 `json:"warning_seconds"`
	MinExpirationSeconds int64   `json:"min_expiration_seconds"`
	MaxExpirationSeconds int64   `json:"max_expiration_seconds"`
	UpdatedBy            string  `json:"updated_by"`
	UpdatedAt            string  `json:"updated_at"`
}

type changeJSON struct {
	At  string `json:"at"`
	By  string `json:"by"`
	Old int64  `json:"old"`
	New int64  `json:"new"`
}

func getSettings(t *testing.T, base, token string) settingsJSON {
	t.Helper()
	resp, body := request(t, "GET", base+"/api/settings/jwt", token, "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/settings/jwt: got %d %s, want 200", resp.StatusCode, body)
	}
	var v settingsJSON
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("GET /api/settings/jwt: %v in %s", err, body)
	}
	return v
}

func getChanges(t *testing.T, base, token string) []changeJSON {
	t.Helper()
	resp, body := request(t, "GET", base+"/api/settings/jwt/changes", token, "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/settings/jwt/changes: got %d %s, want 200", resp.StatusCode, body)
	}
	var v []changeJSON
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("GET /api/settings/jwt/changes: %v in %s", err, body)
	}
	return v
}

// A change reaches open sockets at once, and a session already idle longer
// than the new Expiration Time is signed out at once.
func TestSettingsChangeReachesSockets(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	admin := setExpiration(t, s.base, 60)
	idleTok, _ := mustLogin(t, s.base, "cashier", "demo")
	idleSince := time.Now() // the session's last activity is before this
	idleWS := dialSocket(t, s, idleTok, "")
	if m := readFrame(t, idleWS); m.Kind != protocol.State || m.ExpirationS != 60 {
		t.Fatalf("first frame: got %+v, want state expiration=60", m)
	}

	mustSetExpiration(t, s.base, admin, 30)
	m := readFrame(t, idleWS)
	if m.Kind != protocol.State || m.ExpirationS != 30 || m.RemainingMs > 30000 || m.RemainingMs <= 0 {
		t.Fatalf("after PUT 30: got %+v, want state expiration=30 and 0 < remaining <= 30000", m)
	}

	// The cashier stays idle past 2 s; the viewer is active just before the
	// change to 2 s and must stay signed in.
	time.Sleep(2*time.Second - time.Since(idleSince) + 200*time.Millisecond)
	activeTok, _ := mustLogin(t, s.base, "viewer", "demo")
	activeWS := dialSocket(t, s, activeTok, "")
	readFrame(t, activeWS)
	send(t, activeWS, "stay")
	if m := readFrame(t, activeWS); m.Kind != protocol.State {
		t.Fatalf("after stay: got %+v, want state", m)
	}
	mustSetExpiration(t, s.base, admin, 2)

	if m := readFrame(t, activeWS); m.Kind != protocol.State || m.ExpirationS != 2 || m.RemainingMs > 2000 {
		t.Fatalf("active session after PUT 2: got %+v, want state expiration=2 remaining <= 2000", m)
	}
	if code, body := sessionStatus(t, s.base, activeTok); code != http.StatusOK {
		t.Errorf("active session after PUT 2: got %d %s, want 200", code, body)
	}

	frames := wantSignOut(t, idleWS, protocol.ReasonSettingChanged, protocol.CloseSettingChanged)
	if got := frames[len(frames)-1].ExpirationS; got != 2 {
		t.Errorf("logout expiration: got %d, want 2", got)
	}
	wantEnded(t, s, idleTok, "setting_changed")
}

// Every bad input gets 400 naming the field and the range, and changes
// neither the setting nor the change record.
func TestSettingsValidation(t *testing.T) {
	t.Parallel()
	s := startServer(t, "-min-expiration", "60")
	admin, _ := mustLogin(t, s.base, "admin", "demo")
	before := getSettings(t, s.base, admin)
	if before.ExpirationSeconds != 172800 || before.MinExpirationSeconds != 60 || before.MaxExpirationSeconds != 31536000 {
		t.Fatalf("initial settings: got %+v, want 172800 in [60, 31536000]", before)
	}
	if c := getChanges(t, s.base, admin); len(c) != 0 {
		t.Fatalf("initial changes: got %v, want none", c)
	}

	mustSetExpiration(t, s.base, admin, 120)
	changes := getChanges(t, s.base, admin)
	if len(changes) != 1 || changes[0].By != "admin" || changes[0].Old != 172800 || changes[0].New != 120 || changes[0].At == "" {
		t.Fatalf("changes after PUT 120: got %+v, want one by admin from 172800 to 120", changes)
	}
	want := getSettings(t, s.base, admin)
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
			resp, body := putExpiration(t, s.base, admin, tc.body, tc.contentType)
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("got %d %s, want 400", resp.StatusCode, body)
			}
			e := decodeError(t, body)
			if e.Error.Code != "invalid" || e.Error.Field != "expiration_seconds" {
				t.Errorf("got code %q field %q, want invalid expiration_seconds", e.Error.Code, e.Error.Field)
			}
			if !strings.Contains(e.Error.Message, "from 60 to 31536000") {
				t.Errorf("got message %q, want it to name the range from 60 to 31536000", e.Error.Message)
			}
			if got := getSettings(t, s.base, admin); got != want {
				t.Errorf("settings after the bad PUT: got %+v, want %+v", got, want)
			}
			if got := getChanges(t, s.base, admin); !reflect.DeepEqual(got, changes) {
				t.Errorf("changes after the bad PUT: got %+v, want %+v", got, changes)
			}
		})
	}

	// The range's ends are accepted.
	for _, n := range []int{60, 31536000} {
		mustSetExpiration(t, s.base, admin, n)
		if got := getSettings(t, s.base, admin).ExpirationSeconds; got != int64(n) {
			t.Errorf("after PUT %d: got %d", n, got)
		}
	}
	if got := getChanges(t, s.base, admin); len(got) != 3 || got[0].Old != 60 || got[0].New != 31536000 {
		t.Errorf("changes: got %+v, want 3, newest 60 -> 31536000", got)
	}
}

// Developer View may read the JWT tab, Developer Edit may save it; nobody
// else may do either.
func TestSettingsPermissions(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	viewer, _ := mustLogin(t, s.base, "viewer", "demo")
	before := getSettings(t, s.base, viewer)
	getChanges(t, s.base, viewer)
	resp, body := putExpiration(t, s.base, viewer, `{"expiration_seconds":90}`, "application/json")
	if resp.StatusCode != http.StatusForbidden || decodeError(t, body).Error.Code != "forbidden" {
		t.Errorf("viewer PUT: got %d %s, want 403 forbidden", resp.StatusCode, body)
	}
	if got := getSettings(t, s.base, viewer); got != before {
		t.Errorf("after viewer PUT: got %+v, want %+v", got, before)
	}

	cashier, cookie := mustLogin(t, s.base, "cashier", "demo")
	for _, path := range []string{"/api/settings/jwt", "/api/settings/jwt/changes"} {
		if resp, body := request(t, "GET", s.base+path, cashier, "", nil); resp.StatusCode != http.StatusForbidden {
			t.Errorf("cashier GET %s: got %d %s, want 403", path, resp.StatusCode, body)
		}
	}
	if resp, body := putExpiration(t, s.base, cashier, `{"expiration_seconds":90}`, "application/json"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("cashier PUT: got %d %s, want 403", resp.StatusCode, body)
	}
	resp, body = getWithCookie(t, s.base+"/admin", cookie)
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
		resp, body := request(t, tc.method, s.base+tc.path, "", "application/json", strings.NewReader(tc.body))
		if resp.StatusCode != http.StatusUnauthorized || decodeError(t, body).Error.Code != "unauthorized" {
			t.Errorf("signed out %s %s: got %d %s, want 401", tc.method, tc.path, resp.StatusCode, body)
		}
	}
	resp, _ = request(t, "GET", s.base+"/admin", "", "", nil)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || loc == nil || loc.Path != "/login" || loc.Query().Get("next") != "/admin" {
		t.Errorf("signed out /admin: got %d Location %q, want 303 to /login?next=/admin", resp.StatusCode, resp.Header.Get("Location"))
	}

	admin, _ := mustLogin(t, s.base, "admin", "demo")
	if got := getSettings(t, s.base, admin); got != before {
		t.Errorf("after all refusals: got %+v, want %+v", got, before)
	}
	if c := getChanges(t, s.base, admin); len(c) != 0 {
		t.Errorf("changes after all refusals: got %+v, want none", c)
	}
}
