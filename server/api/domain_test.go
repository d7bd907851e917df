package api

import (
	"errors"
	"strings"
	"testing"

	"idleguard/server/pos"
)

func TestDomainFromHost(t *testing.T) {
	long := strings.Repeat("a", pos.MaxDomainLen)
	for _, tc := range []struct {
		name, host, suffix string
		want               string // "": no domain
	}{
		{"no suffix: any host is default", "acme.localhost:8080", "", pos.DefaultDomain},
		{"no suffix: an IP literal too", "[::1]:8080", "", pos.DefaultDomain},
		{"no suffix: an empty host too", "", "", pos.DefaultDomain},

		{"a domain", "acme.localhost", ".localhost", "acme"},
		{"with a port", "acme.localhost:8080", ".localhost", "acme"},
		{"with an empty port", "acme.localhost:", ".localhost", "acme"},
		{"uppercase", "ACME.LocalHost", ".localhost", "acme"},
		{"uppercase with a port", "Acme.LOCALHOST:443", ".localhost", "acme"},
		{"a trailing dot", "acme.localhost.", ".localhost", "acme"},
		{"a trailing dot and a port", "acme.localhost.:8080", ".localhost", "acme"},
		{"digits and hyphens", "shop-42.localhost", ".localhost", "shop-42"},
		{"one character", "a.localhost", ".localhost", "a"},
		{"63 characters", long + ".localhost", ".localhost", long},
		{"a deeper suffix", "acme.pos.example.com:8443", ".pos.example.com", "acme"},
		{"the default domain by name", "default.localhost", ".localhost", pos.DefaultDomain},

		{"64 characters", long + "a.localhost", ".localhost", ""},
		{"a deeper name", "a.acme.localhost", ".localhost", ""},
		{"a deeper name with a port", "a.acme.localhost:8080", ".localhost", ""},
		{"the bare suffix", "localhost", ".localhost", ""},
		{"the bare suffix with a port", "localhost:8080", ".localhost", ""},
		{"the suffix with its dot", ".localhost", ".localhost", ""},
		{"an empty host", "", ".localhost", ""},
		{"only a port", ":8080", ".localhost", ""},
		{"two trailing dots", "acme.localhost..", ".localhost", ""},
		{"a suffix matched without its dot", "acmelocalhost", ".localhost", ""},
		{"a suffix matched without its dot, with a port", "acmelocalhost:8080", ".localhost", ""},
		{"the suffix inside the name", "acme.localhost.evil.example", ".localhost", ""},
		{"part of a deeper suffix", "acme.example.com", ".pos.example.com", ""},
		{"another host", "example.com", ".localhost", ""},
		{"an IPv4 address", "127.0.0.1:8080", ".localhost", ""},
		{"an IPv6 literal", "[::1]:8080", ".localhost", ""},
		{"an IPv6 literal without a port", "[::1]", ".localhost", ""},
		{"a name in an IP literal's brackets", "[acme.localhost]:8080", ".localhost", ""},
		{"a name in brackets without a port", "[acme.localhost]", ".localhost", ""},
		{"two ports", "acme.localhost:80:80", ".localhost", ""},
		{"an underscore", "ac_me.localhost", ".localhost", ""},
		{"a space", "ac me.localhost", ".localhost", ""},
		{"a leading hyphen", "-acme.localhost", ".localhost", ""},
		{"a trailing hyphen", "acme-.localhost", ".localhost", ""},
		{"a non-ASCII letter", "acmé.localhost", ".localhost", ""},
		{"the Kelvin sign, which ToLower would fold to k", "\u212aacme.localhost", ".localhost", ""},
		{"a NUL", "acme\x00.localhost", ".localhost", ""},
		{"a percent-encoded dot", "acme%2Elocalhost", ".localhost", ""},
		{"user info", "user@acme.localhost", ".localhost", ""},
		{"a path", "acme.localhost/x", ".localhost", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := domainFromHost(tc.host, tc.suffix)
			if ok != (tc.want != "") || got != tc.want {
				t.Errorf("domainFromHost(%q, %q): got (%q, %v), want (%q, %v)", tc.host, tc.suffix, got, ok, tc.want, tc.want != "")
			}
		})
	}
}

// fuzzSuffixes are the suffixes FuzzDomainFromHost tries every host with.
var fuzzSuffixes = []string{".localhost", ".pos.example.com"}

// FuzzDomainFromHost: whatever the Host header, the answer is no domain,
// or a valid domain name that, with the suffix, is the host as a browser
// writes it for that name (lowercase, no trailing dot, no port). No
// suffix: always default.
func FuzzDomainFromHost(f *testing.F) {
	for _, h := range []string{
		"acme.localhost", "acme.localhost:8080", "ACME.LOCALHOST.", "acme.localhost.:1",
		"a.acme.localhost", "localhost", ".localhost", "", "[::1]:8080", "[acme.localhost]:80",
		"acmelocalhost", strings.Repeat("a", 64) + ".localhost", "acme.pos.example.com:443",
		"x.pos.example.com.", "127.0.0.1:8080", "ac_me.localhost", "\u212a.localhost",
	} {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, host string) {
		if d, ok := domainFromHost(host, ""); !ok || d != pos.DefaultDomain {
			t.Fatalf("domainFromHost(%q, \"\"): got (%q, %v), want (default, true)", host, d, ok)
		}
		for _, suffix := range fuzzSuffixes {
			d, ok := domainFromHost(host, suffix)
			if !ok {
				if d != "" {
					t.Fatalf("domainFromHost(%q, %q): got (%q, false), want an empty name with false", host, suffix, d)
				}
				continue
			}
			if err := pos.ValidateDomain(d); err != nil {
				t.Fatalf("domainFromHost(%q, %q): got %q, not a valid domain: %v", host, suffix, d, err)
			}
			if want := canonicalHost(host); d+suffix != want {
				t.Fatalf("domainFromHost(%q, %q): got %q, but %q is the host %q", host, suffix, d, d+suffix, want)
			}
			// The name itself, any way a browser may write it, is the same domain.
			for _, h := range []string{d + suffix, strings.ToUpper(d + suffix), d + suffix + ".", d + suffix + ":8080"} {
				if again, ok := domainFromHost(h, suffix); !ok || again != d {
					t.Fatalf("domainFromHost(%q, %q): got (%q, %v), want (%q, true) as for %q", h, suffix, again, ok, d, host)
				}
			}
		}
	})
}

// canonicalHost is a Host header as a browser writes it for a name: a
// port (":" and what follows) dropped, A-Z lowercased, one trailing dot
// dropped. An IP literal keeps its brackets, so it is never a name.
func canonicalHost(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasPrefix(host, "[") {
		host = host[:i]
	} else if j := strings.LastIndex(host, "]:"); j >= 0 {
		host = host[:j+1]
	}
	var b strings.Builder
	for i := 0; i < len(host); i++ {
		c := host[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	return strings.TrimSuffix(b.String(), ".")
}

func TestValidDomainSuffix(t *testing.T) {
	for _, suffix := range []string{".localhost", ".pos.example.com", ".a", ".x-1.example", "." + strings.Repeat("a", pos.MaxDomainLen) + ".com"} {
		if err := ValidDomainSuffix(suffix); err != nil {
			t.Errorf("ValidDomainSuffix(%q): got %v, want nil", suffix, err)
		}
		// A valid suffix names its domains.
		if d, ok := domainFromHost("acme"+suffix+":8080", suffix); !ok || d != "acme" {
			t.Errorf("domainFromHost(acme%s:8080): got (%q, %v), want (acme, true)", suffix, d, ok)
		}
	}
	for _, tc := range []struct{ name, suffix string }{
		{"empty", ""},
		{"only a dot", "."},
		{"no leading dot", "localhost"},
		{"no leading dot, deeper", "pos.example.com"},
		{"two leading dots", "..localhost"},
		{"a trailing dot", ".localhost."},
		{"an empty label", ".pos..example.com"},
		{"uppercase", ".LOCALHOST"},
		{"a label of 64 characters", "." + strings.Repeat("a", pos.MaxDomainLen+1) + ".com"},
		{"a leading hyphen", ".-pos.example.com"},
		{"a trailing hyphen", ".pos-.example.com"},
		{"an underscore", ".pos_x.example.com"},
		{"a space", ". localhost"},
		{"a port", ".localhost:8080"},
		{"a wildcard", ".*.example.com"},
		{"non-ASCII", ".exämple.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidDomainSuffix(tc.suffix)
			if pos.ErrorCode(err) != pos.EINVALID {
				t.Fatalf("ValidDomainSuffix(%q): got %v, want invalid", tc.suffix, err)
			}
			var pe *pos.Error
			if !errors.As(err, &pe) || pe.Field != "domain-suffix" {
				t.Errorf("ValidDomainSuffix(%q): got %#v, want it to name field domain-suffix", tc.suffix, err)
			}
		})
	}
}
