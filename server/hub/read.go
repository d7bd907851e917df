package hub

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

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
// a message; the read limit applies to the whole message.

// readBufSize is one read's worth of frames; client frames are tiny.
const readBufSize = 4 << 10

var readBufs = sync.Pool{New: func() any { return new([readBufSize]byte) }}

// maxControlPayload is RFC 6455's limit for ping, pong and close.
const maxControlPayload = 125

var errShort = errors.New("hub: incomplete frame")

// readState is what a reader carries from one read to the next; between
// frames of an idle socket, nothing but the callback.
type readState struct {
	pend  []byte // an incomplete frame, until the rest arrives
	msg   []byte // the payload of a fragmented message so far
	msgOp int    // its opcode; 0 when no message is in progress
	skip  int64  // payload bytes still to discard (a message over the limit)

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
			rs.pend = append(make([]byte, 0, len(data)), data...)
			return true
		}
		if err != nil {
			return c.fail(websocket.CloseProtocolError)
		}
		if h.op >= websocket.CloseMessage {
			if !h.fin || h.length > maxControlPayload {
				return c.fail(websocket.CloseProtocolError)
			}
		} else if int64(len(rs.msg))+h.length > protocol.MaxClientFrame {
			// Over the read limit: say so, skip the payload and keep
			// reading until the peer answers the close.
			data = data[h.size:]
			rs.skip, rs.msg, rs.msgOp = h.length, nil, 0
			c.Close(protocol.CloseTooBig, "frame too big")
			continue
		}
		if int64(len(data)-h.size) < h.length {
			rs.pend = append(make([]byte, 0, len(data)), data...)
			return true
		}
		end := h.size + int(h.length)
		payload := data[h.size:end]
		for i := range payload {
			payload[i] ^= h.mask[i&3]
		}
		data = data[end:]
		if !c.frame(h.fin, h.op, payload) {
			return false
		}
	}
	return true
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

// frame acts on one frame. It reports false when the reader must end.
func (c *Conn) frame(fin bool, op int, payload []byte) bool {
	rs := &c.rs
	switch op {
	case websocket.PingMessage:
		c.ws.WriteControl(websocket.PongMessage, payload, time.Now().Add(writeWait))
	case websocket.PongMessage:
		// Pongs prove the peer is there; they are never activity.
		if !c.isClosed() {
			c.ws.NetConn().SetReadDeadline(time.Now().Add(pongWait))
		}
	case websocket.CloseMessage:
		// Answer a close we did not start with its code, as gorilla does.
		reply := []byte{}
		if len(payload) >= 2 {
			reply = websocket.FormatCloseMessage(int(binary.BigEndian.Uint16(payload)), "")
		}
		c.mu.Lock()
		ours := c.closed
		c.closed = true
		c.mu.Unlock()
		if !ours {
			c.ws.WriteControl(websocket.CloseMessage, reply, time.Now().Add(writeWait))
		}
		return false
	case websocket.TextMessage, websocket.BinaryMessage:
		if rs.msgOp != 0 {
			return c.fail(websocket.CloseProtocolError) // a new message inside one
		}
		if fin {
			c.message(op, payload)
		} else {
			rs.msg, rs.msgOp = append([]byte(nil), payload...), op
		}
	case 0: // continuation
		if rs.msgOp == 0 {
			return c.fail(websocket.CloseProtocolError)
		}
		rs.msg = append(rs.msg, payload...)
		if fin {
			op, msg := rs.msgOp, rs.msg
			rs.msg, rs.msgOp = nil, 0
			c.message(op, msg)
		}
	default:
		return c.fail(websocket.CloseProtocolError)
	}
	return true
}

// message acts on one whole client message: the rules the hub has always
// applied, in the same order.
func (c *Conn) message(op int, data []byte) {
	if op != websocket.TextMessage {
		c.Close(protocol.ClosePolicy, "text frames only")
		return
	}
	c.hub.frames.Add(1)
	if !c.allowFrame() {
		c.Close(protocol.ClosePolicy, "too many frames")
		return
	}
	m, err := protocol.Parse(data)
	if err != nil || !m.Kind.FromClient() {
		c.Close(protocol.ClosePolicy, "malformed frame")
		return
	}
	if c.isClosed() {
		return // draining until the peer answers our close
	}
	c.handler.HandleFrame(c, m)
}

// fail ends a socket that broke the framing rules: a close frame now, unless
// one is already on its way, and the reader ends.
func (c *Conn) fail(code int) bool {
	c.mu.Lock()
	ours := c.closed
	c.closed, c.queue = true, nil
	c.mu.Unlock()
	if !ours {
		c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""), time.Now().Add(writeWait))
	}
	return false
}
