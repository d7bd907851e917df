package hub

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"idleguard/server/protocol"
)

var _ Socket = (*Conn)(nil)

// Conn is one open socket: one tab of one session.
type Conn struct {
	hub     *Hub
	ws      *websocket.Conn
	sid     string
	handler FrameHandler

	// detached: SignOut has taken the socket out of the hub's map.
	detached atomic.Bool

	mu      sync.Mutex
	queue   []outFrame
	writing bool // a writer goroutine owns ws's write side
	closed  bool // a close frame is queued or sent: nothing more goes out
	hangup  bool // the reader has ended: the writer closes ws once the queue is out

	// slot and slotIdx place the socket on the pinger's wheel (slot -1:
	// off it); guarded by the hub's lock.
	slot, slotIdx int32

	// Reader-only state.
	tat int64 // the frame rate's token bucket, see allowFrame
	rs  readState
}

type outFrame struct {
	data  []byte
	close bool // data is a close frame's payload
	ping  bool
}

func newConn(h *Hub, ws *websocket.Conn, sid string, handler FrameHandler) *Conn {
	return &Conn{hub: h, ws: ws, sid: sid, handler: handler, slot: -1}
}

// SessionID is the session the socket belongs to.
func (c *Conn) SessionID() string { return c.sid }

// Send queues m to this socket only.
func (c *Conn) Send(m protocol.Message) {
	c.enqueue(outFrame{data: encode(m)})
}

// encode is m as a text frame's payload, with room for its token so that
// it is usually one allocation.
func encode(m protocol.Message) []byte {
	return protocol.Append(make([]byte, 0, 64+len(m.Token)), m)
}

// Close sends a close frame with code and reason and ends the socket.
func (c *Conn) Close(code int, reason string) {
	c.enqueue(outFrame{data: websocket.FormatCloseMessage(code, reason), close: true})
}

// enqueue adds f to the queue and starts a writer if none is running, and
// reports whether it did. It never blocks: a client whose queue is full is
// too slow and is dropped.
func (c *Conn) enqueue(f outFrame) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	if len(c.queue) >= maxQueue {
		c.closed = true
		c.queue = nil
		c.ws.NetConn().Close() // the reader sees the error and cleans up
		return false
	}
	if f.close {
		c.closed = true
	}
	c.queue = append(c.queue, f)
	if !c.writing {
		c.writing = true
		c.hub.writers.Add(1)
		go c.writeLoop()
	}
	return true
}

// writeLoop writes queued frames until the queue is empty, then exits, so
// an idle socket costs no writer goroutine.
func (c *Conn) writeLoop() {
	defer c.hub.writers.Done()
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.writing = false
			if c.queue != nil && cap(c.queue) > 4 {
				c.queue = nil // let a burst's backing array go
			}
			hangup := c.hangup
			c.mu.Unlock()
			if hangup {
				c.ws.Close()
			}
			return
		}
		f := c.queue[0]
		c.queue[0] = outFrame{}
		c.queue = c.queue[1:]
		c.mu.Unlock()

		deadline := time.Now().Add(writeWait)
		var err error
		switch {
		case f.close:
			err = c.ws.WriteControl(websocket.CloseMessage, f.data, deadline)
			// Wait briefly for the peer's close frame, then the reader ends.
			c.ws.SetReadDeadline(time.Now().Add(closeGrace))
		case f.ping:
			err = c.ws.WriteControl(websocket.PingMessage, nil, deadline)
		default:
			c.ws.SetWriteDeadline(deadline)
			if err = c.ws.WriteMessage(websocket.TextMessage, f.data); err == nil {
				c.hub.lastWrite.Store(time.Now().UnixNano())
			}
		}
		if err != nil {
			c.mu.Lock()
			c.closed, c.queue, c.writing = true, nil, false
			c.mu.Unlock()
			c.ws.NetConn().Close()
			return
		}
	}
}

// readLoop is the socket's one reader (read.go). It owns the read side
// and, when it ends, the socket's teardown.
func (c *Conn) readLoop() {
	defer c.hub.wg.Done()
	defer c.teardown()
	c.initReader()
	c.ws.NetConn().SetReadDeadline(time.Now().Add(pongWait))
	for {
		b, n, err := c.readSome()
		if err != nil {
			return
		}
		ok := c.consume(b[:n])
		readBufs.Put(b)
		if testHookRead != nil {
			testHookRead(&c.rs)
		}
		if !ok {
			return
		}
	}
}

// allowFrame takes a token from the socket's frame bucket, if there is one.
// The bucket is one integer (the generic cell rate algorithm): tat is when
// it will be full again, on the process's monotonic clock; each frame moves
// tat on by one interval, and a frame that would put tat more than
// frameBurst intervals ahead of now finds the bucket empty. A new socket's
// zero tat is a full bucket.
func (c *Conn) allowFrame() bool {
	now := int64(time.Since(monotonicStart))
	tat := max(c.tat, now)
	if tat-now > (frameBurst-1)*int64(frameInterval) {
		return false
	}
	c.tat = tat + int64(frameInterval)
	return true
}

// monotonicStart is the zero of allowFrame's clock: time.Since reads the
// monotonic clock, which no change of the wall clock moves.
var monotonicStart = time.Now()

func (c *Conn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// teardown ends the socket when its reader ends. A writer still at work may
// be sending a close frame the reader queued just before it ended (a
// refusal, or the answer to the peer's close): it closes ws itself once its
// queue is out, so that the close frame is never cut off.
func (c *Conn) teardown() {
	c.mu.Lock()
	c.closed = true
	writing := c.writing
	c.hangup = writing
	c.mu.Unlock()
	c.hub.remove(c)
	if !writing {
		c.ws.Close()
	}
}

// closeNow closes a socket that never joined the hub.
func (c *Conn) closeNow(code int, reason string) {
	c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(writeWait))
	c.ws.Close()
}
