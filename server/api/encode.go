package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"reflect"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"idleguard/server/pos"
	"idleguard/server/sessions"
)

// maxBody bounds every JSON request body.
const maxBody = 4 << 10

// statusFor maps error codes to HTTP statuses, in one place.
func statusFor(code string) int {
	switch code {
	case pos.EINVALID:
		return http.StatusBadRequest
	case pos.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case pos.EFORBIDDEN:
		return http.StatusForbidden
	case pos.ENOTFOUND:
		return http.StatusNotFound
	case pos.ECONFLICT:
		return http.StatusConflict
	case pos.ETOOMANY:
		return http.StatusTooManyRequests
	}
	return http.StatusInternalServerError
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	// Reason is the sign-out reason when a token's session has ended.
	Reason string `json:"reason,omitempty"`
}

// codeUnavailable is the code of a 503: the store cannot be reached.
const codeUnavailable = "unavailable"

// storeUnreachable reports whether an internal error is the store's
// network failing rather than a fault: a connection refused, reset or
// timed out (a net.Error in the chain), one that ended mid-message, or
// one the driver had already closed for that (pgx's ErrConnClosed). Only
// a networked store (a cluster's PostgreSQL) fails so, and the client may
// try again. The driver's sentinel is matched here, not mapped by the
// store, because pos has no code for it yet.
func storeUnreachable(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, pgconn.ErrConnClosed)
}

// writeError answers with err's status and message; an internal error is
// logged and shown only as "internal error", or as 503 when the store
// cannot be reached.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := pos.ErrorCode(err)
	if code == pos.EINTERNAL && storeUnreachable(err) {
		s.log.Error("store unreachable", "method", r.Method, "path", r.URL.Path, "err", err)
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: errorDetail{Code: codeUnavailable, Message: "the store is unreachable; try again"}})
		return
	}
	detail := errorDetail{Code: code, Message: pos.ErrorMessage(err)}
	var ge *pos.Error
	if errors.As(err, &ge) {
		detail.Field = ge.Field
	}
	var ended *sessions.EndedError
	if errors.As(err, &ended) {
		detail.Reason = ended.Reason.String()
	}
	if code == pos.EINTERNAL {
		s.log.Error("internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, statusFor(code), errorBody{Error: detail})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// isJSON reports whether the request says its body is JSON.
func isJSON(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/json"
}

// decode reads one JSON object of type T from the body: JSON content type,
// at most maxBody bytes, no unknown fields, nothing after it, and each key
// exactly once, spelled exactly as T names it. encoding/json would take
// the last of two equal keys and match keys case-insensitively; a proxy or
// validator in front that reads the first, or only the exact spelling,
// would see another request than we act on.
func decode[T any](w http.ResponseWriter, r *http.Request) (T, error) {
	var v T
	if !isJSON(r) {
		return v, pos.Invalid("body", "Content-Type must be application/json")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return v, decodeError(err)
	}
	if err := exactKeys(body, jsonFields(reflect.TypeFor[T]())); err != nil {
		return v, err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return v, decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return v, pos.Invalid("body", "the body must hold one JSON object and nothing after it")
	}
	return v, nil
}

// jsonFields are the JSON names of a struct type's fields.
func jsonFields(t reflect.Type) map[string]bool {
	names := map[string]bool{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" {
			name = f.Name
		}
		if name != "-" {
			names[name] = true
		}
	}
	return names
}

// exactKeys checks the keys of the body's top-level object: each one of
// fields, spelled exactly, at most once. Malformed JSON is left to the
// decoder, which says what is wrong.
func exactKeys(body []byte, fields map[string]bool) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil
		}
		key, _ := t.(string)
		switch {
		case !fields[key]:
			return pos.Invalid("body", "unknown field %q", key)
		case seen[key]:
			return pos.Invalid(key, "field %q appears more than once", key)
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil
		}
	}
	return nil
}

func decodeError(err error) error {
	var tooBig *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooBig):
		return pos.Invalid("body", "the body must be at most %d bytes", maxBody)
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return pos.Invalid("body", "the body is not valid JSON")
	case errors.As(err, &typ):
		return pos.Invalid(typ.Field, "%s has the wrong type", typ.Field)
	default:
		// json reports an unknown field as `json: unknown field "x"`.
		return pos.Invalid("body", "%s", trimJSONPrefix(err))
	}
}

func trimJSONPrefix(err error) string {
	msg := err.Error()
	const p = "json: "
	if len(msg) > len(p) && msg[:len(p)] == p {
		return msg[len(p):]
	}
	return fmt.Sprint(msg)
}
