package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"idleguard/server/pos"
	"idleguard/server/seclog"
	"idleguard/server/sessions"
)

// The session token's cookie. Over HTTPS it carries the __Host- prefix: the
// browser then takes it only with Secure, Path=/ and no Domain, so a
// sibling subdomain or plain-http page of the same site cannot plant one
// ("cookie tossing"). Plain HTTP (a till on a LAN, development) cannot use
// the prefix and gets the bare name.
const (
	CookieName       = "idleguard_token"
	SecureCookieName = "__Host-" + CookieName
)

// cookieLifetime: the cookie outlives any one token on purpose. The
// server, not the browser, decides when a session ends (every request
// checks that the session is alive), and a cookie that expired with its
// token's exp would sign a live session out on its next reload.
const cookieLifetime = pos.MaxExpirationSeconds * time.Second

type principalKey struct{}

// principal is who signedIn let through.
func principal(r *http.Request) sessions.Principal {
	p, _ := r.Context().Value(principalKey{}).(sessions.Principal)
	return p
}

// errCookieConflict refuses a request carrying more than one session
// cookie: a same-site page may have planted one with a narrower path, and
// whichever the browser lists first would win.
var errCookieConflict = pos.Errorf(pos.EUNAUTHORIZED,
	"this request carries more than one idleguard cookie; clear this site's cookies and sign in again")

// tokenFrom reads the token from the Authorization header or the cookie,
// never from the URL. A request with another kind of Authorization gets
// none: a header that is there but wrong must not fall back to the cookie.
func (s *server) tokenFrom(r *http.Request) (tok string, fromCookie bool, err error) {
	if r.Header.Get("Authorization") != "" {
		return bearer(r), false, nil
	}
	name := s.cookieName(r)
	n := 0
	for _, c := range r.Cookies() {
		if c.Name == name {
			tok = c.Value
			n++
		}
	}
	if n > 1 {
		return "", false, errCookieConflict
	}
	return tok, n == 1, nil
}

// bearer is the token of an "Authorization: Bearer" header, or "". The
// scheme is case-insensitive (RFC 9110 11.1).
func bearer(r *http.Request) string {
	scheme, t, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(t)
}

// authenticate finds who the request speaks for. A token whose exp has
// passed but whose session is alive is accepted, and when it came from the
// cookie, w (unless nil) gets a fresh one.
func (s *server) authenticate(w http.ResponseWriter, r *http.Request) (sessions.Principal, error) {
	t, fromCookie, err := s.tokenFrom(r)
	if err != nil {
		s.sec.Event(seclog.CookieConflict, slog.String("addr", s.clientAddr(r)), slog.String("path", r.URL.Path))
		return sessions.Principal{}, err
	}
	if t == "" {
		return sessions.Principal{}, pos.Errorf(pos.EUNAUTHORIZED, "sign in first")
	}
	p, err := s.sessions.Authenticate(r.Context(), domainOf(r), t)
	if err != nil {
		var ended *sessions.EndedError
		if !errors.As(err, &ended) && !errors.Is(err, sessions.ErrOtherDomain) && pos.ErrorCode(err) == pos.EUNAUTHORIZED {
			s.sec.Event(seclog.TokenInvalid, slog.String("addr", s.clientAddr(r)),
				slog.String("path", r.URL.Path), slog.String("why", pos.ErrorMessage(err)))
		}
		return sessions.Principal{}, err
	}
	if fromCookie && w != nil {
		if fresh, err := s.freshToken(p, t); err == nil && fresh != t {
			s.setTokenCookie(w, r, fresh)
		}
	}
	return p, nil
}

// freshToken is tok, or a new token for p's session when tok's exp has
// passed though the session lives.
func (s *server) freshToken(p sessions.Principal, tok string) (string, error) {
	if !p.Expired {
		return tok, nil
	}
	fresh, _, err := s.sessions.Refresh(p)
	return fresh, err
}

// signedIn lets through only requests whose token is valid and whose
// session is alive now.
func (s *server) signedIn(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.authenticate(w, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// can lets through only users whose group holds perm.
func (s *server) can(perm pos.Permission, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !principal(r).User.Can(perm) {
			s.writeError(w, r, pos.Errorf(pos.EFORBIDDEN, "you need the %s permission", perm.Title()))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// pageFor serves a page to a signed-in user holding perm (none if empty);
// others go to the login page, or get the 403 page.
func (s *server) pageFor(next http.Handler, perm pos.Permission) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.authenticate(w, r)
		if err != nil {
			q := url.Values{"next": {r.URL.Path}}
			var ended *sessions.EndedError
			if errors.As(err, &ended) {
				q.Set("reason", ended.Reason.String())
			}
			http.Redirect(w, r, "/login?"+q.Encode(), http.StatusSeeOther)
			return
		}
		if perm != "" && !p.User.Can(perm) {
			s.writePage(w, r, http.StatusForbidden, "forbidden.html")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *server) setTokenCookie(w http.ResponseWriter, r *http.Request, tok string) {
	s.writeCookie(w, r, tok, int(cookieLifetime/time.Second))
}

func (s *server) clearTokenCookie(w http.ResponseWriter, r *http.Request) {
	s.writeCookie(w, r, "", -1)
}

// writeCookie sets the session cookie (maxAge -1 deletes it) with the
// attributes of r's scheme.
func (s *server) writeCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	https := s.isHTTPS(r)
	c := &http.Cookie{Name: s.cookieNameFor(https), Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: https, SameSite: http.SameSiteStrictMode}
	if maxAge < 0 {
		c.Expires = time.Unix(0, 0)
	}
	http.SetCookie(w, c)
}

// cookieName is the session cookie's name for r's scheme; a request reads
// only the name its own scheme sets.
func (s *server) cookieName(r *http.Request) string { return s.cookieNameFor(s.isHTTPS(r)) }

func (s *server) cookieNameFor(https bool) string {
	if https {
		return SecureCookieName
	}
	return CookieName
}
