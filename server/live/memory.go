package live

import (
	"context"
	"sync"
	"time"

	"idleguard/server/clock"
)

// Network is the in-process live layer: what one Redis would hold, for the
// nodes of one process. A single node joins it alone; tests join several
// to run a cluster in one process. Its clock is the only time base, as
// Redis's is for Redis. Signals are encoded and decoded as on Redis, so both
// implementations carry the same thing.
type Network struct {
	clock clock.Clock

	mu    sync.Mutex
	last  map[string]map[string]time.Time // domain -> session -> last activity
	nodes map[*memoryNode]bool            // the joined nodes
}

// NewMemory returns an empty network on clock c (clock.Real{} when nil).
func NewMemory(c clock.Clock) *Network {
	if c == nil {
		c = clock.Real{}
	}
	return &Network{clock: c, last: map[string]map[string]time.Time{}, nodes: map[*memoryNode]bool{}}
}

// Node joins the network as node id; ids must be unique, since a node
// skips the signals that carry its own.
func (n *Network) Node(id string) Layer {
	m := &memoryNode{net: n, id: id, wake: make(chan struct{}, 1), done: make(chan struct{})}
	n.mu.Lock()
	n.nodes[m] = true
	n.mu.Unlock()
	return m
}

// memoryNode is one node's Layer on a Network.
type memoryNode struct {
	net  *Network
	id   string
	wake chan struct{} // a signal is queued (buffered 1)
	done chan struct{} // closed by Close

	// Guarded by net.mu.
	closed    bool
	listening bool     // a Run has subscribed; signals are queued
	running   bool     // a Run is in progress
	queue     [][]byte // encoded signals not yet delivered
}

var _ Layer = (*memoryNode)(nil)

func (m *memoryNode) Record(ctx context.Context, batch []Activity) error {
	if err := checkName("node", m.id); err != nil {
		return err
	}
	batches, err := coalesce(batch)
	if err != nil || len(batches) == 0 {
		return err
	}
	var msgs []channelMessage
	for _, cs := range activitySignals(m.id, batches) {
		p, err := EncodeSignal(cs.signal)
		if err != nil {
			return err
		}
		msgs = append(msgs, channelMessage{cs.channel, p})
	}
	n := m.net
	n.mu.Lock()
	defer n.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	now := n.clock.Now()
	for _, b := range batches {
		sessions := n.last[b.domain]
		if sessions == nil {
			sessions = map[string]time.Time{}
			n.last[b.domain] = sessions
		}
		for _, s := range b.sessions {
			at := now.Add(-s.ago)
			if prev, ok := sessions[s.sid]; !ok || at.After(prev) {
				sessions[s.sid] = at
			}
		}
	}
	n.sendLocked(m, msgs)
	return nil
}

func (m *memoryNode) Idle(ctx context.Context, domain, sid string) (time.Duration, bool, error) {
	if err := checkSession(domain, sid); err != nil {
		return 0, false, err
	}
	n := m.net
	n.mu.Lock()
	defer n.mu.Unlock()
	if m.closed {
		return 0, false, ErrClosed
	}
	at, ok := n.last[domain][sid]
	if !ok {
		return 0, false, nil
	}
	return max(n.clock.Now().Sub(at), 0), true, nil
}

func (m *memoryNode) Forget(ctx context.Context, domain string, sids []string) error {
	if err := checkDomain(domain); err != nil {
		return err
	}
	n := m.net
	n.mu.Lock()
	defer n.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	sessions := n.last[domain]
	for _, sid := range sids {
		delete(sessions, sid)
	}
	if sessions != nil && len(sessions) == 0 {
		delete(n.last, domain)
	}
	return nil
}

func (m *memoryNode) Publish(ctx context.Context, s Signal) error {
	s.Node = m.id
	var msgs []channelMessage
	for _, cs := range split(s) {
		p, err := EncodeSignal(cs.signal)
		if err != nil {
			return err
		}
		msgs = append(msgs, channelMessage{cs.channel, p})
	}
	n := m.net
	n.mu.Lock()
	defer n.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	n.sendLocked(m, msgs)
	return nil
}

// channelMessage is an encoded signal and its channel.
type channelMessage struct {
	channel int
	payload []byte
}

// sendLocked queues msgs at every listening node but from. Under one lock
// for the whole network, every node queues every signal in one order: the
// order per domain that Redis gives per channel, and more.
func (n *Network) sendLocked(from *memoryNode, msgs []channelMessage) {
	for to := range n.nodes {
		if to == from || !to.listening {
			continue
		}
		for _, msg := range msgs {
			to.queue = append(to.queue, msg.payload)
		}
		select {
		case to.wake <- struct{}{}:
		default:
		}
	}
}

func (m *memoryNode) Run(ctx context.Context, deliver func(Signal), resynced func()) error {
	n := m.net
	n.mu.Lock()
	switch {
	case m.closed:
		n.mu.Unlock()
		return ErrClosed
	case m.running:
		n.mu.Unlock()
		return errRunning
	}
	m.running, m.listening = true, true
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		m.running, m.listening, m.queue = false, false, nil
		n.mu.Unlock()
	}()

	resynced()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-m.done:
			return ErrClosed
		case <-m.wake:
		}
		n.mu.Lock()
		queue := m.queue
		m.queue = nil
		n.mu.Unlock()
		for _, p := range queue {
			s, err := DecodeSignal(p)
			if err != nil || s.Node == m.id {
				continue // cannot happen: this network encoded it
			}
			deliver(s)
			if ctx.Err() != nil {
				return nil
			}
		}
	}
}

func (m *memoryNode) Close() error {
	n := m.net
	n.mu.Lock()
	defer n.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed, m.listening, m.queue = true, false, nil
	delete(n.nodes, m)
	close(m.done)
	return nil
}
