package hub

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// FuzzReadFrames writes arbitrary bytes, as a client would after the
// handshake, to a real socket of a real hub: the hand-written frame reader
// (read.go) must never panic, never pass anything but well-formed client
// frames to the handler, and always end or keep the socket cleanly.
func FuzzReadFrames(f *testing.F) {
	h := New(slog.New(slog.NewTextHandler(io.Discard, nil)), Config{MaxPerSession: 1 << 20})
	h.pinging = true // no pinger: nothing here waits long enough to need it
	rec := make(recorder, 1024)
	up := Upgrader(func(*http.Request) bool { return true })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		h.Attach(ws, "fuzz", rec)
	}))
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")

	f.Add(frame(true, websocket.TextMessage, "activity ago=5", false))
	f.Add(frame(false, websocket.TextMessage, "activity ", false))
	f.Add(append(frame(false, websocket.TextMessage, "activity ", false), frame(true, 0, "ago=9", false)...))
	f.Add(frame(true, websocket.PingMessage, "hi", false))
	f.Add(frame(true, websocket.CloseMessage, "\x03\xe8", false))
	f.Add(frame(true, websocket.TextMessage, strings.Repeat("x", 300), false))
	f.Add(frame(true, websocket.TextMessage, "sync", true))
	f.Add([]byte{0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		ws, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Skip("dial:", err) // the machine, not the reader
		}
		defer ws.Close()
		ws.NetConn().Write(data)
		// Whatever the server answers, it answers with frames gorilla can
		// read, and it does not hang the connection forever.
		ws.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				break
			}
		}
		for {
			select {
			case m := <-rec:
				if !m.Kind.FromClient() {
					t.Fatalf("handler got a %v frame from a client", m.Kind)
				}
				continue
			default:
			}
			break
		}
	})
}
