package livetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"idleguard/server/live"
	"idleguard/server/protocol"
)

// testActivitySignal: Record's batch reaches every other node, as Activity
// signals whose entries are the coalesced batch, with the write already
// readable there; it never comes back to the sender.
func testActivitySignal(t *testing.T, c *cluster) {
	a, b, cc := c.node("a"), c.node("b"), c.node("c")
	la, lb, lc := Listen(t, a), Listen(t, b), Listen(t, cc)
	var batch, want []live.Activity
	var domains []string
	for i := range 6 { // several domains, so most likely several channels
		d := c.domain(fmt.Sprintf("shop%d", i))
		domains = append(domains, d)
		for j := range 3 {
			sid := fmt.Sprintf("s%d", j)
			ago := time.Duration(i*10+j) * time.Second
			batch = append(batch, live.Activity{Domain: d, SessionID: sid, Ago: ago + time.Second})
			batch = append(batch, live.Activity{Domain: d, SessionID: sid, Ago: ago}) // the later input wins
			want = append(want, live.Activity{Domain: d, SessionID: sid, Ago: ago})
		}
	}
	at := mustRecord(t, a, batch...)
	for name, ln := range map[string]*Listener{"b": lb, "c": lc} {
		l := map[string]live.Layer{"b": b, "c": cc}[name]
		got := collect(t, ln, len(want), c.id("a"))
		if !sameActivity(got, want) {
			t.Fatalf("node %s heard %v, want %v", name, got, want)
		}
		// Heard, so already written: this node reads it.
		for _, w := range want[:3] {
			wantIdle(t, l, w.Domain, w.SessionID, w.Ago, at)
		}
	}
	// The sender did not hear its own batch: the first thing a hears on
	// each domain's channel is b's marker, which b sent after the batch
	// had reached it.
	for _, d := range domains {
		mustPublish(t, b, live.Signal{Kind: live.KindSettings, Domain: d})
	}
	got := la.Take(t, len(domains))
	for _, s := range got {
		if s.Kind != live.KindSettings || s.Node != c.id("b") {
			t.Fatalf("the sender heard %+v, want only b's settings markers (never its own activity)", s)
		}
	}
	if n := la.Pending(); n != 0 {
		t.Fatalf("the sender has %d more signals, want none", n)
	}
}

// testSignalsInOrder: each kind of signal reaches the other nodes intact,
// in the order one node sent them about one domain.
func testSignalsInOrder(t *testing.T, c *cluster) {
	a, b, cc := c.node("a"), c.node("b"), c.node("c")
	la, lb, lc := Listen(t, a), Listen(t, b), Listen(t, cc)
	d := c.domain("acme")
	sent := []live.Signal{
		{Kind: live.KindStarted, Domain: d, SessionID: "s1"},
		{Kind: live.KindSettings, Domain: d},
		{Kind: live.KindDomains, Domain: d},
		{Kind: live.KindEnded, Domain: d, SessionID: "s1", Reason: protocol.ReasonSignedOut},
		{Kind: live.KindEnded, Domain: d, SessionID: "s2", Reason: protocol.ReasonIdle},
		{Kind: live.KindEnded, Domain: d, SessionID: "s3", Reason: protocol.ReasonSettingChanged},
		{Kind: live.KindEnded, Domain: d, SessionID: "s4", Reason: protocol.ReasonRevoked},
		{Kind: live.KindActivity, Activity: []live.Activity{{Domain: d, SessionID: "s5", Ago: 1500 * time.Millisecond}}},
	}
	for i := range 40 {
		sent = append(sent, live.Signal{Kind: live.KindStarted, Domain: d, SessionID: fmt.Sprintf("n%d", i)})
	}
	for _, s := range sent {
		mustPublish(t, a, s)
	}
	// Record's signal keeps its place among Publish's.
	mustRecord(t, a, live.Activity{Domain: d, SessionID: "s6", Ago: time.Second})
	mustPublish(t, a, live.Signal{Kind: live.KindEnded, Domain: d, SessionID: "s6", Reason: protocol.ReasonIdle})
	sent = append(sent,
		live.Signal{Kind: live.KindActivity, Activity: []live.Activity{{Domain: d, SessionID: "s6", Ago: time.Second}}},
		live.Signal{Kind: live.KindEnded, Domain: d, SessionID: "s6", Reason: protocol.ReasonIdle})
	for i := range sent {
		sent[i].Node = c.id("a")
	}
	for name, ln := range map[string]*Listener{"b": lb, "c": lc} {
		got := ln.Take(t, len(sent))
		for i := range sent {
			if !sameSignal(got[i], sent[i]) {
				t.Fatalf("node %s: signal %d is %+v, want %+v", name, i, got[i], sent[i])
			}
		}
	}
	if n := la.Pending(); n != 0 {
		t.Fatalf("the sender heard %d of its own signals", n)
	}
}

// testSameOrder: two nodes publish about one domain at once; every other
// node hears the signals in one order, the same everywhere, and each
// sender's in the order it sent them.
func testSameOrder(t *testing.T, c *cluster) {
	a, b := c.node("a"), c.node("b")
	lc, ld := Listen(t, c.node("c")), Listen(t, c.node("d"))
	d := c.domain("acme")
	const n = 100
	var wg sync.WaitGroup
	for _, sender := range []struct {
		l    live.Layer
		name string
	}{{a, "a"}, {b, "b"}} {
		wg.Go(func() {
			for i := range n {
				if err := sender.l.Publish(ctx(t), live.Signal{Kind: live.KindStarted, Domain: d, SessionID: fmt.Sprintf("%s%03d", sender.name, i)}); err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	gotC, gotD := sids(lc.Take(t, 2*n)), sids(ld.Take(t, 2*n))
	if !slices.Equal(gotC, gotD) {
		t.Fatalf("c and d heard different orders:\n c: %v\n d: %v", gotC, gotD)
	}
	for _, name := range []string{"a", "b"} {
		var mine []string
		for _, sid := range gotC {
			if sid[:1] == name {
				mine = append(mine, sid)
			}
		}
		if len(mine) != n || !slices.IsSorted(mine) {
			t.Fatalf("%s's signals heard as %v, want its %d in the order sent", name, mine, n)
		}
	}
}

// testManyDomains: signals about many domains, spread over every channel,
// all reach the other node, each domain's in order.
func testManyDomains(t *testing.T, c *cluster) {
	a := c.node("a")
	lb := Listen(t, c.node("b"))
	const n = 300
	channels := map[int]bool{}
	for i := range n {
		d := c.domain(fmt.Sprintf("d%03d", i))
		channels[live.ChannelOf(d)] = true
		mustPublish(t, a, live.Signal{Kind: live.KindStarted, Domain: d, SessionID: "s1"})
	}
	if len(channels) != live.Channels {
		t.Fatalf("%d domains use %d of the %d channels: the test wants all", n, len(channels), live.Channels)
	}
	for i := range n {
		d := c.domain(fmt.Sprintf("d%03d", i))
		mustPublish(t, a, live.Signal{Kind: live.KindEnded, Domain: d, SessionID: "s1", Reason: protocol.ReasonIdle})
	}
	seen := map[string]live.Kind{}
	for _, s := range lb.Take(t, 2*n) {
		switch prev := seen[s.Domain]; {
		case s.Kind == live.KindStarted && prev == 0, s.Kind == live.KindEnded && prev == live.KindStarted:
			seen[s.Domain] = s.Kind
		default:
			t.Fatalf("domain %s: %v after %v, want started then ended", s.Domain, s.Kind, prev)
		}
	}
	if len(seen) != n {
		t.Fatalf("heard %d domains, want %d", len(seen), n)
	}
}

// testLargeBatch: a batch bigger than one signal carries reaches the other
// node whole, and is written whole.
func testLargeBatch(t *testing.T, c *cluster) {
	a, b := c.node("a"), c.node("b")
	lb := Listen(t, b)
	d := c.domain("big")
	const n = 2*live.MaxSignalActivity + 100
	batch := make([]live.Activity, n)
	for i := range batch {
		batch[i] = live.Activity{Domain: d, SessionID: fmt.Sprintf("s%05d", i), Ago: time.Duration(i%50) * time.Second}
	}
	at := mustRecord(t, a, batch...)
	if got := collect(t, lb, n, c.id("a")); !sameActivity(got, batch) {
		t.Fatalf("heard %d entries, not the batch of %d", len(got), n)
	}
	for _, i := range []int{0, 511, 512, 4095, 4096, n - 1} {
		wantIdle(t, b, d, batch[i].SessionID, batch[i].Ago, at)
	}
}

func sids(ss []live.Signal) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.SessionID
	}
	return out
}

func sameSignal(got, want live.Signal) bool {
	return got.Kind == want.Kind && got.Node == want.Node && got.Domain == want.Domain &&
		got.SessionID == want.SessionID && got.Reason == want.Reason && slices.Equal(got.Activity, want.Activity)
}
