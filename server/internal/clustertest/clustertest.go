// Package clustertest runs idleguard as a cluster for tests: nodes of the
// real program sharing one PostgreSQL database and one redis-server
// (-postgres, -redis, -node), in-process (apptest servers) or as
// subprocesses of the built binary, which a test can kill -9; and a TCP
// proxy in front of PostgreSQL that a test can cut, a real network fault.
package clustertest

import (
	"context"
	"testing"
	"time"

	"idleguard/server/internal/apptest"
	"idleguard/server/internal/redistest"
	"idleguard/server/live"
)

// Names are the nodes' ids, in the order Start starts them.
var Names = []string{"a", "b", "c", "d", "e", "f"}

// Cluster is n nodes on one database and one redis-server.
type Cluster struct {
	Postgres string // the URL the nodes were given
	Redis    *redistest.Server
	Nodes    []*apptest.Server
}

// slots bounds how many clusters of a test binary run at once: each is
// three nodes, a redis-server and a database, and a small machine running
// them all together (under -race, beside the package's other tests) is so
// slow that the layer's calls time out, which is another test.
var slots = make(chan struct{}, 3)

// New waits for a free slot, which it holds until the test ends, and
// starts a redis-server for a cluster on the database at postgres (the
// caller's pgtest database, or a proxy of it). Add nodes with StartNode
// or StartProc.
func New(t *testing.T, postgres string) *Cluster {
	t.Helper()
	slots <- struct{}{}
	t.Cleanup(func() { <-slots })
	return &Cluster{Postgres: postgres, Redis: redistest.Start(t)}
}

// Start is New and n in-process nodes (at most len(Names)), started one
// after the other, each subscribed before the next; args come after the
// cluster's flags. Everything stops when the test ends.
func Start(t *testing.T, run apptest.RunFunc, postgres string, n int, args ...string) *Cluster {
	t.Helper()
	c := New(t, postgres)
	for i, name := range Names[:n] {
		c.Nodes = append(c.Nodes, apptest.Start(t, run, c.Args(name, args...)...))
		c.WaitSubscribed(t, i+1)
	}
	return c
}

// WaitSubscribed waits until n nodes listen on every signal channel of
// c's redis-server: a node answers /healthz a moment before it hears the
// other nodes (serve starts the layer's subscription after it listens),
// and after a Redis restart or outage the nodes subscribe again on their
// own time.
func (c *Cluster) WaitSubscribed(t *testing.T, n int) {
	t.Helper()
	channels := make([]string, live.Channels)
	for i := range channels {
		channels[i] = live.ChannelName(i)
	}
	rc := c.Redis.Client()
	deadline := time.Now().Add(apptest.WaitLimit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		subs, err := rc.PubSubShardNumSub(ctx, channels...).Result()
		cancel()
		ok := err == nil
		for _, ch := range channels {
			ok = ok && subs[ch] >= int64(n)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("clustertest: subscribers of each signal channel after %v: %v (%v), want %d", apptest.WaitLimit, subs, err, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Args are the flags of node name of c, then args.
func (c *Cluster) Args(name string, args ...string) []string {
	return append([]string{"-postgres", c.Postgres, "-redis", c.Redis.URL(), "-node", name}, args...)
}

// Domain is each node's view for domain name (nodes started with
// -domain-suffix .localhost).
func (c *Cluster) Domain(name string) []*apptest.Server {
	out := make([]*apptest.Server, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Domain(name)
	}
	return out
}
