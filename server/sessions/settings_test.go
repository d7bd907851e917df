package sessions

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"idleguard/server/pos"
	"idleguard/server/protocol"
)

// till is one signed-in session with one open socket.
type till struct {
	in  SignedIn
	sid string
	tab *socket
}

func (f *fixture) openTill(t *testing.T, user string) till {
	t.Helper()
	in := f.login(t, user)
	tab, _ := f.connect(t, in.Claims.SessionID)
	return till{in: in, sid: in.Claims.SessionID, tab: tab}
}

// Raising the Expiration Time tells every session its new remaining time,
// one state frame each, ends a standing warning, and moves the next one.
// Each session's token still ends where the old time put it, before the
// new deadline: a warning's lead (now 30 s) before that, its tabs get a
// token that lasts to the deadline, with their remaining time; a's token
// ends within the new lead already, so a's comes at once.
func TestSettingRaised(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	a := f.openTill(t, "cashier") // idle 50 s when the setting changes
	f.clock.Advance(30 * time.Second)
	b := f.openTill(t, "other") // idle 20 s
	f.clock.Advance(20 * time.Second)
	c := f.openTill(t, "cashier") // idle 0 s
	wantLines(t, "before the change", f.socks.takeAll(), a.sid+" send warning remaining=15000")
	a.tab.take()

	admin := f.user(t, "admin")
	v, err := f.svc.UpdateExpiration(ctx, admin, 120)
	if err != nil {
		t.Fatalf("UpdateExpiration: %v", err)
	}
	if v.ExpirationSeconds != 120 || v.WarningSeconds != 30 || v.UpdatedBy != "admin" || !v.UpdatedAt.Equal(f.clock.Now()) {
		t.Errorf("view: got %+v, want 120 s, a 30 s warning, by admin now", v)
	}
	for _, tc := range []struct {
		name string
		till till
		ms   int64
	}{{"a", a, 70000}, {"b", b, 100000}, {"c", c, 120000}} {
		want := fmt.Sprintf("state remaining=%d expiration=120 warn=30000 report=5000", tc.ms)
		wantLines(t, "session "+tc.name, f.socks.take(tc.till.sid), "send "+want)
		wantLines(t, "tab "+tc.name, tc.till.tab.take(), want)
	}

	renewed := func(till till, ms int64) string {
		return fmt.Sprintf("%s send state remaining=%d expiration=120 warn=30000 report=5000 token=JWT", till.sid, ms)
	}
	f.clock.Advance(0)
	wantLines(t, "a's renewal, its token ending at t0+60 s", f.socks.takeAll(), renewed(a, 70000))
	f.wantTokenTo(t, a.sid, 120*time.Second)
	f.clock.Advance(10*time.Second - time.Millisecond)
	wantLines(t, "before b's token's exp-WarnLead", f.socks.takeAll())
	f.clock.Advance(time.Millisecond)
	wantLines(t, "b's renewal, its token ending at t0+90 s", f.socks.takeAll(), renewed(b, 90000))
	f.wantTokenTo(t, b.sid, 150*time.Second)
	f.clock.Advance(20*time.Second - time.Millisecond)
	wantLines(t, "before c's token's exp-WarnLead", f.socks.takeAll())
	f.clock.Advance(time.Millisecond)
	wantLines(t, "c's renewal, its token ending at t0+110 s", f.socks.takeAll(), renewed(c, 90000))
	f.wantTokenTo(t, c.sid, 170*time.Second)

	// a's warning now comes 30 s before its new deadline, at t0+90 s.
	f.clock.Advance(10*time.Second - time.Millisecond)
	wantLines(t, "before a's new warning", f.socks.takeAll())
	f.clock.Advance(time.Millisecond)
	wantLines(t, "a's new warning", f.socks.takeAll(), a.sid+" send warning remaining=30000")

	stored, err := f.store.Settings(ctx, pos.DefaultDomain)
	if err != nil || stored.ExpirationSeconds != 120 || stored.UpdatedBy != "admin" {
		t.Errorf("stored setting: got %+v %v, want 120 by admin", stored, err)
	}
	changes, err := f.svc.Changes(ctx, pos.DefaultDomain, 10)
	if err != nil || len(changes) == 0 {
		t.Fatalf("Changes: got %v %v", changes, err)
	}
	if got, want := changes[0], (pos.SettingsChange{At: t0.Add(50 * time.Second), By: "admin", Old: 60, New: 120}); !got.At.Equal(want.At) ||
		got.By != want.By || got.Old != want.Old || got.New != want.New {
		t.Errorf("newest change: got %+v, want %+v", got, want)
	}
}

// Lowering it signs out, with reason setting_changed, the sessions idle
// longer than the new time; the rest hear their new remaining time, and
// one already inside the new warning lead is warned at once.
func TestSettingLowered(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	a := f.openTill(t, "cashier") // idle 40 s when the setting changes
	f.clock.Advance(15 * time.Second)
	b := f.openTill(t, "other") // idle 25 s
	f.clock.Advance(15 * time.Second)
	c := f.openTill(t, "cashier") // idle 10 s
	f.clock.Advance(10 * time.Second)
	wantLines(t, "before the change", f.socks.takeAll())

	if _, err := f.svc.UpdateExpiration(ctx, f.user(t, "admin"), 30); err != nil {
		t.Fatalf("UpdateExpiration: %v", err)
	}
	wantLines(t, "session a", f.socks.take(a.sid), "signout setting_changed 30")
	wantLines(t, "tab a", a.tab.take(), "logout reason=setting_changed expiration=30", "close 4003 setting_changed")
	wantLines(t, "session b", f.socks.take(b.sid), "send state remaining=5000 expiration=30 warn=7500 report=3000")
	wantLines(t, "session c", f.socks.take(c.sid), "send state remaining=20000 expiration=30 warn=7500 report=3000")
	if got := f.endedReason(t, a.in.Token); got != protocol.ReasonSettingChanged {
		t.Errorf("Authenticate a: got reason %v, want setting_changed", got)
	}

	f.clock.Advance(0)
	wantLines(t, "b, inside the new lead", f.socks.takeAll(), b.sid+" send warning remaining=5000")
	f.clock.Advance(5 * time.Second)
	wantLines(t, "b's deadline", f.socks.takeAll(), b.sid+" signout idle 30")
	f.clock.Advance(7500*time.Millisecond - time.Millisecond)
	wantLines(t, "before c's warning", f.socks.takeAll())
	f.clock.Advance(time.Millisecond)
	wantLines(t, "c's warning", f.socks.takeAll(), c.sid+" send warning remaining=7500")

	if err := f.svc.flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.session(t, a.sid); !got.Revoked || got.RevokedReason != protocol.ReasonSettingChanged {
		t.Errorf("a stored: got revoked=%v reason=%v, want setting_changed", got.Revoked, got.RevokedReason)
	}
	if got := f.session(t, b.sid); !got.Revoked || got.RevokedReason != protocol.ReasonIdle {
		t.Errorf("b stored: got revoked=%v reason=%v, want idle", got.Revoked, got.RevokedReason)
	}
}

// A bad value or a user without Developer Edit changes nothing: not the
// setting, not its change record, not a session; a bad value's error names
// the field and the accepted range.
func TestSettingRefused(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	tl := f.openTill(t, "cashier")
	f.clock.Advance(10 * time.Second)
	admin, cashier := f.user(t, "admin"), f.user(t, "cashier")
	for _, tc := range []struct {
		name    string
		by      pos.User
		seconds int64
		code    string
	}{
		{"zero", admin, 0, pos.EINVALID},
		{"negative", admin, -60, pos.EINVALID},
		{"above the maximum", admin, pos.MaxExpirationSeconds + 1, pos.EINVALID},
		{"the largest int64", admin, 1<<63 - 1, pos.EINVALID},
		{"without Developer Edit", cashier, 120, pos.EFORBIDDEN},
		{"with no permissions at all", pos.User{Domain: pos.DefaultDomain, Name: "admin"}, 120, pos.EFORBIDDEN},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.settings(t, pos.DefaultDomain)
			changes, _ := f.svc.Changes(ctx, pos.DefaultDomain, 100)
			_, err := f.svc.UpdateExpiration(ctx, tc.by, tc.seconds)
			if got := pos.ErrorCode(err); got != tc.code {
				t.Fatalf("UpdateExpiration(%d): got %q (%v), want %q", tc.seconds, got, err, tc.code)
			}
			if tc.code == pos.EINVALID {
				var pe *pos.Error
				if !errors.As(err, &pe) || pe.Field != "expiration_seconds" ||
					!strings.Contains(pe.Message, "Expiration Time (expiration_seconds)") ||
					!strings.Contains(pe.Message, fmt.Sprintf("from 1 to %d", pos.MaxExpirationSeconds)) {
					t.Errorf("error: got %#v, want one naming expiration_seconds and the range 1 to %d", err, pos.MaxExpirationSeconds)
				}
			}
			if after := f.settings(t, pos.DefaultDomain); !reflect.DeepEqual(after, before) {
				t.Errorf("setting: got %+v, want unchanged %+v", after, before)
			}
			if after, _ := f.svc.Changes(ctx, pos.DefaultDomain, 100); len(after) != len(changes) {
				t.Errorf("change record: got %d changes, want %d", len(after), len(changes))
			}
			if stored, _ := f.store.Settings(ctx, pos.DefaultDomain); stored.ExpirationSeconds != fixtureExpiration {
				t.Errorf("stored setting: got %d, want %d", stored.ExpirationSeconds, fixtureExpiration)
			}
			wantLines(t, "the port", f.socks.takeAll())
			wantLines(t, "the tab", tl.tab.take())
			if st, ok := f.svc.tracker.Status(tl.sid); !ok || st.Remaining != 50*time.Second {
				t.Errorf("the session: got remaining %v alive %v, want 50s", st.Remaining, ok)
			}
		})
	}
}

// The bounds themselves are accepted.
func TestSettingBounds(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	for _, seconds := range []int64{1, pos.MaxExpirationSeconds} {
		v, err := f.svc.UpdateExpiration(ctx, f.user(t, "admin"), seconds)
		if err != nil || v.ExpirationSeconds != seconds {
			t.Errorf("UpdateExpiration(%d): got %d %v, want it saved", seconds, v.ExpirationSeconds, err)
		}
	}
}
