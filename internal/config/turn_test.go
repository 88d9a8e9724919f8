package config

import (
	"errors"
	"io"
	"testing"
	"time"
)

func TestTURNConfig(t *testing.T) {
	if Defaults().TURNEnabled() {
		t.Fatal("TURN is on by default; tests and a bare parleyd would fight over port 3478")
	}
	c, err := Load([]string{"--turn-udp-addr", "127.0.0.1:3478", "--turn-tcp-addr", "127.0.0.1:3478",
		"--turn-allow-loopback", "--turn-credential-ttl", "1h"}, env(map[string]string{"PARLEY_TURN_MAX_ALLOCATIONS": "3"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !c.TURNEnabled() || !c.TURNAllowLoopback || c.TURNCredentialTTL != time.Hour || c.TURNMaxAllocations != 3 {
		t.Fatalf("%+v", c)
	}
	for name, mut := range map[string]func(c *Config){
		"bad udp addr":        func(c *Config) { c.TURNUDPAddr = "3478" },
		"bad tcp addr":        func(c *Config) { c.TURNTCPAddr = "x" },
		"unspecified no ip":   func(c *Config) { c.TURNUDPAddr = "0.0.0.0:3478" },
		"hostname no ip":      func(c *Config) { c.TURNUDPAddr = "turn.example:3478" },
		"ipv6 relay ip":       func(c *Config) { c.TURNRelayIP = "2001:db8::1" },
		"bad relay ip":        func(c *Config) { c.TURNRelayIP = "example.org" },
		"half a port range":   func(c *Config) { c.TURNRelayMinPort = 40000 },
		"inverted port range": func(c *Config) { c.TURNRelayMinPort, c.TURNRelayMaxPort = 50000, 40000 },
		"ttl too short":       func(c *Config) { c.TURNCredentialTTL = time.Second },
		"no allocations":      func(c *Config) { c.TURNMaxAllocations = 0 },
		"empty realm":         func(c *Config) { c.TURNRealm = "" },
	} {
		c := Defaults()
		mut(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	c = Defaults()
	c.TURNUDPAddr, c.TURNRelayIP = "0.0.0.0:3478", "203.0.113.5"
	c.TURNRelayMinPort, c.TURNRelayMaxPort = 49152, 65535
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}
