package live

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"idleguard/server/protocol"
)

// The signal encoding, version 1. A name is a length byte and its bytes; a
// number is a uvarint.
//
//	version=1  kind  node
//	KindActivity:  groups (>= 1), each: domain  count (>= 1), each: sid  ago-ms
//	KindStarted:   domain  sid
//	KindEnded:     domain  sid  reason (one byte, a protocol.Reason but None)
//	KindSettings:  domain
//	KindDomains:   domain (may be empty)
//
// An Activity signal's entries are grouped by runs of one domain, so a
// coalesced batch names each domain once. Nothing follows the last field.
const signalVersion = 1

const (
	// MaxSignalActivity is the most entries one Activity signal carries;
	// Record and Publish split a larger batch.
	MaxSignalActivity = 4096
	// MaxSignalBytes bounds what DecodeSignal reads: MaxSignalActivity
	// entries of the longest names fit.
	MaxSignalBytes = 4 << 20
	// maxAgoMillis is the largest Ago the encoding carries (about 69
	// years); a larger one is sent as this.
	maxAgoMillis = 1 << 41
)

// EncodeSignal is s on the wire. It refuses a signal that DecodeSignal
// would refuse, so what one node sends every node reads.
func EncodeSignal(s Signal) ([]byte, error) {
	if err := checkName("node", s.Node); err != nil {
		return nil, err
	}
	b := make([]byte, 0, 64)
	b = append(b, signalVersion, byte(s.Kind))
	b = appendName(b, s.Node)
	switch s.Kind {
	case KindActivity:
		if len(s.Activity) == 0 {
			return nil, errors.New("live: an activity signal without activity")
		}
		if len(s.Activity) > MaxSignalActivity {
			return nil, fmt.Errorf("live: an activity signal of %d entries, over the limit of %d", len(s.Activity), MaxSignalActivity)
		}
		groups := 0
		for i, a := range s.Activity {
			if err := checkDomain(a.Domain); err != nil {
				return nil, err
			}
			if err := checkName("session id", a.SessionID); err != nil {
				return nil, err
			}
			if i == 0 || a.Domain != s.Activity[i-1].Domain {
				groups++
			}
		}
		b = binary.AppendUvarint(b, uint64(groups))
		for i := 0; i < len(s.Activity); {
			j := i + 1
			for j < len(s.Activity) && s.Activity[j].Domain == s.Activity[i].Domain {
				j++
			}
			b = appendName(b, s.Activity[i].Domain)
			b = binary.AppendUvarint(b, uint64(j-i))
			for _, a := range s.Activity[i:j] {
				b = appendName(b, a.SessionID)
				b = binary.AppendUvarint(b, uint64(min(max(a.Ago, 0)/time.Millisecond, maxAgoMillis)))
			}
			i = j
		}
	case KindStarted, KindEnded:
		if err := checkDomain(s.Domain); err != nil {
			return nil, err
		}
		if err := checkName("session id", s.SessionID); err != nil {
			return nil, err
		}
		b = appendName(b, s.Domain)
		b = appendName(b, s.SessionID)
		if s.Kind == KindEnded {
			if !knownReason(s.Reason) {
				return nil, fmt.Errorf("live: an ended signal with reason %d", s.Reason)
			}
			b = append(b, byte(s.Reason))
		}
	case KindSettings:
		if err := checkDomain(s.Domain); err != nil {
			return nil, err
		}
		b = appendName(b, s.Domain)
	case KindDomains:
		if s.Domain != "" {
			if err := checkDomain(s.Domain); err != nil {
				return nil, err
			}
		}
		b = appendName(b, s.Domain)
	default:
		return nil, fmt.Errorf("live: unknown signal kind %d", s.Kind)
	}
	return b, nil
}

func appendName(b []byte, s string) []byte {
	return append(append(b, byte(len(s))), s...)
}

func knownReason(r protocol.Reason) bool { return r != protocol.ReasonNone && r.String() != "" }

// DecodeSignal reads what EncodeSignal wrote. It is a parser of outside
// input (anything can be published on a channel): bad input is an error,
// never a panic, and it allocates no more than the input's size allows.
func DecodeSignal(p []byte) (Signal, error) {
	if len(p) > MaxSignalBytes {
		return Signal{}, fmt.Errorf("live: a signal of %d bytes, over the limit of %d", len(p), MaxSignalBytes)
	}
	d := decoder{p: p}
	if v := d.byte("version"); d.err == nil && v != signalVersion {
		return Signal{}, fmt.Errorf("live: signal version %d, want %d", v, signalVersion)
	}
	s := Signal{Kind: Kind(d.byte("kind"))}
	s.Node = d.name("node", false)
	switch s.Kind {
	case KindActivity:
		groups := d.count("groups", 2) // a group is at least 2 bytes
		for range groups {
			domain := d.name("domain", false)
			n := d.count("count", 2) // so is an entry
			if d.err == nil && len(s.Activity)+n > MaxSignalActivity {
				d.fail("count", fmt.Sprintf("over %d entries", MaxSignalActivity))
			}
			if d.err != nil {
				break
			}
			if s.Activity == nil {
				s.Activity = make([]Activity, 0, min(n*groups, MaxSignalActivity))
			}
			for range n {
				sid := d.name("session id", false)
				ms := d.uvarint("ago")
				if d.err == nil && ms > maxAgoMillis {
					d.fail("ago", "out of range")
				}
				if d.err != nil {
					break
				}
				s.Activity = append(s.Activity, Activity{Domain: domain, SessionID: sid, Ago: time.Duration(ms) * time.Millisecond})
			}
		}
	case KindStarted, KindEnded:
		s.Domain = d.name("domain", false)
		s.SessionID = d.name("session id", false)
		if s.Kind == KindEnded {
			s.Reason = protocol.Reason(d.byte("reason"))
			if d.err == nil && !knownReason(s.Reason) {
				d.fail("reason", "unknown")
			}
		}
	case KindSettings:
		s.Domain = d.name("domain", false)
	case KindDomains:
		s.Domain = d.name("domain", true)
	default:
		if d.err == nil {
			d.fail("kind", "unknown")
		}
	}
	if d.err == nil && len(d.p) > 0 {
		d.fail("signal", fmt.Sprintf("%d bytes after the end", len(d.p)))
	}
	if d.err != nil {
		return Signal{}, d.err
	}
	return s, nil
}

// decoder reads p from the front; after the first error every read returns
// a zero value and the error stays.
type decoder struct {
	p   []byte
	err error
}

func (d *decoder) fail(field, why string) {
	if d.err == nil {
		d.err = fmt.Errorf("live: bad signal: %s: %s", field, why)
	}
}

func (d *decoder) byte(field string) byte {
	if d.err != nil {
		return 0
	}
	if len(d.p) == 0 {
		d.fail(field, "missing")
		return 0
	}
	c := d.p[0]
	d.p = d.p[1:]
	return c
}

// name reads a name; a domain must also be a valid one (no brace).
func (d *decoder) name(field string, mayBeEmpty bool) string {
	n := int(d.byte(field))
	if d.err != nil {
		return ""
	}
	if n > len(d.p) {
		d.fail(field, "cut short")
		return ""
	}
	s := string(d.p[:n])
	d.p = d.p[n:]
	if s == "" {
		if !mayBeEmpty {
			d.fail(field, "empty")
		}
		return ""
	}
	if field == "domain" {
		if err := checkDomain(s); err != nil {
			d.fail(field, "has a brace")
		}
	}
	return s
}

func (d *decoder) uvarint(field string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.p)
	if n <= 0 {
		d.fail(field, "not a number")
		return 0
	}
	d.p = d.p[n:]
	return v
}

// count reads a count of at least 1 of things at least size bytes long, so
// a count the remaining input cannot hold is refused before anything is
// allocated for it.
func (d *decoder) count(field string, size int) int {
	v := d.uvarint(field)
	if d.err != nil {
		return 0
	}
	if v == 0 || v > uint64(len(d.p)/size) {
		d.fail(field, "out of range")
		return 0
	}
	return int(v)
}
