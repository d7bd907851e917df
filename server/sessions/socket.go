package sessions

import (
	"context"
	"time"

	"github.com/gorilla/websocket"

	"idleguard/server/hub"
	"idleguard/server/idle"
	"idleguard/server/pos"
	"idleguard/server/protocol"
)

// Sockets is the service's port to the open sockets of this node: the hub
// (*hub.Hub), or a recorder in tests. Send and SignOut reach every socket
// of a session; none of them blocks.
type Sockets interface {
	// Room reports whether session sid may open another socket.
	Room(sid string) bool
	// Attach takes over an upgraded socket of session sid; its frames go
	// to h, from the socket's own reader.
	Attach(ws *websocket.Conn, sid string, h hub.FrameHandler) (hub.Socket, error)
	Send(sid string, m protocol.Message)
	// SignOut sends a logout frame and the reason's close, and forgets them.
	SignOut(sid string, reason protocol.Reason, expirationS int64)
}

var _ Sockets = (*hub.Hub)(nil)

// Room reports whether session sid may open another socket (tab, device),
// so that a refusal can be a plain 429 before the upgrade.
func (s *Service) Room(sid string) bool { return s.sockets.Room(sid) }

// Connect is the whole life of a new socket after its upgrade, for p's
// session (Authenticate checked its domain): the hub takes it over, the
// page hears its session's state (or, if the session ended meanwhile, its
// sign-out), and its frames come to the service.
func (s *Service) Connect(ws *websocket.Conn, p Principal) error {
	c, err := s.sockets.Attach(ws, p.SessionID, frames{s: s, domain: p.User.Domain})
	if err != nil {
		return err
	}
	s.sendState(c, p.User.Domain)
	return nil
}

// frames is the service as the hub's FrameHandler of one socket, whose
// session is of domain: a frame acts on that session alone.
type frames struct {
	s      *Service
	domain string
}

// HandleFrame acts on one client frame. Each frame first checks that the
// session is alive: a socket outliving its session is closed.
func (f frames) HandleFrame(c hub.Socket, m protocol.Message) {
	s, sid := f.s, c.SessionID()
	switch m.Kind {
	case protocol.Activity, protocol.Stay:
		at := s.clock.Now()
		if m.Kind == protocol.Activity {
			at = at.Add(-time.Duration(m.AgoMs) * time.Millisecond)
		}
		st, ok := s.tracker.Touch(sid, at)
		if !ok {
			s.closeEnded(c, f.domain)
			return
		}
		s.noteInput(f.domain, sid, at, m.Kind == protocol.Stay || urgentInput(st))
		switch {
		case st.WarningCleared || st.RenewToken:
			// Every tab closes its dialog / takes the new token.
			s.sockets.Send(sid, s.stateFrame(sid, st, st.RenewToken))
		case m.Kind == protocol.Stay:
			c.Send(s.stateFrame(sid, st, false))
		}
		// Plain activity is not answered: the page needs nothing back, and
		// thousands of busy tills send it.
	case protocol.Sync:
		s.sendState(c, f.domain)
	case protocol.SignOut:
		if _, ok := s.tracker.Status(sid); !ok {
			s.closeEnded(c, f.domain) // ended first (idle, say): that reason stands
			return
		}
		if err := s.Logout(context.Background(), sid); err != nil {
			s.log.Error("sign out from socket", "sid", ShortID(sid), "err", err)
		}
	}
}

// sendState sends c its session's state, or signs c out if the session has
// ended.
func (s *Service) sendState(c hub.Socket, domain string) {
	st, ok := s.tracker.Status(c.SessionID())
	if !ok {
		s.closeEnded(c, domain)
		return
	}
	c.Send(s.stateFrame(c.SessionID(), st, false))
}

// closeEnded signs out a socket of domain whose session is no longer alive.
func (s *Service) closeEnded(c hub.Socket, domain string) {
	reason := protocol.ReasonRevoked
	if e, ok := s.endedError(context.Background(), c.SessionID()).(*EndedError); ok {
		reason = e.Reason
	}
	p, _ := s.tracker.Policy(domain)
	c.Send(protocol.Message{Kind: protocol.Logout, Reason: reason, ExpirationS: expSeconds(p)})
	c.Close(reason.CloseCode(), reason.String())
}

// stateFrame is the state frame for a live session, under its domain's
// policy (st.Policy), with a renewed token when renew is set.
func (s *Service) stateFrame(sid string, st idle.Status, renew bool) protocol.Message {
	p := st.Policy
	m := protocol.Message{
		Kind:        protocol.State,
		RemainingMs: st.Remaining.Milliseconds(),
		ExpirationS: int64(p.Expiration / time.Second),
		WarnMs:      p.WarnLead().Milliseconds(),
		ReportMs:    p.ReportEvery().Milliseconds(),
	}
	if renew {
		// Bounded: the frame waits for it, and a socket's reader with it.
		ctx, cancel := context.WithTimeout(context.Background(), liveTimeout)
		sess, err := s.store.Session(ctx, sid)
		cancel()
		if err == nil {
			if tok, _, err := s.issue(sess, st.Deadline); err == nil {
				m.Token = tok
			} else {
				s.log.Error("renew token", "sid", ShortID(sid), "err", err)
			}
		}
	}
	return m
}

// clockEvents is the service as the idle clock's Notifier (and Clearer,
// and Renewer: the tracker finds those by assertion, so the compiler
// checks them here).
type clockEvents struct{ s *Service }

var (
	_ idle.Clearer = clockEvents{}
	_ idle.Renewer = clockEvents{}
)

// Cleared: a deadline's recheck found input on another node that moved
// the deadline: this node's tabs close their warning, or count down from
// the new time.
func (e clockEvents) Cleared(sid string, st idle.Status) {
	e.s.sockets.Send(sid, e.s.stateFrame(sid, st, st.RenewToken))
}

// Renew: the tabs' deadline (their token's exp) is near but the session
// lives on: they hear the later one, with a token that lasts to it.
func (e clockEvents) Renew(sid string, st idle.Status) {
	e.s.sockets.Send(sid, e.s.stateFrame(sid, st, true))
}

// Warn: the session's warning is due.
func (e clockEvents) Warn(sid string, remaining time.Duration) {
	e.s.sockets.Send(sid, protocol.Message{Kind: protocol.Warning, RemainingMs: remaining.Milliseconds()})
}

// Expire: the session has ended. Pending first, so that a request the
// moment the tabs hear it gets the true reason; then the sockets (what the
// cashier sees); the store in the next flush.
func (e clockEvents) Expire(domain, sid string, reason protocol.Reason, p idle.Policy) {
	s := e.s
	s.pend(pos.Revocation{SessionID: sid, At: s.clock.Now().Round(0), Reason: reason})
	s.sockets.SignOut(sid, reason, expSeconds(p))
	s.forgetLater(domain, sid)
	s.log.Info("signed out", "sid", ShortID(sid), "reason", reason)
}
