package api

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// dial opens /ws on srv with the given headers; on a refused upgrade it
// returns the status.
func dial(t *testing.T, srv *httptest.Server, path string, headers ...string) (*websocket.Conn, int) {
	t.Helper()
	h := http.Header{}
	for i := 0; i+1 < len(headers); i += 2 {
		h.Set(headers[i], headers[i+1])
	}
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	ws, resp, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+path, h)
	if err != nil {
		if !errors.Is(err, websocket.ErrBadHandshake) || resp == nil {
			t.Fatalf("dial %s: %v", path, err)
		}
		resp.Body.Close()
		return nil, resp.StatusCode
	}
	t.Cleanup(func() { ws.Close() })
	return ws, http.StatusSwitchingProtocols
}

func readFrame(t *testing.T, ws *websocket.Conn) string {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, b, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

// The upgrade is refused with a plain status before it happens; an
// accepted socket hears its session's state and, on sign-out, why it ends.
func TestSocket(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(f.h)
	t.Cleanup(srv.Close)
	origin := srv.URL
	tok, _ := f.login(t, "cashier")
	other, _ := f.login(t, "viewer")

	for _, tc := range []struct {
		name    string
		path    string
		headers []string
		status  int
	}{
		{"no token", "/ws", []string{"Origin", origin}, http.StatusUnauthorized},
		{"a token in the URL", "/ws?token=" + tok, []string{"Origin", origin}, http.StatusUnauthorized},
		{"a foreign origin", "/ws", []string{"Origin", "http://evil.example", "Cookie", cookieHeader(tok)}, http.StatusForbidden},
		{"two cookies", "/ws", []string{"Origin", origin, "Cookie", cookieHeader(tok) + "; " + cookieHeader(other)}, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, status := dial(t, srv, tc.path, tc.headers...); status != tc.status {
				t.Errorf("upgrade: got %d, want %d", status, tc.status)
			}
		})
	}

	state := "state remaining=60000 expiration=60 warn=15000 report=5000"
	tab1, _ := dial(t, srv, "/ws", "Origin", origin, "Cookie", cookieHeader(tok))
	if got := readFrame(t, tab1); got != state {
		t.Errorf("first frame: got %q, want %q", got, state)
	}
	// A client without Origin (not a browser) brings its own token.
	tab2, _ := dial(t, srv, "/ws", "Authorization", "Bearer "+tok)
	if got := readFrame(t, tab2); got != state {
		t.Errorf("first frame by header: got %q, want %q", got, state)
	}
	// The hub holds two a session here: the third is refused before the upgrade.
	if _, status := dial(t, srv, "/ws", "Origin", origin, "Cookie", cookieHeader(tok)); status != http.StatusTooManyRequests {
		t.Errorf("a third tab: got %d, want 429", status)
	}

	if resp := f.serve(t, request("POST", "/api/logout", "", "Content-Type", "application/json", "Cookie", cookieHeader(tok))); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: got %d", resp.StatusCode)
	}
	for name, ws := range map[string]*websocket.Conn{"tab 1": tab1, "tab 2": tab2} {
		if got, want := readFrame(t, ws), "logout reason=signed_out expiration=60"; got != want {
			t.Errorf("%s after sign-out: got %q, want %q", name, got, want)
		}
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _, err := ws.ReadMessage()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != 4002 || ce.Text != "signed_out" {
			t.Errorf("%s close: got %v, want 4002 signed_out", name, err)
		}
	}
	if _, status := dial(t, srv, "/ws", "Origin", origin, "Cookie", cookieHeader(tok)); status != http.StatusUnauthorized {
		t.Errorf("after sign-out: got %d, want 401", status)
	}
}
