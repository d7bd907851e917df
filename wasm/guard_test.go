package main

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"idleguard/server/protocol"
)

// recorder is a Port that writes down what the guard did, one line a call.
type recorder struct {
	calls   []string
	dialOK  bool
	warning int64 // last countdown shown, -1 when hidden
}

func (r *recorder) add(s string) { r.calls = append(r.calls, s) }

func (r *recorder) Dial() bool               { r.add("dial"); return r.dialOK }
func (r *recorder) Hangup()                  { r.add("hangup") }
func (r *recorder) Send(m protocol.Message)  { r.add("send " + string(protocol.Append(nil, m))) }
func (r *recorder) RenewToken(token string)  { r.add("renew " + token) }
func (r *recorder) CheckSession()            { r.add("check") }
func (r *recorder) Logout()                  { r.add("logout") }
func (r *recorder) HideWarning()             { r.warning = -1; r.add("hide") }
func (r *recorder) AnnounceWarning(ms int64) { r.add("warning " + strconv.FormatInt(ms, 10)) }
func (r *recorder) ShowWarning(ms int64)     { r.warning = ms; r.add("show " + strconv.FormatInt(ms, 10)) }
func (r *recorder) SignOut(re protocol.Reason, exp int64) {
	r.add("signout " + re.String() + " " + strconv.FormatInt(exp, 10))
}
func (r *recorder) Announce(s Status) {
	line := "state connected=" + strconv.FormatBool(s.Connected)
	if s.Known {
		line += " remaining=" + strconv.FormatInt(s.RemainingMs, 10)
	}
	r.add(line)
}

// take returns the calls since the last take.
func (r *recorder) take() []string {
	c := r.calls
	r.calls = nil
	return c
}

// newTestGuard returns a started guard whose socket is open and has heard
// state remaining=60000 expiration=60 warn=15000 report=1000, all at t=1000.
func newTestGuard(t *testing.T) (*Guard, *recorder) {
	t.Helper()
	r := &recorder{dialOK: true, warning: -1}
	g := NewGuard(r, Backoff{Base: 500, Cap: 10000, Rand: func() float64 { return 0.5 }})
	g.Start(1000)
	g.Opened(1000)
	g.Received(1000, []byte("state remaining=60000 expiration=60 warn=15000 report=1000"))
	want := []string{"dial", "state connected=true", "state connected=true remaining=60000"}
	if got := r.take(); !slices.Equal(got, want) {
		t.Fatalf("start: got %q, want %q", got, want)
	}
	return g, r
}

func expect(t *testing.T, r *recorder, step string, want ...string) {
	t.Helper()
	if got := r.take(); !slices.Equal(got, want) {
		t.Errorf("%s: got %q, want %q", step, got, want)
	}
}

func TestReportsInputWithItsAge(t *testing.T) {
	g, r := newTestGuard(t)
	g.Tick(1250, 0)
	expect(t, r, "no input")
	g.Tick(1500, 1300)
	expect(t, r, "first input", "send activity ago=200")
	g.Tick(1750, 1300)
	expect(t, r, "same input again")
	g.Tick(2000, 1900)
	expect(t, r, "within report interval")
	g.Tick(2500, 2400)
	expect(t, r, "after report interval", "send activity ago=100")
}

func TestReportedActivityMovesLocalDeadline(t *testing.T) {
	g, r := newTestGuard(t)
	g.Tick(30000, 29000) // deadline becomes 29000+60000
	g.Closed(30000, 1006)
	r.take()
	g.SessionChecked(30000, SessionInfo{}) // server unreachable
	g.retryAt = 1 << 40                    // keep the redials out of the way
	g.Tick(74000, 29000)
	expect(t, r, "inside warning lead", "show 15000", "warning 15000")
	g.Tick(88999, 29000)
	expect(t, r, "just before", "show 1")
	g.Tick(89000, 29000)
	expect(t, r, "deadline", "signout idle 60")
}

func TestWarningReportsInputAtOnceAndStateClosesIt(t *testing.T) {
	g, r := newTestGuard(t)
	g.Tick(1500, 1400)
	r.take()
	g.Received(46000, []byte("warning remaining=15000"))
	expect(t, r, "warning", "show 15000", "warning 15000")
	g.Tick(46250, 0)
	expect(t, r, "countdown", "show 14750")
	g.Tick(46500, 46400) // within the report interval, but the dialog shows
	expect(t, r, "input while warning", "send activity ago=100", "hide")
	g.Received(46600, []byte("state remaining=59900 expiration=60 warn=15000 report=1000"))
	expect(t, r, "state", "state connected=true remaining=59900")
	if r.warning != -1 {
		t.Errorf("dialog still shows %d", r.warning)
	}
}

func TestStateWithinLeadShowsWarning(t *testing.T) {
	g, r := newTestGuard(t)
	g.Received(2000, []byte("state remaining=9000 expiration=60 warn=15000 report=1000"))
	expect(t, r, "state", "show 9000", "warning 9000", "state connected=true remaining=9000")
	g.Received(2100, []byte("state remaining=8900 expiration=60 warn=15000 report=1000"))
	expect(t, r, "again", "state connected=true remaining=8900")
}

func TestLogoutFrameSignsOut(t *testing.T) {
	for frame, want := range map[string]string{
		"logout reason=idle expiration=60":           "signout idle 60",
		"logout reason=setting_changed expiration=1": "signout setting_changed 1",
		"logout reason=signed_out":                   "signout signed_out 60",
		"logout reason=revoked":                      "signout revoked 60",
	} {
		g, r := newTestGuard(t)
		g.Received(2000, []byte(frame))
		expect(t, r, frame, want)
		g.Closed(2001, protocol.CloseIdle)
		g.Tick(99999, 99000)
		expect(t, r, frame+": after")
		if !g.Done() {
			t.Errorf("%s: not done", frame)
		}
	}
}

func TestCloseCodes(t *testing.T) {
	for code, want := range map[int]string{
		protocol.CloseIdle:           "signout idle 60",
		protocol.CloseSignedOut:      "signout signed_out 60",
		protocol.CloseSettingChanged: "signout setting_changed 60",
		protocol.CloseRevoked:        "signout revoked 60",
		protocol.CloseUnauthorized:   "signout revoked 60",
	} {
		g, r := newTestGuard(t)
		g.Closed(2000, code)
		expect(t, r, "close "+strconv.Itoa(code), want)
	}
}

func TestReconnectsWithBackoffAndChecksSession(t *testing.T) {
	g, r := newTestGuard(t)
	g.Closed(2000, protocol.CloseGoingAway) // rand 0.5 of 500: retry at 2250
	expect(t, r, "going away", "check", "state connected=false remaining=59000")
	g.Tick(2249, 0)
	expect(t, r, "before retry")
	g.Tick(2250, 0)
	expect(t, r, "retry", "dial")
	g.Closed(2300, 1006) // 0.5 of 1000: retry at 2800; a check is still in flight
	expect(t, r, "failed again")
	g.SessionChecked(2400, SessionInfo{Status: 0})
	expect(t, r, "unreachable: keep trying")
	g.Tick(2800, 0)
	expect(t, r, "second retry", "dial")
	g.Closed(2900, 1006)
	expect(t, r, "third failure", "check")
	g.SessionChecked(3000, SessionInfo{Status: 200, HasRemaining: true, RemainingMs: 40000, ExpirationS: 60, WarnMs: 15000})
	expect(t, r, "alive", "state connected=false remaining=40000")
	g.SessionChecked(3100, SessionInfo{Status: 401, Reason: "setting_changed"})
	expect(t, r, "refused", "signout setting_changed 60")
}

func TestRefusedWithoutReasonIsRevoked(t *testing.T) {
	r := &recorder{warning: -1}
	g := NewGuard(r, Backoff{Base: 500, Cap: 10000, Rand: func() float64 { return 0 }})
	g.Start(0) // Dial fails outright
	expect(t, r, "start", "dial", "check")
	g.SessionChecked(10, SessionInfo{Status: 401})
	expect(t, r, "401", "signout revoked 0")
}

func TestBackoffResetsOnState(t *testing.T) {
	g, r := newTestGuard(t)
	for i := 0; i < 5; i++ {
		g.Closed(2000, 1006)
		g.Tick(g.retryAt, 0)
	}
	g.Opened(50000)
	g.Received(50000, []byte("state remaining=60000 expiration=60 warn=15000 report=1000"))
	r.take()
	g.Closed(50000, 1006)
	if d := g.retryAt - 50000; d != 250 {
		t.Errorf("after a good connection the delay is %d, want 250", d)
	}
}

func TestDialTimeout(t *testing.T) {
	g, r := newTestGuard(t)
	g.Closed(2000, 1006)
	g.SessionChecked(2100, SessionInfo{Status: 503})
	g.Tick(2250, 0)
	r.take()
	g.Tick(2250+dialTimeoutMs-1, 0)
	expect(t, r, "still connecting")
	g.Tick(2250+dialTimeoutMs, 0)
	expect(t, r, "timed out", "hangup", "check")
}

func TestConnectedGrace(t *testing.T) {
	g, r := newTestGuard(t)
	g.Received(46000, []byte("warning remaining=15000"))
	r.take()
	g.Tick(61000, 0)
	expect(t, r, "deadline, connected", "show 0")
	g.Tick(61000+connectedGraceMs, 0)
	expect(t, r, "server silent", "signout idle 60")
}

func TestResume(t *testing.T) {
	g, r := newTestGuard(t)
	g.Resume(2000)
	expect(t, r, "open", "send sync")
	g.Closed(2000, 1006)
	r.take()
	g.Resume(2001)
	expect(t, r, "down", "dial")
	g.Resume(2002)
	expect(t, r, "dialing")
}

func TestRenewsToken(t *testing.T) {
	g, r := newTestGuard(t)
	g.Received(2000, []byte("state remaining=60000 expiration=60 warn=15000 report=1000 token=a.b.c"))
	expect(t, r, "token", "renew a.b.c", "state connected=true remaining=60000")
}

func TestStay(t *testing.T) {
	g, r := newTestGuard(t)
	g.Stay(2000, 1990)
	expect(t, r, "no dialog")
	g.Received(46000, []byte("warning remaining=15000"))
	r.take()
	g.Stay(50000, 49990)
	expect(t, r, "stay", "send stay", "hide")
	g.Tick(50250, 49990)
	expect(t, r, "the click is not reported twice")
	g.Stay(50300, 49990)
	expect(t, r, "second stay (cancel after Escape)")
}

func TestStayWhileDown(t *testing.T) {
	g, r := newTestGuard(t)
	g.Received(46000, []byte("warning remaining=15000"))
	g.Closed(47000, 1006)
	r.take()
	g.Stay(48000, 47990)
	expect(t, r, "down", "dial")
	g.Opened(48100)
	expect(t, r, "open", "send stay", "hide", "state connected=true remaining=60000")
}

func TestSignOutNow(t *testing.T) {
	g, r := newTestGuard(t)
	g.Received(46000, []byte("warning remaining=15000"))
	r.take()
	g.SignOutNow(47000)
	expect(t, r, "open", "send signout")
	g.Tick(47000+signOutWaitMs, 0)
	expect(t, r, "no answer", "show 12000", "logout")
	g.LogoutDone()
	expect(t, r, "logged out", "signout signed_out 60")
}

func TestSignOutNowWhileDown(t *testing.T) {
	g, r := newTestGuard(t)
	g.Closed(2000, 1006)
	r.take()
	g.SignOutNow(3000)
	expect(t, r, "down", "logout")
	g.SignOutNow(3001)
	expect(t, r, "twice")
	g.Tick(3000+logoutWaitMs, 0)
	if got := r.take(); !slices.Contains(got, "signout signed_out 60") {
		t.Errorf("logout never answered: got %q, want a sign-out", got)
	}
}

func TestIgnoresBadFrames(t *testing.T) {
	g, r := newTestGuard(t)
	for _, f := range []string{"", "hello", "state", "logout reason=bored", "activity ago=1"} {
		g.Received(2000, []byte(f))
	}
	expect(t, r, "bad frames")
	if g.Done() {
		t.Error("a bad frame signed the page out")
	}
}

func TestReportMsFloor(t *testing.T) {
	g, r := newTestGuard(t)
	g.Received(2000, []byte("state remaining=60000 expiration=60 warn=15000 report=1"))
	r.take()
	g.Tick(2000, 1999)
	g.Tick(2050, 2049)
	g.Tick(2100, 2099)
	got := strings.Join(r.take(), ",")
	if want := "send activity ago=1,send activity ago=1"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestNextTick(t *testing.T) {
	g, r := newTestGuard(t) // open, report 1000, deadline 61000
	if d := g.NextTick(2000); d != 1000 {
		t.Errorf("calm: %d, want the report interval 1000", d)
	}
	g.Received(2000, []byte("state remaining=60000 expiration=60 warn=15000 report=60000"))
	if d := g.NextTick(2000); d != calmTickMs {
		t.Errorf("calm, slow reports: %d, want %d", d, calmTickMs)
	}
	g.Received(2000, []byte("state remaining=1000 expiration=60 warn=500 report=60000"))
	if d := g.NextTick(2000); d != 1000+connectedGraceMs {
		t.Errorf("near the deadline: %d, want %d", d, 1000+connectedGraceMs)
	}
	if d := g.NextTick(2000 + 1000 + connectedGraceMs); d != TickMs {
		t.Errorf("past the deadline: %d, want %d", d, TickMs)
	}
	g.Received(3000, []byte("warning remaining=400"))
	if d := g.NextTick(3000); d != TickMs {
		t.Errorf("warning: %d, want %d", d, TickMs)
	}
	g.Received(3100, []byte("state remaining=60000 expiration=60 warn=15000 report=1000"))
	g.Closed(3200, 1006)
	if d := g.NextTick(3200); d != TickMs {
		t.Errorf("down: %d, want %d", d, TickMs)
	}
	g.Received(3300, []byte("logout reason=idle"))
	r.take()
	g.Closed(3300, protocol.CloseIdle)
	if d := g.NextTick(3300); d >= 0 {
		t.Errorf("signed out: %d, want never", d)
	}
}
