package relay

import "net/netip"

// Address ranges a relay never sends to, or only when configured.
var (
	// never: not a unicast host, or link-local (cloud metadata services
	// answer on 169.254.169.254).
	neverPeers = []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/8"),
		netip.MustParsePrefix("169.254.0.0/16"),
		netip.MustParsePrefix("224.0.0.0/4"),
		netip.MustParsePrefix("240.0.0.0/4"), // reserved, and 255.255.255.255
		netip.MustParsePrefix("::/128"),
		netip.MustParsePrefix("fe80::/10"),
		netip.MustParsePrefix("ff00::/8"),
	}
	loopbackPeers = []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("::1/128"),
	}
	privatePeers = []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.168.0.0/16"),
		netip.MustParsePrefix("100.64.0.0/10"), // RFC 6598 shared address space (carrier NAT)
		netip.MustParsePrefix("fc00::/7"),
	}
)

// PeerAllowed reports whether a relay may exchange datagrams with peer
// IP: never with an unspecified, multicast, reserved or link-local
// address; with loopback only if allowLoopback; with a private address
// only if allowPrivate. IPv4-mapped IPv6 addresses count as IPv4.
func PeerAllowed(ip []byte, allowLoopback, allowPrivate bool) bool {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	a = a.Unmap()
	in := func(ps []netip.Prefix) bool {
		for _, p := range ps {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	switch {
	case in(neverPeers):
		return false
	case in(loopbackPeers):
		return allowLoopback
	case in(privatePeers):
		return allowPrivate
	}
	return true
}
