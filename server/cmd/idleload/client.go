package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"idleguard/server/protocol"
)

// `idleload client -plan FILE` holds a share of the sockets. It reads
// commands from stdin, one JSON object a line, and answers each on stdout
// the same way, so the orchestrator drives every client through the same
// phases. Times it reports are Unix nanoseconds (the wall clock, which
// every process on the machine shares); durations it measures itself are
// on its monotonic clock.

// plan is what one client process is given.
type plan struct {
	Client  int          `json:"client"`
	IGURL   string       `json:"ig_url"`
	EchoURL string       `json:"echo_url"`
	Sockets []planSocket `json:"sockets"`
}

type planSocket struct {
	I     int    `json:"i"`
	Srv   string `json:"srv"` // "ig" or "echo"
	Token string `json:"tok,omitempty"`
	// Late is the socket's deadline offset in ms within the sign-out
	// second, or -1 for a socket that is not in the sign-out group.
	Late int64 `json:"late"`
	// Host, when set, is the Host (and Origin) the socket is opened with:
	// the domain it is for, as a browser on dNNNN.localhost would send.
	Host string `json:"host,omitempty"`
	// URL, when set, is the node the socket opens on (the cluster table:
	// a session's two tabs on two nodes), instead of the plan's IGURL.
	URL string `json:"url,omitempty"`
}

type command struct {
	Cmd  string  `json:"cmd"`
	Srv  string  `json:"srv,omitempty"`
	Rate float64 `json:"rate,omitempty"` // frames a second per socket
	Ms   int64   `json:"ms,omitempty"`
	// SkipLate: connect only the sockets outside the sign-out group (their
	// sessions have ended).
	SkipLate bool `json:"skip_late,omitempty"`
	// Spread: "send" writes to a slice of the sockets every spreadTick,
	// each socket once per 1/Rate, instead of to all of them at once each
	// 1/Rate (the cluster table's rates are below one frame a second, where
	// rounds would come in bursts seconds apart).
	Spread bool `json:"spread,omitempty"`
}

// socketReport is one socket's story, for the orchestrator to judge.
type socketReport struct {
	I       int    `json:"i"`
	Srv     string `json:"srv"`
	Fanout  int64  `json:"fanout,omitempty"`   // Unix ns: the changed setting arrived
	Logout  int64  `json:"logout,omitempty"`   // Unix ns: the logout frame arrived
	Reason  string `json:"reason,omitempty"`   // its reason
	RemLate int64  `json:"rem_late,omitempty"` // µs: logout minus (last remaining= frame + remaining), monotonic
	HasRem  bool   `json:"has_rem,omitempty"`
	Code    int    `json:"code,omitempty"` // close code received
	Err     string `json:"err,omitempty"`
	Frames  int64  `json:"frames,omitempty"`
	// For "touched": the first state frame since the previous call, when
	// it arrived (Unix ns) and the Expiration Time it carried.
	StateAt  int64 `json:"state_at,omitempty"`
	StateExp int64 `json:"state_exp,omitempty"`
	// OpenAt and EndAt are when the socket opened and when its reader
	// ended (Unix ns), for sockets that ended.
	OpenAt int64 `json:"open_at,omitempty"`
	EndAt  int64 `json:"end_at,omitempty"`
}

type reply struct {
	Cmd     string         `json:"cmd"`
	Client  int            `json:"client"`
	OK      map[string]int `json:"ok,omitempty"`
	Failed  int            `json:"failed,omitempty"`
	Err     string         `json:"err,omitempty"`
	Ms      int64          `json:"ms,omitempty"`
	Sent    int64          `json:"sent,omitempty"`
	Errors  int64          `json:"errors,omitempty"`
	Dropped int64          `json:"dropped,omitempty"`
	Alive   int64          `json:"alive,omitempty"` // "send": the sockets it wrote to
	Sockets []socketReport `json:"sockets,omitempty"`
}

type csock struct {
	ps   planSocket
	ws   *websocket.Conn
	dead atomic.Bool
	done chan struct{}

	mu       sync.Mutex
	firstExp int64
	fanout   int64
	remAt    time.Time
	rem      int64
	logout   int64
	reason   string
	remLate  int64
	hasRem   bool
	code     int
	err      string
	frames   int64
	// What "touched" reports: the frame count at its previous call, and
	// the first state frame since then.
	mark     int64
	stateAt  int64
	stateExp int64
	openAt   int64
	endAt    int64
}

// readBufs hold one frame while a reader looks at it; an echo batch of
// the whole 256-slot channel fits.
var readBufs = sync.Pool{New: func() any { b := make([]byte, 8<<10); return &b }}

func (s *csock) readLoop() {
	defer close(s.done)
	defer s.dead.Store(true)
	ig := s.ps.Srv == "ig"
	for {
		_, r, err := s.ws.NextReader()
		now := time.Now()
		if err != nil {
			s.mu.Lock()
			s.endAt = now.UnixNano()
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				s.code = ce.Code
			} else if s.code == 0 && s.err == "" {
				s.err = err.Error()
			}
			s.mu.Unlock()
			return
		}
		bp := readBufs.Get().(*[]byte)
		n, err := io.ReadFull(r, *bp)
		if err == nil {
			io.Copy(io.Discard, r) // longer than the buffer: its head is enough
		}
		data := (*bp)[:n]
		s.mu.Lock()
		s.frames++
		if ig {
			s.igFrame(data, now)
		} else {
			s.echoFrame(data, now)
		}
		s.mu.Unlock()
		readBufs.Put(bp)
	}
}

func (s *csock) igFrame(data []byte, now time.Time) {
	m, err := protocol.Parse(data)
	if err != nil {
		return
	}
	switch m.Kind {
	case protocol.State:
		if s.stateAt == 0 {
			s.stateAt, s.stateExp = now.UnixNano(), m.ExpirationS
		}
		if s.firstExp == 0 {
			s.firstExp = m.ExpirationS
		} else if m.ExpirationS != s.firstExp && s.fanout == 0 {
			s.fanout = now.UnixNano()
		}
		s.remAt, s.rem = now, m.RemainingMs
	case protocol.Warning:
		s.remAt, s.rem = now, m.RemainingMs
	case protocol.Logout:
		if s.logout == 0 {
			s.logout, s.reason = now.UnixNano(), m.Reason.String()
			if !s.remAt.IsZero() {
				s.hasRem = true
				s.remLate = (now.Sub(s.remAt) - time.Duration(s.rem)*time.Millisecond).Microseconds()
			}
		}
	}
}

func (s *csock) echoFrame(data []byte, now time.Time) {
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		switch {
		case bytes.HasPrefix(line, []byte("state ")) && s.fanout == 0:
			s.fanout = now.UnixNano()
		case bytes.HasPrefix(line, []byte("logout ")) && s.logout == 0:
			s.logout, s.reason = now.UnixNano(), protocol.ReasonIdle.String()
		}
	}
}

type client struct {
	plan    plan
	socks   []*csock
	out     *json.Encoder
	dialers map[string]*websocket.Dialer
}

// The client's own buffers are small: it holds thousands of sockets.
var clientWriteBufs = &sync.Pool{}

func (cl *client) dialer(ip net.IP) *websocket.Dialer {
	key := ip.String()
	if d, ok := cl.dialers[key]; ok {
		return d
	}
	nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 30 * time.Second}
	d := &websocket.Dialer{
		NetDialContext:   nd.DialContext,
		ReadBufferSize:   1024,
		WriteBufferSize:  512,
		WriteBufferPool:  clientWriteBufs,
		HandshakeTimeout: 60 * time.Second,
	}
	cl.dialers[key] = d
	return d
}

// localIP spreads a client's sockets over 64 addresses of its own in
// 127.0.0.0/8, so that no address runs out of ephemeral ports.
func localIP(client, k int) net.IP {
	return net.IPv4(127, byte(1+client/250), byte(1+client%250), byte(1+k%64))
}

func (cl *client) connect(c command) reply {
	start := time.Now()
	rep := reply{Cmd: "connect", Client: cl.plan.Client, OK: map[string]int{}}
	var mu sync.Mutex
	work := make(chan int)
	var wg sync.WaitGroup
	for range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range work {
				s := cl.socks[k]
				u, h := cl.plan.EchoURL, http.Header{}
				if s.ps.Srv == "ig" {
					u = cl.plan.IGURL
					if s.ps.URL != "" {
						u = s.ps.URL
					}
					h.Set("Authorization", "Bearer "+s.ps.Token)
					if s.ps.Host != "" {
						h.Set("Host", s.ps.Host) // gorilla sends it as the request's Host
						h.Set("Origin", "http://"+s.ps.Host)
					}
				} else if s.ps.Late >= 0 {
					h.Set("X-Late-Offset", fmt.Sprint(s.ps.Late))
				}
				mu.Lock()
				d := cl.dialer(localIP(cl.plan.Client, k))
				mu.Unlock()
				ws, resp, err := d.DialContext(context.Background(), u, h)
				if resp != nil && resp.Body != nil {
					resp.Body.Close()
				}
				mu.Lock()
				if err != nil {
					rep.Failed++
					if rep.Err == "" {
						rep.Err = err.Error()
						if resp != nil {
							rep.Err += " (" + resp.Status + ")"
						}
					}
				} else {
					rep.OK[s.ps.Srv]++
				}
				mu.Unlock()
				if err == nil {
					s.ws = ws
					s.mu.Lock()
					s.openAt = time.Now().UnixNano()
					s.mu.Unlock()
					go s.readLoop()
				}
			}
		}()
	}
	for k, s := range cl.socks {
		if c.SkipLate && s.ps.Late >= 0 {
			continue
		}
		s.ws = nil
		s.dead.Store(false)
		s.done = make(chan struct{})
		work <- k
	}
	close(work)
	wg.Wait()
	rep.Ms = time.Since(start).Milliseconds()
	return rep
}

var activityFrame = func() *websocket.PreparedMessage {
	frame := protocol.Append(nil, protocol.Message{Kind: protocol.Activity}) // "activity ago=0"
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, frame)
	if err != nil {
		panic(err)
	}
	return pm
}()

// send writes "activity ago=0" to every socket of srv outside the sign-out
// group, rate times a second each, for ms. Rounds that fall behind are
// dropped rather than caught up, so no socket ever sends faster than rate.
func (cl *client) send(c command) reply {
	var socks []*csock
	for _, s := range cl.socks {
		if s.ps.Srv == c.Srv && s.ps.Late < 0 && s.ws != nil && !s.dead.Load() {
			socks = append(socks, s)
		}
	}
	interval := time.Duration(float64(time.Second) / c.Rate)
	if c.Spread {
		return cl.spread(c, socks, interval)
	}
	start := time.Now()
	end := start.Add(time.Duration(c.Ms) * time.Millisecond)
	next := start
	var sent, errs int64
	for time.Now().Before(end) {
		for _, s := range socks {
			if s.dead.Load() {
				continue
			}
			if err := s.ws.WritePreparedMessage(activityFrame); err != nil {
				errs++
				s.dead.Store(true)
				continue
			}
			sent++
		}
		next = next.Add(interval)
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		} else if -d > interval {
			next = time.Now()
		}
	}
	elapsed := time.Since(start)
	var dropped int64
	for _, s := range socks {
		if s.dead.Load() {
			dropped++
		}
	}
	return reply{Cmd: "send", Client: cl.plan.Client, Sent: sent, Errors: errs, Dropped: dropped, Ms: elapsed.Milliseconds()}
}

// spreadTick is how often a spread "send" writes its next slice.
const spreadTick = 20 * time.Millisecond

// spread is send with each round spread evenly over its interval: every
// spreadTick the next interval/spreadTick-th of the sockets is written.
// A tick that falls behind is not caught up, so no socket is written more
// often than once an interval.
func (cl *client) spread(c command, socks []*csock, interval time.Duration) reply {
	start := time.Now()
	end := start.Add(time.Duration(c.Ms) * time.Millisecond)
	perTick := float64(len(socks)) * float64(spreadTick) / float64(interval)
	var sent, errs int64
	var owed float64
	k := 0
	next := start
	for time.Now().Before(end) && len(socks) > 0 {
		owed += perTick
		for ; owed >= 1; owed-- {
			s := socks[k]
			k = (k + 1) % len(socks)
			if s.dead.Load() {
				continue
			}
			if err := s.ws.WritePreparedMessage(activityFrame); err != nil {
				errs++
				s.dead.Store(true)
				continue
			}
			sent++
		}
		next = next.Add(spreadTick)
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		} else if -d > spreadTick {
			next = time.Now() // behind: skip what was owed
			owed = 0
		}
	}
	elapsed := time.Since(start)
	var dropped int64
	for _, s := range socks {
		if s.dead.Load() {
			dropped++
		}
	}
	return reply{Cmd: "send", Client: cl.plan.Client, Sent: sent, Errors: errs, Dropped: dropped, Alive: int64(len(socks)), Ms: elapsed.Milliseconds()}
}

func (cl *client) report() reply {
	rep := reply{Cmd: "report", Client: cl.plan.Client}
	for _, s := range cl.socks {
		s.mu.Lock()
		rep.Sockets = append(rep.Sockets, socketReport{
			I: s.ps.I, Srv: s.ps.Srv, Fanout: s.fanout, Logout: s.logout, Reason: s.reason,
			RemLate: s.remLate, HasRem: s.hasRem, Code: s.code, Err: s.err, Frames: s.frames,
			OpenAt: s.openAt, EndAt: s.endAt,
		})
		s.mu.Unlock()
	}
	return rep
}

// touched reports the sockets that received a frame since its previous
// call (or since they connected), with the first state frame among them,
// and starts counting afresh: the orchestrator calls it just before a
// setting change and again once the change's window is over.
func (cl *client) touched() reply {
	rep := reply{Cmd: "touched", Client: cl.plan.Client}
	for _, s := range cl.socks {
		s.mu.Lock()
		if n := s.frames - s.mark; n > 0 {
			rep.Sockets = append(rep.Sockets, socketReport{I: s.ps.I, Srv: s.ps.Srv, Frames: n, StateAt: s.stateAt, StateExp: s.stateExp})
		}
		s.mark, s.stateAt, s.stateExp = s.frames, 0, 0
		s.mu.Unlock()
	}
	return rep
}

// closeAll says goodbye on every socket still open and waits for the
// readers to end (the server answers the close frame).
func (cl *client) closeAll() reply {
	start := time.Now()
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	n := 0
	for _, s := range cl.socks {
		if s.ws == nil {
			continue
		}
		if !s.dead.Load() {
			s.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
			n++
		}
	}
	timeout := time.After(10 * time.Second)
	for _, s := range cl.socks {
		if s.ws == nil {
			continue
		}
		select {
		case <-s.done:
		case <-timeout:
		}
		s.ws.Close()
	}
	return reply{Cmd: "close", Client: cl.plan.Client, Sent: int64(n), Ms: time.Since(start).Milliseconds()}
}

func runClient(args []string) error {
	fs := flag.NewFlagSet("idleload client", flag.ContinueOnError)
	planFile := fs.String("plan", "", "the plan file the orchestrator wrote")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, _, err := ownLimits(); err != nil {
		return err
	}
	b, err := os.ReadFile(*planFile)
	if err != nil {
		return err
	}
	cl := &client{out: json.NewEncoder(os.Stdout), dialers: map[string]*websocket.Dialer{}}
	if err := json.Unmarshal(b, &cl.plan); err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	for _, ps := range cl.plan.Sockets {
		cl.socks = append(cl.socks, &csock{ps: ps})
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var c command
		if err := json.Unmarshal(in.Bytes(), &c); err != nil {
			return fmt.Errorf("command: %w", err)
		}
		var r reply
		switch c.Cmd {
		case "connect":
			r = cl.connect(c)
		case "send":
			r = cl.send(c)
		case "report":
			r = cl.report()
		case "touched":
			r = cl.touched()
		case "close":
			r = cl.closeAll()
		case "exit":
			return nil
		default:
			return fmt.Errorf("unknown command %q", c.Cmd)
		}
		if err := cl.out.Encode(r); err != nil {
			return err
		}
	}
	return in.Err() // stdin closed: the orchestrator is gone
}
