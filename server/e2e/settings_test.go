package e2e

import (
	"idleguard/server/app"
	"idleguard/server/internal/apptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// recordStates makes the page keep every idleguard:state detail, with the
// page's time, in window.__e2eStates.
const recordStates = `(() => {
	window.__e2eStates = [];
	addEventListener('idleguard:state', e => __e2eStates.push(Object.assign({at: performance.now()}, e.detail)));
	return true;
})()`

// stateEvent is one recorded idleguard:state.
type stateEvent struct {
	guardState
	At float64 `json:"at"`
}

// An admin's change reaches an open POS page at once: its remaining time
// follows the new Expiration Time within a second, and an Expiration Time
// below the cashier's idle time signs the cashier out at once.
func TestE2ESettingFollows(t *testing.T) {
	s := apptest.Start(t, app.RunReady)
	admin := apptest.SetExpiration(t, s.Base, 30)
	b := newE2EBrowser(t)

	cashier := b.isolatedTab(t, "cashier")
	cashier.signIn(s.Base, "cashier", "demo")
	cashier.waitGuard()
	eval[bool](cashier, recordStates)
	// The page reports input on its own schedule (every 3 s at 30 s): wait
	// until the server counts from the key, or the change below would be
	// measured against an idle time the server never heard of.
	last := cashier.keyAfterIdle(30 * time.Second)
	time.Sleep(time.Until(last.to.Add(1500 * time.Millisecond))) // the cashier's idle time grows

	// The admin signs in afresh before each change: on a loaded machine
	// the steps above can outlast 20 s, and the admin's own idle session
	// would end with the change it makes.
	admin, _ = apptest.MustLogin(t, s.Base, "admin", "demo")
	clk := cashier.clock()
	changed := timed(func() { apptest.MustSetExpiration(t, s.Base, admin, 20) })
	var got stateEvent
	for {
		states := eval[[]stateEvent](cashier, `__e2eStates.filter(s => s.expiration_seconds === 20)`)
		if len(states) > 0 {
			got = states[0]
			break
		}
		if time.Since(changed.to) > apptest.WaitLimit {
			t.Fatalf("no idleguard:state with the new Expiration Time 20 s; last state %+v", cashier.state())
		}
		time.Sleep(e2ePoll)
	}
	// When the page heard it, on the page's own clock (the event's time),
	// not when the poll saw it; the change was made during the PUT.
	heard := clk.at(got.At)
	if soonest := heard.from.Sub(changed.to); soonest > time.Second {
		t.Errorf("the page heard the new Expiration Time at least %v after the change, want within 1s (change %v, heard %v)",
			soonest.Round(time.Millisecond), changed, heard)
	} else {
		t.Logf("the page heard the new Expiration Time %s after the change", spread(changed, heard))
	}
	// The remaining time counts from the cashier's last key: 20 s less the
	// idle time when the server worked it out, during the PUT. The slack
	// covers the report's trip (the server dates the key from its age on
	// arrival) and whole-millisecond rounding.
	const slack = 100 * time.Millisecond
	if got.RemainingMs == nil {
		t.Fatalf("state %+v has no remaining time", got)
	}
	remaining := time.Duration(*got.RemainingMs) * time.Millisecond
	if hi, lo := 20*time.Second-changed.from.Sub(last.to)+slack, 20*time.Second-changed.to.Sub(last.from)-slack; remaining > hi || remaining < lo {
		t.Errorf("remaining after the change: got %v, want 20s less the idle time, between %v and %v", remaining, lo, hi)
	}
	if !got.Connected {
		t.Errorf("state after the change: %+v, want connected", got)
	}

	// Now below the cashier's idle time (over 1.5 s): signed out at once,
	// which is held to the same second as following a change.
	admin, _ = apptest.MustLogin(t, s.Base, "admin", "demo")
	changed = timed(func() { apptest.MustSetExpiration(t, s.Base, admin, 1) })
	landed := waitSignedOut(t, changed.to, cashier)[0]
	if !landed.at.from.IsZero() && landed.at.from.Sub(changed.to) > time.Second {
		t.Errorf("signed out at least %v after the Expiration Time went below the idle time, want within 1s (change %v, landing %v)",
			landed.at.from.Sub(changed.to).Round(time.Millisecond), changed, landed.at)
	} else {
		t.Logf("signed out %s after the Expiration Time went below the idle time", spread(changed, landed.at))
	}
	u, _ := url.Parse(landed.href)
	if q := u.Query(); q.Get("reason") != "setting_changed" || q.Get("expiration") != "1" {
		t.Errorf("landed on %q, want reason=setting_changed and expiration=1", landed.href)
	}
	if text := cashier.text("login-reason"); !strings.Contains(text, "Expiration Time was changed to 1 second") {
		t.Errorf("#login-reason says %q, want it to name the change to 1 second", text)
	}
}
