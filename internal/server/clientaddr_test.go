package server

import (
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/parleychat/parley/internal/config"
)

func TestClientAddr(t *testing.T) {
	proxies, err := config.ParseTrustedProxies("10.0.0.0/8, 2001:db8::/32")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{proxies: proxies}
	for _, c := range []struct {
		peer string
		xff  []string
		want string
	}{
		{"192.0.2.1:5000", []string{"203.0.113.5"}, "192.0.2.1"},                     // not a proxy: header ignored
		{"10.0.0.1:5000", nil, "10.0.0.1"},                                           // a proxy, no header
		{"10.0.0.1:5000", []string{"203.0.113.5"}, "203.0.113.5"},                    // one hop
		{"10.0.0.1:5000", []string{"1.1.1.1, 203.0.113.5, 10.9.9.9"}, "203.0.113.5"}, // nearest untrusted
		{"10.0.0.1:5000", []string{"203.0.113.5:4711"}, "203.0.113.5"},               // with a port
		{"[2001:db8::1]:5000", []string{"[2001:db8:ffff::1]:80, 2a00::1"}, "2a00::1"},
		{"10.0.0.1:5000", []string{"::ffff:203.0.113.5"}, "203.0.113.5"},          // mapped
		{"10.0.0.1:5000", []string{"203.0.113.5, garbage, 10.2.2.2"}, "10.2.2.2"}, // stops at the malformed entry
		{"10.0.0.1:5000", []string{"10.3.3.3, 10.2.2.2"}, "10.3.3.3"},             // all proxies: the first
		{"[::ffff:10.0.0.1]:5000", []string{"203.0.113.5"}, "203.0.113.5"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.peer
		for _, v := range c.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := s.clientAddr(r); got != c.want {
			t.Errorf("peer %s, X-Forwarded-For %q: %q, want %q", c.peer, c.xff, got, c.want)
		}
	}
}

// FuzzClientAddr: whatever X-Forwarded-For says, the key is the peer's
// host or an address the header names, never text of the client's choice.
func FuzzClientAddr(f *testing.F) {
	for _, v := range []string{"203.0.113.5", "1.1.1.1, 203.0.113.5, 10.9.9.9", "[2001:db8::1]:80", "x", ",,,", "::ffff:1.2.3.4"} {
		f.Add(v)
	}
	proxies, _ := config.ParseTrustedProxies("10.0.0.0/8")
	s := &Server{proxies: proxies}
	f.Fuzz(func(t *testing.T, v string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = "10.0.0.1:5000"
		r.Header.Set("X-Forwarded-For", v)
		got := s.clientAddr(r)
		if a, err := netip.ParseAddr(got); err != nil || a.Zone() != "" || a.Is4In6() {
			t.Fatalf("X-Forwarded-For %q gave the key %q", v, got)
		}
	})
}
