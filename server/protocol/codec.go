package protocol

import "strconv"

// Error is a frame that could not be decoded. It names the field at fault.
type Error struct {
	Field  string
	Reason string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return "protocol: " + e.Reason
	}
	return "protocol: " + e.Field + ": " + e.Reason
}

// Append encodes m onto b and returns the extended slice. Zero-valued
// optional fields are left out; it does not allocate when b has room.
func Append(b []byte, m Message) []byte {
	b = append(b, m.Kind.String()...)
	switch m.Kind {
	case Activity:
		b = appendInt(b, "ago", m.AgoMs)
	case State:
		b = appendInt(b, "remaining", m.RemainingMs)
		b = appendInt(b, "expiration", m.ExpirationS)
		b = appendInt(b, "warn", m.WarnMs)
		b = appendInt(b, "report", m.ReportMs)
		if m.Token != "" {
			b = append(b, " token="...)
			b = append(b, m.Token...)
		}
	case Warning:
		b = appendInt(b, "remaining", m.RemainingMs)
	case Logout:
		b = append(b, " reason="...)
		b = append(b, m.Reason.String()...)
		if m.ExpirationS > 0 {
			b = appendInt(b, "expiration", m.ExpirationS)
		}
	}
	return b
}

func appendInt(b []byte, key string, v int64) []byte {
	b = append(b, ' ')
	b = append(b, key...)
	b = append(b, '=')
	return strconv.AppendInt(b, v, 10)
}

// field bits, to refuse repeated keys.
const (
	hasAgo = 1 << iota
	hasRemaining
	hasExpiration
	hasWarn
	hasReport
	hasToken
	hasReason
)

// Parse decodes one frame. It allocates only for a token.
func Parse(frame []byte) (Message, error) {
	var m Message
	word, rest := cut(frame)
	m.Kind = parseKind(word)
	if m.Kind == KindInvalid {
		return Message{}, &Error{Reason: "unknown frame kind"}
	}
	var seen uint
	for rest != nil { // nil: no separator left; empty: a trailing space
		var field []byte
		field, rest = cut(rest)
		if len(field) == 0 {
			return Message{}, &Error{Reason: "empty field"}
		}
		eq := indexByte(field, '=')
		if eq <= 0 {
			return Message{}, &Error{Reason: "field without key=value"}
		}
		key, val := field[:eq], field[eq+1:]
		var bit uint
		var err error
		switch string(key) { // the compiler does not allocate for this conversion
		case "ago":
			bit = hasAgo
			m.AgoMs, err = parseDuration("ago", val)
		case "remaining":
			bit = hasRemaining
			m.RemainingMs, err = parseDuration("remaining", val)
		case "expiration":
			bit = hasExpiration
			m.ExpirationS, err = parseNumber("expiration", val, 0, MaxExpirationSeconds)
		case "warn":
			bit = hasWarn
			m.WarnMs, err = parseDuration("warn", val)
		case "report":
			bit = hasReport
			m.ReportMs, err = parseDuration("report", val)
		case "token":
			bit = hasToken
			if len(val) == 0 || len(val) > MaxTokenLen || !tokenChars(val) {
				err = &Error{Field: "token", Reason: "not a compact JWT"}
			} else {
				m.Token = string(val)
			}
		case "reason":
			bit = hasReason
			m.Reason = parseReasonBytes(val)
			if m.Reason == ReasonNone {
				err = &Error{Field: "reason", Reason: "unknown reason"}
			}
		default:
			continue // a newer peer's field
		}
		if err != nil {
			return Message{}, err
		}
		if seen&bit != 0 {
			return Message{}, &Error{Field: string(key), Reason: "repeated"}
		}
		seen |= bit
	}
	m = m.onlyItsFields()
	switch {
	case m.Kind == Activity && seen&hasAgo == 0:
		return Message{}, &Error{Field: "ago", Reason: "missing"}
	case (m.Kind == State || m.Kind == Warning) && seen&hasRemaining == 0:
		return Message{}, &Error{Field: "remaining", Reason: "missing"}
	case m.Kind == Logout && seen&hasReason == 0:
		return Message{}, &Error{Field: "reason", Reason: "missing"}
	}
	return m, nil
}

// onlyItsFields drops fields that mean nothing for m's kind (a "stay" frame
// carrying a token, say), as unknown keys are dropped: the decoded message
// is what Append would have written for it.
func (m Message) onlyItsFields() Message {
	out := Message{Kind: m.Kind}
	switch m.Kind {
	case Activity:
		out.AgoMs = m.AgoMs
	case State:
		out.RemainingMs, out.ExpirationS, out.WarnMs, out.ReportMs, out.Token =
			m.RemainingMs, m.ExpirationS, m.WarnMs, m.ReportMs, m.Token
	case Warning:
		out.RemainingMs = m.RemainingMs
	case Logout:
		out.Reason, out.ExpirationS = m.Reason, m.ExpirationS
	}
	return out
}

// cut splits at the first space.
func cut(b []byte) (head, tail []byte) {
	if i := indexByte(b, ' '); i >= 0 {
		return b[:i], b[i+1:]
	}
	return b, nil
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func parseKind(word []byte) Kind {
	for k, w := range kindWords {
		if w != "" && string(word) == w {
			return Kind(k)
		}
	}
	return KindInvalid
}

func parseReasonBytes(word []byte) Reason {
	for r, w := range reasonWords {
		if w != "" && string(word) == w {
			return Reason(r)
		}
	}
	return ReasonNone
}

func parseDuration(field string, val []byte) (int64, error) {
	return parseNumber(field, val, 0, MaxDurationMs)
}

// parseNumber accepts only plain decimal digits (no sign, no leading zeros
// beyond "0", no exponent) within [min, max].
func parseNumber(field string, val []byte, min, max int64) (int64, error) {
	if len(val) == 0 || len(val) > 12 || (len(val) > 1 && val[0] == '0') {
		return 0, &Error{Field: field, Reason: "not a whole number"}
	}
	var n int64
	for _, c := range val {
		if c < '0' || c > '9' {
			return 0, &Error{Field: field, Reason: "not a whole number"}
		}
		n = n*10 + int64(c-'0')
	}
	if n < min || n > max {
		return 0, &Error{Field: field, Reason: "out of range"}
	}
	return n, nil
}

func tokenChars(b []byte) bool {
	for _, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}
