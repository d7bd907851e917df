package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"idleguard/server/pos"
	"idleguard/server/sessions"
)

func handleHealthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
}

// handleReady is the readiness check: 503 while the store refuses writes
// (a full disk, say), when a load balancer should send tills elsewhere;
// pending writes are retried meanwhile and it recovers by itself.
func (s *server) handleReady() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := s.sessions.Ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(err.Error() + "\n"))
			return
		}
		w.Write([]byte("ok\n"))
	})
}

func handleAPINotFound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errorBody{Error: errorDetail{Code: pos.ENOTFOUND, Message: "no such API: " + r.Method + " " + r.URL.Path}})
	})
}

func (s *server) handleJWKS() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Write(s.sessions.JWKS())
	})
}

type userJSON struct {
	Domain      string   `json:"domain"`
	Name        string   `json:"name"`
	Group       string   `json:"group"`
	Permissions []string `json:"permissions"`
}

func toUserJSON(u pos.User) userJSON {
	perms := make([]string, 0, len(u.Permissions))
	for _, p := range u.Permissions {
		perms = append(perms, string(p))
	}
	return userJSON{Domain: u.Domain, Name: u.Name, Group: u.Group, Permissions: perms}
}

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func (req loginRequest) valid() error {
	switch {
	case strings.TrimSpace(req.Username) == "":
		return pos.Invalid("username", "username is required")
	case req.Password == "":
		return pos.Invalid("password", "password is required")
	case len(req.Username) > 128:
		return pos.Invalid("username", "username must be at most 128 bytes")
	}
	// The password's upper bound is the service's (sessions.MaxPasswordLen).
	return nil
}

type loginResponse struct {
	Token     string   `json:"token"`
	ExpiresIn int64    `json:"expires_in"`
	User      userJSON `json:"user"`
}

func (s *server) handleLogin() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := decode[loginRequest](w, r)
		if err == nil {
			err = req.valid()
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		in, err := s.sessions.Login(r.Context(), sessions.Credentials{
			Domain: domainOf(r), Username: req.Username, Password: req.Password, Addr: s.clientAddr(r)})
		if err != nil {
			var throttled *sessions.ThrottledError
			if errors.As(err, &throttled) {
				w.Header().Set("Retry-After", strconv.FormatInt(throttled.RetryAfter(), 10))
			}
			s.writeError(w, r, err)
			return
		}
		s.setTokenCookie(w, r, in.Token)
		writeJSON(w, http.StatusOK, loginResponse{
			Token:     in.Token,
			ExpiresIn: int64(in.Remaining / time.Second),
			User:      toUserJSON(in.User),
		})
	})
}

// handleLogout ends the request's session. The cookie goes whatever
// happens: a sign-out the browser asked for must not leave a token behind,
// even one already refused (the module's fallback when its socket is down).
func (s *server) handleLogout() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.authenticate(nil, r) // nil: no fresh token on the way out
		s.clearTokenCookie(w, r)
		if err == nil {
			err = s.sessions.Logout(r.Context(), p.SessionID)
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

type sessionResponse struct {
	User              userJSON `json:"user"`
	RemainingMs       int64    `json:"remaining_ms"`
	ExpirationSeconds int64    `json:"expiration_seconds"`
	WarningSeconds    float64  `json:"warning_seconds"`
}

func (s *server) handleSession() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := principal(r)
		st, err := s.sessions.Settings(p.User.Domain)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, sessionResponse{
			User:              toUserJSON(p.User),
			RemainingMs:       p.Remaining.Milliseconds(),
			ExpirationSeconds: st.ExpirationSeconds,
			WarningSeconds:    st.WarningSeconds,
		})
	})
}

// handleTokenCookie sets the cookie to a renewed token that the page got
// over its socket (a socket cannot set cookies). Only the header is read:
// the cookie being replaced may already have expired.
func (s *server) handleTokenCookie() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := bearer(r)
		if tok == "" {
			s.writeError(w, r, pos.Errorf(pos.EUNAUTHORIZED, "send the renewed token as Authorization: Bearer"))
			return
		}
		p, err := s.sessions.Authenticate(r.Context(), domainOf(r), tok)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		// Renewed late (the page was away): hand over a fresh one.
		if tok, err = s.freshToken(p, tok); err != nil {
			s.writeError(w, r, err)
			return
		}
		s.setTokenCookie(w, r, tok)
		w.WriteHeader(http.StatusNoContent)
	})
}

type settingsResponse struct {
	ExpirationSeconds    int64   `json:"expiration_seconds"`
	WarningSeconds       float64 `json:"warning_seconds"`
	MinExpirationSeconds int64   `json:"min_expiration_seconds"`
	MaxExpirationSeconds int64   `json:"max_expiration_seconds"`
	UpdatedBy            string  `json:"updated_by"`
	UpdatedAt            string  `json:"updated_at"`
}

func toSettingsResponse(v sessions.SettingsView) settingsResponse {
	resp := settingsResponse{
		ExpirationSeconds:    v.ExpirationSeconds,
		WarningSeconds:       v.WarningSeconds,
		MinExpirationSeconds: v.MinExpirationSeconds,
		MaxExpirationSeconds: v.MaxExpirationSeconds,
		UpdatedBy:            v.UpdatedBy,
	}
	if !v.UpdatedAt.IsZero() {
		resp.UpdatedAt = v.UpdatedAt.UTC().Format(time.RFC3339)
	}
	return resp
}

func (s *server) handleGetSettings() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := s.sessions.Settings(principal(r).User.Domain)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, toSettingsResponse(v))
	})
}

// settingsRequest keeps the number raw so that only a plain whole number
// is accepted: no string, fraction, exponent or null.
type settingsRequest struct {
	ExpirationSeconds json.RawMessage `json:"expiration_seconds"`
}

func (s *server) handlePutSettings() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := decode[settingsRequest](w, r)
		if err != nil {
			if pos.ErrorCode(err) == pos.EINVALID {
				err = s.expirationError(err)
			}
			s.writeError(w, r, err)
			return
		}
		n, err := parseWholeSeconds(req.ExpirationSeconds)
		if err != nil {
			s.writeError(w, r, s.expirationError(nil))
			return
		}
		v, err := s.sessions.UpdateExpiration(r.Context(), principal(r).User, n)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, toSettingsResponse(v))
	})
}

// parseWholeSeconds accepts an optional minus sign and digits only.
func parseWholeSeconds(raw json.RawMessage) (int64, error) {
	s := string(raw)
	digits := strings.TrimPrefix(s, "-")
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseInt(s, 10, 64)
}

type changeJSON struct {
	At  string `json:"at"`
	By  string `json:"by"`
	Old int64  `json:"old"`
	New int64  `json:"new"`
}

func (s *server) handleChanges() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		changes, err := s.sessions.Changes(r.Context(), principal(r).User.Domain, 50)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out := make([]changeJSON, 0, len(changes))
		for _, c := range changes {
			out = append(out, changeJSON{At: c.At.UTC().Format(time.RFC3339), By: c.By, Old: c.Old, New: c.New})
		}
		writeJSON(w, http.StatusOK, out)
	})
}

// expirationError is the one 400 for a bad Expiration Time: it names the
// field and the accepted range, after what was wrong with the body if the
// body itself was at fault.
func (s *server) expirationError(cause error) error {
	e := *s.sessions.RangeError()
	if cause != nil {
		e.Message = pos.ErrorMessage(cause) + "; " + e.Message
	}
	return &e
}
