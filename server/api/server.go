// Package api is idleguard's HTTP surface: the JSON API, the socket
// upgrade and the pages, with authentication, permissions and the login
// rate limit.
package api

import (
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/gorilla/websocket"

	"idleguard/server/hub"
	"idleguard/server/pos"
	"idleguard/server/seclog"
	"idleguard/server/sessions"
)

// Config is what the HTTP layer needs to know.
type Config struct {
	// AllowedOrigins for the WebSocket upgrade, as scheme://host[:port].
	// Empty: only the server's own origin (the request's Host).
	AllowedOrigins []string
	// TrustedProxies are the addresses whose X-Forwarded-For and
	// X-Forwarded-Proto are believed (a TLS-terminating proxy in front).
	// From anyone else those headers are ignored.
	TrustedProxies []netip.Prefix
	// DomainSuffix, such as ".pos.example.com", makes the first label of
	// the Host the domain (acme.pos.example.com is acme). Empty: one
	// domain, default, on every host.
	DomainSuffix string
	// Security is the security log (nil: none).
	Security *seclog.Log
}

// Pages gives the embedded pages and static files.
type Pages interface {
	http.Handler
	Page(name string) ([]byte, bool)
	CSP(name string) string // the page's Content-Security-Policy
}

type server struct {
	log      *slog.Logger
	cfg      Config
	sessions *sessions.Service
	assets   Pages
	upgrader *websocket.Upgrader
	sec      *seclog.Log
}

// NewServer builds the HTTP handler of the whole program.
func NewServer(log *slog.Logger, cfg Config, svc *sessions.Service, assets Pages) http.Handler {
	s := &server{
		log:      log,
		cfg:      cfg,
		sessions: svc,
		assets:   assets,
		sec:      cfg.Security,
	}
	s.upgrader = hub.Upgrader(s.checkOrigin)
	mux := http.NewServeMux()
	s.routes(mux)
	return s.securityHeaders(mux)
}

// checkOrigin is the allowlist that stops cross-site WebSocket hijacking:
// a page on another site must not ride the POS cookie into a socket.
// Browsers always send Origin; a client without one must bring a token of
// its own, which is checked like any other.
func (s *server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	return origin == "" || s.originAllowed(r, origin)
}

// originAllowed reports whether origin may act on this server: one of
// AllowedOrigins, or by default the server's own (the request's Host, and
// its scheme when the server knows it: TLS here or a trusted proxy's
// X-Forwarded-Proto).
func (s *server) originAllowed(r *http.Request, origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	if len(s.cfg.AllowedOrigins) == 0 {
		if !strings.EqualFold(u.Host, r.Host) {
			return false
		}
		return u.Scheme == "https" || !s.isHTTPS(r)
	}
	for _, allowed := range s.cfg.AllowedOrigins {
		if strings.EqualFold(strings.TrimRight(allowed, "/"), u.Scheme+"://"+u.Host) {
			return true
		}
	}
	return false
}

// sameOrigin guards every state-changing API request against cross-site
// request forgery, from another site or a same-site origin (another port,
// a sibling subdomain) that SameSite cookies do not stop: an Origin, when
// the browser sends one, must be allowed; without one, Fetch Metadata must
// not say the request came from elsewhere. The body's type must be JSON
// too, which no plain HTML form can send: decode checks it for requests
// with a body, jsonOnly for those without.
func (s *server) sameOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		refuse := ""
		if origin := r.Header.Get("Origin"); origin != "" {
			if !s.originAllowed(r, origin) {
				refuse = "origin " + origin + " not allowed"
			}
		} else if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
			refuse = "request from another site (" + site + ")"
		}
		if refuse != "" {
			s.sec.Event(seclog.CSRFRefused, slog.String("addr", s.clientAddr(r)),
				slog.String("path", r.URL.Path), slog.String("why", refuse))
			s.writeError(w, r, pos.Errorf(pos.EFORBIDDEN, "%s", refuse))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// jsonOnly refuses a bodiless state-changing request that does not say
// Content-Type: application/json (see sameOrigin).
func (s *server) jsonOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isJSON(r) {
			s.writeError(w, r, pos.Invalid("body", "Content-Type must be application/json"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// isHTTPS reports whether the browser reached us over TLS: here, or at a
// trusted proxy that says so.
func (s *server) isHTTPS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	if !s.fromTrustedProxy(r) {
		return false
	}
	// Behind a chain each proxy may append: the last word is what the
	// nearest (trusted) proxy saw.
	proto := strings.Join(r.Header.Values("X-Forwarded-Proto"), ",")
	if i := strings.LastIndexByte(proto, ','); i >= 0 {
		proto = proto[i+1:]
	}
	return strings.EqualFold(strings.TrimSpace(proto), "https")
}

// peer is the address of the TCP peer.
func peer(r *http.Request) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}

func (s *server) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (s *server) fromTrustedProxy(r *http.Request) bool {
	a, ok := peer(r)
	return ok && s.trusted(a)
}

// clientAddr is the client's IP address: the peer's, or behind trusted
// proxies the nearest X-Forwarded-For entry that is not one of them (the
// ones further left are whatever the client claimed).
func (s *server) clientAddr(r *http.Request) string {
	a, ok := peer(r)
	if !ok {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			return r.RemoteAddr
		}
		return host
	}
	if !s.trusted(a) {
		return a.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		h, ok := parseHop(strings.TrimSpace(hops[i]))
		if !ok {
			break // a garbled hop: stop at the last address we can vouch for
		}
		a = h.Unmap()
		if !s.trusted(a) {
			break
		}
	}
	return a.String()
}

// parseHop reads one X-Forwarded-For entry: an address, or one with a port
// ("203.0.113.7:4711", "[2001:db8::1]:4711") as some proxies write it.
func parseHop(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a, true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr(), true
	}
	return netip.Addr{}, false
}

// securityHeaders sets what every answer carries. Pages replace the
// default Content-Security-Policy with their own (pages.go); everything
// else is data that must never run or be framed.
func (s *server) securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=(), serial=(), hid=()")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		if s.isHTTPS(r) {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}
