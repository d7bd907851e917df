// Package live is what the nodes of a cluster share about live sessions:
// each session's last activity, kept on one clock (the layer's own), and
// the signals between nodes. Two implementations sit behind Layer: an
// in-process Network (NewMemory), which a single node uses and tests join
// several nodes to, and Redis (NewRedis), single, Sentinel or Cluster.
package live

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"idleguard/server/protocol"
)

// Activity is input a node saw: Ago is how long before the call it
// happened. Durations only: no node's wall clock enters the live layer.
type Activity struct {
	Domain, SessionID string
	Ago               time.Duration
}

// Kind is what a Signal says.
type Kind uint8

// The constants carry a Kind prefix because Activity is also the name of
// the input type above.
const (
	kindInvalid Kind = iota
	// KindActivity: sessions had input on the sender (Signal.Activity).
	KindActivity
	// KindStarted: a session started (signed in) on the sender.
	KindStarted
	// KindEnded: a session ended, for Signal.Reason; every node closes its
	// sockets.
	KindEnded
	// KindSettings: a domain's settings changed; re-read them.
	KindSettings
	// KindDomains: the list of domains changed (Signal.Domain names the one
	// added or removed, or is empty); re-read it.
	KindDomains
	kindEnd
)

var kindWords = [...]string{kindInvalid: "invalid", KindActivity: "activity", KindStarted: "started", KindEnded: "ended", KindSettings: "settings", KindDomains: "domains"}

func (k Kind) String() string {
	if k < kindEnd {
		return kindWords[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Signal is what one node tells the others.
type Signal struct {
	Kind      Kind
	Node      string // the sender's id; Publish and Record set it
	Domain    string // empty for KindActivity: each entry names its own domain
	SessionID string // KindStarted, KindEnded
	Reason    protocol.Reason
	// Activity is one node's coalesced batch (KindActivity), one entry per
	// session. Ago was measured when the sender recorded it; the time in
	// transit is not added.
	Activity []Activity
}

// Layer is what the nodes of a cluster share about live sessions: each
// session's last activity, kept on ONE clock (the layer's own: Redis's TIME
// inside a Lua script for Redis), and the signals between nodes.
//
// Every method may be called from any goroutine. A layer is one node's: its
// id must be unique in the cluster, since a node skips the signals that
// carry its own id.
type Layer interface {
	// Record sets each session's last activity to max(stored, layerNow -
	// Ago), and then publishes the batch as one Activity signal per signal
	// channel to the other nodes: on Redis two pipelines, so two round trips
	// per shard, the writes first, so that a node that receives the signal
	// already reads the new activity with Idle, and a failed write
	// publishes nothing. Several entries for one session count once, with
	// the smallest Ago. Bad input (an empty or too long name, a domain with
	// a brace) records nothing and is an error.
	Record(ctx context.Context, batch []Activity) error
	// Idle is how long ago the session's last activity was, on the layer's
	// clock; ok is false when the layer does not hold the session (never
	// recorded, forgotten, or lost with a Redis restart: the caller falls
	// back to the durable store).
	Idle(ctx context.Context, domain, sid string) (d time.Duration, ok bool, err error)
	// Forget drops ended sessions.
	Forget(ctx context.Context, domain string, sids []string) error
	// Publish sends s to every other node (not back to the sender), with
	// s.Node set to this node's id. Signals about one domain reach every
	// node in one order, the same on every node; a node's signals about one
	// domain, each sent after the previous call returned, keep the order
	// they were sent in.
	Publish(ctx context.Context, s Signal) error
	// Run delivers the other nodes' signals to deliver, in order per domain,
	// until ctx is done; it reconnects by itself after a Redis restart or
	// outage and then calls resynced (signals may have been missed
	// meanwhile, so the node re-reads what it needs). It also calls resynced
	// once it first listens: every signal published after that call
	// began is delivered, or another resynced follows. deliver and resynced
	// are called from one goroutine, never at once, and must not block for
	// long (Redis drops a subscriber that falls far behind, which costs a
	// resync). It returns nil when ctx is done, ErrClosed after Close; one
	// Run per layer at a time.
	Run(ctx context.Context, deliver func(Signal), resynced func()) error
	// Close releases the layer; a Run in progress returns (Redis waits
	// for it, so Close must not be called from deliver or resynced).
	Close() error
}

// ErrClosed is returned by a layer's methods after Close.
var ErrClosed = errors.New("live: layer closed")

var errRunning = errors.New("live: Run is already running on this layer")

// MaxName is the longest node id, domain or session id the layer takes:
// the signal encoding gives each one a length byte.
const MaxName = 255

// KeyTTL is how long Redis keeps a domain's activity after its last write:
// the longest Expiration Time and a day, so nothing a live session needs
// expires first. Forget is what removes ended sessions.
const KeyTTL = protocol.MaxExpirationSeconds*time.Second + 24*time.Hour

// checkName refuses what would break a key or the signal encoding.
func checkName(field, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("live: %s is empty", field)
	case len(s) > MaxName:
		return fmt.Errorf("live: %s is %d bytes, over the limit of %d", field, len(s), MaxName)
	}
	return nil
}

// checkDomain also refuses braces: the domain is the hash tag of its Redis
// keys, {domain}, and a brace inside would move the tag.
func checkDomain(d string) error {
	if err := checkName("domain", d); err != nil {
		return err
	}
	if strings.ContainsAny(d, "{}") {
		return fmt.Errorf("live: domain %q has a brace", d)
	}
	return nil
}

// checkSession checks the names of one session.
func checkSession(domain, sid string) error {
	if err := checkDomain(domain); err != nil {
		return err
	}
	return checkName("session id", sid)
}

// sessionAgo is one session's activity within a domain's batch.
type sessionAgo struct {
	sid string
	ago time.Duration
}

// domainBatch is a batch's entries for one domain, coalesced per session.
type domainBatch struct {
	domain   string
	sessions []sessionAgo
}

// coalesce checks a batch and groups it per domain, one entry per session
// with the smallest Ago (the latest input), negative Agos taken as 0. The
// result is sorted by domain and session, so that every node sends the same
// batch the same way.
func coalesce(batch []Activity) ([]domainBatch, error) {
	byDomain := map[string]map[string]time.Duration{}
	for _, a := range batch {
		if err := checkDomain(a.Domain); err != nil {
			return nil, err
		}
		if err := checkName("session id", a.SessionID); err != nil {
			return nil, err
		}
		ago := max(a.Ago, 0)
		m := byDomain[a.Domain]
		if m == nil {
			m = map[string]time.Duration{}
			byDomain[a.Domain] = m
		}
		if prev, ok := m[a.SessionID]; !ok || ago < prev {
			m[a.SessionID] = ago
		}
	}
	out := make([]domainBatch, 0, len(byDomain))
	for d, m := range byDomain {
		b := domainBatch{domain: d, sessions: make([]sessionAgo, 0, len(m))}
		for sid, ago := range m {
			b.sessions = append(b.sessions, sessionAgo{sid, ago})
		}
		slices.SortFunc(b.sessions, func(x, y sessionAgo) int { return strings.Compare(x.sid, y.sid) })
		out = append(out, b)
	}
	slices.SortFunc(out, func(x, y domainBatch) int { return strings.Compare(x.domain, y.domain) })
	return out, nil
}

// channelSignal is one Activity signal and the channel it travels on.
type channelSignal struct {
	channel int
	signal  Signal
}

// activitySignals is a coalesced batch as Activity signals from node.
func activitySignals(node string, batches []domainBatch) []channelSignal {
	var acts []Activity
	for _, b := range batches {
		for _, s := range b.sessions {
			acts = append(acts, Activity{Domain: b.domain, SessionID: s.sid, Ago: s.ago})
		}
	}
	return splitActivity(Signal{Kind: KindActivity, Node: node, Activity: acts})
}

// splitActivity splits an Activity signal by channel, keeping the order of
// its entries, and again where a channel's part is over MaxSignalActivity:
// each domain's signals travel on its own channel, which keeps them in
// order.
func splitActivity(s Signal) []channelSignal {
	var parts [Channels][]Activity
	for _, a := range s.Activity {
		c := ChannelOf(a.Domain)
		parts[c] = append(parts[c], a)
	}
	var out []channelSignal
	for c, acts := range parts {
		for len(acts) > 0 {
			n := min(len(acts), MaxSignalActivity)
			part := s
			part.Activity = acts[:n:n]
			out = append(out, channelSignal{c, part})
			acts = acts[n:]
		}
	}
	return out
}

// split is what Publish sends for s: its one channel, or for an Activity
// signal one signal per channel its entries' domains use. An empty Activity
// signal is left whole, for EncodeSignal to refuse.
func split(s Signal) []channelSignal {
	if s.Kind == KindActivity && len(s.Activity) > 0 {
		return splitActivity(s)
	}
	return []channelSignal{{ChannelOf(s.Domain), s}}
}
