package sessions

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"idleguard/server/pos"
	"idleguard/server/protocol"
)

// A page that keeps reporting input is never warned, and every report
// moves the deadline: the warning comes WarnLead before the last input's
// Expiration Time, not before.
func TestActivityMovesTheDeadline(t *testing.T) {
	f := newFixture(t)
	in := f.login(t, "cashier")
	sid := in.Claims.SessionID
	c, first := f.connect(t, sid)
	if want := state(60000); first != want {
		t.Fatalf("on connect: got %q, want %q", first, want)
	}

	// Busy for 100 s, a report every 5 s (the policy's ReportEvery).
	for range 20 {
		f.clock.Advance(5 * time.Second)
		c.activity(0)
		if st, ok := f.svc.tracker.Status(sid); !ok || st.Remaining != 60*time.Second {
			t.Fatalf("after activity at %v: got remaining %v alive %v, want 60s", f.clock.Now().Sub(t0), st.Remaining, ok)
		}
	}
	for _, call := range f.socks.take(sid) {
		// Renewed tokens (about two per Expiration Time) are all it heard.
		if !strings.HasPrefix(call, "send state ") || !strings.HasSuffix(call, " token=JWT") {
			t.Errorf("while active: got %q, want only state frames with a renewed token", call)
		}
	}
	c.take()

	// Input 2 s before the report: the deadline is 2 s earlier.
	f.clock.Advance(5 * time.Second)
	c.activity(2000)
	c.frame(protocol.Message{Kind: protocol.Sync})
	wantLines(t, "sync after activity ago=2000", c.take(), state(58000))
	// An age reaching back before the last input changes nothing.
	c.activity(60000)
	c.frame(protocol.Message{Kind: protocol.Sync})
	wantLines(t, "sync after an older input", c.take(), state(58000))

	// The last token, renewed at t0+90 s, ends at t0+150 s, the tabs'
	// deadline as far as the service knows: a warning's lead before it
	// they hear the true one, t0+163 s, with a token that lasts to it.
	f.clock.Advance(30*time.Second - time.Millisecond)
	wantLines(t, "just before the tabs' deadline-WarnLead", f.socks.take(sid))
	f.clock.Advance(time.Millisecond)
	renewed := state(28000) + " token=JWT"
	wantLines(t, "at the tabs' deadline-WarnLead", f.socks.take(sid), "send "+renewed)
	wantLines(t, "the socket at the tabs' deadline-WarnLead", c.take(), renewed)
	f.wantTokenTo(t, sid, 163*time.Second)

	f.clock.Advance(13*time.Second - time.Millisecond)
	wantLines(t, "just before the warning", f.socks.take(sid))
	f.clock.Advance(time.Millisecond)
	wantLines(t, "at deadline-WarnLead", f.socks.take(sid), "send warning remaining=15000")
	wantLines(t, "the socket at the warning", c.take(), "warning remaining=15000")
}

// wantTokenTo checks that the newest token sent to session sid's tabs is
// valid and ends at t0+at, the deadline it was issued for.
func (f *fixture) wantTokenTo(t *testing.T, sid string, at time.Duration) {
	t.Helper()
	toks := f.socks.renewed(sid)
	if len(toks) == 0 {
		t.Fatalf("no token sent to %s, want one ending at t0+%v", ShortID(sid), at)
	}
	claims, err := f.svc.tokens.Verify(toks[len(toks)-1])
	if err != nil || claims.SessionID != sid || !claims.ExpiresAt.Equal(t0.Add(at)) {
		t.Errorf("newest token: got sid %s exp t0+%v (%v), want %s, t0+%v", ShortID(claims.SessionID), claims.ExpiresAt.Sub(t0), err, ShortID(sid), at)
	}
}

// An idle tab of a session another tab keeps alive hears the deadline
// that tab's input set before its own runs out: input in tab a at t0+25 s
// moves the deadline to t0+85 s but renews no token (the sign-in's, to
// t0+60 s, has more than half its life left), so tab b knows only t0+60 s,
// and the page signs itself out 2 s after the deadline it knows, should
// the server fall silent. A warning's lead before t0+60 s every tab hears
// t0+85 s with a token to it; nothing signs out until then.
func TestIdleTabHearsTheDeadlineAnotherTabMoved(t *testing.T) {
	f := newFixture(t)
	sid := f.login(t, "cashier").Claims.SessionID
	a, _ := f.connect(t, sid)
	b, _ := f.connect(t, sid)

	f.clock.Advance(25 * time.Second)
	a.activity(0)
	wantLines(t, "input in tab a", f.socks.take(sid))
	wantLines(t, "tab b after tab a's input", b.take())

	f.clock.Advance(20*time.Second - time.Millisecond)
	wantLines(t, "before t0+60s-WarnLead", f.socks.take(sid))
	f.clock.Advance(time.Millisecond)
	renewed := state(40000) + " token=JWT" // t0+85 s
	wantLines(t, "at t0+60s-WarnLead", f.socks.take(sid), "send "+renewed)
	wantLines(t, "tab a", a.take(), renewed)
	wantLines(t, "tab b, idle", b.take(), renewed)
	f.wantTokenTo(t, sid, 85*time.Second)

	f.clock.Advance(25*time.Second - time.Millisecond)
	wantLines(t, "before the warning", f.socks.take(sid))
	f.clock.Advance(time.Millisecond)
	wantLines(t, "at t0+85s-WarnLead", f.socks.take(sid), "send warning remaining=15000")
	f.clock.Advance(15*time.Second - time.Microsecond)
	wantLines(t, "a microsecond before t0+85s", f.socks.take(sid))
	f.clock.Advance(time.Microsecond)
	wantLines(t, "at t0+85s", f.socks.take(sid), "signout idle 60")
	wantLines(t, "tab b", b.take(), "warning remaining=15000", "logout reason=idle expiration=60", "close 4001 idle")
}

// The warning reaches every tab; input in one of them ends it in all of
// them, with one state frame each, and the next warning comes a full
// Expiration Time later.
func TestWarningAndActivityClearingIt(t *testing.T) {
	f := newFixture(t)
	in := f.login(t, "cashier")
	sid := in.Claims.SessionID
	a, _ := f.connect(t, sid)
	b, _ := f.connect(t, sid)

	f.clock.Advance(45*time.Second - time.Microsecond)
	wantLines(t, "before deadline-WarnLead", f.socks.take(sid))
	f.clock.Advance(time.Microsecond)
	wantLines(t, "at deadline-WarnLead", f.socks.take(sid), "send warning remaining=15000")
	wantLines(t, "tab a", a.take(), "warning remaining=15000")
	wantLines(t, "tab b", b.take(), "warning remaining=15000")

	// Sync (a tab becoming visible) is not activity: the warning stands.
	f.clock.Advance(time.Second)
	b.frame(protocol.Message{Kind: protocol.Sync})
	wantLines(t, "sync while warned", b.take(), state(14000))
	wantLines(t, "sync is not activity", f.socks.take(sid))

	a.activity(0)
	// The token would end before the new deadline: it rides along.
	want := state(60000) + " token=JWT"
	wantLines(t, "activity while warned", f.socks.take(sid), "send "+want)
	wantLines(t, "tab a after activity", a.take(), want)
	wantLines(t, "tab b after activity", b.take(), want)
	a.activity(0)
	wantLines(t, "more activity", f.socks.take(sid))

	f.clock.Advance(45*time.Second - time.Microsecond)
	wantLines(t, "before the next warning", f.socks.take(sid))
	f.clock.Advance(time.Microsecond)
	wantLines(t, "the next warning", f.socks.take(sid), "send warning remaining=15000")

	// "Stay signed in" clears it as input does.
	b.frame(protocol.Message{Kind: protocol.Stay})
	if got := f.socks.take(sid); len(got) != 1 || !strings.HasPrefix(got[0], "send "+state(60000)) {
		t.Errorf("stay while warned: got %q, want one state frame with 60000 ms to every tab", got)
	}
}

// "Stay signed in" with no warning standing and no token due is answered
// to its own tab only.
func TestStayAnswersItsOwnTab(t *testing.T) {
	f := newFixture(t)
	sid := f.login(t, "cashier").Claims.SessionID
	a, _ := f.connect(t, sid)
	b, _ := f.connect(t, sid)
	f.clock.Advance(2 * time.Second)
	a.frame(protocol.Message{Kind: protocol.Stay})
	wantLines(t, "tab a", a.take(), state(60000))
	wantLines(t, "tab b", b.take())
	wantLines(t, "the port", f.socks.take(sid))
}

// At the deadline, and not a microsecond before, every socket of the
// session gets a logout frame with reason idle and close code 4001, and the
// session is refused from then on with reason idle.
func TestExpiryAtTheDeadline(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	in := f.login(t, "cashier")
	sid := in.Claims.SessionID
	keep := f.login(t, "other")
	a, _ := f.connect(t, sid)
	b, _ := f.connect(t, sid)

	f.clock.Advance(60*time.Second - time.Microsecond)
	wantLines(t, "before the deadline", f.socks.take(sid), "send warning remaining=15000")
	if _, err := f.svc.Authenticate(ctx, pos.DefaultDomain, in.Token); err != nil {
		t.Fatalf("Authenticate a microsecond before the deadline: got %v, want alive", err)
	}
	a.take()
	b.take()

	f.clock.Advance(time.Microsecond)
	wantLines(t, "at the deadline", f.socks.take(sid), "signout idle 60")
	for name, c := range map[string]*socket{"a": a, "b": b} {
		wantLines(t, "tab "+name, c.take(), "logout reason=idle expiration=60", "close 4001 idle")
	}
	if got := f.endedReason(t, in.Token); got != protocol.ReasonIdle {
		t.Errorf("Authenticate after the deadline: got reason %v, want idle", got)
	}
	// Input arriving late revives nothing.
	if _, ok := f.svc.tracker.Touch(sid, f.clock.Now()); ok {
		t.Error("Touch after the deadline: got alive, want ended")
	}

	if err := f.svc.flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := f.session(t, sid)
	if !got.Revoked || got.RevokedReason != protocol.ReasonIdle || !got.RevokedAt.Equal(t0.Add(60*time.Second)) {
		t.Errorf("stored after the flush: got revoked=%v reason=%v at %v, want idle at %v",
			got.Revoked, got.RevokedReason, got.RevokedAt, t0.Add(60*time.Second))
	}
	if got := f.endedReason(t, in.Token); got != protocol.ReasonIdle {
		t.Errorf("Authenticate once written: got reason %v, want idle", got)
	}
	// The other session, equally idle, ended too; nothing else is left.
	wantLines(t, "the other session", f.socks.take(keep.Claims.SessionID), "send warning remaining=15000", "signout idle 60")
	if n, p := f.svc.Live(), f.clock.Pending(); n != 0 || p != 0 {
		t.Errorf("after every expiry: got %d live sessions and %d timers, want none", n, p)
	}
}

// A socket opened for a session that has ended hears why and is closed
// with the reason's close code, whatever ended it.
func TestConnectToEndedSession(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		end  func(t *testing.T, f *fixture, sid string)
		want []string
	}{
		{"signed out", func(t *testing.T, f *fixture, sid string) {
			f.svc.Logout(ctx, sid)
		}, []string{"logout reason=signed_out expiration=60", "close 4002 signed_out"}},
		{"idle, not yet written", func(t *testing.T, f *fixture, sid string) {
			f.clock.Advance(60 * time.Second)
		}, []string{"logout reason=idle expiration=60", "close 4001 idle"}},
		{"idle, written", func(t *testing.T, f *fixture, sid string) {
			f.clock.Advance(60 * time.Second)
			if err := f.svc.flush(ctx); err != nil {
				t.Fatal(err)
			}
		}, []string{"logout reason=idle expiration=60", "close 4001 idle"}},
		{"setting lowered", func(t *testing.T, f *fixture, sid string) {
			f.clock.Advance(20 * time.Second)
			if _, err := f.svc.UpdateExpiration(ctx, f.user(t, "admin"), 10); err != nil {
				t.Fatal(err)
			}
		}, []string{"logout reason=setting_changed expiration=10", "close 4003 setting_changed"}},
		{"revoked by another process", func(t *testing.T, f *fixture, sid string) {
			if err := f.store.RevokeSession(ctx, sid, t0, protocol.ReasonRevoked); err != nil {
				t.Fatal(err)
			}
			f.svc.readEnds(ctx)
		}, []string{"logout reason=revoked expiration=60", "close 4004 revoked"}},
		{"never existed", nil, []string{"logout reason=revoked expiration=60", "close 4004 revoked"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			sid := pos.NewSessionID()
			if tc.end != nil {
				sid = f.login(t, "cashier").Claims.SessionID
				tc.end(t, f, sid)
			}
			_, got := f.connect(t, sid)
			if want := strings.Join(tc.want, "; "); got != want {
				t.Errorf("on connect: got %q, want %q", got, want)
			}
		})
	}
}

// A session kept busy for N Expiration Times gets about two renewed tokens
// per Expiration Time, however many inputs it reports, each valid and
// ending at the deadline of its moment.
func TestTokenRenewalCadence(t *testing.T) {
	const n = 10 // Expiration Times
	f := newFixture(t)
	in := f.login(t, "cashier")
	sid := in.Claims.SessionID
	a, _ := f.connect(t, sid)
	b, _ := f.connect(t, sid)

	const step = 250 * time.Millisecond // the module's fastest tick
	inputs, renewals := 0, 0
	var last time.Time
	for f.clock.Now().Before(t0.Add(n * fixtureExpiration * time.Second)) {
		f.clock.Advance(step)
		a.activity(0)
		inputs++
		toks := f.socks.renewed(sid)
		if len(toks) == renewals {
			continue
		}
		renewals = len(toks)
		now := f.clock.Now()
		claims, err := f.svc.tokens.Verify(toks[len(toks)-1])
		if err != nil {
			t.Fatalf("renewed token at %v: %v", now.Sub(t0), err)
		}
		if claims.SessionID != sid || claims.Subject != "cashier" {
			t.Errorf("renewed token: got sid %s sub %q, want %s cashier", ShortID(claims.SessionID), claims.Subject, ShortID(sid))
		}
		if left := claims.ExpiresAt.Sub(now); left < 60*time.Second || left >= 61*time.Second {
			t.Errorf("renewed token at %v ends in %v, want the deadline, 60 s on (rounded up to the second)", now.Sub(t0), left)
		}
		if !last.IsZero() && now.Sub(last) < 20*time.Second {
			t.Errorf("renewals %v apart at %v, want about half an Expiration Time", now.Sub(last), now.Sub(t0))
		}
		last = now
	}
	if renewals < 2*n-1 || renewals > 2*n+1 {
		t.Errorf("busy for %d Expiration Times (%d inputs): got %d renewals, want about %d", n, inputs, renewals, 2*n)
	}
	// Every tab took every renewal.
	for name, c := range map[string]*socket{"a": a, "b": b} {
		if got := len(c.take()); got != renewals {
			t.Errorf("tab %s: got %d frames, want the %d renewals", name, got, renewals)
		}
	}
	toks := f.socks.renewed(sid)
	p, err := f.svc.Authenticate(context.Background(), pos.DefaultDomain, toks[len(toks)-1])
	if err != nil || p.Expired {
		t.Errorf("Authenticate the newest token: got expired=%v err=%v, want valid", p.Expired, err)
	}
}

// A session ends once, for the first reason: a "Sign out now" frame that
// the hub read just as the idle clock ended the session (the cashier
// clicked in the warning's last instant) must not rewrite idle as
// signed_out in the store.
func TestEndReasonKeptWhenSignOutFollowsExpiry(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	in := f.login(t, "cashier")
	sid := in.Claims.SessionID
	c, _ := f.connect(t, sid)
	f.clock.Advance(60 * time.Second)
	wantLines(t, "at the deadline", f.socks.take(sid), "send warning remaining=15000", "signout idle 60")
	f.clock.Advance(200 * time.Millisecond)
	c.frame(protocol.Message{Kind: protocol.SignOut})
	if err := f.svc.flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.session(t, sid); got.RevokedReason != protocol.ReasonIdle || !got.RevokedAt.Equal(t0.Add(60*time.Second)) {
		t.Errorf("stored: got %v at %v, want idle at the deadline", got.RevokedReason, got.RevokedAt.Sub(t0))
	}
	if got := f.endedReason(t, in.Token); got != protocol.ReasonIdle {
		t.Errorf("Authenticate: got reason %v, want idle", got)
	}
}

// The moment the tabs hear a sign-out, before the store has written it, a
// page that asks (GET /api/session on its way to the login page) must hear
// the true reason: not "idle" because the store still calls it alive.
func TestEndReasonTrueTheMomentTabsHearIt(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		end  func(f *fixture, sid string)
		want protocol.Reason
	}{
		{"sign-out", func(f *fixture, sid string) { f.svc.Logout(ctx, sid) }, protocol.ReasonSignedOut},
		{"setting lowered", func(f *fixture, sid string) {
			f.clock.Advance(30 * time.Second)
			admin, err := f.store.UserByName(ctx, pos.DefaultDomain, "admin")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.svc.UpdateExpiration(ctx, admin, 10); err != nil {
				t.Fatal(err)
			}
		}, protocol.ReasonSettingChanged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			in := f.login(t, "cashier")
			var heard protocol.Reason
			f.socks.onSignOut = func(sid string) {
				_, err := f.svc.Authenticate(ctx, pos.DefaultDomain, in.Token)
				var ended *EndedError
				if errors.As(err, &ended) {
					heard = ended.Reason
				}
			}
			tc.end(f, in.Claims.SessionID)
			if heard != tc.want {
				t.Fatalf("reason the moment the tabs heard it: got %v, want %v", heard, tc.want)
			}
		})
	}
}
