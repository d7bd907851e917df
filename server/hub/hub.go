// Package hub holds the open WebSockets of every session on this node: one
// reader goroutine per socket (it reads frames itself, read.go), writes
// queued and flushed by a writer that exists only while there is something
// to write, ping/pong liveness, and fan-out of frames to all the tabs of a
// session.
package hub

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"idleguard/server/protocol"
)

// Timing and size limits for every socket.
const (
	// writeWait bounds one write; a client that cannot take a frame in this
	// time is dropped rather than allowed to hold anything up.
	writeWait = 5 * time.Second
	// pongWait is how long a silent peer is kept; pings keep it shorter.
	pongWait = 60 * time.Second
	// pingPeriod must be less than pongWait.
	pingPeriod = pongWait * 9 / 10
	// pingTick is how often the pinger pings the sockets of one slot of
	// its wheel (pingPeriod/pingTick slots): a few at a time, so that a
	// burst of sockets opened together is not pinged all at once.
	pingTick = 100 * time.Millisecond
	// closeGrace is how long to wait for the peer's close frame after ours.
	closeGrace = time.Second
	// maxQueue frames waiting for a slow client before it is dropped.
	maxQueue = 32
	// Per-socket frame rate, every frame counted (pings, pongs and
	// fragments too): a token bucket of frameBurst frames refilled at
	// frameRate a second. The module (wasm/guard.go) sends at most one
	// activity frame per tick, and its ticks are at least TickMs = 250 ms
	// apart, so at most 4 a second; besides those only a stay, a sync or a
	// sign-out on the user's click or tab switch, a pong per pingPeriod, and
	// on reconnect at most a stay, a sync and an activity frame. The burst is
	// for a stalled network that delivers at once what the page sent while it
	// lasted: a stall the socket survives is shorter than pongWait (60 s), at
	// most 240 activity frames; 256 leaves room for the user's own clicks.
	frameRate     = 20
	frameBurst    = 256
	frameInterval = time.Second / frameRate
)

// ErrTooManyTabs is returned by Attach when a session has MaxPerSession
// sockets open already.
var ErrTooManyTabs = errors.New("hub: too many open sockets for this session")

// ErrClosed is returned by Attach after Shutdown has begun.
var ErrClosed = errors.New("hub: shutting down")

// Socket is one open socket as a FrameHandler sees it (*Conn).
type Socket interface {
	SessionID() string
	// Send queues m to this socket only; it never blocks.
	Send(m protocol.Message)
	// Close sends a close frame with code and reason and ends the socket.
	Close(code int, reason string)
}

// FrameHandler acts on the frames a client sends. It is called from the
// socket's reader goroutine, one frame at a time per socket; pings, pongs and
// malformed frames never reach it.
type FrameHandler interface {
	HandleFrame(c Socket, m protocol.Message)
}

// Config sizes the hub.
type Config struct {
	// MaxPerSession caps the sockets (tabs, devices) of one session.
	MaxPerSession int
	// Refused, if not nil, is told when the hub closes a socket of session
	// sid for breaking the rules, at most once a socket; why is "too_big"
	// (1009), "rate" (1008, too many frames), "malformed" (1008, a frame
	// that is not a client message, or not text), "protocol" (1002) or
	// "utf8" (1007). It is called from the socket's reader, holding no lock.
	Refused func(sid, why string)
}

// Hub is the set of open sockets, by session.
type Hub struct {
	log *slog.Logger
	cfg Config

	mu       sync.Mutex
	sessions map[string][]*Conn
	count    int
	closing  bool
	wg       sync.WaitGroup // one per reader goroutine
	// One per writer goroutine. No writer starts once every reader has
	// ended (each reader's teardown closes its socket to writes), so
	// Shutdown can wait for them after the readers.
	writers sync.WaitGroup

	// One pinger for every socket, started with the first: a timer per
	// socket would cost each idle socket some 200 bytes more. Each socket
	// has a slot on the wheel; the pinger visits one slot per pingTick.
	wheel   [][]*Conn
	slot    int
	pinging bool
	stop    chan struct{}

	frames    atomic.Uint64 // client frames read, for load measurement
	lastWrite atomic.Int64  // Unix ns of the last text frame written
}

// New returns an empty hub.
func New(log *slog.Logger, cfg Config) *Hub {
	if cfg.MaxPerSession <= 0 {
		cfg.MaxPerSession = 16
	}
	return &Hub{log: log, cfg: cfg, sessions: make(map[string][]*Conn),
		wheel: make([][]*Conn, pingPeriod/pingTick), stop: make(chan struct{})}
}

// Upgrader returns a websocket.Upgrader sized for many idle sockets: the
// smallest read buffer gorilla allows (the hub reads frames itself, see
// read.go, so it is never used) and pooled write buffers. checkOrigin is
// the allowlist.
func Upgrader(checkOrigin func(r *http.Request) bool) *websocket.Upgrader {
	return &websocket.Upgrader{
		ReadBufferSize:   1,
		WriteBufferPool:  writeBuffers,
		CheckOrigin:      checkOrigin,
		HandshakeTimeout: 10 * time.Second,
	}
}

var writeBuffers = &sync.Pool{} // gorilla fills it; shared by every socket

// Room reports whether sid may open another socket; Attach checks again.
func (h *Hub) Room(sid string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.closing && len(h.sessions[sid]) < h.cfg.MaxPerSession
}

// Attach takes over an upgraded socket for session sid and starts its
// reader, and returns the socket as its handler sees it; the caller should
// return from its HTTP handler so net/http frees what it held. On error
// the socket is closed.
func (h *Hub) Attach(ws *websocket.Conn, sid string, handler FrameHandler) (Socket, error) {
	c := newConn(h, ws, sid, handler)
	h.mu.Lock()
	switch {
	case h.closing:
		h.mu.Unlock()
		c.closeNow(protocol.CloseGoingAway, "server shutting down")
		return nil, ErrClosed
	case len(h.sessions[sid]) >= h.cfg.MaxPerSession:
		h.mu.Unlock()
		c.closeNow(protocol.ClosePolicy, "too many tabs")
		return nil, ErrTooManyTabs
	}
	h.sessions[sid] = append(h.sessions[sid], c)
	h.count++
	h.wg.Add(1)
	// The slot just visited comes round again in pingPeriod.
	prev := (h.slot + len(h.wheel) - 1) % len(h.wheel)
	c.slot, c.slotIdx = int32(prev), int32(len(h.wheel[prev]))
	h.wheel[prev] = append(h.wheel[prev], c)
	if !h.pinging {
		h.pinging = true
		go h.pinger()
	}
	h.mu.Unlock()
	go c.readLoop()
	return c, nil
}

// pinger pings each socket every pingPeriod until Shutdown. Pongs, read by
// the socket's reader, renew its read deadline; a peer that stops
// answering is dropped when the deadline passes.
func (h *Hub) pinger() {
	t := time.NewTicker(pingTick)
	defer t.Stop()
	var due []*Conn
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		due = h.pingSlot(due)
	}
}

// pingSlot pings the sockets of the wheel's next slot; due is scratch.
func (h *Hub) pingSlot(due []*Conn) []*Conn {
	h.mu.Lock()
	slot := h.wheel[h.slot]
	due = append(due, slot...)
	if cap(slot) > 64 && len(slot) < cap(slot)/4 {
		h.wheel[h.slot] = append([]*Conn(nil), slot...) // let a burst's array go
	}
	h.slot = (h.slot + 1) % len(h.wheel)
	h.mu.Unlock()
	for i, c := range due {
		c.enqueue(outFrame{ping: true})
		due[i] = nil
	}
	return due[:0]
}

// unwheel takes c off the pinger's wheel, once. Called with h.mu held.
func (h *Hub) unwheel(c *Conn) {
	if c.slot < 0 {
		return
	}
	s := h.wheel[c.slot]
	last := len(s) - 1
	s[c.slotIdx] = s[last]
	s[c.slotIdx].slotIdx = c.slotIdx
	s[last] = nil
	h.wheel[c.slot] = s[:last]
	c.slot = -1
}

// Count is the number of open sockets.
func (h *Hub) Count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.count
}

// Frames is the number of client frames read from every socket since the
// hub was made (a load test's measure of what the server absorbed).
func (h *Hub) Frames() uint64 { return h.frames.Load() }

// LastWrite is when, in Unix ns, the hub last wrote a text frame to a
// socket (a load test's measure of when a fan-out left the server); 0
// before any.
func (h *Hub) LastWrite() int64 { return h.lastWrite.Load() }

// Connected reports how many sockets session sid has open.
func (h *Hub) Connected(sid string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sessions[sid])
}

// Send queues m to every socket of session sid.
func (h *Hub) Send(sid string, m protocol.Message) {
	h.mu.Lock()
	conns := h.sessions[sid]
	if len(conns) == 0 {
		h.mu.Unlock()
		return
	}
	frame := encode(m)
	for _, c := range conns {
		c.enqueue(outFrame{data: frame})
	}
	h.mu.Unlock()
}

// SignOut sends every socket of session sid a logout frame with reason,
// then a close frame with the reason's close code, and forgets them.
func (h *Hub) SignOut(sid string, reason protocol.Reason, expirationS int64) {
	h.mu.Lock()
	conns := h.sessions[sid]
	delete(h.sessions, sid)
	h.count -= len(conns)
	for _, c := range conns {
		h.unwheel(c)
	}
	h.mu.Unlock()
	if len(conns) == 0 {
		return
	}
	frame := encode(protocol.Message{Kind: protocol.Logout, Reason: reason, ExpirationS: expirationS})
	closing := websocket.FormatCloseMessage(reason.CloseCode(), reason.String())
	for _, c := range conns {
		c.detached.Store(true)
		c.enqueue(outFrame{data: frame})
		c.enqueue(outFrame{data: closing, close: true})
	}
}

// Shutdown closes every socket as "going away" (not a sign-out: pages
// reconnect to the next server), lets queued frames go out, and waits for
// every reader to end or ctx to be done, when it closes what is left.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	if !h.closing {
		close(h.stop)
	}
	h.closing = true
	var all []*Conn
	for _, conns := range h.sessions {
		all = append(all, conns...)
	}
	h.mu.Unlock()
	closing := websocket.FormatCloseMessage(protocol.CloseGoingAway, "server restarting")
	for _, c := range all {
		c.enqueue(outFrame{data: closing, close: true})
	}
	done := make(chan struct{})
	go func() { h.wg.Wait(); h.writers.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		for _, c := range all {
			c.ws.Close()
		}
		<-done
		return ctx.Err()
	}
}

// remove forgets c, once, when its reader ends.
func (h *Hub) remove(c *Conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.unwheel(c)
	if c.detached.Load() {
		return // SignOut already took it out
	}
	conns := h.sessions[c.sid]
	for i, x := range conns {
		if x == c {
			conns[i] = conns[len(conns)-1]
			conns[len(conns)-1] = nil
			conns = conns[:len(conns)-1]
			h.count--
			break
		}
	}
	if len(conns) == 0 {
		delete(h.sessions, c.sid)
	} else {
		h.sessions[c.sid] = conns
	}
}
