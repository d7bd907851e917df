package app

import (
	"bytes"
	"context"
	"encoding/json"
	"idleguard/server/internal/apptest"
	"idleguard/server/pos"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// newTestApp wires the program the way serve does, on a fresh data
// directory with the demo users, for driving its handler directly.
func newTestApp(t testing.TB, minExpiration int64) *app {
	t.Helper()
	o := options{dataDir: t.TempDir(), demo: true, minExpiration: minExpiration, maxTabs: 16, logLevel: "error", passwordCost: 4}
	a, err := newApp(context.Background(), o, newLogger(io.Discard, "error"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.db.Close() })
	return a
}

func serveOnce(h http.Handler, method, path, token, contentType string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

var settingsSeeds = []string{
	`{"expiration_seconds":86400}`, `{"expiration_seconds":"abc"}`, `{"expiration_seconds":"60"}`,
	`{"expiration_seconds":-5}`, `{"expiration_seconds":0}`, `{"expiration_seconds":1.5}`,
	`{"expiration_seconds":1e3}`, `{"expiration_seconds":null}`, `{}`, `{"expiration_seconds":60,"x":1}`,
	`{"expiration_seconds":90} x`, `expiration_seconds=90`, ``, `{"expiration_seconds":31536001}`,
	`{"expiration_seconds":3600}`, `{"Expiration_Seconds":7200}`, `{"expiration_seconds":3600,"expiration_seconds":4000}`,
	`{"expiration_seconds":99999999999999999999}`, "{\"expiration_seconds\":\"\\u0036\"}", `[{"expiration_seconds":3600}]`,
}

// FuzzPutSettings: whatever the body, the answer is 200 or 400, and
// anything but 200 leaves the stored setting exactly as it was.
func FuzzPutSettings(f *testing.F) {
	for _, s := range settingsSeeds {
		f.Add([]byte(s))
	}
	// A high minimum keeps the admin's own session alive whatever passes.
	a := newTestApp(f, 3600)
	rec := serveOnce(a.handler, "POST", "/api/login", "", "application/json", []byte(`{"username":"admin","password":"demo"}`))
	var in struct{ Token string }
	if err := json.Unmarshal(rec.Body.Bytes(), &in); rec.Code != http.StatusOK || err != nil {
		f.Fatalf("login: got %d %s", rec.Code, rec.Body)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, body []byte) {
		before, err := a.db.Settings(ctx, pos.DefaultDomain)
		if err != nil {
			t.Fatal(err)
		}
		rec := serveOnce(a.handler, "PUT", "/api/settings/jwt", in.Token, "application/json", body)
		after, err := a.db.Settings(ctx, pos.DefaultDomain)
		if err != nil {
			t.Fatal(err)
		}
		inForce, err := a.svc.Settings(pos.DefaultDomain)
		if err != nil {
			t.Fatal(err)
		}
		if mem := inForce.ExpirationSeconds; mem != after.ExpirationSeconds {
			t.Fatalf("in force %d, stored %d: want the same", mem, after.ExpirationSeconds)
		}
		switch rec.Code {
		case http.StatusOK:
			var got struct {
				ExpirationSeconds int64 `json:"expiration_seconds"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || got.ExpirationSeconds != after.ExpirationSeconds {
				t.Fatalf("200 answered %s, stored %d", rec.Body, after.ExpirationSeconds)
			}
			if after.ExpirationSeconds < 3600 || after.ExpirationSeconds > 31536000 {
				t.Fatalf("body %q stored %d, out of range", body, after.ExpirationSeconds)
			}
		case http.StatusBadRequest:
			var e apptest.APIError
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Field != "expiration_seconds" ||
				!strings.Contains(e.Error.Message, "3600 to 31536000") {
				t.Fatalf("400 for %q: got %s, want an error naming expiration_seconds and the range", body, rec.Body)
			}
			if after != before {
				t.Fatalf("400 for %q changed the setting from %+v to %+v", body, before, after)
			}
		default:
			t.Fatalf("body %q: got %d %s, want 200 or 400", body, rec.Code, rec.Body)
		}
	})
}

// FuzzLogin: no body or content type makes the login answer 5xx, and only
// a 200 sets a cookie.
func FuzzLogin(f *testing.F) {
	for _, s := range []string{
		`{"username":"admin","password":"demo"}`, `{"username":"admin","password":"x"}`,
		`{"username":"","password":""}`, `{"username":1}`, `{"username":"a","password":"b","x":1}`,
		`{"username":"a"} {}`, `null`, `[]`, `"x"`, ``, `{"username":"` + strings.Repeat("a", 200) + `","password":"p"}`,
		"{\"username\":\"\\ud800\",\"password\":\"\\u0000\"}",
	} {
		f.Add("application/json", []byte(s))
	}
	f.Add("text/plain", []byte(`{"username":"admin","password":"demo"}`))
	f.Add("application/json; charset=utf-8", []byte(`{"username":"viewer","password":"demo"}`))
	a := newTestApp(f, 60)
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		rec := serveOnce(a.handler, "POST", "/api/login", "", contentType, body)
		if rec.Code >= 500 {
			t.Fatalf("body %q: got %d %s", body, rec.Code, rec.Body)
		}
		if cookies := rec.Result().Cookies(); rec.Code != http.StatusOK && len(cookies) > 0 {
			t.Fatalf("body %q: %d set cookies %v", body, rec.Code, cookies)
		}
		if rec.Code != http.StatusOK {
			var e apptest.APIError
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code == "" {
				t.Fatalf("body %q: got %d %s, want a JSON error", body, rec.Code, rec.Body)
			}
		}
	})
}
