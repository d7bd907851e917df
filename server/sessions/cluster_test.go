package sessions

import (
	"context"
	"errors"
	"testing"
	"time"

	"idleguard/server/pos"
	"idleguard/server/protocol"
)

// What a tab hears when its session signs out for these reasons under the
// fixture's Expiration Time of 60 s.
var (
	idleEnd      = []string{"logout reason=idle expiration=60", "close 4001 idle"}
	signedOutEnd = []string{"logout reason=signed_out expiration=60", "close 4002 signed_out"}
)

// advanceTo moves the cluster's clock to t0+at.
func (c *clusterFixture) advanceTo(at time.Duration) {
	c.clock.Advance(t0.Add(at).Sub(c.clock.Now()))
}

// endedReason is why the node refuses tok, failing unless it refuses it
// as a session that has ended.
func (n *node) endedReason(t *testing.T, tok string) protocol.Reason {
	t.Helper()
	_, err := n.svc.Authenticate(context.Background(), pos.DefaultDomain, tok)
	var ended *EndedError
	if !errors.As(err, &ended) || pos.ErrorCode(err) != pos.EUNAUTHORIZED {
		t.Fatalf("node %s: Authenticate: got %v, want an EndedError", n.id, err)
	}
	return ended.Reason
}

// twoTabs is a session signed in on a at t0 with a tab on a and one on b,
// once the first flush of a has told the layer and b: the tabs' frames so
// far are taken. b, which has issued no token for the session, renews one
// at that first news of it (its tab takes a state frame): not looked at.
func twoTabs(t *testing.T, c *clusterFixture, a, b *node) (in SignedIn, tabA, tabB *socket) {
	t.Helper()
	in = a.login(t, "cashier")
	tabA, first := a.open(t, pos.DefaultDomain, in.Token)
	if first != state(60000) {
		t.Fatalf("tab on %s, on connect: got %q, want %q", a.id, first, state(60000))
	}
	tabB, first = b.open(t, pos.DefaultDomain, in.Token)
	if first != state(60000) {
		t.Fatalf("tab on %s (adopted), on connect: got %q, want %q", b.id, first, state(60000))
	}
	c.tick(t)
	for _, n := range []*node{a, b} {
		n.socks.take(in.Claims.SessionID)
	}
	tabA.take()
	tabB.take()
	return in, tabA, tabB
}

// Input on node a moves the deadline on node b, to the microsecond: b
// signs its tab out neither at the old deadline nor a microsecond before
// the new one, and at the new one with reason idle, as a does. The input
// renewed no token (the last ended at the old deadline, 40 s on): a
// warning's lead before that deadline each node's tab hears the new one,
// with a token, as a tab idle there must, so that its own countdown does
// not sign it out first.
func TestClusterInputMovesTheDeadlineOnEveryNode(t *testing.T) {
	c := newClusterFixture(t)
	a, b := c.join(t, "a", 0), c.join(t, "b", 0)
	in, tabA, tabB := twoTabs(t, c, a, b)
	sid := in.Claims.SessionID

	c.advanceTo(20 * time.Second)
	tabA.activity(0)
	c.tick(t) // at t0+20.1 s, 100 ms after the input
	for _, n := range []*node{a, b} {
		n.waitDeadline(t, sid, 80*time.Second)
	}

	c.advanceTo(45*time.Second - time.Microsecond)
	for _, n := range []*node{a, b} {
		wantLines(t, "node "+n.id+" before the old deadline-WarnLead", n.socks.take(sid))
	}
	renewed := state(35000) + " token=JWT"
	c.advanceTo(45 * time.Second)
	for _, n := range []*node{a, b} {
		wantLines(t, "node "+n.id+" at the old deadline-WarnLead", n.socks.take(sid), "send "+renewed)
	}
	c.advanceTo(60 * time.Second) // the old deadline
	for _, n := range []*node{a, b} {
		wantLines(t, "node "+n.id+" at the old deadline", n.socks.take(sid))
	}
	c.advanceTo(65 * time.Second)
	for _, n := range []*node{a, b} {
		wantLines(t, "node "+n.id+" at the new deadline-WarnLead", n.socks.take(sid), "send warning remaining=15000")
	}
	c.advanceTo(80*time.Second - time.Microsecond)
	for _, n := range []*node{a, b} {
		wantLines(t, "node "+n.id+" a microsecond before the new deadline", n.socks.take(sid))
	}
	c.advanceTo(80 * time.Second)
	for _, n := range []*node{a, b} {
		wantLines(t, "node "+n.id+" at the new deadline", n.socks.take(sid), "signout idle 60")
	}
	wantLines(t, "tab on a", tabA.take(), append([]string{renewed, "warning remaining=15000"}, idleEnd...)...)
	wantLines(t, "tab on b", tabB.take(), append([]string{renewed, "warning remaining=15000"}, idleEnd...)...)
	if got := b.endedReason(t, in.Token); got != protocol.ReasonIdle {
		t.Errorf("Authenticate on b after the deadline: got reason %v, want idle", got)
	}
}

// A warning showing in a tab on node b closes when the cashier acts in a
// tab on node a. Input or "Stay signed in" while a shows the warning too
// leaves a at once: b's tab hears it with the clock not moved at all (and
// no flusher's tick due within the hour). Input on a node that shows no
// warning (b warned early: the signal of an earlier input was lost on its
// way to b) leaves at a's next flush, within one LiveEvery: on the real
// 100 ms ticker.
func TestClusterWarningClosedByActionOnAnotherNode(t *testing.T) {
	reopened := state(60000) + " token=JWT" // the token rides along: the last one ends at t0+60 s
	for _, tc := range []struct {
		name string
		act  func(tab *socket)
	}{
		{"input", func(tab *socket) { tab.activity(0) }},
		{"stay signed in", func(tab *socket) { tab.frame(protocol.Message{Kind: protocol.Stay}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClusterFixture(t)
			a, b := c.join(t, "a", 0), c.join(t, "b", 0)
			in := a.login(t, "cashier")
			sid := in.Claims.SessionID
			tabA, _ := a.open(t, pos.DefaultDomain, in.Token)
			tabB, _ := b.open(t, pos.DefaultDomain, in.Token)

			c.advanceTo(45 * time.Second)
			wantLines(t, "tab on a at deadline-WarnLead", tabA.take(), "warning remaining=15000")
			wantLines(t, "tab on b at deadline-WarnLead", tabB.take(), "warning remaining=15000")

			c.advanceTo(50 * time.Second)
			sent := a.layer.sent.Load()
			tc.act(tabA)
			wantLines(t, "tab on a", tabA.take(), reopened)
			a.waitSent(t, sent)
			c.settle(t) // the clock has not moved
			wantLines(t, "tab on b, the clock not moved", tabB.take(), reopened)
			b.waitDeadline(t, sid, 110*time.Second)
			c.advanceTo(95*time.Second - time.Microsecond)
			wantLines(t, "tab on b before the next warning", tabB.take())
			c.advanceTo(95 * time.Second)
			wantLines(t, "tab on b at the next warning", tabB.take(), "warning remaining=15000")
		})
	}

	t.Run("input on a node that warns no one", func(t *testing.T) {
		c := newClusterFixture(t)
		c.liveTicker = liveEvery
		a, b := c.join(t, "a", 0), c.join(t, "b", 0)
		in, tabA, tabB := twoTabs(t, c, a, b)
		sid := in.Claims.SessionID

		// Input at t0+10 s that b never hears of: b warns at t0+45 s, a
		// at t0+55 s.
		c.advanceTo(10 * time.Second)
		b.layer.dropActivity.Store(true)
		tabA.activity(0)
		c.tick(t)
		b.layer.dropActivity.Store(false)
		c.advanceTo(45*time.Second - time.Microsecond)
		wantLines(t, "tab on a before its token's exp-WarnLead", tabA.take())
		c.advanceTo(45 * time.Second)
		wantLines(t, "tab on b, warned early", tabB.take(), "warning remaining=15000")
		// The input renewed no token on a (the sign-in's had 50 s left):
		// a warning's lead before it ends, a's tab hears t0+70 s.
		wantLines(t, "tab on a, not warned", tabA.take(), state(25000)+" token=JWT")

		c.advanceTo(50 * time.Second)
		tabA.activity(0)
		// a's tab takes the renewal that this input made due, nothing else.
		wantLines(t, "tab on a", tabA.take(), state(60000)+" token=JWT")
		c.tick(t) // t0+50.1 s
		// b hears it at a's next flush: at the tick, 100 ms on (59.9 s
		// left then), or before, if a's flusher had a tick left over from
		// the clock's last move. On the real ticker the layer may place
		// the input as late as the tick (see liveTicker): never earlier.
		waitFor(t, "b to hear the input", func() bool {
			got, ok := b.deadline(sid)
			return ok && !got.Before(t0.Add(110*time.Second)) && !got.After(t0.Add(110*time.Second+liveEvery))
		})
		c.waitQuiet(t)
		got := tabB.take()
		if len(got) != 1 || (got[0] != state(59900)+" token=JWT" && got[0] != state(60000)+" token=JWT") {
			t.Errorf("tab on b within one LiveEvery: got %q, want one state frame with 59900 or 60000 ms left and the token", got)
		}
	})
}

// "Sign out now" in a tab on node a closes every tab of the session on
// every node with reason signed_out, through the signal (the clock does
// not move, so no node reads the session end log meanwhile); another
// session with tabs on the same nodes is untouched, and the token is
// refused everywhere with the reason.
func TestClusterSignOutOnOneNodeClosesEveryTab(t *testing.T) {
	c := newClusterFixture(t)
	a, b, n3 := c.join(t, "a", 0), c.join(t, "b", 0), c.join(t, "c", 0)
	in := a.login(t, "cashier")
	sid := in.Claims.SessionID
	other := a.login(t, "other")
	tabs := map[*node]*socket{}
	others := map[*node]*socket{}
	for _, n := range []*node{a, b, n3} {
		tabs[n], _ = n.open(t, pos.DefaultDomain, in.Token)
		others[n], _ = n.open(t, pos.DefaultDomain, other.Token)
	}
	c.tick(t)
	c.advanceTo(10 * time.Second)
	for _, n := range []*node{a, b, n3} {
		n.socks.takeAll()
		tabs[n].take()
		others[n].take()
	}

	tabs[a].frame(protocol.Message{Kind: protocol.SignOut})
	c.waitQuiet(t)
	for _, n := range []*node{a, b, n3} {
		wantLines(t, "node "+n.id, n.socks.takeAll(), sid+" signout signed_out 60")
		wantLines(t, "tab on "+n.id, tabs[n].take(), signedOutEnd...)
		wantLines(t, "the other session's tab on "+n.id, others[n].take())
		if _, ok := n.deadline(other.Claims.SessionID); !ok {
			t.Errorf("node %s: the other session ended, want it alive", n.id)
		}
		if got := n.endedReason(t, in.Token); got != protocol.ReasonSignedOut {
			t.Errorf("Authenticate on %s: got reason %v, want signed_out", n.id, got)
		}
	}
}

// An Expiration Time change saved on node a applies on node b at once
// (the clock does not move): b's tabs of that domain hear their new
// remaining time, a session idle longer than the new time is signed out
// on b with setting_changed, and a tab of another domain on b hears
// nothing; b's sessions then end on the new time.
func TestClusterSettingChangeOnOneNodeAppliesOnEvery(t *testing.T) {
	ctx := context.Background()
	c := newClusterFixture(t)
	c.addGlobex(t)
	a, b := c.join(t, "a", 0), c.join(t, "b", 0)
	old, tabA, tabB := twoTabs(t, c, a, b)               // idle 40 s when the setting changes
	g := a.loginTo(t, globex, "cashier", globexPassword) // at t0+0.1 s: its deadline t0+90.1 s
	tabG, _ := b.open(t, globex, g.Token)
	c.tick(t)
	c.advanceTo(30 * time.Second)
	fresh := a.login(t, "other") // idle 10 s
	tabF, _ := b.open(t, pos.DefaultDomain, fresh.Token)
	c.tick(t)
	c.advanceTo(40 * time.Second)
	b.socks.takeAll()
	tabF.take()
	tabG.take()

	if _, err := a.svc.UpdateExpiration(ctx, a.user(t, "admin"), 30); err != nil {
		t.Fatalf("UpdateExpiration on a: %v", err)
	}
	wantLines(t, "tab on a of the long idle session", tabA.take(), "logout reason=setting_changed expiration=30", "close 4003 setting_changed")
	c.waitQuiet(t)
	wantLines(t, "tab on b of the long idle session", tabB.take(), "logout reason=setting_changed expiration=30", "close 4003 setting_changed")
	wantLines(t, "tab on b of the fresh session", tabF.take(), "state remaining=20000 expiration=30 warn=7500 report=3000")
	wantLines(t, "tab on b of globex", tabG.take())
	if v, err := b.svc.Settings(pos.DefaultDomain); err != nil || v.ExpirationSeconds != 30 || v.UpdatedBy != "admin" {
		t.Errorf("b's setting: got %+v %v, want 30 s by admin", v, err)
	}
	if v, err := b.svc.Settings(globex); err != nil || v.ExpirationSeconds != globexExpiration {
		t.Errorf("b's globex setting: got %+v %v, want %d s", v, err, globexExpiration)
	}
	if got := b.endedReason(t, old.Token); got != protocol.ReasonSettingChanged {
		t.Errorf("Authenticate on b of the long idle session: got reason %v, want setting_changed", got)
	}

	c.advanceTo(52500 * time.Millisecond)
	wantLines(t, "tab on b of the fresh session at its new warning", tabF.take(), "warning remaining=7500")
	c.advanceTo(60*time.Second - time.Microsecond)
	wantLines(t, "tab on b of the fresh session before its new deadline", tabF.take())
	c.advanceTo(60 * time.Second)
	wantLines(t, "tab on b of the fresh session at its new deadline", tabF.take(), "logout reason=idle expiration=30", "close 4001 idle")
	c.advanceTo(67600*time.Millisecond - time.Microsecond)
	wantLines(t, "tab on b of globex before its warning", tabG.take())
	c.advanceTo(67600 * time.Millisecond)
	wantLines(t, "tab on b of globex, on its own time", tabG.take(), "warning remaining=22500")
}

// Where the signal of a's input never reaches b (lost in transit), b's
// deadline is the old one: b warns early, but at that deadline it checks
// the layer, finds a's input, and does not sign the tab out; its tab
// hears the deadline the input set, so that the page's own countdown does
// not run out first. With no input anywhere after, the session ends on
// both at the true deadline, to the microsecond.
func TestClusterRecheckFindsInputWhoseSignalWasLost(t *testing.T) {
	c := newClusterFixture(t)
	a, b := c.join(t, "a", 0), c.join(t, "b", 0)
	in, tabA, tabB := twoTabs(t, c, a, b)
	sid := in.Claims.SessionID
	b.layer.dropActivity.Store(true)

	c.advanceTo(10 * time.Second)
	tabA.activity(0)
	c.tick(t)
	if n := b.layer.dropped.Load(); n != 1 {
		t.Fatalf("b lost %d Activity signals, want 1", n)
	}
	if got, _ := b.deadline(sid); !got.Equal(t0.Add(60 * time.Second)) {
		t.Fatalf("b's deadline: got %v, want the old t0+60s", got.Sub(t0))
	}

	c.advanceTo(45*time.Second - time.Microsecond)
	wantLines(t, "tab on a before its token's exp-WarnLead", tabA.take())
	c.advanceTo(45 * time.Second)
	wantLines(t, "tab on b, warned on the old deadline", tabB.take(), "warning remaining=15000")
	// a's input renewed no token (the last had 50 s left): a warning's
	// lead before it ends, a's tab hears the deadline the input set.
	wantLines(t, "tab on a at its token's exp-WarnLead", tabA.take(), state(25000)+" token=JWT")
	c.advanceTo(55 * time.Second)
	wantLines(t, "tab on a, warned on the true deadline", tabA.take(), "warning remaining=15000")
	c.advanceTo(60 * time.Second)
	wantLines(t, "tab on b at the old deadline", tabB.take(), state(10000)+" token=JWT")
	if got, ok := b.deadline(sid); !ok || !got.Equal(t0.Add(70*time.Second)) {
		t.Fatalf("b's deadline after the recheck: got %v (alive %v), want t0+70s", got.Sub(t0), ok)
	}
	c.advanceTo(70*time.Second - time.Microsecond)
	for _, n := range []*node{a, b} {
		if got := n.socks.take(sid); len(got) != 0 && got[len(got)-1] == "signout idle 60" {
			t.Fatalf("node %s signed out a microsecond before the true deadline: %q", n.id, got)
		}
	}
	c.advanceTo(70 * time.Second)
	wantLines(t, "tab on a at the true deadline", tabA.take(), idleEnd...)
	wantLines(t, "tab on b at the true deadline", tabB.take(), idleEnd...)
}

// A token of a session signed in on node a, presented on node b which has
// never tracked it, is accepted with a's remaining time (the layer's
// record of the last input, not b's clock), and b then ends it on that
// time; a token of a session ended on a, whether signed out or idle, is
// refused on b with the reason.
func TestClusterAdoptsSessionsOfAnotherNode(t *testing.T) {
	t.Run("alive", func(t *testing.T) {
		c := newClusterFixture(t)
		a, b := c.join(t, "a", 0), c.join(t, "b", 0)
		in := a.login(t, "cashier")
		sid := in.Claims.SessionID
		tabA, _ := a.open(t, pos.DefaultDomain, in.Token)
		c.tick(t)
		c.advanceTo(20 * time.Second)
		tabA.activity(0)
		c.tick(t)
		c.advanceTo(30 * time.Second)
		if _, ok := b.deadline(sid); ok {
			t.Fatal("b tracks the session before any of its tabs came: want it unknown there")
		}
		p, err := b.svc.Authenticate(context.Background(), pos.DefaultDomain, in.Token)
		if err != nil || p.Remaining != 50*time.Second || p.SessionID != sid || p.User.Name != "cashier" {
			t.Fatalf("Authenticate on b: got %+v %v, want cashier's session with 50 s left", p, err)
		}
		tabB, first := b.open(t, pos.DefaultDomain, in.Token)
		if first != state(50000) {
			t.Errorf("tab on b, on connect: got %q, want %q", first, state(50000))
		}
		c.advanceTo(80*time.Second - time.Microsecond)
		wantLines(t, "tab on b before the deadline", tabB.take(), "warning remaining=15000")
		c.advanceTo(80 * time.Second)
		wantLines(t, "tab on b at the deadline", tabB.take(), idleEnd...)
	})

	t.Run("signed out", func(t *testing.T) {
		c := newClusterFixture(t)
		a, b := c.join(t, "a", 0), c.join(t, "b", 0)
		in := a.login(t, "cashier")
		c.tick(t)
		if err := a.svc.Logout(context.Background(), in.Claims.SessionID); err != nil {
			t.Fatal(err)
		}
		c.waitQuiet(t)
		if got := b.endedReason(t, in.Token); got != protocol.ReasonSignedOut {
			t.Errorf("Authenticate on b: got reason %v, want signed_out", got)
		}
	})

	t.Run("idle", func(t *testing.T) {
		c := newClusterFixture(t)
		a, b := c.join(t, "a", 0), c.join(t, "b", 0)
		in := a.login(t, "cashier")
		c.tick(t)
		sid := in.Claims.SessionID
		c.advanceTo(60 * time.Second)
		wantLines(t, "node a at the deadline", a.socks.take(sid), "send warning remaining=15000", "signout idle 60")
		for _, step := range []struct {
			when string
			move func()
		}{
			{"at the deadline", func() {}},
			{"after a's next flush of input", func() { c.tick(t) }},
			{"once a has stored the end", func() {
				c.advanceTo(61 * time.Second)
				waitFor(t, "a to store the end", func() bool {
					s, err := a.db.Session(context.Background(), sid)
					return err == nil && s.Revoked
				})
			}},
		} {
			step.move()
			if got := b.endedReason(t, in.Token); got != protocol.ReasonIdle {
				t.Errorf("Authenticate on b %s: got reason %v, want idle", step.when, got)
			}
		}
	})
}

// No node's wall clock decides a deadline: with node b's clock 5 s ahead
// of the layer's and node c's 5 s behind, a session signed in on c, kept
// by input on b, with a tab on each of a, b and c (those on a and b
// adopted 100 ms after the sign-in, once it is on the layer's clock), ends
// on every node at its true deadline, not a microsecond before, not a
// microsecond after. Each node's deadline reads differently on its own
// clock, by its skew. a and b each renewed a token with the input (b for
// its own; a, which had issued none, on hearing of it); c, whose sign-in
// token had almost 40 s left then, renews it a warning's lead before it
// ends, at t0+45 s on the layer's clock (t0+40 s on c's own).
func TestClusterClockSkew(t *testing.T) {
	c := newClusterFixture(t)
	a, b, n3 := c.join(t, "a", 0), c.join(t, "b", 5*time.Second), c.join(t, "c", -5*time.Second)
	nodes := []*node{a, b, n3}
	in := n3.login(t, "cashier")
	sid := in.Claims.SessionID
	c.tick(t)
	tabs := map[*node]*socket{}
	for _, n := range nodes {
		tab, first := n.open(t, pos.DefaultDomain, in.Token)
		tabs[n] = tab
		if first != state(59900) {
			t.Errorf("tab on %s, on connect: got %q, want %q", n.id, first, state(59900))
		}
	}
	c.advanceTo(20 * time.Second)
	tabs[b].activity(0)
	c.tick(t)
	for _, n := range nodes {
		n.waitDeadline(t, sid, 80*time.Second) // t0+80 s on the layer's clock; t0+85 s on b's, t0+75 s on c's
		n.socks.take(sid)
		tabs[n].take()
	}
	c.advanceTo(45*time.Second - time.Microsecond)
	for _, n := range nodes {
		wantLines(t, "node "+n.id+" before c's token's exp-WarnLead", n.socks.take(sid))
	}
	renewed := state(35000) + " token=JWT"
	c.advanceTo(45 * time.Second)
	wantLines(t, "node c at its token's exp-WarnLead", n3.socks.take(sid), "send "+renewed)
	c.advanceTo(80*time.Second - time.Microsecond)
	for _, n := range nodes {
		wantLines(t, "node "+n.id+" before the deadline", n.socks.take(sid), "send warning remaining=15000")
	}
	c.advanceTo(80 * time.Second)
	for _, n := range nodes {
		wantLines(t, "node "+n.id+" at the deadline", n.socks.take(sid), "signout idle 60")
		want := append([]string{"warning remaining=15000"}, idleEnd...)
		if n == n3 {
			want = append([]string{renewed}, want...)
		}
		wantLines(t, "tab on "+n.id, tabs[n].take(), want...)
	}
}

// A node that restarts loads the live sessions from the store, whose
// times are the wall clock of whichever node wrote them: a node whose
// clock is off must still give a tab that connects to it the session's
// true remaining time, and end it at the true deadline. Input on b (5 s
// ahead) is stored in b's time, then c (5 s behind) restarts, which would
// read it as 10 s later than it was; and the other way round, 10 s
// earlier.
func TestClusterClockSkewAcrossARestart(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		writer, reader         string
		writerSkew, readerSkew time.Duration
	}{
		{"stored ahead, read behind", "b", "c", 5 * time.Second, -5 * time.Second},
		{"stored behind, read ahead", "c", "b", -5 * time.Second, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClusterFixture(t)
			a := c.join(t, "a", 0)
			writer := c.join(t, tc.writer, tc.writerSkew)
			re := c.join(t, tc.reader, tc.readerSkew)
			s := a.login(t, "cashier")
			sid := s.Claims.SessionID
			c.tick(t)
			tabW, _ := writer.open(t, pos.DefaultDomain, s.Token)
			c.advanceTo(20 * time.Second)
			tabW.activity(0)
			c.tick(t)
			c.advanceTo(21 * time.Second) // the writer's flush stores the input, in its own time
			waitFor(t, "the input in the store", func() bool {
				got, err := a.db.Session(context.Background(), sid)
				return err == nil && got.LastActivity.Equal(t0.Add(20*time.Second+tc.writerSkew))
			})

			c.advanceTo(40 * time.Second)
			re.restart(t)
			tab, first := re.open(t, pos.DefaultDomain, s.Token)
			if first != state(40000) {
				t.Errorf("tab on the restarted %s, on connect: got %q, want %q (40 s left)", re.id, first, state(40000))
			}
			c.advanceTo(80*time.Second - time.Microsecond)
			wantLines(t, "tab on the restarted "+re.id+" before the deadline", tab.take(), "warning remaining=15000")
			c.advanceTo(80 * time.Second)
			wantLines(t, "tab on the restarted "+re.id+" at the deadline", tab.take(), idleEnd...)
		})
	}
}

// A session that node a's idle clock ended is refused on node c, whose
// clock is 5 s behind, before a has stored the end too: a drops the
// session from the layer only once its store has the end, so c finds it
// past its deadline on the layer's clock rather than falling back on the
// store's last activity, a's wall-clock time, which c's clock reads as
// 5 s more recent (alive). a's store writes fail from just before the
// deadline (a full disk), so a cannot store the end for 2 s; c, asked
// about the token, ends the session on its own idle clock and stores that
// at its next flush.
func TestClusterIdleEndRefusedBeforeItIsStored(t *testing.T) {
	ctx := context.Background()
	c := newClusterFixture(t)
	a, slow := c.join(t, "a", 0), c.join(t, "c", -5*time.Second)
	in := a.login(t, "cashier")
	sid := in.Claims.SessionID
	c.tick(t)
	c.advanceTo(59 * time.Second)
	a.store.Failing.Store(true)
	c.advanceTo(60 * time.Second)
	wantLines(t, "node a at the deadline", a.socks.take(sid), "send warning remaining=15000", "signout idle 60")
	for c.clock.Now().Before(t0.Add(62 * time.Second)) {
		c.tick(t) // a's flusher runs: it would drop the session here
		if got := slow.endedReason(t, in.Token); got != protocol.ReasonIdle {
			t.Fatalf("Authenticate on c %v after the deadline, the end unstored: got reason %v, want idle", c.clock.Now().Sub(t0.Add(time.Minute)), got)
		}
	}
	if n := a.layer.forgotten.Load(); n != 0 {
		t.Errorf("a dropped %d sessions from the layer while its store could not end them, want 0", n)
	}

	a.store.Failing.Store(false)
	c.advanceTo(63 * time.Second) // a's flush stores the end; the layer drops it next
	waitFor(t, "a to store the end", func() bool {
		a.svc.cl.mu.Lock()
		defer a.svc.cl.mu.Unlock()
		return len(a.svc.cl.ending) == 0
	})
	c.tick(t)
	waitFor(t, "a to drop the session from the layer", func() bool { return a.layer.forgotten.Load() == 1 })
	if n := a.layer.forgotAlive.Load(); n != 0 {
		t.Errorf("a dropped %d sessions from the layer that the store still called alive, want 0", n)
	}
	if _, ok, err := a.inner.Idle(ctx, pos.DefaultDomain, sid); ok || err != nil {
		t.Errorf("the layer after the drop: got the session (err %v), want it gone", err)
	}
	if got := slow.endedReason(t, in.Token); got != protocol.ReasonIdle {
		t.Errorf("Authenticate on c once the end is stored: got reason %v, want idle", got)
	}
}
