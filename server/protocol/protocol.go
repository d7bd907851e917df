// Package protocol is the one definition of the idleguard socket protocol,
// shared by the server and the browser module (wasm/). It imports only
// strconv so that it keeps the WebAssembly module small.
//
// A frame is one WebSocket text message: a kind word, then zero or more
// space-separated key=value fields, for example
//
//	activity ago=250
//	state remaining=59750 expiration=60 warn=15000 report=1000 token=eyJ...
//	logout reason=idle expiration=60
//
// Values are decimal integers, reason words, or a JWT (base64url and dots),
// so nothing needs quoting. Unknown keys are ignored so that an older peer
// can read a newer one; a repeated key, a malformed number or a value out of
// range is an error. Every time on the wire is a duration in milliseconds
// (or the expiration setting in seconds), never a wall-clock instant: a
// terminal with a wrong clock changes nothing.
package protocol

// Kind is what a frame is.
type Kind uint8

const (
	KindInvalid Kind = iota

	// Client to server.

	// Activity reports trusted user input: Ago is how long before sending the
	// last input happened, so the server's last-activity time is exact.
	Activity
	// Stay is the warning dialog's "Stay signed in": activity at this instant.
	Stay
	// SignOut is "Sign out now": ends the session in every tab.
	SignOut
	// Sync asks for a State frame (the tab became visible again). It is not
	// activity.
	Sync

	// Server to client.

	// State tells the remaining time, the setting, the warning lead, how often
	// to report activity and, when one is due, a renewed token.
	State
	// Warning says the session ends in Remaining unless there is activity.
	Warning
	// Logout says the session has ended and why; a close frame with the
	// reason's close code follows.
	Logout
)

var kindWords = [...]string{
	KindInvalid: "",
	Activity:    "activity",
	Stay:        "stay",
	SignOut:     "signout",
	Sync:        "sync",
	State:       "state",
	Warning:     "warning",
	Logout:      "logout",
}

func (k Kind) String() string {
	if int(k) < len(kindWords) && k != KindInvalid {
		return kindWords[k]
	}
	return "invalid"
}

// FromClient reports whether a client may send frames of this kind.
func (k Kind) FromClient() bool { return k >= Activity && k <= Sync }

// Reason is why a session was signed out.
type Reason uint8

const (
	ReasonNone Reason = iota
	// ReasonIdle: no activity for the Expiration Time.
	ReasonIdle
	// ReasonSignedOut: the user signed out (in this tab or another).
	ReasonSignedOut
	// ReasonSettingChanged: an administrator lowered the Expiration Time below
	// the time this session had already been idle.
	ReasonSettingChanged
	// ReasonRevoked: the session was ended by the server (revoked, reached
	// its maximum lifetime, or its token is no longer valid).
	ReasonRevoked
)

var reasonWords = [...]string{
	ReasonNone:           "",
	ReasonIdle:           "idle",
	ReasonSignedOut:      "signed_out",
	ReasonSettingChanged: "setting_changed",
	ReasonRevoked:        "revoked",
}

func (r Reason) String() string {
	if int(r) < len(reasonWords) {
		return reasonWords[r]
	}
	return ""
}

// ParseReason returns the reason for its word, or ReasonNone.
func ParseReason(s string) Reason {
	for r, w := range reasonWords {
		if w != "" && w == s {
			return Reason(r)
		}
	}
	return ReasonNone
}

// WebSocket close codes. 4000-4999 are for applications (RFC 6455 7.4.2).
const (
	// CloseGoingAway (standard 1001): the server is shutting down. Not a
	// sign-out: the module reconnects.
	CloseGoingAway = 1001
	// ClosePolicy (standard 1008): a malformed frame or too many frames.
	ClosePolicy = 1008
	// CloseTooBig (standard 1009): a frame over the read limit.
	CloseTooBig = 1009

	CloseIdle           = 4001
	CloseSignedOut      = 4002
	CloseSettingChanged = 4003
	CloseRevoked        = 4004
	// CloseUnauthorized: the token or its session is no longer valid. The
	// module signs the page out as for CloseRevoked.
	CloseUnauthorized = 4401
)

// CloseCode is the close code that follows a Logout frame with this reason.
func (r Reason) CloseCode() int {
	switch r {
	case ReasonIdle:
		return CloseIdle
	case ReasonSignedOut:
		return CloseSignedOut
	case ReasonSettingChanged:
		return CloseSettingChanged
	default:
		return CloseRevoked
	}
}

// ReasonForClose maps a close code back to a sign-out reason; ReasonNone
// means the close is not a sign-out (the module should reconnect).
func ReasonForClose(code int) Reason {
	switch code {
	case CloseIdle:
		return ReasonIdle
	case CloseSignedOut:
		return ReasonSignedOut
	case CloseSettingChanged:
		return ReasonSettingChanged
	case CloseRevoked, CloseUnauthorized:
		return ReasonRevoked
	}
	return ReasonNone
}

// Limits on values, so that a frame cannot carry absurd numbers.
const (
	// MaxClientFrame is the read limit for a client frame, in bytes.
	MaxClientFrame = 256
	// MaxDurationMs bounds every millisecond field (a little over a year,
	// the longest Expiration Time).
	MaxDurationMs = 366 * 24 * 3600 * 1000
	// MaxExpirationSeconds is the longest Expiration Time accepted (365 days).
	MaxExpirationSeconds = 31536000
	// MaxTokenLen bounds a token carried in a State frame.
	MaxTokenLen = 2048
)

// Message is one frame, decoded. Which fields matter depends on Kind.
type Message struct {
	Kind Kind

	AgoMs       int64  // Activity
	RemainingMs int64  // State, Warning
	ExpirationS int64  // State, Logout
	WarnMs      int64  // State: the warning lead
	ReportMs    int64  // State: how often to report ongoing activity
	Token       string // State: a renewed token, when one is due
	Reason      Reason // Logout
}
