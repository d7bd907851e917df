package sessions

import (
	"context"
	"time"

	"idleguard/server/hub"
	"idleguard/server/protocol"
)

var _ hub.FrameHandler = (*Service)(nil)

// Connected sends a newly attached socket its state. A session that ended
// between the upgrade and now is signed out on that socket.
func (s *Service) Connected(c *hub.Conn) { s.sendState(c) }

// sendState sends c its session's state, or signs c out if the session has
// ended.
func (s *Service) sendState(c *hub.Conn) {
	m, ok := s.State(c.SessionID())
	if !ok {
		s.closeEnded(c)
		return
	}
	c.Send(m)
}

// HandleFrame acts on one client frame. Each frame first checks that the
// session is alive: a socket outliving its session is closed.
func (s *Service) HandleFrame(c *hub.Conn, m protocol.Message) {
	sid := c.SessionID()
	switch m.Kind {
	case protocol.Activity, protocol.Stay:
		at := s.clock.Now()
		if m.Kind == protocol.Activity {
			at = at.Add(-time.Duration(m.AgoMs) * time.Millisecond)
		}
		st, ok := s.tracker.Touch(sid, at)
		if !ok {
			s.closeEnded(c)
			return
		}
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
		s.sendState(c)
	case protocol.SignOut:
		if err := s.Logout(context.Background(), sid); err != nil {
			s.log.Error("sign out from socket", "sid", ShortID(sid), "err", err)
		}
	}
}

// closeEnded signs out a socket whose session is no longer alive.
func (s *Service) closeEnded(c *hub.Conn) {
	reason := protocol.ReasonRevoked
	if e, ok := s.endedError(context.Background(), c.SessionID()).(*EndedError); ok {
		reason = e.Reason
	}
	c.Send(protocol.Message{Kind: protocol.Logout, Reason: reason, ExpirationS: s.expirationSeconds()})
	c.Close(reason.CloseCode(), reason.String())
}
