package config

import (
	"fmt"
	"net"
	"time"
)

// TURNEnabled reports whether parleyd runs its TURN/STUN relay.
func (c Config) TURNEnabled() bool { return c.TURNUDPAddr != "" || c.TURNTCPAddr != "" }

// validateTURN checks the turn_* fields.
func (c Config) validateTURN() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
	}
	var hosts []string
	for _, a := range []struct{ name, v string }{{"turn_udp_addr", c.TURNUDPAddr}, {"turn_tcp_addr", c.TURNTCPAddr}} {
		if a.v == "" {
			continue
		}
		host, _, err := net.SplitHostPort(a.v)
		if err != nil {
			return bad("%s %q is not host:port: %v", a.name, a.v, err)
		}
		hosts = append(hosts, host)
	}
	if c.TURNRealm == "" || len(c.TURNRealm) > 127 {
		return bad("turn_realm must be 1 to 127 characters")
	}
	if c.TURNRelayIP != "" {
		ip := net.ParseIP(c.TURNRelayIP)
		if ip == nil || ip.To4() == nil || ip.IsUnspecified() {
			return bad("turn_relay_ip %q is not a specific IPv4 address", c.TURNRelayIP)
		}
	} else if c.TURNEnabled() {
		for _, h := range hosts {
			if ip := net.ParseIP(h); ip == nil || ip.To4() == nil || ip.IsUnspecified() {
				return bad("the TURN listen host %q is not a specific IPv4 address: set turn_relay_ip to the server's public IPv4 address", h)
			}
		}
	}
	if c.TURNRelayMinPort < 0 || c.TURNRelayMaxPort > 65535 || c.TURNRelayMinPort > c.TURNRelayMaxPort ||
		(c.TURNRelayMinPort == 0) != (c.TURNRelayMaxPort == 0) {
		return bad("turn_relay_min_port %d and turn_relay_max_port %d must both be 0, or a range within 1..65535",
			c.TURNRelayMinPort, c.TURNRelayMaxPort)
	}
	if c.TURNCredentialTTL < time.Minute || c.TURNCredentialTTL > 7*24*time.Hour {
		return bad("turn_credential_ttl %s is outside 1m..168h", c.TURNCredentialTTL)
	}
	if c.TURNMaxAllocations < 1 || c.TURNMaxAllocations > 10000 {
		return bad("turn_max_allocations %d is outside 1..10000", c.TURNMaxAllocations)
	}
	return nil
}
