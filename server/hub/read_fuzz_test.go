package hub

import (
	"encoding/binary"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"idleguard/server/protocol"
)

// FuzzReadFrames writes arbitrary bytes, as a client would after the
// handshake, to a real socket of a real hub: the hand-written frame reader
// (read.go) must never panic, never pass anything but well-formed client
// frames to the handler, never buffer more than one frame within the read
// limit, and always end or keep the socket cleanly.
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
		checkBuffers(t)
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

// FuzzReadFragments writes a sequence of frames decoded from the fuzzer's
// bytes (decodeFragments): fragments and whole messages, control frames
// between them, close frames, and declared lengths up to 2^64-1 that the
// payload need not match. Against a real hub it checks what a model of the
// rules says (expectFragments): the messages handed on, in order, and the
// close code answered, if any; and, after every read, that the reader
// buffers no more than one frame within the read limit.
func FuzzReadFragments(f *testing.F) {
	rec := make(recorder, 64)
	h, url := serveHub(f, Config{MaxPerSession: 1 << 20}, "fuzz", rec)

	text := func(fin bool, op byte, s string) []byte {
		b := op
		if fin {
			b |= 0x80
		}
		return append([]byte{b, byte(len(s))}, s...)
	}
	long := func(fin bool, op byte, length uint64, s string) []byte {
		b := op | 0x40
		if fin {
			b |= 0x80
		}
		b2 := append([]byte{b}, binary.BigEndian.AppendUint64(nil, length)...)
		return append(append(b2, byte(len(s))), s...)
	}
	seeds := [][]byte{
		text(true, 1, "activity ago=5"),
		cat(text(false, 1, "activity "), text(true, 9, "hi"), text(true, 0, "ago=9")),
		cat(text(false, 1, "activity "), long(true, 0, 1<<63-1, "xx")),
		cat(text(false, 1, "activity "), long(true, 0, 1<<63-9, "")),
		cat(text(false, 1, "a"), text(false, 0, strings.Repeat("x", 255)), text(true, 0, "x")),
		cat(text(false, 1, "sync"), text(false, 0, ""), text(true, 10, ""), text(true, 0, "")),
		cat(text(true, 1, "sync"), text(true, 8, "\x03\xe8bye")),
		text(true, 8, "\x03"),
		text(true, 8, "\x03\xed"),
		cat(text(true, 1, "stay"), text(true, 8, "")),
		text(true, 1, "sync \xff"),
		cat(text(false, 1, "activity ago=1 x=\xc3"), text(true, 0, "\xa9")),
		text(true, 2, "sync"),
		cat(text(false, 1, "sync"), text(true, 1, "sync")),
		text(false, 9, "hi"),
		long(true, 9, 126, strings.Repeat("x", 126)),
		long(true, 1, 1<<64-1, ""),
		long(true, 1, 14, "activity ago=3"),
		text(true, 3, ""),
	}
	for _, s := range seeds {
		f.Add(s, uint16(3))
	}
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		frames := decodeFragments(data)
		wantMsgs, wantCode := expectFragments(frames)
		var stream []byte
		for _, fr := range frames {
			stream = append(stream, fr.encode()...)
		}
		for len(rec) > 0 {
			<-rec
		}
		ws, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Skip("dial:", err) // the machine, not the reader
		}
		defer ws.Close()
		ws.SetCloseHandler(func(int, string) error { return nil })
		// Two writes, so that a frame is often cut between two reads.
		cut := int(split) % (len(stream) + 1)
		ws.NetConn().Write(stream[:cut])
		ws.NetConn().Write(stream[cut:])
		// Then end the stream: the server reads to the end, answers what
		// it must, and hangs up.
		ws.NetConn().(*net.TCPConn).CloseWrite()
		ws.SetReadDeadline(time.Now().Add(waitLimit))
		gotCode := 0
		for {
			_, _, err := ws.ReadMessage()
			if err == nil {
				continue
			}
			if ce, ok := err.(*websocket.CloseError); ok && ce.Code != websocket.CloseAbnormalClosure {
				gotCode = ce.Code
			} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("the server neither closed nor hung up")
			}
			break
		}
		if gotCode != wantCode {
			t.Fatalf("got close %d, want %d (0: none) for %s", gotCode, wantCode, describe(frames))
		}
		waitUntil(t, func() bool { return h.Count() == 0 }, "the reader to end")
		var got []protocol.Message
		for len(rec) > 0 {
			got = append(got, <-rec)
		}
		if !slices.Equal(got, wantMsgs) {
			t.Fatalf("handler got %+v, want %+v for %s", got, wantMsgs, describe(frames))
		}
		checkBuffers(t)
	})
}

// fuzzFrame is one frame of FuzzReadFragments' sequence.
type fuzzFrame struct {
	fin     bool
	op      byte
	long    bool   // the 8-byte length form
	length  uint64 // declared
	payload []byte // unmasked; shorter than length only in the last frame
}

// decodeFragments reads frames from the fuzzer's bytes: for each, a byte of
// fin (0x80), long form (0x40) and opcode (low 4 bits); in the long form 8
// bytes of declared length; then a byte n and n bytes of payload (fewer if
// the input ends). A short form declares what it carries; a long one is
// cut to what it declares, and if it carries less, the stream ends inside
// it.
func decodeFragments(data []byte) []fuzzFrame {
	var frames []fuzzFrame
	for len(data) > 0 && len(frames) < 64 {
		b := data[0]
		data = data[1:]
		fr := fuzzFrame{fin: b&0x80 != 0, op: b & 0x0f, long: b&0x40 != 0 && len(data) >= 8}
		if fr.long {
			fr.length = binary.BigEndian.Uint64(data)
			data = data[8:]
		}
		n := 0
		if len(data) > 0 {
			n, data = int(data[0]), data[1:]
		}
		n = min(n, len(data))
		if !fr.long {
			fr.length = uint64(n)
		}
		n = int(min(uint64(n), fr.length))
		fr.payload, data = data[:n], data[n:]
		frames = append(frames, fr)
		if uint64(n) < fr.length {
			break
		}
	}
	return frames
}

func (fr fuzzFrame) encode() []byte {
	b0 := fr.op
	if fr.fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	switch {
	case fr.long:
		out = binary.BigEndian.AppendUint64(append(out, 0x80|127), fr.length)
	case fr.length < 126:
		out = append(out, 0x80|byte(fr.length))
	default:
		out = binary.BigEndian.AppendUint16(append(out, 0x80|126), uint16(fr.length))
	}
	key := [4]byte{0x9a, 0x0b, 0x3c, 0xd4}
	out = append(out, key[:]...)
	for i, c := range fr.payload {
		out = append(out, c^key[i&3])
	}
	return out
}

// expectFragments is what the reader must make of frames, by RFC 6455 and
// the hub's rules, written out plainly: the messages it hands on and the
// close code it answers with (0: none, the stream just ends). The first
// rule broken decides the code; nothing after it is handled.
func expectFragments(frames []fuzzFrame) ([]protocol.Message, int) {
	var msgs []protocol.Message
	var msg []byte
	inMessage := false
	for _, fr := range frames {
		switch {
		case fr.length >= 1<<63:
			return msgs, websocket.CloseProtocolError // no such length
		case fr.op >= 8:
			if fr.op > 10 || !fr.fin || fr.length > 125 {
				return msgs, websocket.CloseProtocolError
			}
		case fr.op == 0 && !inMessage, fr.op != 0 && inMessage, fr.op > 2:
			return msgs, websocket.CloseProtocolError
		case fr.op == 2:
			return msgs, protocol.ClosePolicy // text only
		case fr.length > uint64(protocol.MaxClientFrame-len(msg)):
			return msgs, protocol.CloseTooBig
		}
		if uint64(len(fr.payload)) < fr.length {
			return msgs, 0 // the stream ends inside this frame
		}
		switch fr.op {
		case 8:
			p := fr.payload
			switch {
			case len(p) == 0:
				return msgs, websocket.CloseNoStatusReceived // answered with an empty close
			case len(p) == 1:
				return msgs, websocket.CloseProtocolError
			}
			code := int(binary.BigEndian.Uint16(p))
			valid := code >= 1000 && code <= 1003 || code >= 1007 && code <= 1011 || code >= 3000 && code <= 4999
			if !valid || !utf8.Valid(p[2:]) {
				return msgs, websocket.CloseProtocolError
			}
			return msgs, code
		case 9, 10:
			continue
		}
		msg, inMessage = append(msg, fr.payload...), !fr.fin
		if inMessage {
			continue
		}
		if !utf8.Valid(msg) {
			return msgs, websocket.CloseInvalidFramePayloadData
		}
		m, err := protocol.Parse(msg)
		if err != nil || !m.Kind.FromClient() {
			return msgs, protocol.ClosePolicy
		}
		msgs, msg = append(msgs, m), nil
	}
	return msgs, 0
}

func describe(frames []fuzzFrame) string {
	var b strings.Builder
	for _, fr := range frames {
		fmt.Fprintf(&b, "[fin=%v op=%d len=%d %q] ", fr.fin, fr.op, fr.length, fr.payload)
	}
	return b.String()
}
