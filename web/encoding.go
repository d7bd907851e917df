package web

import "strings"

// Negotiate picks the content coding to send for an Accept-Encoding header
// (RFC 9110 12.5.3): "br", "gzip" or "" for the identity, among the
// variants available. A coding is acceptable when it is listed, or covered
// by "*", with a q-value above 0; the highest q wins, br before gzip on a
// tie (it is smaller), and an explicitly listed identity with a higher q
// than both wins over them. A missing or empty header gets the identity, as
// does a malformed q-value (read as 0: nothing is sent that the client did
// not clearly accept). A coding listed twice keeps its highest q.
func Negotiate(header string, haveBr, haveGzip bool) string {
	q := parseAcceptEncoding(header)
	best, bestQ := "", 0
	if haveBr {
		if v := q.of(q.br); v > bestQ {
			best, bestQ = "br", v
		}
	}
	if haveGzip {
		if v := q.of(q.gzip); v > bestQ {
			best, bestQ = "gzip", v
		}
	}
	if best != "" && q.identity > bestQ {
		return ""
	}
	return best
}

// acceptQ holds the q-values (0 to 1000) of the codings Negotiate cares
// about; -1 when not listed.
type acceptQ struct{ br, gzip, identity, star int }

// of is a coding's q-value, falling back to "*".
func (q acceptQ) of(listed int) int {
	if listed >= 0 {
		return listed
	}
	return max(q.star, 0)
}

func parseAcceptEncoding(header string) acceptQ {
	q := acceptQ{-1, -1, -1, -1}
	for element := range strings.SplitSeq(header, ",") {
		coding, params, _ := strings.Cut(element, ";")
		coding = strings.TrimSpace(coding)
		weight := 1000
		for param := range strings.SplitSeq(params, ";") {
			key, value, ok := strings.Cut(param, "=")
			if ok && strings.EqualFold(strings.TrimSpace(key), "q") {
				weight = parseQValue(strings.TrimSpace(value))
			}
		}
		var slot *int
		switch {
		case strings.EqualFold(coding, "br"):
			slot = &q.br
		case strings.EqualFold(coding, "gzip"), strings.EqualFold(coding, "x-gzip"):
			slot = &q.gzip
		case strings.EqualFold(coding, "identity"):
			slot = &q.identity
		case coding == "*":
			slot = &q.star
		default:
			continue
		}
		*slot = max(*slot, weight)
	}
	return q
}

// parseQValue reads qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
// as thousandths; anything else is 0.
func parseQValue(s string) int {
	if s == "" || len(s) > 5 || (s[0] != '0' && s[0] != '1') {
		return 0
	}
	n := int(s[0]-'0') * 1000
	if len(s) > 1 {
		if s[1] != '.' {
			return 0
		}
		scale := 100
		for _, c := range s[2:] {
			if c < '0' || c > '9' {
				return 0
			}
			n += int(c-'0') * scale
			scale /= 10
		}
	}
	if n > 1000 {
		return 0
	}
	return n
}
