package api

import (
	"bytes"
	"html"
	"net/http"
)

func (s *server) handlePage(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writePage(w, r, http.StatusOK, name)
	})
}

// domainMark is where a page shows the name of the domain it is served
// for (in its title and header, never inside a script, whose hash the
// page's policy pins).
var domainMark = []byte("{{domain}}")

func (s *server) writePage(w http.ResponseWriter, r *http.Request, status int, name string) {
	body, ok := s.assets.Page(name)
	if !ok {
		http.Error(w, "page not found", http.StatusNotFound)
		return
	}
	body = bytes.ReplaceAll(body, domainMark, []byte(html.EscapeString(domainOf(r))))
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// The page's own policy replaces the default every answer carries: it
	// allows exactly this page's inline scripts, by hash.
	h.Set("Content-Security-Policy", s.assets.CSP(name))
	w.WriteHeader(status)
	w.Write(body)
}
