package api

import "net/http"

func (s *server) handlePage(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writePage(w, http.StatusOK, name)
	})
}

func (s *server) writePage(w http.ResponseWriter, status int, name string) {
	body, ok := s.assets.Page(name)
	if !ok {
		http.Error(w, "page not found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(body)
}
