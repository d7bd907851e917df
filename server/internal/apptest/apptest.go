// Package apptest runs the real idleguard program in-process for tests
// (on 127.0.0.1:0, a fresh SQLite file in a temp dir, -demo) and talks to it
// over HTTP and a real gorilla/websocket client: the integration tests of
// server/app and the Chromium tests of server/e2e share it. It does not
// import the program; callers hand Start its entry point (app.RunReady).
package apptest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"idleguard/server/protocol"
)

// Short Expiration Times (-min-expiration 1) let tests wait for real
// deadlines; they assert order and "not before the deadline", never speed.

// WaitLimit bounds every wait for something the server must do; it is a
// guard against hanging, not a speed claim.
const WaitLimit = 15 * time.Second

// RunFunc is the program's entry point: app.RunReady.
type RunFunc func(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer, ready func(addr string)) error

// Server is one run of the program.
type Server struct {
	Dir  string
	Args []string
	Base string // http://127.0.0.1:port (https:// with -tls-cert)
	Log  *SyncBuffer

	run    RunFunc
	cancel context.CancelFunc
	done   chan error
}

// SyncBuffer collects the server's log; it outlives the test's t.Log.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Start runs the program on a new data directory with -demo and
// -min-expiration 1; args come after those and override them. The server
// stops when the test ends, and its log is shown if the test failed.
func Start(t *testing.T, run RunFunc, args ...string) *Server {
	t.Helper()
	return StartIn(t, run, t.TempDir(), args...)
}

// StartIn is Start on an existing data directory.
func StartIn(t *testing.T, run RunFunc, dir string, args ...string) *Server {
	t.Helper()
	s := &Server{Dir: dir, Args: args, Log: &SyncBuffer{}, run: run}
	s.Start(t)
	t.Cleanup(func() {
		s.Stop(t)
		if t.Failed() {
			t.Logf("server log:\n%s", s.Log.String())
		}
	})
	return s
}

// Start starts a stopped server again on its data directory (on a new port).
func (s *Server) Start(t *testing.T) {
	t.Helper()
	args := append([]string{"idleguard", "-data", s.Dir, "-addr", "127.0.0.1:0", "-demo", "-min-expiration", "1", "-log-level", "debug",
		// The cheapest bcrypt: sign-ins are many here, and ten times
		// slower under the race detector.
		"-password-cost", "4"}, s.Args...)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- s.run(ctx, args, func(string) string { return "" }, strings.NewReader(""), s.Log, s.Log,
			func(addr string) { ready <- addr })
	}()
	scheme := "http://"
	if slices.Contains(s.Args, "-tls-cert") {
		scheme = "https://"
	}
	select {
	case addr := <-ready:
		s.Base = scheme + addr
	case err := <-done:
		cancel()
		t.Fatalf("run returned before listening: %v\n%s", err, s.Log.String())
	case <-time.After(WaitLimit):
		cancel()
		t.Fatalf("server did not start\n%s", s.Log.String())
	}
	s.cancel, s.done = cancel, done
	resp, err := Client.Get(s.Base + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "ok" {
		t.Fatalf("GET /healthz: got %d %q, want 200 ok", resp.StatusCode, body)
	}
}

// Stop cancels run's context and waits for it to return nil. Stopping a
// stopped server does nothing.
func (s *Server) Stop(t *testing.T) {
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
	case <-time.After(WaitLimit):
		t.Errorf("run did not return after its context was cancelled")
	}
}

// Restart stops the server and starts it again on the same data directory
// (on a new port).
func (s *Server) Restart(t *testing.T) {
	t.Helper()
	s.Stop(t)
	s.Start(t)
}

// WSURL is Base's socket URL.
func (s *Server) WSURL() string { return "ws" + strings.TrimPrefix(s.Base, "http") + "/ws" }

// Request sends one request with an optional bearer token and returns the
// status and body. Redirects are not followed.
func Request(t *testing.T, method, url, token, contentType string, body io.Reader) (*http.Response, []byte) {
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
	return Do(t, req)
}

// GetWithCookie sends GET url carrying cookie c, as a browser would.
func GetWithCookie(t *testing.T, url string, c *http.Cookie) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	return Do(t, req)
}

// Dialer opens test sockets; like Client it trusts any certificate and
// reaches *.localhost on loopback.
var Dialer = &websocket.Dialer{HandshakeTimeout: WaitLimit, TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	NetDialContext: dialLoopback}

// Client is every test's HTTP client. It trusts any certificate:
// the TLS tests serve a self-signed one of their own on loopback.
var Client = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout:       WaitLimit,
	Transport:     &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DialContext: dialLoopback},
}

// dialLoopback dials NAME.localhost on 127.0.0.1, as browsers resolve it
// (RFC 6761), so that a test reaches a domain by the Host a real client
// sends: -domain-suffix .localhost makes acme.localhost domain acme.
func dialLoopback(ctx context.Context, network, addr string) (net.Conn, error) {
	if host, port, err := net.SplitHostPort(addr); err == nil && strings.HasSuffix(host, ".localhost") {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// Domain is a view of s for requests to domain name of a server started
// with -domain-suffix .localhost: its Base is http://name.localhost:port
// (the Host then names the domain). It shares s's process; stop and
// restart s, not the view.
func (s *Server) Domain(name string) *Server {
	v := &Server{Dir: s.Dir, Args: s.Args, Log: s.Log, run: s.run}
	scheme, hostport, _ := strings.Cut(s.Base, "://")
	_, port, _ := net.SplitHostPort(hostport)
	v.Base = scheme + "://" + name + ".localhost:" + port
	return v
}

func Do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := Client.Do(req)
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

// Login posts a username and password and returns the answer.
func Login(t *testing.T, base, user, pass string) (*http.Response, []byte) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"username": user, "password": pass})
	return Request(t, "POST", base+"/api/login", "", "application/json", bytes.NewReader(body))
}

// MustLogin signs user in and returns the token and its cookie.
func MustLogin(t *testing.T, base, user, pass string) (string, *http.Cookie) {
	t.Helper()
	resp, body := Login(t, base, user, pass)
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

// APIError is the JSON error body.
type APIError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
		Reason  string `json:"reason"`
	} `json:"error"`
}

func DecodeError(t *testing.T, body []byte) APIError {
	t.Helper()
	var e APIError
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Code == "" {
		t.Fatalf("got body %q, want a JSON error", body)
	}
	return e
}

// SessionStatus is GET /api/session's status and body for token.
func SessionStatus(t *testing.T, base, token string) (int, []byte) {
	t.Helper()
	resp, body := Request(t, "GET", base+"/api/session", token, "", nil)
	return resp.StatusCode, body
}

// WantEnded checks that token gets 401 on GET /api/session with reason, and
// 401 on the socket upgrade.
func WantEnded(t *testing.T, s *Server, token, reason string) {
	t.Helper()
	code, body := SessionStatus(t, s.Base, token)
	if code != http.StatusUnauthorized {
		t.Fatalf("GET /api/session after sign-out: got %d %s, want 401", code, body)
	}
	if e := DecodeError(t, body); e.Error.Reason != reason {
		t.Errorf("GET /api/session after sign-out: got reason %q, want %q", e.Error.Reason, reason)
	}
	if code := DialStatus(t, s, Bearer(token)); code != http.StatusUnauthorized {
		t.Errorf("socket upgrade after sign-out: got %d, want 401", code)
	}
}

// PutExpiration sends PUT /api/settings/jwt with body.
func PutExpiration(t *testing.T, base, token, body, contentType string) (*http.Response, []byte) {
	t.Helper()
	return Request(t, "PUT", base+"/api/settings/jwt", token, contentType, strings.NewReader(body))
}

// SetExpiration signs admin in and sets the Expiration Time, or fails.
func SetExpiration(t *testing.T, base string, seconds int) string {
	t.Helper()
	tok, _ := MustLogin(t, base, "admin", "demo")
	MustSetExpiration(t, base, tok, seconds)
	return tok
}

func MustSetExpiration(t *testing.T, base, token string, seconds int) {
	t.Helper()
	body, _ := json.Marshal(map[string]int{"expiration_seconds": seconds})
	resp, b := PutExpiration(t, base, token, string(body), "application/json")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT expiration %d: got %d %s, want 200", seconds, resp.StatusCode, b)
	}
}

func Bearer(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}}
}

// DialSocket opens /ws with token (as a bearer header) and origin (none if
// empty), or fails. The socket is closed when the test ends.
func DialSocket(t *testing.T, s *Server, token, origin string) *websocket.Conn {
	t.Helper()
	h := Bearer(token)
	if origin != "" {
		h.Set("Origin", origin)
	}
	return DialHeader(t, s, h)
}

func DialHeader(t *testing.T, s *Server, h http.Header) *websocket.Conn {
	t.Helper()
	ws, resp, err := Dialer.Dial(s.WSURL(), h)
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

// DialStatus tries the upgrade with header h and returns the HTTP status
// (101 when it succeeded; the socket is closed then).
func DialStatus(t *testing.T, s *Server, h http.Header) int {
	t.Helper()
	ws, resp, err := Dialer.Dial(s.WSURL(), h)
	if err == nil {
		ws.Close()
		return http.StatusSwitchingProtocols
	}
	if resp == nil {
		t.Fatalf("dial /ws: %v", err)
	}
	return resp.StatusCode
}

// ReadFrame reads one text frame and decodes it.
func ReadFrame(t *testing.T, ws *websocket.Conn) protocol.Message {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(WaitLimit))
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

// ReadState reads frames until a state frame and returns it. Warnings on
// the way are skipped: the idle clock sends them on its own time, so one
// may come before the state a test caused as well as after it. Any other
// frame, or the end of the socket, fails t.
func ReadState(t *testing.T, ws *websocket.Conn) protocol.Message {
	t.Helper()
	for {
		m := ReadFrame(t, ws)
		switch m.Kind {
		case protocol.State:
			return m
		case protocol.Warning:
			continue
		}
		t.Fatalf("got %+v, want a state frame", m)
	}
}

// ReadUntilClose reads frames until the server closes the socket and
// returns them with the close code (-1 if the socket ended without one).
func ReadUntilClose(t *testing.T, ws *websocket.Conn) ([]protocol.Message, int) {
	t.Helper()
	var frames []protocol.Message
	ws.SetReadDeadline(time.Now().Add(WaitLimit))
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

// WantSignOut reads until close and checks that a logout frame with reason
// came, last, and then the close code.
func WantSignOut(t *testing.T, ws *websocket.Conn, reason protocol.Reason, code int) []protocol.Message {
	t.Helper()
	frames, got := ReadUntilClose(t, ws)
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

func Send(t *testing.T, ws *websocket.Conn, frame string) {
	t.Helper()
	ws.SetWriteDeadline(time.Now().Add(WaitLimit))
	if err := ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		t.Fatalf("send %q: %v", frame, err)
	}
}

// Event is one thing a watched socket received: a frame, or its end.
type Event struct {
	At    time.Time
	Frame protocol.Message
	Raw   string
	End   bool
	Code  int // the close code when End (-1: no close frame)
}

// Watch reads ws in its own goroutine (the test may keep writing) and
// reports every frame and finally the close.
func Watch(ws *websocket.Conn) <-chan Event {
	ch := make(chan Event, 256)
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
				ch <- Event{At: now, End: true, Code: code, Raw: err.Error()}
				return
			}
			m, _ := protocol.Parse(data)
			ch <- Event{At: now, Frame: m, Raw: string(data)}
		}
	}()
	return ch
}

// NextEvent waits for the next Event from a watched socket.
func NextEvent(t *testing.T, ch <-chan Event) Event {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("socket watcher ended")
		}
		return e
	case <-time.After(WaitLimit):
		t.Fatal("nothing arrived on the socket")
	}
	return Event{}
}

// RunCommand runs the program with args and stdin (a user, group or
// session command) and returns its output.
func RunCommand(t *testing.T, run RunFunc, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), append([]string{"idleguard"}, args...), func(string) string { return "" },
		strings.NewReader(stdin), &out, &errOut, nil)
	return out.String() + errOut.String(), err
}

// Settings is GET /api/settings/jwt: the fields tests read, and the whole
// answer, so that comparing two says whether anything changed.
type Settings struct {
	ExpirationSeconds    int64  `json:"expiration_seconds"`
	MinExpirationSeconds int64  `json:"min_expiration_seconds"`
	MaxExpirationSeconds int64  `json:"max_expiration_seconds"`
	UpdatedBy            string `json:"updated_by"`
	Body                 string `json:"-"`
}

// Change is one entry of GET /api/settings/jwt/changes.
type Change struct {
	At  string `json:"at"`
	By  string `json:"by"`
	Old int64  `json:"old"`
	New int64  `json:"new"`
}

// GetSettings reads the JWT tab, or fails.
func GetSettings(t *testing.T, base, token string) Settings {
	t.Helper()
	resp, body := Request(t, "GET", base+"/api/settings/jwt", token, "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/settings/jwt: got %d %s, want 200", resp.StatusCode, body)
	}
	var v Settings
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("GET /api/settings/jwt: %v in %s", err, body)
	}
	v.Body = string(body)
	return v
}

// GetChanges reads the change record, or fails.
func GetChanges(t *testing.T, base, token string) []Change {
	t.Helper()
	resp, body := Request(t, "GET", base+"/api/settings/jwt/changes", token, "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/settings/jwt/changes: got %d %s, want 200", resp.StatusCode, body)
	}
	var v []Change
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("GET /api/settings/jwt/changes: %v in %s", err, body)
	}
	return v
}
