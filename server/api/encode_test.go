package api

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"idleguard/server/pos"
	"idleguard/server/protocol"
	"idleguard/server/sessions"
)

// Each error code has one status and every error answer one JSON shape;
// an internal error is logged and shown as "internal error" only.
func TestErrorAnswers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		status int
		body   string
	}{
		{"invalid", pos.Invalid("expiration_seconds", "Expiration Time (expiration_seconds) must be ..."), http.StatusBadRequest,
			`{"error":{"code":"invalid","message":"Expiration Time (expiration_seconds) must be ...","field":"expiration_seconds"}}`},
		{"unauthorized", pos.Errorf(pos.EUNAUTHORIZED, "sign in first"), http.StatusUnauthorized,
			`{"error":{"code":"unauthorized","message":"sign in first"}}`},
		{"ended", &sessions.EndedError{Err: pos.Errorf(pos.EUNAUTHORIZED, "session has ended"), Reason: protocol.ReasonIdle}, http.StatusUnauthorized,
			`{"error":{"code":"unauthorized","message":"session has ended","reason":"idle"}}`},
		{"forbidden", pos.Errorf(pos.EFORBIDDEN, "you need the Developer → Edit permission"), http.StatusForbidden,
			`{"error":{"code":"forbidden","message":"you need the Developer → Edit permission"}}`},
		{"not found", pos.Errorf(pos.ENOTFOUND, "no such user"), http.StatusNotFound,
			`{"error":{"code":"not_found","message":"no such user"}}`},
		{"conflict", pos.Errorf(pos.ECONFLICT, "user \"x\" already exists"), http.StatusConflict,
			`{"error":{"code":"conflict","message":"user \"x\" already exists"}}`},
		{"too many", &sessions.ThrottledError{Err: pos.Errorf(pos.ETOOMANY, "try again in 2 s")}, http.StatusTooManyRequests,
			`{"error":{"code":"too_many","message":"try again in 2 s"}}`},
		{"wrapped", fmt.Errorf("sessions: login: %w", pos.Errorf(pos.ECONFLICT, "taken")), http.StatusConflict,
			`{"error":{"code":"conflict","message":"taken"}}`},
		{"internal", fmt.Errorf("sessions: flush: open /var/lib/idleguard/idleguard.db: %w", errors.New("disk I/O error")), http.StatusInternalServerError,
			`{"error":{"code":"internal","message":"internal error"}}`},
		{"an unknown code", pos.Errorf("teapot", "short and stout"), http.StatusInternalServerError,
			`{"error":{"code":"teapot","message":"short and stout"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log bytes.Buffer
			s := &server{log: slog.New(slog.NewTextHandler(&log, nil))}
			rec := httptest.NewRecorder()
			s.writeError(rec, httptest.NewRequest("GET", "/api/x", nil), tc.err)
			if rec.Code != tc.status {
				t.Errorf("status: got %d, want %d", rec.Code, tc.status)
			}
			if got := strings.TrimSuffix(rec.Body.String(), "\n"); got != tc.body {
				t.Errorf("body: got %s, want %s", got, tc.body)
			}
			if ct, cc := rec.Header().Get("Content-Type"), rec.Header().Get("Cache-Control"); ct != "application/json; charset=utf-8" || cc != "no-store" {
				t.Errorf("headers: got Content-Type %q Cache-Control %q, want JSON, no-store", ct, cc)
			}
			logged := strings.Contains(log.String(), "disk I/O error")
			if internal := tc.status == http.StatusInternalServerError && tc.name == "internal"; logged != internal {
				t.Errorf("log: got %q, want the cause logged only for an internal error", log.String())
			}
		})
	}
}

func TestStatusFor(t *testing.T) {
	for code, want := range map[string]int{
		pos.EINVALID:      http.StatusBadRequest,
		pos.EUNAUTHORIZED: http.StatusUnauthorized,
		pos.EFORBIDDEN:    http.StatusForbidden,
		pos.ENOTFOUND:     http.StatusNotFound,
		pos.ECONFLICT:     http.StatusConflict,
		pos.ETOOMANY:      http.StatusTooManyRequests,
		pos.EINTERNAL:     http.StatusInternalServerError,
		"":                http.StatusInternalServerError,
		"teapot":          http.StatusInternalServerError,
	} {
		if got := statusFor(code); got != want {
			t.Errorf("statusFor(%q): got %d, want %d", code, got, want)
		}
	}
}
