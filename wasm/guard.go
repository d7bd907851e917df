package main

import "idleguard/server/protocol"

// Port is everything the guard does to the page and the network. The
// browser implements it with syscall/js (browser.go); tests record the calls.
// No method calls back into the Guard before returning: answers come later,
// as Guard events.
type Port interface {
	// Dial opens the socket; it reports false when it could not even start
	// (the guard then treats it as a failed connection).
	Dial() bool
	// Hangup drops the socket without waiting for its close event.
	Hangup()
	// Send writes one frame; called only while the socket is open.
	Send(m protocol.Message)
	// RenewToken hands a renewed token to POST /api/token, which sets the
	// HttpOnly cookie.
	RenewToken(token string)
	// CheckSession asks GET /api/session; the answer comes as SessionChecked.
	CheckSession()
	// Logout asks POST /api/logout; LogoutDone follows, whatever the answer.
	Logout()
	// ShowWarning shows the warning dialog, or updates its countdown.
	ShowWarning(remainingMs int64)
	HideWarning()
	// Announce dispatches idleguard:state; AnnounceWarning idleguard:warning.
	Announce(s Status)
	AnnounceWarning(remainingMs int64)
	// SignOut dispatches idleguard:signout, then leaves for the login page.
	SignOut(reason protocol.Reason, expirationS int64)
}

// Status is what idleguard:state tells the page.
type Status struct {
	Known       bool  // a remaining time has been heard from the server
	RemainingMs int64 // meaningful when Known
	ExpirationS int64
	WarnMs      int64
	Connected   bool
}

// SessionInfo is the answer to GET /api/session: Status 0 when the server
// could not be reached; the times only when Status is 200.
type SessionInfo struct {
	Status       int
	Reason       string // the 401 body's sign-out reason word, if any
	HasRemaining bool
	RemainingMs  int64
	ExpirationS  int64
	WarnMs       int64
}

// Tuning. The server's state frame overrides reportMs.
const (
	TickMs           = 250   // how often Tick runs while something is imminent
	calmTickMs       = 5000  // the longest wait between ticks
	defaultReportMs  = 1000  // until the server says otherwise
	minReportMs      = 100   // never report more often, whatever the server says
	dialTimeoutMs    = 10000 // a socket still connecting after this is dropped
	connectedGraceMs = 2000  // while connected, let the server's logout arrive first
	signOutWaitMs    = 2000  // "Sign out now": wait this long for the server's logout
	logoutWaitMs     = 3000  // then this long for POST /api/logout
)

type link uint8

const (
	linkDown    link = iota // waiting until retryAt
	linkDialing             // a socket is connecting
	linkOpen
)

// Guard decides, from what the page and the server tell it, when to report
// activity, when to warn, when to reconnect and when to sign out. It is the
// module's policy and has no I/O of its own: every method takes the current
// time on the page's monotonic clock (performance.now, in ms), and input
// times are event.timeStamp values on that same clock.
//
// The server owns the deadline. The guard keeps its own copy (the last
// remaining time heard, moved on by the activity it reports) only so that an
// unattended page signs itself out when the server cannot be reached.
type Guard struct {
	port    Port
	backoff Backoff

	link    link
	dialAt  int64 // when the current socket started connecting
	retryAt int64 // when linkDown: the next attempt

	checking bool // a GET /api/session is in flight

	known       bool  // deadline has been heard from the server
	deadline    int64 // when the session ends, as far as the guard knows
	expirationS int64
	warnMs      int64
	reportMs    int64

	warning        bool  // the dialog shows
	reported       int64 // timeStamp of the last input reported
	nextReportAt   int64 // ongoing activity is reported no sooner than this
	pendingStay    bool  // "Stay signed in" clicked while the socket was down
	signOutPhase   uint8 // 0; 1 asked the socket; 2 asked POST /api/logout
	signOutAskedAt int64

	done bool
}

// NewGuard returns a guard that acts through p.
func NewGuard(p Port, b Backoff) *Guard {
	return &Guard{port: p, backoff: b, reportMs: defaultReportMs}
}

// Done reports whether the page has been signed out.
func (g *Guard) Done() bool { return g.done }

// Start opens the socket.
func (g *Guard) Start(now int64) { g.dial(now) }

func (g *Guard) dial(now int64) {
	g.link, g.dialAt = linkDialing, now
	if !g.port.Dial() {
		g.lost(now)
	}
}

// Opened: the socket is open. The server sends a state at once; activity the
// guard has not reported yet goes out on the next tick.
func (g *Guard) Opened(now int64) {
	if g.done || g.link != linkDialing {
		return
	}
	g.link = linkOpen
	g.nextReportAt = now
	if g.pendingStay {
		g.pendingStay = false
		g.stay(now)
	}
	g.announce(now)
}

// Closed: the socket closed with code (1006 when it failed to open). A
// sign-out code signs the page out; anything else means try again.
func (g *Guard) Closed(now int64, code int) {
	if g.done {
		return
	}
	if r := protocol.ReasonForClose(code); r != protocol.ReasonNone {
		g.signOut(r, g.expirationS)
		return
	}
	wasOpen := g.link == linkOpen
	g.lost(now)
	if wasOpen {
		g.announce(now)
	}
}

// lost schedules the next attempt and asks the server, over plain HTTP,
// whether the session is still alive.
func (g *Guard) lost(now int64) {
	g.link = linkDown
	g.retryAt = now + g.backoff.Next()
	if !g.checking {
		g.checking = true
		g.port.CheckSession()
	}
}

// Received handles one frame from the server.
func (g *Guard) Received(now int64, frame []byte) {
	if g.done {
		return
	}
	m, err := protocol.Parse(frame)
	if err != nil {
		return // not for this version of the guard: nothing to do
	}
	switch m.Kind {
	case protocol.State:
		g.backoff.Reset()
		g.heard(now, m.RemainingMs, m.ExpirationS, m.WarnMs)
		g.reportMs = max(m.ReportMs, minReportMs)
		if m.ReportMs == 0 {
			g.reportMs = defaultReportMs
		}
		if m.RemainingMs > g.warnMs {
			g.hideWarning()
		} else if !g.warning {
			g.showWarning(now) // e.g. reconnected within the warning lead
		}
		if m.Token != "" {
			g.port.RenewToken(m.Token)
		}
		g.announce(now)
	case protocol.Warning:
		g.known, g.deadline = true, now+m.RemainingMs
		g.showWarning(now)
	case protocol.Logout:
		exp := m.ExpirationS
		if exp == 0 {
			exp = g.expirationS
		}
		g.signOut(m.Reason, exp)
	}
}

// NextTick is how long after now the guard wants Tick to run: every TickMs
// while the dialog counts down, the socket is down or a sign-out is pending;
// otherwise only as often as activity may be reported. A call into Go costs
// a page about 250 us of script time, so a calm page is woken rarely.
// Negative means never (signed out).
func (g *Guard) NextTick(now int64) int64 {
	if g.done {
		return -1
	}
	if g.warning || g.link != linkOpen || g.signOutPhase != 0 {
		return TickMs
	}
	d := min(max(g.reportMs, TickMs), calmTickMs)
	if g.known { // the local fallback, should the server fall silent
		d = min(d, max(g.deadline+connectedGraceMs-now, TickMs))
	}
	return d
}

// Tick runs when NextTick asked for it (or later: a hidden tab's timers are
// throttled). input is the timeStamp of the last trusted input
// the page saw (0 for none).
func (g *Guard) Tick(now, input int64) {
	if g.done {
		return
	}
	if g.link == linkOpen && input > g.reported && (g.warning || now >= g.nextReportAt) {
		g.report(now, input)
	}
	if g.known {
		remaining := g.deadline - now
		limit := int64(0)
		if g.link == linkOpen {
			limit = -connectedGraceMs
		}
		switch {
		case remaining <= limit:
			g.signOut(protocol.ReasonIdle, g.expirationS)
			return
		case g.warning:
			g.port.ShowWarning(max(remaining, 0))
		case g.link != linkOpen && remaining <= g.warnMs:
			g.showWarning(now) // the server cannot warn: do it here
		}
	}
	switch g.link {
	case linkDown:
		if now >= g.retryAt {
			g.dial(now)
		}
	case linkDialing:
		if now-g.dialAt >= dialTimeoutMs {
			g.port.Hangup()
			g.lost(now)
		}
	}
	switch {
	case g.signOutPhase == 1 && now-g.signOutAskedAt >= signOutWaitMs:
		g.logout(now)
	case g.signOutPhase == 2 && now-g.signOutAskedAt >= logoutWaitMs:
		g.signOut(protocol.ReasonSignedOut, g.expirationS)
	}
}

func (g *Guard) report(now, input int64) {
	ago := min(max(now-input, 0), protocol.MaxDurationMs)
	g.port.Send(protocol.Message{Kind: protocol.Activity, AgoMs: ago})
	g.reported, g.nextReportAt = input, now+g.reportMs
	// The server moves its deadline to input + Expiration Time; follow it,
	// so that the local countdown stays right if the server goes away.
	g.extend(input)
	if g.warning && g.deadline-now > g.warnMs {
		g.hideWarning() // activity dismisses the warning; the server's state confirms
	}
}

// Resume: the tab became visible again (or the network came back). Ask for
// the current state, or reconnect at once.
func (g *Guard) Resume(now int64) {
	if g.done {
		return
	}
	switch g.link {
	case linkOpen:
		g.port.Send(protocol.Message{Kind: protocol.Sync})
	case linkDown:
		g.dial(now)
	}
}

// Stay: "Stay signed in" (or Escape). input is the click's timeStamp, which
// the stay frame reports, so it is not reported again as activity.
func (g *Guard) Stay(now, input int64) {
	if g.done || !g.warning {
		return // Escape and the dialog's cancel event can both arrive
	}
	g.reported = max(g.reported, input)
	if g.link != linkOpen {
		// Nothing can reach the server: keep the dialog and its countdown,
		// try to connect now, and say stay once connected.
		g.pendingStay = true
		if g.link == linkDown {
			g.dial(now)
		}
		return
	}
	g.stay(now)
}

func (g *Guard) stay(now int64) {
	g.port.Send(protocol.Message{Kind: protocol.Stay})
	g.nextReportAt = now + g.reportMs
	g.extend(now)
	g.hideWarning()
}

// SignOutNow: "Sign out now". Over the socket the server ends the session in
// every tab and answers with a logout frame; if the socket is down, or the
// answer does not come, POST /api/logout, then sign out here regardless.
func (g *Guard) SignOutNow(now int64) {
	if g.done || g.signOutPhase != 0 {
		return
	}
	if g.link == linkOpen {
		g.port.Send(protocol.Message{Kind: protocol.SignOut})
		g.signOutPhase, g.signOutAskedAt = 1, now
		return
	}
	g.logout(now)
}

func (g *Guard) logout(now int64) {
	g.signOutPhase, g.signOutAskedAt = 2, now
	g.port.Logout()
}

// LogoutDone: POST /api/logout answered, or failed.
func (g *Guard) LogoutDone() {
	if g.done {
		return
	}
	g.signOut(protocol.ReasonSignedOut, g.expirationS)
}

// SessionChecked is the answer to CheckSession.
func (g *Guard) SessionChecked(now int64, s SessionInfo) {
	g.checking = false
	if g.done {
		return
	}
	switch {
	case s.Status == 401:
		r := protocol.ParseReason(s.Reason)
		if r == protocol.ReasonNone {
			r = protocol.ReasonRevoked
		}
		g.signOut(r, g.expirationS)
	case s.Status == 200 && s.HasRemaining && g.link != linkOpen:
		// Alive, but the socket is not: count down from the server's word.
		g.heard(now, s.RemainingMs, s.ExpirationS, s.WarnMs)
		if g.warning && s.RemainingMs > g.warnMs {
			g.hideWarning()
		}
		g.announce(now)
	}
	// Anything else (unreachable, 5xx): keep retrying the socket.
}

// heard takes the server's word on the session (a state frame, or GET
// /api/session while the socket is down): the local deadline and settings.
func (g *Guard) heard(now, remainingMs, expirationS, warnMs int64) {
	g.known, g.deadline = true, now+remainingMs
	if expirationS > 0 {
		g.expirationS = expirationS
	}
	g.warnMs = warnMs
}

// extend moves the local deadline to one Expiration Time after activity at
// t, as the server does, if that is later.
func (g *Guard) extend(t int64) {
	if g.known && t+g.expirationS*1000 > g.deadline {
		g.deadline = t + g.expirationS*1000
	}
}

func (g *Guard) showWarning(now int64) {
	remaining := max(g.deadline-now, 0)
	g.warning = true
	g.port.ShowWarning(remaining)
	g.port.AnnounceWarning(remaining)
}

func (g *Guard) hideWarning() {
	if g.warning {
		g.warning = false
		g.port.HideWarning()
	}
}

func (g *Guard) announce(now int64) {
	s := Status{Known: g.known, ExpirationS: g.expirationS, WarnMs: g.warnMs, Connected: g.link == linkOpen}
	if g.known {
		s.RemainingMs = max(g.deadline-now, 0)
	}
	g.port.Announce(s)
}

func (g *Guard) signOut(r protocol.Reason, expirationS int64) {
	g.done = true
	g.warning = false
	g.port.SignOut(r, expirationS)
}
