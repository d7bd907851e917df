package api

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"idleguard/server/pos"
	"idleguard/server/seclog"
)

type domainKey struct{}

// domainOf is the domain the request is for; forDomain put it there.
func domainOf(r *http.Request) string {
	d, _ := r.Context().Value(domainKey{}).(string)
	return d
}

// forDomain finds the request's domain from its Host and passes it on, or
// answers 404 before anything else runs (authentication included): a host
// that names no domain here learns nothing more.
func (s *server) forDomain(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, ok := domainFromHost(r.Host, s.cfg.DomainSuffix)
		if !ok || !s.sessions.Serves(d) {
			s.sec.Event(seclog.DomainUnknown, slog.String("addr", s.clientAddr(r)), slog.String("host", r.Host))
			err := pos.Errorf(pos.ENOTFOUND, "no POS domain here: check the address")
			if strings.HasPrefix(r.URL.Path, "/api/") {
				s.writeError(w, r, err)
			} else {
				http.Error(w, "No POS domain here: check the address.", http.StatusNotFound)
			}
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), domainKey{}, d)))
	})
}

// domainFromHost is the domain a Host header names. With no suffix every
// host is the one domain, default. With suffix ".pos.example.com",
// "acme.pos.example.com" (any port, any letter case, a trailing dot or
// not) is acme; anything else, deeper names included, is no domain.
func domainFromHost(host, suffix string) (string, bool) {
	if suffix == "" {
		return pos.DefaultDomain, true
	}
	if strings.HasPrefix(host, "[") {
		// An IP literal ([::1]:8080), never a name: SplitHostPort would
		// take the brackets off "[acme.pos.example.com]:80" too.
		return "", false
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(pos.CanonicalName(host), ".")
	label, ok := strings.CutSuffix(host, suffix)
	if !ok || pos.ValidateDomain(label) != nil {
		return "", false
	}
	return label, true
}

// ValidDomainSuffix checks a -domain-suffix: a dot, then one or more DNS
// labels, such as ".pos.example.com" or ".localhost".
func ValidDomainSuffix(suffix string) error {
	rest, ok := strings.CutPrefix(suffix, ".")
	if !ok || rest == "" {
		return pos.Invalid("domain-suffix", "-domain-suffix must start with a dot, as in .pos.example.com")
	}
	for _, label := range strings.Split(rest, ".") {
		if pos.ValidateDomain(label) != nil {
			return pos.Invalid("domain-suffix", "-domain-suffix %q: each part must be lowercase letters, digits and hyphens", suffix)
		}
	}
	return nil
}
