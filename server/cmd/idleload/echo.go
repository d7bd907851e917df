package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"idleguard/server/internal/debugstats"
	"idleguard/server/protocol"
)

// The baseline: a plain gorilla/websocket echo server written the way the
// library's examples/chat is (readPump and writePump goroutines per
// connection, the example's Upgrader buffers of 1024 bytes, a 256-slot send
// channel, ping/pong with pongWait 60 s, a hub goroutine that owns the set of
// clients and broadcasts). Two changes make it an echo and a yardstick for
// idleguard's other figures:
//   - a frame read goes straight back into its own connection's send channel
//     (not through the hub goroutine, which would make the baseline an easy
//     target);
//   - POST /broadcast sends its body to every connection (the chat hub's
//     broadcast, to compare with a settings change), and POST /schedule arms,
//     on each connection that asked for one at its handshake, a
//     time.AfterFunc that sends "logout reason=idle" and closes with 4001 (to
//     compare with idleguard's sign-outs).
const (
	echoWriteWait      = 10 * time.Second
	echoPongWait       = 60 * time.Second
	echoPingPeriod     = echoPongWait * 9 / 10
	echoMaxMessageSize = 512
)

var echoUpgrader = websocket.Upgrader{
	ReadBufferSize:  1024,
	WriteBufferSize: 1024,
}

type echoHub struct {
	clients    map[*echoClient]bool
	broadcast  chan []byte
	register   chan *echoClient
	unregister chan *echoClient

	sockets   atomic.Int64
	frames    atomic.Uint64
	lastWrite atomic.Int64 // Unix ns of the last text frame written

	lateMu sync.Mutex
	late   map[*echoClient]bool
}

type echoClient struct {
	hub  *echoHub
	conn *websocket.Conn
	send chan []byte

	lateOffset int64 // ms after the scheduled second; -1 for none

	mu        sync.Mutex
	closed    bool // send is closed
	closeCode int
}

func newEchoHub() *echoHub {
	return &echoHub{
		broadcast:  make(chan []byte),
		register:   make(chan *echoClient),
		unregister: make(chan *echoClient),
		clients:    make(map[*echoClient]bool),
		late:       make(map[*echoClient]bool),
	}
}

func (h *echoHub) run() {
	for {
		select {
		case c := <-h.register:
			h.clients[c] = true
			h.sockets.Add(1)
		case c := <-h.unregister:
			if _, ok := h.clients[c]; ok {
				delete(h.clients, c)
				h.sockets.Add(-1)
				c.closeSend()
			}
		case m := <-h.broadcast:
			for c := range h.clients {
				if !c.trySend(m) {
					delete(h.clients, c)
					h.sockets.Add(-1)
					c.closeSend()
				}
			}
		}
	}
}

// trySend queues m unless the channel is closed; false when it is full.
func (c *echoClient) trySend(m []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return true
	}
	select {
	case c.send <- m:
		return true
	default:
		return false
	}
}

func (c *echoClient) closeSend() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		close(c.send)
	}
}

func (c *echoClient) readPump() {
	defer func() {
		c.hub.unregister <- c
		c.conn.Close()
		c.hub.lateMu.Lock()
		delete(c.hub.late, c)
		c.hub.lateMu.Unlock()
	}()
	c.conn.SetReadLimit(echoMaxMessageSize)
	c.conn.SetReadDeadline(time.Now().Add(echoPongWait))
	c.conn.SetPongHandler(func(string) error { c.conn.SetReadDeadline(time.Now().Add(echoPongWait)); return nil })
	for {
		_, message, err := c.conn.ReadMessage()
		if err != nil {
			break
		}
		c.hub.frames.Add(1)
		if !c.trySend(message) {
			break // too slow: dropped, as the chat hub drops
		}
	}
}

func (c *echoClient) writePump() {
	ticker := time.NewTicker(echoPingPeriod)
	defer func() {
		ticker.Stop()
		c.conn.Close()
	}()
	for {
		select {
		case message, ok := <-c.send:
			c.conn.SetWriteDeadline(time.Now().Add(echoWriteWait))
			if !ok {
				c.mu.Lock()
				code := c.closeCode
				c.mu.Unlock()
				var payload []byte
				if code != 0 {
					payload = websocket.FormatCloseMessage(code, protocol.ReasonIdle.String())
				}
				c.conn.WriteMessage(websocket.CloseMessage, payload)
				return
			}
			w, err := c.conn.NextWriter(websocket.TextMessage)
			if err != nil {
				return
			}
			w.Write(message)
			n := len(c.send)
			for i := 0; i < n; i++ {
				w.Write([]byte{'\n'})
				w.Write(<-c.send)
			}
			if err := w.Close(); err != nil {
				return
			}
			c.hub.lastWrite.Store(time.Now().UnixNano())
		case <-ticker.C:
			c.conn.SetWriteDeadline(time.Now().Add(echoWriteWait))
			if err := c.conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				return
			}
		}
	}
}

// echoLogout is idleguard's idle sign-out frame, "logout reason=idle".
var echoLogout = protocol.Append(nil, protocol.Message{Kind: protocol.Logout, Reason: protocol.ReasonIdle})

// signOut is the baseline's sign-out: the frame, then idleguard's close code
// for it (4001).
func (c *echoClient) signOut() {
	c.trySend(echoLogout)
	c.mu.Lock()
	c.closeCode = protocol.ReasonIdle.CloseCode()
	c.mu.Unlock()
	c.hub.unregister <- c
}

func (h *echoHub) serveWs(w http.ResponseWriter, r *http.Request) {
	conn, err := echoUpgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &echoClient{hub: h, conn: conn, send: make(chan []byte, 256), lateOffset: -1}
	if v := r.Header.Get("X-Late-Offset"); v != "" {
		if ms, err := strconv.ParseInt(v, 10, 64); err == nil && ms >= 0 {
			c.lateOffset = ms
			h.lateMu.Lock()
			h.late[c] = true
			h.lateMu.Unlock()
		}
	}
	h.register <- c
	go c.writePump()
	go c.readPump()
}

// schedule arms every late connection's sign-out at atMs (Unix ms) plus its
// offset.
func (h *echoHub) schedule(atMs int64) int {
	h.lateMu.Lock()
	defer h.lateMu.Unlock()
	now := time.Now()
	for c := range h.late {
		at := time.UnixMilli(atMs + c.lateOffset)
		time.AfterFunc(at.Sub(now), c.signOut)
	}
	return len(h.late)
}

// runEcho is `idleload echo`: the baseline server, until SIGTERM.
func runEcho(args []string) error {
	fs := flag.NewFlagSet("idleload echo", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "address for the sockets")
	debugAddr := fs.String("debug-addr", "", "address for /debug/stats and pprof")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	h := newEchoHub()
	go h.run()

	mux := http.NewServeMux()
	mux.HandleFunc("/ws", h.serveWs)
	mux.HandleFunc("POST /broadcast", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 4096))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h.broadcast <- body
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /schedule", func(w http.ResponseWriter, r *http.Request) {
		at, err := strconv.ParseInt(r.URL.Query().Get("at"), 10, 64)
		if err != nil {
			http.Error(w, "at: Unix milliseconds", http.StatusBadRequest)
			return
		}
		fmt.Fprintln(w, h.schedule(at))
	})
	dmux := debugstats.Mux(func() debugstats.Counters {
		return debugstats.Counters{Sockets: int(h.sockets.Load()), Frames: h.frames.Load(), LastWrite: h.lastWrite.Load()}
	})

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	dln, err := net.Listen("tcp", *debugAddr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	dsrv := &http.Server{Handler: dmux, ReadHeaderTimeout: 10 * time.Second}
	go dsrv.Serve(dln)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err = <-served:
	case <-ctx.Done():
	}
	srv.Close()
	dsrv.Close()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
