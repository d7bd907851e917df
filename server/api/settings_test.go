package api

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"idleguard/server/pos"
)

// getSettings is GET /api/settings/jwt's raw answer as tok's user.
func (f *fixture) getSettings(t *testing.T, tok string) (int, string) {
	t.Helper()
	resp := f.serve(t, request("GET", "/api/settings/jwt", "", "Cookie", cookieHeader(tok)))
	return resp.StatusCode, readBody(t, resp)
}

// expiration is domain's Expiration Time as the service holds it.
func (f *fixture) expiration(t *testing.T, domain string) int64 {
	t.Helper()
	v, err := f.svc.Settings(domain)
	if err != nil {
		t.Fatalf("settings of %s: %v", domain, err)
	}
	return v.ExpirationSeconds
}

func (f *fixture) putSettings(t *testing.T, tok, body string) *http.Response {
	t.Helper()
	return f.serve(t, request("PUT", "/api/settings/jwt", body, "Cookie", cookieHeader(tok)))
}

func (f *fixture) changes(t *testing.T, tok string) []changeJSON {
	t.Helper()
	resp := f.serve(t, request("GET", "/api/settings/jwt/changes", "", "Cookie", cookieHeader(tok)))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("changes: got %d %s, want 200", resp.StatusCode, readBody(t, resp))
	}
	var c []changeJSON
	decodeJSON(t, resp, &c)
	return c
}

// Every bad Expiration Time is the same 400, naming the field and the
// range, and changes nothing: not the setting, not its record.
func TestPutSettingsInvalid(t *testing.T) {
	f := newFixture(t)
	admin, _ := f.login(t, "admin")
	status, before := f.getSettings(t, admin)
	if status != http.StatusOK {
		t.Fatalf("GET settings: got %d %s", status, before)
	}
	want := `{"expiration_seconds":60,"warning_seconds":15,"min_expiration_seconds":1,` +
		`"max_expiration_seconds":31536000,"updated_by":"fixture","updated_at":"2026-12-01T09:00:00Z"}` + "\n"
	if before != want {
		t.Errorf("GET settings: got %s, want %s", before, want)
	}
	changes := len(f.changes(t, admin))
	for _, tc := range []struct{ name, body, contentType string }{
		{"zero", `{"expiration_seconds":0}`, ""},
		{"negative", `{"expiration_seconds":-60}`, ""},
		{"above the maximum", `{"expiration_seconds":31536001}`, ""},
		{"beyond int64", `{"expiration_seconds":99999999999999999999}`, ""},
		{"a fraction", `{"expiration_seconds":60.5}`, ""},
		{"a whole fraction", `{"expiration_seconds":60.0}`, ""},
		{"an exponent", `{"expiration_seconds":6e1}`, ""},
		{"a string", `{"expiration_seconds":"60"}`, ""},
		{"null", `{"expiration_seconds":null}`, ""},
		{"a bool", `{"expiration_seconds":true}`, ""},
		{"missing", `{}`, ""},
		{"an unknown field", `{"expiration_seconds":120,"lock_seconds":30}`, ""},
		{"a key in another case", `{"Expiration_Seconds":120}`, ""},
		{"a repeated key", `{"expiration_seconds":120,"expiration_seconds":0}`, ""},
		{"malformed", `{"expiration_seconds":120`, ""},
		{"two objects", `{"expiration_seconds":120}{"expiration_seconds":0}`, ""},
		{"not JSON content", `{"expiration_seconds":120}`, "text/plain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := request("PUT", "/api/settings/jwt", tc.body, "Cookie", cookieHeader(admin))
			if tc.contentType != "" {
				r.Header.Set("Content-Type", tc.contentType)
			}
			d := apiError(t, f.serve(t, r), http.StatusBadRequest)
			if d.Code != pos.EINVALID || d.Field != "expiration_seconds" ||
				!strings.Contains(d.Message, "Expiration Time (expiration_seconds)") ||
				!strings.Contains(d.Message, fmt.Sprintf("from 1 to %d", pos.MaxExpirationSeconds)) {
				t.Errorf("error: got %+v, want invalid expiration_seconds with the range 1 to %d", d, pos.MaxExpirationSeconds)
			}
			if _, after := f.getSettings(t, admin); after != before {
				t.Errorf("setting: got %s, want unchanged %s", after, before)
			}
			if n := len(f.changes(t, admin)); n != changes {
				t.Errorf("change record: got %d changes, want %d", n, changes)
			}
		})
	}
}

func TestSettingsPermissions(t *testing.T) {
	f := newFixture(t)
	cashier, _ := f.login(t, "cashier")
	viewer, _ := f.login(t, "viewer")
	admin, _ := f.login(t, "admin")
	for _, tc := range []struct {
		name, method, target, tok string
		status                    int
	}{
		{"cashier reads", "GET", "/api/settings/jwt", cashier, http.StatusForbidden},
		{"cashier reads the record", "GET", "/api/settings/jwt/changes", cashier, http.StatusForbidden},
		{"cashier saves", "PUT", "/api/settings/jwt", cashier, http.StatusForbidden},
		{"viewer reads", "GET", "/api/settings/jwt", viewer, http.StatusOK},
		{"viewer reads the record", "GET", "/api/settings/jwt/changes", viewer, http.StatusOK},
		{"viewer saves", "PUT", "/api/settings/jwt", viewer, http.StatusForbidden},
		{"nobody saves", "PUT", "/api/settings/jwt", "", http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := ""
			if tc.method == "PUT" {
				body = `{"expiration_seconds":120}`
			}
			r := request(tc.method, tc.target, body)
			if tc.tok != "" {
				r.Header.Set("Cookie", cookieHeader(tc.tok))
			}
			resp := f.serve(t, r)
			if tc.status == http.StatusOK {
				if resp.StatusCode != http.StatusOK {
					t.Errorf("status: got %d %s, want 200", resp.StatusCode, readBody(t, resp))
				}
				return
			}
			d := apiError(t, resp, tc.status)
			if tc.status == http.StatusForbidden && !strings.Contains(d.Message, "Developer →") {
				t.Errorf("message: got %q, want it to name the permission", d.Message)
			}
		})
	}
	if got := f.expiration(t, pos.DefaultDomain); got != 60 {
		t.Errorf("setting after refused saves: got %d, want 60", got)
	}

	// Developer Edit saves, and the change applies to live sessions at once.
	f.clock.Advance(10 * time.Second)
	resp := f.putSettings(t, admin, `{"expiration_seconds":120}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("admin saves: got %d %s, want 200", resp.StatusCode, readBody(t, resp))
	}
	var v settingsResponse
	decodeJSON(t, resp, &v)
	if v.ExpirationSeconds != 120 || v.WarningSeconds != 30 || v.UpdatedBy != "admin" || v.UpdatedAt != "2026-12-01T09:00:10Z" {
		t.Errorf("saved: got %+v, want 120 s, 30 s warning, by admin at 09:00:10", v)
	}
	if c := f.changes(t, viewer); len(c) == 0 || c[0] != (changeJSON{At: "2026-12-01T09:00:10Z", By: "admin", Old: 60, New: 120}) {
		t.Errorf("change record: got %+v, want admin's 60 -> 120 first", c)
	}
	resp = f.getSession(t, "Cookie", cookieHeader(cashier))
	var s sessionResponse
	decodeJSON(t, resp, &s)
	if s.RemainingMs != 110000 || s.ExpirationSeconds != 120 {
		t.Errorf("cashier's session: got %+v, want 110000 ms left of 120 s", s)
	}
}
