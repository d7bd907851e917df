package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"idleguard/server/guard"
	"idleguard/server/sessions"
	"idleguard/server/token"
)

// CookieName holds the session token in the browser.
const CookieName = "idleguard_token"

type principalKey struct{}

// principal is who signedIn let through.
func principal(r *http.Request) sessions.Principal {
	p, _ := r.Context().Value(principalKey{}).(sessions.Principal)
	return p
}

// tokenFrom reads the token from the Authorization header or the cookie,
// never from the URL. A request with another kind of Authorization gets
// none: a header that is there but wrong must not fall back to the cookie.
func tokenFrom(r *http.Request) string {
	if r.Header.Get("Authorization") != "" {
		return bearer(r)
	}
	if c, err := r.Cookie(CookieName); err == nil {
		return c.Value
	}
	return ""
}

// bearer is the token of an "Authorization: Bearer" header, or "".
func bearer(r *http.Request) string {
	t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return ""
	}
	return strings.TrimSpace(t)
}

func (s *server) authenticate(r *http.Request) (sessions.Principal, error) {
	t := tokenFrom(r)
	if t == "" {
		return sessions.Principal{}, guard.Errorf(guard.EUNAUTHORIZED, "sign in first")
	}
	return s.sessions.Authenticate(r.Context(), t)
}

// signedIn lets through only requests whose token is valid and whose
// session is alive now.
func (s *server) signedIn(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.authenticate(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// can lets through only users whose group holds perm.
func (s *server) can(perm guard.Permission, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !principal(r).User.Can(perm) {
			s.writeError(w, r, guard.Errorf(guard.EFORBIDDEN, "you need the %s permission", permissionName(perm)))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func permissionName(p guard.Permission) string {
	switch p {
	case guard.DeveloperView:
		return "Developer → View"
	case guard.DeveloperEdit:
		return "Developer → Edit"
	}
	return string(p)
}

// pageFor serves a page to a signed-in user holding perm (none if empty);
// others go to the login page, or get the 403 page.
func (s *server) pageFor(next http.Handler, perm guard.Permission) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.authenticate(r)
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
			s.writePage(w, http.StatusForbidden, "forbidden.html")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *server) setTokenCookie(w http.ResponseWriter, r *http.Request, tok string, c token.Claims) {
	http.SetCookie(w, &http.Cookie{
		Name:     CookieName,
		Value:    tok,
		Path:     "/",
		Expires:  c.ExpiresAt,
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	})
}

func (s *server) clearTokenCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: "", Path: "/", Expires: time.Unix(0, 0), MaxAge: -1,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
}
