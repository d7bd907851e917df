package api

import (
	"net/http"

	"idleguard/server/pos"
)

// routes is the API's table of contents. The node's health answers on any
// host; everything else is for the domain the Host names (forDomain), an
// unknown one getting 404 first.
func (s *server) routes(mux *http.ServeMux) {
	mux.Handle("GET /healthz", handleHealthz())
	mux.Handle("GET /readyz", s.handleReady())
	dom := http.NewServeMux()
	s.domainRoutes(dom)
	mux.Handle("/", s.forDomain(dom))
}

// domainRoutes are a domain's API, socket and pages.
func (s *server) domainRoutes(mux *http.ServeMux) {
	mux.Handle("GET /.well-known/jwks.json", s.handleJWKS())

	// Every state-changing request goes through sameOrigin (CSRF).
	mux.Handle("POST /api/login", s.sameOrigin(s.handleLogin()))
	mux.Handle("POST /api/logout", s.sameOrigin(s.jsonOnly(s.handleLogout())))
	mux.Handle("GET /api/session", s.signedIn(s.handleSession()))
	mux.Handle("POST /api/token", s.sameOrigin(s.jsonOnly(s.handleTokenCookie())))
	mux.Handle("GET /api/settings/jwt", s.signedIn(s.can(pos.DeveloperView, s.handleGetSettings())))
	mux.Handle("PUT /api/settings/jwt", s.sameOrigin(s.signedIn(s.can(pos.DeveloperEdit, s.handlePutSettings()))))
	mux.Handle("GET /api/settings/jwt/changes", s.signedIn(s.can(pos.DeveloperView, s.handleChanges())))
	mux.Handle("/api/", handleAPINotFound())

	mux.Handle("GET /ws", s.handleSocket())

	mux.Handle("GET /{$}", http.RedirectHandler("/pos", http.StatusSeeOther))
	mux.Handle("GET /login", s.handlePage("login.html"))
	mux.Handle("GET /pos", s.pageFor(s.handlePage("pos.html"), ""))
	mux.Handle("GET /admin", s.pageFor(s.handlePage("admin.html"), pos.DeveloperView))
	// Any method: "GET /" would conflict with "/api/" above (each is more
	// specific on one side, so ServeMux panics at start); the assets answer
	// 405 themselves to anything but GET and HEAD.
	mux.Handle("/", s.assets)
}
