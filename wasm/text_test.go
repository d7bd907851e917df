package main

import (
	"testing"

	"idleguard/server/protocol"
)

func TestCountdown(t *testing.T) {
	for ms, want := range map[int64]string{
		-5: "0:00", 0: "0:00", 1: "0:01", 999: "0:01", 1000: "0:01", 1001: "0:02",
		26001: "0:27", 27000: "0:27", 59999: "1:00", 60000: "1:00", 61000: "1:01",
		600000: "10:00", 3599000: "59:59", 3600000: "1:00:00", 3661000: "1:01:01",
		172800000: "48:00:00",
	} {
		if got := Countdown(ms); got != want {
			t.Errorf("Countdown(%d) = %q, want %q", ms, got, want)
		}
	}
}

func TestWarningSentence(t *testing.T) {
	got := WarningBefore + Countdown(27000) + WarningAfter
	if want := "You will be signed out in 0:27 because there has been no activity."; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestSignOutURL(t *testing.T) {
	for _, c := range []struct {
		login  string
		reason protocol.Reason
		exp    int64
		next   string
		want   string
	}{
		{"/login", protocol.ReasonIdle, 60, "/pos", "/login?reason=idle&expiration=60&next=%2Fpos"},
		{"/login", protocol.ReasonSignedOut, 0, "/admin?tab=jwt", "/login?reason=signed_out&next=%2Fadmin%3Ftab%3Djwt"},
		{"/login?lang=en", protocol.ReasonRevoked, 0, "", "/login?lang=en&reason=revoked"},
		{"https://pos.example/login", protocol.ReasonSettingChanged, 1, "/p/ä b",
			"https://pos.example/login?reason=setting_changed&expiration=1&next=%2Fp%2F%C3%A4%20b"},
	} {
		if got := SignOutURL(c.login, c.reason, c.exp, c.next); got != c.want {
			t.Errorf("SignOutURL(%q, %v, %d, %q) = %q, want %q", c.login, c.reason, c.exp, c.next, got, c.want)
		}
	}
}

func TestQueryEscape(t *testing.T) {
	for in, want := range map[string]string{
		"": "", "abcXYZ019-_.~": "abcXYZ019-_.~", "/": "%2F", "a&b=c#d": "a%26b%3Dc%23d",
		"+ %": "%2B%20%25", "\x00\xff": "%00%FF",
	} {
		if got := QueryEscape(in); got != want {
			t.Errorf("QueryEscape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBackoff(t *testing.T) {
	r := 0.999999
	b := Backoff{Base: 500, Cap: 10000, Rand: func() float64 { return r }}
	for i, ceiling := range []int64{500, 1000, 2000, 4000, 8000, 10000, 10000} {
		if d := b.Next(); d < ceiling*99/100 || d >= ceiling {
			t.Errorf("attempt %d: delay %d, want just under %d", i, d, ceiling)
		}
	}
	for i := 0; i < 100; i++ { // no overflow however long the outage
		if d := b.Next(); d < 0 || d >= 10000 {
			t.Fatalf("after %d more attempts: delay %d", i, d)
		}
	}
	b.Reset()
	r = 0
	if d := b.Next(); d != 0 {
		t.Errorf("full jitter at 0: got %d, want 0", d)
	}
	r = 1.5 // a broken random source cannot stretch the delay
	if d := b.Next(); d != 0 {
		t.Errorf("rand out of range: got %d, want 0", d)
	}
}
