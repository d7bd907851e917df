package hub

import (
	"bytes"
	"context"
	"encoding/binary"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"idleguard/server/protocol"
)

// The rules the hub enforces on what a client sends, each found broken
// once by an outside test: lengths that wrap, a refusal's close frame cut
// off, text that is not UTF-8, close frames no endpoint may send, frames
// that escaped the rate limit, a limit that refused a stalled network's
// burst, and activity dropped at shutdown.

// maxHeader is the longest client frame header: 2 bytes, 8 of length, 4 of
// mask.
const maxHeader = 14

// The largest pend and msg any reader has held, seen by testHookRead after
// every read of every test's sockets.
var maxPend, maxMsg atomic.Int64

func init() {
	testHookRead = func(rs *readState) {
		raise(&maxPend, int64(len(rs.pend)))
		raise(&maxMsg, int64(cap(rs.msg)))
	}
}

func raise(v *atomic.Int64, n int64) {
	for old := v.Load(); n > old && !v.CompareAndSwap(old, n); old = v.Load() {
	}
}

// checkBuffers fails tb if any reader so far buffered more than one frame
// within the read limit.
func checkBuffers(tb testing.TB) {
	tb.Helper()
	if n := maxPend.Load(); n > maxHeader+protocol.MaxClientFrame {
		tb.Fatalf("a reader held %d bytes of an incomplete frame, want at most %d", n, maxHeader+protocol.MaxClientFrame)
	}
	if n := maxMsg.Load(); n > protocol.MaxClientFrame {
		tb.Fatalf("a reader held a %d-byte message buffer, want at most %d", n, protocol.MaxClientFrame)
	}
}

// rawHeader encodes a masked client frame header declaring length, in the
// 8-byte form; the payload that follows need not be masked to be skipped.
func rawHeader(fin bool, op byte, length uint64) []byte {
	if fin {
		op |= 0x80
	}
	out := append([]byte{op, 0x80 | 127}, binary.BigEndian.AppendUint64(nil, length)...)
	return append(out, 0x12, 0x34, 0x56, 0x78)
}

func repeat(b []byte, n int) []byte { return bytes.Repeat(b, n) }

// cat is the parts end to end, in a new slice.
func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// closeFrom reads until the server's close frame and returns it.
func closeFrom(t *testing.T, ws *websocket.Conn) *websocket.CloseError {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(waitLimit))
	for {
		_, _, err := ws.ReadMessage()
		if err == nil {
			continue
		}
		ce, ok := err.(*websocket.CloseError)
		if !ok {
			t.Fatalf("got %v, want a close frame", err)
		}
		return ce
	}
}

// waitGone waits until every socket of h has ended.
func waitGone(t *testing.T, h *Hub) {
	t.Helper()
	waitUntil(t, func() bool { return h.Count() == 0 }, "every socket to end")
}

func closeFrame(code int, reason string) []byte {
	return frame(true, websocket.CloseMessage, string(websocket.FormatCloseMessage(code, reason)), false)
}

// A declared length is never added to what is buffered: a continuation
// declaring 2^63-1 bytes wrapped the sum negative and was buffered for
// 60 s. Whatever the length, an over-limit frame is refused on its header,
// before its payload, which is skipped rather than held.
func TestReadLengthsNeverWrap(t *testing.T) {
	start := frame(false, websocket.TextMessage, "activity ", false)
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"continuation of 2^63-1", cat(start, rawHeader(true, 0, 1<<63-1))},
		{"continuation that reaches 2^63 with the message", cat(start, rawHeader(true, 0, 1<<63-uint64(len("activity "))))},
		{"text frame of 2^63-1", rawHeader(true, websocket.TextMessage, 1<<63-1)},
		{"one byte over the limit, header only", rawHeader(true, websocket.TextMessage, protocol.MaxClientFrame+1)},
		{"continuation one byte over, header only", cat(start, rawHeader(true, 0, protocol.MaxClientFrame-uint64(len("activity "))+1))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws, _ := dial(t)
			write(t, ws, tc.data)
			// The payload streams in after the refusal and is skipped.
			write(t, ws, repeat([]byte("x"), 64<<10))
			wantClose(t, ws, protocol.CloseTooBig)
			checkBuffers(t)
		})
	}
}

// A refusal's close frame goes out whatever follows it: 257 one-byte
// fragments used to end in a bare TCP close, the later fragments failing
// the socket and dropping the queued 1009.
func TestRefusalCloseIsNeverDropped(t *testing.T) {
	fragments := append(frame(false, websocket.TextMessage, "a", false),
		repeat(frame(false, 0, "x", false), protocol.MaxClientFrame)...)
	for _, tc := range []struct {
		name  string
		after []byte
	}{
		{"alone", nil},
		{"then more fragments", repeat(frame(false, 0, "x", false), 50)},
		{"then a new message, a ping and junk", append(append(frame(true, websocket.TextMessage, "sync", false),
			frame(true, websocket.PingMessage, "hi", false)...), frame(true, websocket.TextMessage, "sync", true)...)},
		{"then a frame breaking the framing", frame(true, websocket.TextMessage, "sync", true)},
		{"then the client's close", closeFrame(websocket.CloseNormalClosure, "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws, _ := dial(t)
			write(t, ws, cat(fragments, tc.after))
			wantClose(t, ws, protocol.CloseTooBig)
		})
	}
}

func TestReadTextMustBeUTF8(t *testing.T) {
	t.Run("invalid", func(t *testing.T) {
		ws, _ := dial(t)
		write(t, ws, frame(true, websocket.TextMessage, "activity ago=5 x=\xff", false))
		wantClose(t, ws, websocket.CloseInvalidFramePayloadData)
	})
	t.Run("invalid across fragments", func(t *testing.T) {
		ws, _ := dial(t)
		write(t, ws, frame(false, websocket.TextMessage, "activity ago=5 x=\xc3", false),
			frame(true, 0, "(", false))
		wantClose(t, ws, websocket.CloseInvalidFramePayloadData)
	})
	t.Run("a character split between fragments", func(t *testing.T) {
		ws, rec := dial(t)
		write(t, ws, frame(false, websocket.TextMessage, "activity ago=5 x=\xc3", false),
			frame(true, 0, "\xa9", false))
		want(t, rec, 5)
	})
}

// A close frame is answered with its own code and no reason, unless no
// endpoint may send it (RFC 6455 5.5.1, 7.4): then with 1002.
func TestReadAnswersCloseFrames(t *testing.T) {
	code := func(c int, reason string) string {
		return string(binary.BigEndian.AppendUint16(nil, uint16(c))) + reason
	}
	for _, tc := range []struct {
		name    string
		payload string
		want    int
	}{
		{"empty", "", websocket.CloseNoStatusReceived},
		{"1000 with a reason", code(1000, "bye"), 1000},
		{"1001", code(1001, ""), 1001},
		{"1003", code(1003, ""), 1003},
		{"1007", code(1007, ""), 1007},
		{"1011", code(1011, ""), 1011},
		{"3000", code(3000, ""), 3000},
		{"4999", code(4999, ""), 4999},
		{"one byte", "\x03", websocket.CloseProtocolError},
		{"999", code(999, ""), websocket.CloseProtocolError},
		{"1004", code(1004, ""), websocket.CloseProtocolError},
		{"1005", code(1005, ""), websocket.CloseProtocolError},
		{"1006", code(1006, ""), websocket.CloseProtocolError},
		{"1012", code(1012, ""), websocket.CloseProtocolError},
		{"1015", code(1015, ""), websocket.CloseProtocolError},
		{"2999", code(2999, ""), websocket.CloseProtocolError},
		{"5000", code(5000, ""), websocket.CloseProtocolError},
		{"reason not UTF-8", code(1000, "by\xffe"), websocket.CloseProtocolError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws, _ := dial(t)
			write(t, ws, frame(true, websocket.CloseMessage, tc.payload, false))
			ce := closeFrom(t, ws)
			if ce.Code != tc.want || ce.Text != "" {
				t.Fatalf("got close %d %q, want %d with no reason", ce.Code, ce.Text, tc.want)
			}
		})
	}
}

// Every frame takes a token, not only whole messages: a flood of pings,
// pongs or empty fragments is refused like a flood of messages.
func TestEveryFrameIsRateLimited(t *testing.T) {
	const flood = 4 * frameBurst
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"messages", repeat(frame(true, websocket.TextMessage, "sync", false), flood)},
		{"pings", repeat(frame(true, websocket.PingMessage, "", false), flood)},
		{"pongs", repeat(frame(true, websocket.PongMessage, "", false), flood)},
		{"empty continuations", append(frame(false, websocket.TextMessage, "sync", false),
			repeat(frame(false, 0, "", false), flood)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws, _ := dialWith(t, Config{}, discard{})
			write(t, ws, tc.data)
			wantClose(t, ws, protocol.ClosePolicy)
		})
	}
}

// A stalled network delivers at once what a page sent at a legitimate rate
// while it lasted: that burst is taken whole; a flood is not.
func TestFrameRateTakesBurstsRefusesFloods(t *testing.T) {
	activity := func(from, n int) []byte {
		var b []byte
		for i := range n {
			b = append(b, frame(true, websocket.TextMessage, "activity ago="+strconv.Itoa(from+i), false)...)
		}
		return b
	}
	t.Run("burst", func(t *testing.T) {
		rec := make(recorder, frameBurst)
		ws, _ := dialWith(t, Config{}, rec)
		write(t, ws, activity(0, frameBurst))
		for i := range frameBurst {
			want(t, rec, int64(i))
		}
		write(t, ws, closeFrame(websocket.CloseNormalClosure, ""))
		wantClose(t, ws, websocket.CloseNormalClosure) // not refused
	})
	t.Run("flood", func(t *testing.T) {
		ws, _ := dialWith(t, Config{}, discard{})
		write(t, ws, activity(0, 4*frameBurst))
		wantClose(t, ws, protocol.ClosePolicy)
	})
}

// gate holds the reader in its first HandleFrame until release closes, then
// records every frame, answering each with a frame that must not be queued:
// the tests release it once a close is on its way.
type gate struct {
	rec     recorder
	first   chan struct{}
	release chan struct{}
	once    sync.Once
	queued  atomic.Int32
}

func (g *gate) HandleFrame(c Socket, m protocol.Message) {
	g.once.Do(func() { close(g.first); <-g.release })
	if c.(*Conn).enqueue(outFrame{data: encode(protocol.Message{Kind: protocol.State, RemainingMs: 1})}) {
		g.queued.Add(1)
	}
	g.rec <- m
}

// Activity the page sent before it read the server's going-away close is
// handled: the session is alive, and that input must count.
func TestShutdownHandlesActivityInFlight(t *testing.T) {
	const n = 20
	g := &gate{rec: make(recorder, n), first: make(chan struct{}), release: make(chan struct{})}
	ws, h := dialWith(t, Config{}, g)
	var frames []byte
	for i := range n {
		frames = append(frames, frame(true, websocket.TextMessage, "activity ago="+strconv.Itoa(i), false)...)
	}
	write(t, ws, frames) // one read: handled from the buffer, whatever the deadline
	select {
	case <-g.first: // the reader is in the handler; the rest wait behind it
	case <-time.After(waitLimit):
		t.Fatal("no frame reached the handler")
	}
	done := make(chan error, 1)
	go func() {
		// Longer than every wait below, so that a Shutdown that gave up
		// reports its error rather than the test's own timeout.
		ctx, cancel := context.WithTimeout(context.Background(), 2*waitLimit)
		defer cancel()
		done <- h.Shutdown(ctx)
	}()
	// The page reads the close only after it sent every frame above; its
	// reply (gorilla's close handler) follows them.
	read := make(chan *websocket.CloseError, 1)
	go func() {
		ws.SetReadDeadline(time.Now().Add(waitLimit))
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				ce, _ := err.(*websocket.CloseError)
				read <- ce
				return
			}
		}
	}()
	select {
	case ce := <-read:
		if ce == nil || ce.Code != protocol.CloseGoingAway {
			t.Fatalf("got %v, want close %d", ce, protocol.CloseGoingAway)
		}
	case <-time.After(waitLimit):
		t.Fatal("no close frame from Shutdown")
	}
	close(g.release)
	for i := range n {
		want(t, g.rec, int64(i))
	}
	if n := g.queued.Load(); n != 0 {
		t.Fatalf("%d frames queued after the close, want none", n)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(3 * waitLimit):
		t.Fatal("Shutdown never returned")
	}
	if h.Count() != 0 {
		t.Fatalf("%d sockets after Shutdown, want 0", h.Count())
	}
}

// Config.Refused hears why a socket was refused, once, holding no lock.
func TestRefusedSaysWhy(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		why  string
	}{
		{"too big", frame(true, websocket.TextMessage, strings.Repeat("x", protocol.MaxClientFrame+1), false), "too_big"},
		{"ping flood", repeat(frame(true, websocket.PingMessage, "", false), 4*frameBurst), "rate"},
		{"binary", frame(true, websocket.BinaryMessage, "sync", false), "malformed"},
		{"server's kind", frame(true, websocket.TextMessage, "state remaining=5", false), "malformed"},
		{"unmasked", frame(true, websocket.TextMessage, "sync", true), "protocol"},
		{"continuation first", frame(true, 0, "sync", false), "protocol"},
		{"one-byte close", frame(true, websocket.CloseMessage, "\x03", false), "protocol"},
		{"not UTF-8", frame(true, websocket.TextMessage, "sync \xff", false), "utf8"},
		{"clean close", closeFrame(websocket.CloseNormalClosure, ""), ""}, // not a refusal
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan string, 4)
			var hub atomic.Pointer[Hub]
			cfg := Config{Refused: func(sid, why string) {
				hub.Load().Count() // deadlocks if the hub's lock is held
				got <- sid + " " + why
			}}
			ws, h := dialWith(t, cfg, discard{})
			hub.Store(h)
			write(t, ws, tc.data)
			closeFrom(t, ws)
			waitGone(t, h) // the reader has ended
			switch {
			case tc.why == "" && len(got) != 0:
				t.Fatalf("Refused got %q for a clean close", <-got)
			case tc.why != "" && len(got) != 1:
				t.Fatalf("Refused called %d times, want once", len(got))
			case tc.why != "":
				if g := <-got; g != "s1 "+tc.why {
					t.Fatalf("Refused got %q, want %q", g, "s1 "+tc.why)
				}
			}
		})
	}
}
