package api

import (
	"net/http"
	"net/netip"
	"testing"
)

// Through trusted proxies the client is the nearest X-Forwarded-For entry
// that is not one of them, in any of the forms proxies write; from anyone
// else the headers are the client's claim and ignored.
func TestClientAddrAndScheme(t *testing.T) {
	s := &server{cfg: Config{TrustedProxies: []netip.Prefix{
		netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8")}}}
	for _, tc := range []struct {
		name, peer string
		xff        []string
		proto      []string
		wantAddr   string
		wantHTTPS  bool
	}{
		{"direct", "203.0.113.9:5000", nil, nil, "203.0.113.9", false},
		{"untrusted peer's headers", "203.0.113.9:5000", []string{"10.9.9.9"}, []string{"https"}, "203.0.113.9", false},
		{"one proxy", "127.0.0.1:5000", []string{"198.51.100.4"}, []string{"https"}, "198.51.100.4", true},
		{"client's claim left of the real hop", "127.0.0.1:5000", []string{"1.1.1.1, 198.51.100.4"}, nil, "198.51.100.4", false},
		{"a chain of trusted proxies", "127.0.0.1:5000", []string{"198.51.100.4, 10.1.2.3"}, []string{"https, http"}, "198.51.100.4", false},
		{"headers split over lines", "127.0.0.1:5000", []string{"198.51.100.4", "10.1.2.3"}, []string{"http", "https"}, "198.51.100.4", true},
		{"hop with a port", "127.0.0.1:5000", []string{"198.51.100.4:4711"}, []string{"HTTPS"}, "198.51.100.4", true},
		{"IPv6 hop with a port", "127.0.0.1:5000", []string{"[2001:db8::7]:4711"}, nil, "2001:db8::7", false},
		{"IPv4-mapped hop", "127.0.0.1:5000", []string{"::ffff:198.51.100.4"}, nil, "198.51.100.4", false},
		{"garbled hop stops the walk", "127.0.0.1:5000", []string{"198.51.100.4, garbage, 10.1.2.3"}, nil, "10.1.2.3", false},
		{"only proxies", "127.0.0.1:5000", []string{"10.1.2.3"}, nil, "10.1.2.3", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: tc.peer, Header: http.Header{}}
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			for _, v := range tc.proto {
				r.Header.Add("X-Forwarded-Proto", v)
			}
			if got := s.clientAddr(r); got != tc.wantAddr {
				t.Errorf("clientAddr: got %q, want %q", got, tc.wantAddr)
			}
			if got := s.isHTTPS(r); got != tc.wantHTTPS {
				t.Errorf("isHTTPS: got %v, want %v", got, tc.wantHTTPS)
			}
		})
	}
}
