package web

import (
	"strings"
	"testing"
)

func TestNegotiate(t *testing.T) {
	for _, c := range []struct {
		header         string
		haveBr, haveGz bool
		want           string
	}{
		{"", true, true, ""},
		{"   ", true, true, ""},
		{"br", true, true, "br"},
		{"gzip", true, true, "gzip"},
		{"gzip, deflate, br, zstd", true, true, "br"},
		{"gzip, deflate, br", false, true, "gzip"},
		{"br", false, true, ""},
		{"BR;Q=1", true, true, "br"},
		{"x-gzip", true, true, "gzip"},
		{"gzip;q=1.0, br;q=0.999", true, true, "gzip"},
		{"br;q=0, gzip;q=0.001", true, true, "gzip"},
		{"br;q=0.000, gzip;q=0", true, true, ""},
		{"*", true, true, "br"},
		{"*;q=0.5, br;q=0", true, true, "gzip"},
		{"*;q=0", true, true, ""},
		{"gzip;q=0.5, identity", true, true, ""},
		{"gzip;q=0.5, identity;q=0.4", true, true, "gzip"},
		{"identity;q=0", true, true, ""},
		{"br;q=2", true, true, ""},
		{"br;q=1.001", true, true, ""},
		{"br;q=0.5x", true, true, ""},
		{"br;q=", true, true, ""},
		{"br;q=.5", true, true, ""},
		{"br ; q = 0.7 , gzip;q=0.6", true, true, "br"},
		{"br;level=5", true, true, "br"},
		{"gzip;q=0, gzip;q=0.8", true, true, "gzip"},
		{"compress, deflate", true, true, ""},
		{",,,br,,", true, true, "br"},
	} {
		if got := Negotiate(c.header, c.haveBr, c.haveGz); got != c.want {
			t.Errorf("Negotiate(%q, br %v, gzip %v) = %q, want %q", c.header, c.haveBr, c.haveGz, got, c.want)
		}
	}
}

func TestParseQValue(t *testing.T) {
	for s, want := range map[string]int{
		"0": 0, "1": 1000, "0.5": 500, "0.25": 250, "0.125": 125, "1.0": 1000, "1.000": 1000,
		"0.": 0, "1.": 1000, "1.5": 0, "0.1234": 0, "": 0, "-1": 0, "2": 0, "0,5": 0, "01": 0,
	} {
		if got := parseQValue(s); got != want {
			t.Errorf("parseQValue(%q) = %d, want %d", s, got, want)
		}
	}
}

func FuzzNegotiate(f *testing.F) {
	for _, s := range []string{"", "gzip, deflate, br, zstd", "br;q=0, gzip", "*;q=0.5", "identity;q=0",
		"gzip;q=0.5, identity", "BR;Q=1.000", "x-gzip;q=0.001"} {
		f.Add(s, true, true)
	}
	f.Fuzz(func(t *testing.T, header string, haveBr, haveGz bool) {
		got := Negotiate(header, haveBr, haveGz)
		lower := strings.ToLower(header)
		switch got {
		case "":
		case "br":
			if !haveBr || !(strings.Contains(lower, "br") || strings.Contains(header, "*")) {
				t.Fatalf("Negotiate(%q, %v, %v) = br", header, haveBr, haveGz)
			}
		case "gzip":
			if !haveGz || !(strings.Contains(lower, "gzip") || strings.Contains(header, "*")) {
				t.Fatalf("Negotiate(%q, %v, %v) = gzip", header, haveBr, haveGz)
			}
		default:
			t.Fatalf("Negotiate(%q) = %q: not a coding it can send", header, got)
		}
		// The choice is a pure function of the header.
		if again := Negotiate(header, haveBr, haveGz); again != got {
			t.Fatalf("Negotiate(%q) changed its mind: %q then %q", header, got, again)
		}
		// A coding refused outright is never chosen.
		q := parseAcceptEncoding(header)
		if got == "br" && q.of(q.br) <= 0 || got == "gzip" && q.of(q.gzip) <= 0 {
			t.Fatalf("Negotiate(%q) = %q with q 0", header, got)
		}
	})
}
