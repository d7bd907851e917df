package hub

import (
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"idleguard/server/protocol"
)

// The hub reads client frames itself (read.go); these tests write raw
// frames to check it reads them as a WebSocket server must.

type recorder chan protocol.Message

func (r recorder) HandleFrame(c Socket, m protocol.Message) { r <- m }

// dial starts a hub behind a test server and opens one socket to it.
func dial(t *testing.T) (*websocket.Conn, recorder) {
	t.Helper()
	ws, rec, _ := dialHub(t)
	return ws, rec
}

func dialHub(t *testing.T) (*websocket.Conn, recorder, *Hub) {
	t.Helper()
	rec := make(recorder, 16)
	ws, h := dialWith(t, Config{}, rec)
	return ws, rec, h
}

// dialWith is dialHub with the hub's config and handler.
func dialWith(t *testing.T, cfg Config, handler FrameHandler) (*websocket.Conn, *Hub) {
	t.Helper()
	h, url := serveHandler(t, cfg, "s1", handler)
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	// Attach runs after the handshake: the client may be told 101 first.
	waitUntil(t, func() bool { return h.Count() > 0 }, "the hub to attach the socket")
	return ws, h
}

// waitLimit bounds every wait in these tests for something the hub must do.
// It guards against hanging, and is no claim about speed: under -race on a
// loaded machine a socket may take a while to attach or end.
const waitLimit = 15 * time.Second

// waitUntil polls cond until it holds, or fails tb after waitLimit saying
// what it waited for. It polls often at first (attaching takes
// microseconds) and backs off to every 10 ms.
func waitUntil(tb testing.TB, cond func() bool, what string) {
	tb.Helper()
	deadline := time.Now().Add(waitLimit)
	for pause := 50 * time.Microsecond; !cond(); pause = min(2*pause, 10*time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("waited %v for %s", waitLimit, what)
		}
		time.Sleep(pause)
	}
}

// serveHub starts a hub behind a test server that attaches every socket to
// session sid with handler rec, and returns the hub and the server's ws://
// URL. The hub has no pinger: TestPingWheel turns the wheel by hand, and
// nothing else waits long enough to need it.
func serveHub(tb testing.TB, cfg Config, sid string, rec recorder) (*Hub, string) {
	tb.Helper()
	return serveHandler(tb, cfg, sid, rec)
}

func serveHandler(tb testing.TB, cfg Config, sid string, rec FrameHandler) (*Hub, string) {
	tb.Helper()
	h := New(slog.New(slog.NewTextHandler(io.Discard, nil)), cfg)
	h.pinging = true
	up := Upgrader(func(*http.Request) bool { return true })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		h.Attach(ws, sid, rec)
	}))
	tb.Cleanup(srv.Close)
	return h, "ws" + strings.TrimPrefix(srv.URL, "http")
}

// frame encodes one client frame, masked unless unmasked is set.
func frame(fin bool, op byte, payload string, unmasked bool) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	n := len(payload)
	maskBit := byte(0x80)
	if unmasked {
		maskBit = 0
	}
	switch {
	case n < 126:
		out = append(out, maskBit|byte(n))
	case n < 1<<16:
		out = append(out, maskBit|126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out = append(out, maskBit|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	if unmasked {
		return append(out, payload...)
	}
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	out = append(out, key[:]...)
	for i := range len(payload) {
		out = append(out, payload[i]^key[i&3])
	}
	return out
}

func write(t *testing.T, ws *websocket.Conn, chunks ...[]byte) {
	t.Helper()
	for _, c := range chunks {
		if _, err := ws.NetConn().Write(c); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // separate reads on the server
	}
}

func want(t *testing.T, rec recorder, ago int64) {
	t.Helper()
	select {
	case m := <-rec:
		if m.Kind != protocol.Activity || m.AgoMs != ago {
			t.Fatalf("got %+v, want activity ago=%d", m, ago)
		}
	case <-time.After(waitLimit):
		t.Fatalf("no frame in %v, want activity ago=%d", waitLimit, ago)
	}
}

// wantClose reads until the server's close frame and checks its code.
func wantClose(t *testing.T, ws *websocket.Conn, code int) {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(waitLimit))
	for {
		_, _, err := ws.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("got %v, want close %d", err, code)
		}
		if ce.Code != code {
			t.Fatalf("got close %d (%s), want %d", ce.Code, ce.Text, code)
		}
		return
	}
}

func TestReadSplitAndJoinedFrames(t *testing.T) {
	ws, rec := dial(t)
	f := frame(true, websocket.TextMessage, "activity ago=5", false)
	write(t, ws, f[:1], f[1:7], f[7:]) // header and payload in pieces
	want(t, rec, 5)
	both := append(frame(true, websocket.TextMessage, "activity ago=6", false),
		frame(true, websocket.TextMessage, "activity ago=7", false)...)
	write(t, ws, both)
	want(t, rec, 6)
	want(t, rec, 7)
}

func TestReadFragmentsWithPingBetween(t *testing.T) {
	ws, rec := dial(t)
	pong := make(chan string, 1)
	ws.SetPongHandler(func(s string) error { pong <- s; return nil })
	go ws.ReadMessage() // runs the pong handler
	write(t, ws,
		frame(false, websocket.TextMessage, "activity", false),
		frame(true, websocket.PingMessage, "hi", false),
		frame(true, 0, " ago=9", false))
	want(t, rec, 9)
	select {
	case s := <-pong:
		if s != "hi" {
			t.Fatalf("pong %q, want %q", s, "hi")
		}
	case <-time.After(waitLimit):
		t.Fatal("no pong for the ping")
	}
}

func TestReadRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		code int
	}{
		{"binary", frame(true, websocket.BinaryMessage, "activity ago=1", false), protocol.ClosePolicy},
		{"malformed", frame(true, websocket.TextMessage, "hello", false), protocol.ClosePolicy},
		{"too big", frame(true, websocket.TextMessage, strings.Repeat("x", protocol.MaxClientFrame+1), false), protocol.CloseTooBig},
		{"too big in fragments", append(frame(false, websocket.TextMessage, strings.Repeat("x", 200), false),
			frame(true, 0, strings.Repeat("x", 100), false)...), protocol.CloseTooBig},
		{"unmasked", frame(true, websocket.TextMessage, "activity ago=1", true), websocket.CloseProtocolError},
		{"continuation first", frame(true, 0, "activity ago=1", false), websocket.CloseProtocolError},
		{"long ping", frame(true, websocket.PingMessage, strings.Repeat("x", 126), false), websocket.CloseProtocolError},
		{"reserved bits", append([]byte{0xc1}, frame(true, websocket.TextMessage, "sync", false)[1:]...), websocket.CloseProtocolError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws, _ := dial(t)
			write(t, ws, tc.data)
			wantClose(t, ws, tc.code)
		})
	}
}

func TestReadAnswersClose(t *testing.T) {
	ws, _ := dial(t)
	write(t, ws, frame(true, websocket.CloseMessage, string(websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye")), false))
	wantClose(t, ws, websocket.CloseNormalClosure)
}

type discard struct{}

func (discard) HandleFrame(Socket, protocol.Message) {}

// BenchmarkReadActivity is the hub's cost of one activity frame once its
// bytes are read: unmask, rate check, parse (the handler does nothing).
func BenchmarkReadActivity(b *testing.B) {
	h := New(slog.New(slog.NewTextHandler(io.Discard, nil)), Config{})
	c := &Conn{hub: h, handler: discard{}}
	f := frame(true, websocket.TextMessage, "activity ago=250", false)
	buf := make([]byte, len(f))
	b.ReportAllocs()
	for b.Loop() {
		copy(buf, f) // consume unmasks in place
		c.tat = 0    // a full bucket: stay under the rate limit
		if !c.consume(buf) {
			b.Fatal("consume ended the socket")
		}
	}
}

// The pinger visits one slot of its wheel per tick: a socket is pinged
// once per turn of the wheel, and not once it has left the hub.
func TestPingWheel(t *testing.T) {
	ws, _, h := dialHub(t)
	pings := make(chan string, 8)
	ws.SetPingHandler(func(s string) error { pings <- s; return nil })
	go func() {
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	turn := func() {
		for range len(h.wheel) {
			h.pingSlot(nil)
		}
	}
	turn()
	select {
	case <-pings:
	case <-time.After(waitLimit):
		t.Fatal("no ping in a turn of the wheel")
	}
	turn()
	select {
	case <-pings:
	case <-time.After(waitLimit):
		t.Fatal("no ping in the second turn")
	}
	select {
	case <-pings:
		t.Fatal("two pings in one turn")
	case <-time.After(50 * time.Millisecond):
	}
	h.SignOut("s1", protocol.ReasonIdle, 60)
	turn()
	h.mu.Lock()
	n := 0
	for _, s := range h.wheel {
		n += len(s)
	}
	h.mu.Unlock()
	if n != 0 {
		t.Fatalf("wheel holds %d sockets after sign-out, want 0", n)
	}
}

func TestClosedSocketLeavesWheel(t *testing.T) {
	ws, _, h := dialHub(t)
	ws.Close()
	waitUntil(t, func() bool { return h.Count() == 0 }, "the closed socket to leave the hub")
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, s := range h.wheel {
		if len(s) != 0 {
			t.Fatalf("slot %d holds %d sockets after the socket closed, want 0", i, len(s))
		}
	}
}
