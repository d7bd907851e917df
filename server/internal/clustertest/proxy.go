package clustertest

import (
	"net"
	"net/url"
	"sync"
	"testing"
)

// Proxy forwards TCP connections from its own loopback address to a
// target (a real PostgreSQL, say). It can be cut: every connection through
// it is dropped and new ones are refused, as when the target's host goes
// down. It can be silenced: connections stay up and new ones are
// accepted, but nothing goes through either way, as in a network
// partition, until Restore lets what waited go on. It lets one test lose
// its PostgreSQL while the other tests of the package keep the server
// they share.
type Proxy struct {
	target string
	addr   string

	mu     sync.Mutex
	ln     net.Listener // nil while cut
	conns  map[net.Conn]struct{}
	silent chan struct{} // closed, and replaced, by Restore; nil when not silenced
	wg     sync.WaitGroup
}

// NewProxy listens on a free loopback port and forwards to target
// (host:port); the test's cleanup closes it.
func NewProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{target: target, addr: ln.Addr().String(), conns: make(map[net.Conn]struct{})}
	p.serve(ln)
	t.Cleanup(func() {
		p.Cut()
		p.wg.Wait()
	})
	return p
}

// ProxyURL is database URL u with its host:port replaced by p's.
func (p *Proxy) ProxyURL(t *testing.T, u string) string {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	pu.Host = p.addr
	return pu.String()
}

// TargetOf is the host:port of database URL u.
func TargetOf(t *testing.T, u string) string {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return pu.Host
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.addr }

func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed by Cut
			}
			p.forward(c)
		}
	}()
}

// gate returns once the proxy is not silenced.
func (p *Proxy) gate() {
	p.mu.Lock()
	ch := p.silent
	p.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

// forward joins c to a new connection to the target, both ways.
func (p *Proxy) forward(c net.Conn) {
	p.gate()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil { // cut meanwhile
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	pipe := func(dst, src net.Conn) {
		defer p.wg.Done()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				p.gate()
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		dst.Close()
		src.Close()
		p.mu.Lock()
		delete(p.conns, dst)
		delete(p.conns, src)
		p.mu.Unlock()
	}
	p.wg.Add(2)
	go pipe(up, c)
	go pipe(c, up)
}

// Silence holds every byte in either direction, and every new
// connection, until Restore.
func (p *Proxy) Silence() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.silent == nil {
		p.silent = make(chan struct{})
	}
}

// Cut drops every connection and refuses new ones (the port is closed).
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.unsilence()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
}

// unsilence lets what waits go on. Called with p.mu held.
func (p *Proxy) unsilence() {
	if p.silent != nil {
		close(p.silent)
		p.silent = nil
	}
}

// Restore ends a silence, or listens again on the same address after a
// cut.
func (p *Proxy) Restore(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	p.unsilence()
	cut := p.ln == nil
	p.mu.Unlock()
	if !cut {
		return
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatalf("clustertest: proxy: listen again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}
