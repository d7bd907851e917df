package hub

import (
	"encoding/binary"
	"errors"
	"io"
	"math"
	"net"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"idleguard/server/protocol"
)

// The read side of a socket. gorilla/websocket does the handshake and every
// write; the hub reads client frames itself, straight off the connection,
// so that an idle socket's reader waits in one shallow call holding no
// buffer: its goroutine keeps the runtime's smallest stack (2 KB, where
// waiting inside gorilla's bufio reader takes 4 KB) and idle sockets share
// a pool of read buffers instead of owning one each. That is most of what
// an idle socket costs (docs/BENCHMARKS.md).
//
// Frames follow RFC 6455 as gorilla reads them: client frames must be
// masked; no extension is negotiated, so RSV bits are an error; control
// frames are short and unfragmented and may come between the fragments of
// a message; the read limit applies to the whole message; text must be
// UTF-8.

// readBufSize is one read's worth of frames; client frames are tiny.
const readBufSize = 4 << 10

var readBufs = sync.Pool{New: func() any { return new([readBufSize]byte) }}

// maxControlPayload is RFC 6455's limit for ping, pong and close.
const maxControlPayload = 125

var errShort = errors.New("hub: incomplete frame")

// readState is what a reader carries from one read to the next; between
// frames of an idle socket, nothing but the callback.
type readState struct {
	pend    []byte // an incomplete frame, until the rest arrives
	msg     []byte // a fragmented text message so far; nil between messages
	skip    int64  // payload bytes still to discard
	refused bool   // we refused the client: discard all but its close frame

	// Raw reads on a TCP connection: the callback and its results live
	// here so that reading allocates nothing.
	rc    syscall.RawConn
	rfn   func(fd uintptr) bool
	rbuf  *[readBufSize]byte
	rn    int
	rerr  error
	plain net.Conn // any other connection (TLS, pipes): read as usual
}

func (c *Conn) initReader() {
	nc := c.ws.NetConn()
	if tc, ok := nc.(*net.TCPConn); ok {
		if rc, err := tc.SyscallConn(); err == nil {
			c.rs.rc, c.rs.rfn = rc, c.rawRead
			return
		}
	}
	c.rs.plain = nc
}

// rawRead is the callback of RawConn.Read: it takes a buffer only once
// there is something to read, so a waiting reader holds none.
func (c *Conn) rawRead(fd uintptr) bool {
	b := readBufs.Get().(*[readBufSize]byte)
	n, err := syscall.Read(int(fd), b[:])
	if err == syscall.EAGAIN || err == syscall.EINTR {
		readBufs.Put(b)
		return false // wait for the poller
	}
	c.rs.rbuf, c.rs.rn, c.rs.rerr = b, n, err
	return true
}

// readSome waits for bytes and returns them in a pooled buffer, which the
// caller gives back to readBufs. It honours the connection's read deadline.
func (c *Conn) readSome() (*[readBufSize]byte, int, error) {
	if c.rs.rc == nil {
		b := readBufs.Get().(*[readBufSize]byte)
		n, err := c.rs.plain.Read(b[:])
		if n == 0 {
			readBufs.Put(b)
			if err == nil {
				err = io.ErrNoProgress
			}
			return nil, 0, err
		}
		return b, n, nil
	}
	if err := c.rs.rc.Read(c.rs.rfn); err != nil {
		return nil, 0, err // closed, or past the read deadline
	}
	b, n, err := c.rs.rbuf, c.rs.rn, c.rs.rerr
	c.rs.rbuf, c.rs.rerr = nil, nil
	if err != nil || n <= 0 {
		readBufs.Put(b)
		if err == nil {
			err = io.EOF
		}
		return nil, 0, err
	}
	return b, n, nil
}

// consume acts on every complete frame in data and keeps the tail of an
// incomplete one. It reports false when the reader must end now.
//
// Every length the peer declares is checked against a limit before it is
// used, without adding it to anything, so no declared length can wrap, and
// a frame over the limit is refused on its header alone and its payload
// discarded as it streams in: pend never holds more than one header and
// MaxClientFrame bytes.
func (c *Conn) consume(data []byte) bool {
	rs := &c.rs
	if rs.pend != nil {
		data = append(rs.pend, data...)
		rs.pend = nil
	}
	for len(data) > 0 {
		if rs.skip > 0 {
			n := min(rs.skip, int64(len(data)))
			rs.skip -= n
			data = data[n:]
			continue
		}
		h, err := parseHeader(data)
		if err == errShort {
			break
		}
		if err != nil {
			// The stream cannot be followed past a bad header: discard it
			// until the peer hangs up or closeGrace ends the reader (rather
			// than close with its bytes unread, a reset that could cut off
			// our close frame).
			c.refuse(&refuseProtocol)
			rs.skip = math.MaxInt64
			continue
		}
		if rs.refused && h.op != websocket.CloseMessage {
			// Our close is on its way: discard everything until the peer's.
			rs.skip, data = h.length, data[h.size:]
			continue
		}
		if r := c.check(h); r != nil {
			c.refuse(r) // once: after that only a close frame gets here
			rs.skip, data = h.length, data[h.size:]
			continue
		}
		if int64(len(data)-h.size) < h.length {
			break // check bounded h.length: the frame fits in pend
		}
		end := h.size + int(h.length)
		payload := data[h.size:end]
		for i := range payload {
			payload[i] ^= h.mask[i&3]
		}
		data = data[end:]
		// A close frame ends the socket, so only it needs no token.
		if h.op != websocket.CloseMessage && !c.allowFrame() {
			c.refuse(&refuseRate)
			continue
		}
		if !c.frame(h, payload) {
			return false
		}
	}
	if len(data) > 0 {
		rs.pend = append(make([]byte, 0, len(data)), data...)
	}
	return true
}

// check applies the rules that a frame's header alone decides, so that a
// frame breaking them is refused before its payload is read. nil: none
// broken.
func (c *Conn) check(h header) *refusal {
	inMessage := c.rs.msg != nil
	switch {
	case h.op >= websocket.CloseMessage:
		if h.op > websocket.PongMessage || !h.fin || h.length > maxControlPayload {
			return &refuseProtocol
		}
		return nil
	case h.op == 0 && !inMessage, h.op != 0 && inMessage, h.op > websocket.BinaryMessage:
		// A continuation of nothing, a new message inside one, or an
		// opcode RFC 6455 reserves.
		return &refuseProtocol
	case h.op == websocket.BinaryMessage:
		return &refuseBinary
	case h.length > protocol.MaxClientFrame-int64(len(c.rs.msg)):
		return &refuseTooBig // the limit is on the whole message
	}
	return nil
}

type header struct {
	fin    bool
	op     int
	length int64
	mask   [4]byte
	size   int // bytes of header
}

// parseHeader reads a client frame's header (errShort if data holds only
// part of it).
func parseHeader(data []byte) (header, error) {
	var h header
	if len(data) < 2 {
		return h, errShort
	}
	b0, b1 := data[0], data[1]
	if b0&0x70 != 0 || b1&0x80 == 0 {
		return h, errProtocol // RSV bits, or an unmasked client frame
	}
	h.fin, h.op = b0&0x80 != 0, int(b0&0x0f)
	h.length, h.size = int64(b1&0x7f), 2
	switch h.length {
	case 126:
		if len(data) < 4 {
			return h, errShort
		}
		h.length, h.size = int64(binary.BigEndian.Uint16(data[2:])), 4
	case 127:
		if len(data) < 10 {
			return h, errShort
		}
		n := binary.BigEndian.Uint64(data[2:])
		if n>>63 != 0 {
			return h, errProtocol
		}
		h.length, h.size = int64(n), 10
	}
	if len(data) < h.size+4 {
		return h, errShort
	}
	copy(h.mask[:], data[h.size:])
	h.size += 4
	return h, nil
}

var errProtocol = errors.New("hub: websocket protocol error")

// frame acts on one frame that passed check. It reports false when the
// reader must end.
func (c *Conn) frame(h header, payload []byte) bool {
	rs := &c.rs
	switch h.op {
	case websocket.PingMessage:
		c.ws.WriteControl(websocket.PongMessage, payload, time.Now().Add(writeWait))
	case websocket.PongMessage:
		// Pongs prove the peer is there; they are never activity.
		if !c.isClosed() {
			c.ws.NetConn().SetReadDeadline(time.Now().Add(pongWait))
		}
	case websocket.CloseMessage:
		return c.peerClosed(payload)
	default: // text, or a continuation of it
		if h.fin && rs.msg == nil {
			c.message(payload)
			break
		}
		if rs.msg == nil {
			// Sized for the whole limit so that it never grows; non-nil
			// marks a message in progress.
			rs.msg = make([]byte, 0, protocol.MaxClientFrame)
		}
		rs.msg = append(rs.msg, payload...)
		if h.fin {
			msg := rs.msg
			rs.msg = nil
			c.message(msg)
		}
	}
	return true
}

// message acts on one whole text message. Messages that arrive after a
// close we started for another reason (Shutdown, SignOut) are still
// handled: the page was active until it read our close, and for an ended
// session the handler refuses activity anyway.
func (c *Conn) message(data []byte) {
	c.hub.frames.Add(1)
	if !utf8.Valid(data) {
		c.refuse(&refuseUTF8)
		return
	}
	m, err := protocol.Parse(data)
	if err != nil || !m.Kind.FromClient() {
		c.refuse(&refuseMalformed)
		return
	}
	c.handler.HandleFrame(c, m)
}

// peerClosed answers the peer's close frame with its code, unless our own
// close is on its way already, and ends the reader. A close no endpoint may
// send (RFC 6455 5.5.1, 7.4) is refused with 1002.
func (c *Conn) peerClosed(payload []byte) bool {
	code := websocket.CloseNoStatusReceived // an empty close is answered with an empty one
	if len(payload) >= 2 {
		code = int(binary.BigEndian.Uint16(payload))
	}
	if len(payload) == 1 || len(payload) >= 2 && (!validCloseCode(code) || !utf8.Valid(payload[2:])) {
		c.refuse(&refuseProtocol)
		return true // and wait, as for any refusal, for the peer to hang up
	}
	c.enqueue(outFrame{data: websocket.FormatCloseMessage(code, ""), close: true})
	return false
}

// validCloseCode reports whether a peer may send code in a close frame:
// the assigned codes an endpoint may send, and those for libraries and
// applications.
func validCloseCode(code int) bool {
	return code >= 1000 && code <= 1003 || code >= 1007 && code <= 1011 || code >= 3000 && code <= 4999
}

// A refusal is how the hub closes a socket that broke a rule.
type refusal struct {
	code        int
	why, reason string // why for Config.Refused; reason for the close frame
}

var (
	refuseProtocol  = refusal{websocket.CloseProtocolError, "protocol", ""}
	refuseTooBig    = refusal{protocol.CloseTooBig, "too_big", "frame too big"}
	refuseRate      = refusal{protocol.ClosePolicy, "rate", "too many frames"}
	refuseBinary    = refusal{protocol.ClosePolicy, "malformed", "text frames only"}
	refuseMalformed = refusal{protocol.ClosePolicy, "malformed", "malformed frame"}
	refuseUTF8      = refusal{websocket.CloseInvalidFramePayloadData, "utf8", "invalid utf-8"}
)

// refuse queues a close frame for r and from then on discards what the
// client sends until its close frame, once; it tells Config.Refused when
// r's close is the one that goes out (not when ours was queued already).
func (c *Conn) refuse(r *refusal) {
	if c.rs.refused {
		return
	}
	c.rs.refused, c.rs.msg = true, nil
	queued := c.enqueue(outFrame{data: websocket.FormatCloseMessage(r.code, r.reason), close: true})
	if queued && c.hub.cfg.Refused != nil {
		c.hub.cfg.Refused(c.sid, r.why)
	}
}

// testHookRead, when tests set it (before any socket opens), sees the
// reader's state after each read.
var testHookRead func(*readState)
