// Package api is idleguard's HTTP surface: the JSON API, the socket
// upgrade and the pages, with authentication, permissions and the login
// rate limit.
package api

import (
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/gorilla/websocket"

	"idleguard/server/guard"
	"idleguard/server/hub"
	"idleguard/server/sessions"
)

const (
	guardDeveloperView = guard.DeveloperView
	guardDeveloperEdit = guard.DeveloperEdit
)

// Config is what the HTTP layer needs to know.
type Config struct {
	// AllowedOrigins for the WebSocket upgrade, as scheme://host[:port].
	// Empty: only the server's own origin (the request's Host).
	AllowedOrigins []string
	// Login rate limits (see limiter.go); zero values take the defaults.
	LoginPerUser    RateLimit
	LoginPerAddress RateLimit
}

// Pages gives the embedded pages and static files.
type Pages interface {
	http.Handler
	Page(name string) ([]byte, bool)
}

type server struct {
	log      *slog.Logger
	cfg      Config
	sessions *sessions.Service
	hub      *hub.Hub
	assets   Pages
	upgrader *websocket.Upgrader
	perUser  *limiter
	perAddr  *limiter
}

// NewServer builds the HTTP handler of the whole program.
func NewServer(log *slog.Logger, cfg Config, svc *sessions.Service, h *hub.Hub, assets Pages) http.Handler {
	s := &server{
		log:      log,
		cfg:      cfg,
		sessions: svc,
		hub:      h,
		assets:   assets,
		perUser:  newLimiter(cfg.LoginPerUser.orDefault(5, 5)),
		perAddr:  newLimiter(cfg.LoginPerAddress.orDefault(30, 30)),
	}
	s.upgrader = hub.Upgrader(s.checkOrigin)
	mux := http.NewServeMux()
	s.routes(mux)
	return securityHeaders(mux)
}

// checkOrigin is the allowlist that stops cross-site WebSocket hijacking:
// a page on another site must not ride the POS cookie into a socket.
// Browsers always send Origin; a client without one must bring a token of
// its own, which is checked like any other.
func (s *server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if len(s.cfg.AllowedOrigins) == 0 {
		return strings.EqualFold(u.Host, r.Host)
	}
	for _, allowed := range s.cfg.AllowedOrigins {
		if strings.EqualFold(strings.TrimRight(allowed, "/"), u.Scheme+"://"+u.Host) {
			return true
		}
	}
	return false
}

// securityHeaders sets what every answer carries.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		next.ServeHTTP(w, r)
	})
}
