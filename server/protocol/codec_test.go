package protocol

import (
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, m := range []Message{
		{Kind: Activity, AgoMs: 250},
		{Kind: Activity},
		{Kind: Stay},
		{Kind: SignOut},
		{Kind: Sync},
		{Kind: State, RemainingMs: 59750, ExpirationS: 60, WarnMs: 15000, ReportMs: 1000},
		{Kind: State, RemainingMs: 1, ExpirationS: 3, WarnMs: 750, ReportMs: 300, Token: "eyJh.eyJz.c2ln-_"},
		{Kind: Warning, RemainingMs: 14999},
		{Kind: Logout, Reason: ReasonIdle, ExpirationS: 60},
		{Kind: Logout, Reason: ReasonSignedOut},
		{Kind: Logout, Reason: ReasonSettingChanged, ExpirationS: 1},
		{Kind: Logout, Reason: ReasonRevoked},
	} {
		frame := Append(nil, m)
		got, err := Parse(frame)
		if err != nil {
			t.Errorf("Parse(%q): %v", frame, err)
			continue
		}
		if got != m {
			t.Errorf("Parse(%q) = %+v, want %+v", frame, got, m)
		}
	}
}

func TestParseRejects(t *testing.T) {
	for _, frame := range []string{
		"", " ", "hello", "activity", "activity ago=", "activity ago=-1", "activity ago=1e3",
		"activity ago=01", "activity ago=1.5", "activity ago=99999999999999",
		"activity ago=1 ago=2", "activity  ago=1", "activity ago=1 ", "activity =1",
		"activity ago", "state", "warning", "logout", "logout reason=bored",
		"state remaining=1 token=a\"b", "ACTIVITY ago=1",
	} {
		if m, err := Parse([]byte(frame)); err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", frame, m)
		}
	}
}

func TestParseIgnoresUnknownKeys(t *testing.T) {
	m, err := Parse([]byte("activity ago=5 future=x"))
	if err != nil || m.AgoMs != 5 {
		t.Fatalf("got %+v, %v; want ago 5", m, err)
	}
}

func TestParseDropsFieldsOfOtherKinds(t *testing.T) {
	m, err := Parse([]byte("stay token=0 ago=5 remaining=9"))
	if err != nil || m != (Message{Kind: Stay}) {
		t.Fatalf("got %+v, %v; want a bare stay", m, err)
	}
}

func TestCloseCodes(t *testing.T) {
	for _, r := range []Reason{ReasonIdle, ReasonSignedOut, ReasonSettingChanged, ReasonRevoked} {
		if got := ReasonForClose(r.CloseCode()); got != r {
			t.Errorf("ReasonForClose(%d) = %v, want %v", r.CloseCode(), got, r)
		}
		if got := ParseReason(r.String()); got != r {
			t.Errorf("ParseReason(%q) = %v, want %v", r.String(), got, r)
		}
	}
	if ReasonForClose(CloseGoingAway) != ReasonNone {
		t.Error("going away must not be a sign-out")
	}
}

func TestParseDoesNotAllocate(t *testing.T) {
	frame := []byte("activity ago=1234")
	if n := testing.AllocsPerRun(100, func() { _, _ = Parse(frame) }); n != 0 {
		t.Errorf("Parse allocates %v times per frame, want 0", n)
	}
	buf := make([]byte, 0, 128)
	m := Message{Kind: State, RemainingMs: 1, ExpirationS: 2, WarnMs: 3, ReportMs: 4}
	if n := testing.AllocsPerRun(100, func() { buf = Append(buf[:0], m) }); n != 0 {
		t.Errorf("Append allocates %v times per frame, want 0", n)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"activity ago=250", "stay", "sync", "signout",
		"state remaining=59750 expiration=60 warn=15000 report=1000 token=a.b.c",
		"warning remaining=3", "logout reason=idle expiration=60", "activity ago=1 x=y"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		m, err := Parse(frame)
		if err != nil {
			return
		}
		// Whatever parses re-encodes to a frame that parses to the same message.
		again, err := Parse(Append(nil, m))
		if err != nil {
			t.Fatalf("re-encoded %+v does not parse: %v", m, err)
		}
		if again != m {
			t.Fatalf("round trip changed %+v into %+v", m, again)
		}
	})
}

func BenchmarkParseActivity(b *testing.B) {
	frame := []byte("activity ago=1234")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(frame); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendState(b *testing.B) {
	buf := make([]byte, 0, 512)
	m := Message{Kind: State, RemainingMs: 59750, ExpirationS: 60, WarnMs: 15000, ReportMs: 1000}
	b.ReportAllocs()
	for b.Loop() {
		buf = Append(buf[:0], m)
	}
}
