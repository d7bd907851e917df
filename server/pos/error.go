package pos

import (
	"errors"
	"fmt"
)

// Error codes, each mapped to one HTTP status by the api package.
const (
	EINVALID      = "invalid"      // 400: bad input, nothing changed
	EUNAUTHORIZED = "unauthorized" // 401: no valid, live session
	EFORBIDDEN    = "forbidden"    // 403: signed in, but not allowed
	ENOTFOUND     = "not_found"    // 404
	ECONFLICT     = "conflict"     // 409
	ETOOMANY      = "too_many"     // 429: rate limited
	EINTERNAL     = "internal"     // 500: logged, never shown
)

// Error is an error a user may see: a code and a plain message. Field names
// the input at fault, for EINVALID.
type Error struct {
	Code    string
	Message string
	Field   string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Errorf returns an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns an EINVALID error naming field.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Code: EINVALID, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode is err's code, EINTERNAL for anything that is not an *Error.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if err == nil {
		return ""
	}
	return EINTERNAL
}

// ErrorMessage is err's message for a user; "internal error" hides the rest.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
