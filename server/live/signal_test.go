package live

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"idleguard/server/protocol"
)

var sampleSignals = []Signal{
	{Kind: KindActivity, Node: "n1", Activity: []Activity{
		{Domain: "acme", SessionID: "s1", Ago: 0},
		{Domain: "acme", SessionID: "s2", Ago: 1500 * time.Millisecond},
		{Domain: "globex", SessionID: "s1", Ago: 48 * time.Hour},
		{Domain: "acme", SessionID: "s3", Ago: time.Millisecond},
	}},
	{Kind: KindStarted, Node: "n1", Domain: "acme", SessionID: "abc"},
	{Kind: KindEnded, Node: "node-2", Domain: "acme", SessionID: "abc", Reason: protocol.ReasonIdle},
	{Kind: KindEnded, Node: "node-2", Domain: "acme", SessionID: "abc", Reason: protocol.ReasonRevoked},
	{Kind: KindSettings, Node: "n", Domain: "globex"},
	{Kind: KindDomains, Node: "n", Domain: "globex"},
	{Kind: KindDomains, Node: "n"},
	{Kind: KindStarted, Node: strings.Repeat("n", MaxName), Domain: strings.Repeat("d", MaxName), SessionID: strings.Repeat("s", MaxName)},
}

func TestSignalRoundTrip(t *testing.T) {
	for _, s := range sampleSignals {
		p, err := EncodeSignal(s)
		if err != nil {
			t.Fatalf("EncodeSignal(%+v): %v", s, err)
		}
		got, err := DecodeSignal(p)
		if err != nil {
			t.Fatalf("DecodeSignal(EncodeSignal(%+v)): %v", s, err)
		}
		if !reflect.DeepEqual(got, s) {
			t.Fatalf("round trip: got %+v, want %+v", got, s)
		}
	}
}

// TestSignalCompact: a coalesced batch names each domain once; an entry is
// its session id and a few bytes.
func TestSignalCompact(t *testing.T) {
	var acts []Activity
	for i := range 100 {
		acts = append(acts, Activity{Domain: "acme", SessionID: "0123456789abcdef0123456789abcdef"[:22], Ago: time.Duration(i) * 37 * time.Millisecond})
	}
	p, err := EncodeSignal(Signal{Kind: KindActivity, Node: "node-1", Activity: acts})
	if err != nil {
		t.Fatal(err)
	}
	if per := float64(len(p)) / 100; per > 26 {
		t.Fatalf("%d bytes for 100 entries of 22-byte ids: %.1f bytes each, want at most 26", len(p), per)
	}
}

func TestDecodeSignalRefuses(t *testing.T) {
	good, err := EncodeSignal(sampleSignals[0])
	if err != nil {
		t.Fatal(err)
	}
	ended, _ := EncodeSignal(sampleSignals[2])
	for name, p := range map[string][]byte{
		"empty":          nil,
		"version 2":      append([]byte{2}, good[1:]...),
		"unknown kind":   {1, 99, 1, 'n'},
		"kind 0":         {1, 0, 1, 'n'},
		"no node":        {1, byte(KindSettings), 0, 1, 'd'},
		"cut name":       {1, byte(KindSettings), 5, 'n'},
		"trailing byte":  append(append([]byte{}, good...), 0),
		"cut short":      good[:len(good)-1],
		"zero groups":    {1, byte(KindActivity), 1, 'n', 0},
		"zero entries":   {1, byte(KindActivity), 1, 'n', 1, 1, 'd', 0},
		"huge count":     {1, byte(KindActivity), 1, 'n', 1, 1, 'd', 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 's', 0},
		"huge groups":    {1, byte(KindActivity), 1, 'n', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"bad varint":     {1, byte(KindActivity), 1, 'n', 1, 1, 'd', 1, 1, 's', 0x80},
		"ago too large":  {1, byte(KindActivity), 1, 'n', 1, 1, 'd', 1, 1, 's', 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01},
		"reason none":    append(append([]byte{}, ended[:len(ended)-1]...), 0),
		"reason unknown": append(append([]byte{}, ended[:len(ended)-1]...), 200),
		"brace domain":   {1, byte(KindSettings), 1, 'n', 3, 'a', '{', 'b'},
		"empty domain":   {1, byte(KindSettings), 1, 'n', 0},
		"empty sid":      {1, byte(KindStarted), 1, 'n', 1, 'd', 0},
		"too large":      make([]byte, MaxSignalBytes+1),
	} {
		if s, err := DecodeSignal(p); err == nil {
			t.Errorf("%s: decoded %+v, want an error", name, s)
		}
	}
}

// TestDecodeSignalCapsEntries: more entries than one signal may carry is
// refused, even when each is well formed.
func TestDecodeSignalCapsEntries(t *testing.T) {
	p := []byte{1, byte(KindActivity), 1, 'n', 2}
	for range 2 {
		p = append(p, 1, 'd')
		p = append(p, 0x81, 0x10) // 2049 entries
		for range 2049 {
			p = append(p, 1, 's', 0)
		}
	}
	if _, err := DecodeSignal(p); err == nil {
		t.Fatal("4098 entries decoded, want an error")
	}
}

func TestEncodeSignalRefuses(t *testing.T) {
	for _, s := range []Signal{
		{Kind: KindSettings, Domain: "d"}, // no node
		{Kind: KindSettings, Node: strings.Repeat("n", MaxName+1), Domain: "d"},
		{Kind: KindActivity, Node: "n", Activity: make([]Activity, MaxSignalActivity+1)},
		{Kind: KindEnded, Node: "n", Domain: "d", SessionID: "s"},
		{Kind: 0, Node: "n"},
	} {
		if _, err := EncodeSignal(s); err == nil {
			t.Errorf("EncodeSignal(%.60v): nil error, want one", s)
		}
	}
}

// FuzzDecodeSignal: whatever is published on a channel, decoding returns
// an error or a signal that encodes back to one that decodes the same.
func FuzzDecodeSignal(f *testing.F) {
	for _, s := range sampleSignals {
		p, err := EncodeSignal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(p)
	}
	f.Add([]byte{1, byte(KindActivity), 1, 'n', 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, p []byte) {
		s, err := DecodeSignal(p)
		if err != nil {
			return
		}
		if len(s.Activity) > MaxSignalActivity || len(s.Activity) > len(p)/2 {
			t.Fatalf("%d entries from %d bytes", len(s.Activity), len(p))
		}
		q, err := EncodeSignal(s)
		if err != nil {
			t.Fatalf("decoded %+v, which does not encode: %v", s, err)
		}
		s2, err := DecodeSignal(q)
		if err != nil || !reflect.DeepEqual(s, s2) {
			t.Fatalf("re-encoded %+v decodes as %+v, %v", s, s2, err)
		}
		if len(q) > len(p) || (len(q) < len(p) && bytes.Equal(q, p[:len(q)])) {
			t.Fatalf("re-encoded to %d bytes from %d", len(q), len(p))
		}
	})
}
