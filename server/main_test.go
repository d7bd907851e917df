package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"idleguard/server/protocol"
)

// These tests start the real program in-process (run on 127.0.0.1:0 with a
// fresh SQLite file in a temp dir) and talk to it over HTTP and a real
// gorilla/websocket client. Short Expiration Times (-min-expiration 1) let
// them wait for real deadlines; they assert order and "not before the
// deadline", never speed.

// waitLimit bounds every wait for something the server must do; it is a
// guard against hanging, not a speed claim.
const waitLimit = 15 * time.Second

// testServer is one run of the program.
type testServer struct {
	dir  string
	args []string
	base string // http://127.0.0.1:port
	log  *syncBuffer

	cancel context.CancelFunc
	done   chan error
}

// syncBuffer collects the server's log; it outlives the test's t.Log.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startServer runs the program on a new data directory with -demo and
// -min-expiration 1; args come after those and override them.
func startServer(t *testing.T, args ...string) *testServer {
	t.Helper()
	return startServerIn(t, t.TempDir(), args...)
}

// startServerIn is startServer on an existing data directory.
func startServerIn(t *testing.T, dir string, args ...string) *testServer {
	t.Helper()
	s := &testServer{dir: dir, args: args, log: &syncBuffer{}}
	s.start(t)
	t.Cleanup(func() {
		s.stop(t)
		if t.Failed() {
			t.Logf("server log:\n%s", s.log.String())
		}
	})
	return s
}

func (s *testServer) start(t *testing.T) {
	t.Helper()
	args := append([]string{"idleguard", "-data", s.dir, "-addr", "127.0.0.1:0", "-demo", "-min-expiration", "1", "-log-level", "debug"}, s.args...)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- runWith(ctx, args, func(string) string { return "" }, strings.NewReader(""), s.log, s.log,
			func(addr string) { ready <- addr })
	}()
	scheme := "http://"
	if slices.Contains(s.args, "-tls-cert") {
		scheme = "https://"
	}
	select {
	case addr := <-ready:
		s.base = scheme + addr
	case err := <-done:
		cancel()
		t.Fatalf("run returned before listening: %v\n%s", err, s.log.String())
	case <-time.After(waitLimit):
		cancel()
		t.Fatalf("server did not start\n%s", s.log.String())
	}
	s.cancel, s.done = cancel, done
	resp, err := noRedirects.Get(s.base + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "ok" {
		t.Fatalf("GET /healthz: got %d %q, want 200 ok", resp.StatusCode, body)
	}
}

// stop cancels run's context and waits for it to return nil. Stopping a
// stopped server does nothing.
func (s *testServer) stop(t *testing.T) {
	t.Helper()
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("run returned %v, want nil", err)
		}
	case <-time.After(waitLimit):
		t.Errorf("run did not return after its context was cancelled")
	}
}

// restart stops the server and starts it again on the same data directory
// (on a new port).
func (s *testServer) restart(t *testing.T) {
	t.Helper()
	s.stop(t)
	s.start(t)
}

// wsURL is base's socket URL.
func (s *testServer) wsURL() string { return "ws" + strings.TrimPrefix(s.base, "http") + "/ws" }

// request sends one request with an optional bearer token and returns the
// status and body. Redirects are not followed.
func request(t *testing.T, method, url, token, contentType string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return do(t, req)
}

// getWithCookie sends GET url carrying cookie c, as a browser would.
func getWithCookie(t *testing.T, url string, c *http.Cookie) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	return do(t, req)
}

// dialer opens test sockets; like noRedirects it trusts any certificate.
var dialer = &websocket.Dialer{HandshakeTimeout: waitLimit, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}

// noRedirects is every test's HTTP client. It trusts any certificate:
// the TLS tests serve a self-signed one of their own on loopback.
var noRedirects = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout:       waitLimit,
	Transport:     &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
}

func do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", req.Method, req.URL.Path, err)
	}
	return resp, b
}

// login posts a username and password and returns the answer.
func login(t *testing.T, base, user, pass string) (*http.Response, []byte) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"username": user, "password": pass})
	return request(t, "POST", base+"/api/login", "", "application/json", bytes.NewReader(body))
}

// mustLogin signs user in and returns the token and its cookie.
func mustLogin(t *testing.T, base, user, pass string) (string, *http.Cookie) {
	t.Helper()
	resp, body := login(t, base, user, pass)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login %s: got %d %s, want 200", user, resp.StatusCode, body)
	}
	var out struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.Token == "" {
		t.Fatalf("login %s: got body %s, want a token", user, body)
	}
	for _, c := range resp.Cookies() {
		if c.Name == "idleguard_token" {
			if c.Value != out.Token {
				t.Fatalf("login %s: cookie holds %q, want the body's token", user, c.Value)
			}
			return out.Token, c
		}
	}
	t.Fatalf("login %s: no idleguard_token cookie in %v", user, resp.Header["Set-Cookie"])
	return "", nil
}

// apiError is the JSON error body.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
		Reason  string `json:"reason"`
	} `json:"error"`
}

func decodeError(t *testing.T, body []byte) apiError {
	t.Helper()
	var e apiError
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Code == "" {
		t.Fatalf("got body %q, want a JSON error", body)
	}
	return e
}

// sessionStatus is GET /api/session's status and body for token.
func sessionStatus(t *testing.T, base, token string) (int, []byte) {
	t.Helper()
	resp, body := request(t, "GET", base+"/api/session", token, "", nil)
	return resp.StatusCode, body
}

// wantEnded checks that token gets 401 on GET /api/session with reason, and
// 401 on the socket upgrade.
func wantEnded(t *testing.T, s *testServer, token, reason string) {
	t.Helper()
	code, body := sessionStatus(t, s.base, token)
	if code != http.StatusUnauthorized {
		t.Fatalf("GET /api/session after sign-out: got %d %s, want 401", code, body)
	}
	if e := decodeError(t, body); e.Error.Reason != reason {
		t.Errorf("GET /api/session after sign-out: got reason %q, want %q", e.Error.Reason, reason)
	}
	if code := dialStatus(t, s, bearer(token)); code != http.StatusUnauthorized {
		t.Errorf("socket upgrade after sign-out: got %d, want 401", code)
	}
}

// putExpiration sends PUT /api/settings/jwt with body.
func putExpiration(t *testing.T, base, token, body, contentType string) (*http.Response, []byte) {
	t.Helper()
	return request(t, "PUT", base+"/api/settings/jwt", token, contentType, strings.NewReader(body))
}

// setExpiration signs admin in and sets the Expiration Time, or fails.
func setExpiration(t *testing.T, base string, seconds int) string {
	t.Helper()
	tok, _ := mustLogin(t, base, "admin", "demo")
	mustSetExpiration(t, base, tok, seconds)
	return tok
}

func mustSetExpiration(t *testing.T, base, token string, seconds int) {
	t.Helper()
	body, _ := json.Marshal(map[string]int{"expiration_seconds": seconds})
	resp, b := putExpiration(t, base, token, string(body), "application/json")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT expiration %d: got %d %s, want 200", seconds, resp.StatusCode, b)
	}
}

func bearer(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}}
}

// dialSocket opens /ws with token (as a bearer header) and origin (none if
// empty), or fails. The socket is closed when the test ends.
func dialSocket(t *testing.T, s *testServer, token, origin string) *websocket.Conn {
	t.Helper()
	h := bearer(token)
	if origin != "" {
		h.Set("Origin", origin)
	}
	return dialHeader(t, s, h)
}

func dialHeader(t *testing.T, s *testServer, h http.Header) *websocket.Conn {
	t.Helper()
	ws, resp, err := dialer.Dial(s.wsURL(), h)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial /ws: got %v (status %d), want 101", err, status)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

// dialStatus tries the upgrade with header h and returns the HTTP status
// (101 when it succeeded; the socket is closed then).
func dialStatus(t *testing.T, s *testServer, h http.Header) int {
	t.Helper()
	ws, resp, err := dialer.Dial(s.wsURL(), h)
	if err == nil {
		ws.Close()
		return http.StatusSwitchingProtocols
	}
	if resp == nil {
		t.Fatalf("dial /ws: %v", err)
	}
	return resp.StatusCode
}

// readFrame reads one text frame and decodes it.
func readFrame(t *testing.T, ws *websocket.Conn) protocol.Message {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(waitLimit))
	kind, data, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	if kind != websocket.TextMessage {
		t.Fatalf("read frame: got message type %d, want text", kind)
	}
	m, err := protocol.Parse(data)
	if err != nil {
		t.Fatalf("read frame %q: %v", data, err)
	}
	return m
}

// readUntilClose reads frames until the server closes the socket and
// returns them with the close code (-1 if the socket ended without one).
func readUntilClose(t *testing.T, ws *websocket.Conn) ([]protocol.Message, int) {
	t.Helper()
	var frames []protocol.Message
	ws.SetReadDeadline(time.Now().Add(waitLimit))
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return frames, ce.Code
			}
			t.Logf("socket ended without a close frame: %v", err)
			return frames, -1
		}
		m, perr := protocol.Parse(data)
		if perr != nil {
			t.Fatalf("read frame %q: %v", data, perr)
		}
		frames = append(frames, m)
	}
}

// wantSignOut reads until close and checks that a logout frame with reason
// came, last, and then the close code.
func wantSignOut(t *testing.T, ws *websocket.Conn, reason protocol.Reason, code int) []protocol.Message {
	t.Helper()
	frames, got := readUntilClose(t, ws)
	if len(frames) == 0 || frames[len(frames)-1].Kind != protocol.Logout {
		t.Fatalf("got frames %v before the close, want a logout last", frames)
	}
	if r := frames[len(frames)-1].Reason; r != reason {
		t.Errorf("logout reason: got %v, want %v", r, reason)
	}
	if got != code {
		t.Errorf("close code: got %d, want %d", got, code)
	}
	return frames
}

func send(t *testing.T, ws *websocket.Conn, frame string) {
	t.Helper()
	ws.SetWriteDeadline(time.Now().Add(waitLimit))
	if err := ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		t.Fatalf("send %q: %v", frame, err)
	}
}

// event is one thing a watched socket received: a frame, or its end.
type event struct {
	at    time.Time
	frame protocol.Message
	raw   string
	end   bool
	code  int // the close code when end (-1: no close frame)
}

// watch reads ws in its own goroutine (the test may keep writing) and
// reports every frame and finally the close.
func watch(ws *websocket.Conn) <-chan event {
	ch := make(chan event, 256)
	go func() {
		defer close(ch)
		for {
			_, data, err := ws.ReadMessage()
			now := time.Now()
			if err != nil {
				code := -1
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					code = ce.Code
				}
				ch <- event{at: now, end: true, code: code, raw: err.Error()}
				return
			}
			m, _ := protocol.Parse(data)
			ch <- event{at: now, frame: m, raw: string(data)}
		}
	}()
	return ch
}

// nextEvent waits for the next event from a watched socket.
func nextEvent(t *testing.T, ch <-chan event) event {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("socket watcher ended")
		}
		return e
	case <-time.After(waitLimit):
		t.Fatal("nothing arrived on the socket")
	}
	return event{}
}
