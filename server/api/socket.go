package api

import (
	"log/slog"
	"net/http"

	"idleguard/server/pos"
	"idleguard/server/seclog"
)

// handleSocket upgrades a signed-in page's request to its socket. Every
// refusal happens before the upgrade, as a plain HTTP status: 401 for a
// missing, invalid or ended token, 403 for a foreign Origin, 429 when the
// session already has its maximum of open tabs.
func (s *server) handleSocket() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.checkOrigin(r) {
			s.sec.Event(seclog.OriginRefused, slog.String("addr", s.clientAddr(r)), slog.String("origin", r.Header.Get("Origin")))
			s.writeError(w, r, pos.Errorf(pos.EFORBIDDEN, "origin not allowed"))
			return
		}
		p, err := s.authenticate(w, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if !s.sessions.Room(p.SessionID) {
			s.writeError(w, r, pos.Errorf(pos.ETOOMANY, "too many open tabs for this session"))
			return
		}
		// A fresh cookie that authenticate set (the old token had expired
		// though the session lives) rides on the 101 answer: the upgrader
		// writes only the headers it is given.
		var hdr http.Header
		if c := w.Header().Values("Set-Cookie"); len(c) > 0 {
			hdr = http.Header{"Set-Cookie": c}
		}
		ws, err := s.upgrader.Upgrade(w, r, hdr)
		if err != nil {
			return // the upgrader has answered
		}
		// Everything after the upgrade is the service's. Returning frees
		// net/http's per-request state; the hub owns the socket from here.
		s.sessions.Connect(ws, p)
	})
}
