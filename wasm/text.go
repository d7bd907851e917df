package main

import (
	"strconv"

	"idleguard/server/protocol"
)

// The warning dialog's words. The countdown sits between WarningBefore and
// WarningAfter: "You will be signed out in 0:27 because there has been no
// activity."
const (
	WarningTitle  = "Are you still there?"
	WarningBefore = "You will be signed out in "
	WarningAfter  = " because there has been no activity."
	StayLabel     = "Stay signed in"
	SignOutLabel  = "Sign out now"
)

// Countdown formats a remaining time as the dialog shows it: whole seconds,
// rounded up so that "0:00" appears only at the deadline, as m:ss (h:mm:ss
// from an hour on).
func Countdown(ms int64) string {
	if ms < 0 {
		ms = 0
	}
	s := (ms + 999) / 1000
	h, m := s/3600, s/60%60
	s %= 60
	var b []byte
	if h > 0 {
		b = strconv.AppendInt(b, h, 10)
		b = append(b, ':')
		b = twoDigits(b, m)
	} else {
		b = strconv.AppendInt(b, m, 10)
	}
	b = append(b, ':')
	b = twoDigits(b, s)
	return string(b)
}

func twoDigits(b []byte, n int64) []byte {
	return append(b, byte('0'+n/10), byte('0'+n%10))
}

// SignOutURL is where a signed-out page goes: the login page with the reason,
// the Expiration Time (when known) and the page to come back to, e.g.
// /login?reason=idle&expiration=60&next=%2Fpos.
func SignOutURL(login string, reason protocol.Reason, expirationS int64, next string) string {
	sep := "?"
	for i := 0; i < len(login); i++ {
		if login[i] == '?' {
			sep = "&"
			break
		}
	}
	u := login + sep + "reason=" + reason.String()
	if expirationS > 0 {
		u += "&expiration=" + strconv.FormatInt(expirationS, 10)
	}
	if next != "" {
		u += "&next=" + QueryEscape(next)
	}
	return u
}

// QueryEscape percent-encodes everything but the unreserved characters of
// RFC 3986, like JavaScript's encodeURIComponent (without net/url, which
// would pull fmt into the module).
func QueryEscape(s string) string {
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '-', c == '_', c == '.', c == '~':
			b = append(b, c)
		default:
			b = append(b, '%', hex[c>>4], hex[c&15])
		}
	}
	return string(b)
}
