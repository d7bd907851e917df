package hub

import (
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
	rec := make(recorder, 1024)
	_, url := serveHub(f, Config{MaxPerSession: 1 << 20}, "fuzz", rec)

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
		ws.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
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

// FuzzParseHeader checks the frame header decoder alone, fast: a header it
// accepts lies within the bytes it was given, has one of the three sizes
// RFC 6455 allows, and a length that fits an int64; a header cut short is
// errShort, never a wrong answer.
func FuzzParseHeader(f *testing.F) {
	f.Add(frame(true, websocket.TextMessage, "activity ago=5", false))
	f.Add(frame(true, websocket.TextMessage, strings.Repeat("x", 300), false))
	f.Add(frame(true, websocket.TextMessage, strings.Repeat("x", 70000), false)[:20])
	f.Add([]byte{0x81, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := parseHeader(data)
		if err == errShort {
			if len(data) >= 14 {
				t.Fatalf("errShort with %d bytes, a whole header is at most 14", len(data))
			}
			return
		}
		if err != nil {
			return
		}
		if h.size != 6 && h.size != 8 && h.size != 14 {
			t.Fatalf("header size %d", h.size)
		}
		if h.size > len(data) || h.length < 0 {
			t.Fatalf("header %+v from %d bytes", h, len(data))
		}
		for i := 1; i < h.size; i++ {
			if _, err := parseHeader(data[:i]); err != errShort && err != errProtocol {
				t.Fatalf("a %d-byte prefix of a %d-byte header parsed", i, h.size)
			}
		}
	})
}
