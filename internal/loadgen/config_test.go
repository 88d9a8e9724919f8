package loadgen

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

func validConfig() Config {
	c := Config{Server: "http://127.0.0.1:18080", Devices: 10, Senders: 2, Duration: time.Second, Size: 200}
	c.Defaults()
	return c
}

func TestValidate(t *testing.T) {
	if err := (&Config{}).Validate(); !errors.Is(err, ErrConfig) {
		t.Fatalf("empty config: %v", err)
	}
	ok := validConfig()
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	tests := []struct {
		name  string
		edit  func(c *Config)
		valid bool
	}{
		{"localhost", func(c *Config) { c.Server = "http://localhost:8080" }, true},
		{"ipv6 loopback", func(c *Config) { c.Server = "http://[::1]:8080" }, true},
		{"127.0.0.9", func(c *Config) { c.Server = "http://127.0.0.9:8080/" }, true},
		{"https", func(c *Config) { c.Server = "https://127.0.0.1" }, true},
		{"echo only", func(c *Config) { c.Server = ""; c.Echo = true }, true},
		{"nothing", func(c *Config) { c.Server = "" }, false},
		{"remote ip", func(c *Config) { c.Server = "http://10.0.0.1:8080" }, false},
		{"hostname", func(c *Config) { c.Server = "http://example.com" }, false},
		{"loopback-looking name", func(c *Config) { c.Server = "http://127.0.0.1.example.com" }, false},
		{"ws scheme", func(c *Config) { c.Server = "ws://127.0.0.1:8080" }, false},
		{"path", func(c *Config) { c.Server = "http://127.0.0.1:8080/v1" }, false},
		{"user", func(c *Config) { c.Server = "http://u:p@127.0.0.1:8080" }, false},
		{"two nodes", func(c *Config) { c.Server = "http://127.0.0.1:18181, http://127.0.0.1:18182" }, true},
		{"a remote node of two", func(c *Config) { c.Server = "http://127.0.0.1:18181,http://10.0.0.1:8080" }, false},
		{"an empty node", func(c *Config) { c.Server = "http://127.0.0.1:18181," }, false},
		{"one device", func(c *Config) { c.Devices = 1 }, false},
		{"too many devices", func(c *Config) { c.Devices = MaxDevices + 1 }, false},
		{"no senders", func(c *Config) { c.Senders = 0 }, false},
		{"more senders than devices", func(c *Config) { c.Senders = 50 }, true},
		{"zero duration", func(c *Config) { c.Duration = 0 }, false},
		{"long duration", func(c *Config) { c.Duration = 2 * time.Hour }, false},
		{"small size", func(c *Config) { c.Size = MinSize - 1 }, false},
		{"min size", func(c *Config) { c.Size = MinSize }, true},
		{"huge size", func(c *Config) { c.Size = MaxSize + 1 }, false},
		{"negative rate", func(c *Config) { c.Rate = -1 }, false},
		{"rate", func(c *Config) { c.Rate = 500.5 }, true},
		{"negative pid", func(c *Config) { c.ServerPID = -3 }, false},
		{"negative drain", func(c *Config) { c.Drain = -time.Second }, false},
		{"no setup concurrency", func(c *Config) { c.SetupConcurrency = -1 }, false},
		{"remote source", func(c *Config) { c.SourceAddrs = []netip.Addr{netip.MustParseAddr("192.168.1.2")} }, false},
		{"two devices per account", func(c *Config) { c.DevicesPerAccount = 2 }, true},
		{"devices not a multiple", func(c *Config) { c.DevicesPerAccount = 3 }, false},
		{"one account", func(c *Config) { c.DevicesPerAccount = 10 }, false},
		{"too many devices per account", func(c *Config) { c.Devices = 34; c.DevicesPerAccount = 17 }, false},
		{"sixteen devices per account", func(c *Config) { c.Devices = 32; c.DevicesPerAccount = 16 }, true},
		{"send over http", func(c *Config) { c.SendOver = SendOverHTTP }, true},
		{"send over pigeon", func(c *Config) { c.SendOver = "pigeon" }, false},
		{"loopback source", func(c *Config) { c.SourceAddrs = []netip.Addr{netip.MustParseAddr("127.0.0.3")} }, true},
	}
	for _, tt := range tests {
		c := validConfig()
		tt.edit(&c)
		err := c.Validate()
		if tt.valid && err != nil {
			t.Errorf("%s: unexpected error %v", tt.name, err)
		}
		if !tt.valid && !errors.Is(err, ErrConfig) {
			t.Errorf("%s: got %v, want ErrConfig", tt.name, err)
		}
	}
}

func TestParseSourceAddrs(t *testing.T) {
	got, err := ParseSourceAddrs("127.0.0.1-127.0.0.4, 127.0.1.9,::1")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.1.9", "::1"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if got, err := ParseSourceAddrs(""); err != nil || got != nil {
		t.Fatalf("empty: %v %v", got, err)
	}
	if got, _ := ParseSourceAddrs("127.0.0.255-127.0.1.0"); len(got) != 2 {
		t.Fatalf("range across an octet: %v", got)
	}
	for _, bad := range []string{
		"10.0.0.1", "127.0.0.8-127.0.0.1", "127.0.0.1-10.0.0.1", "x", "127.0.0.1-", "::1-::2",
		"127.0.0.0-127.0.1.255", // 512 addresses
	} {
		if _, err := ParseSourceAddrs(bad); !errors.Is(err, ErrConfig) {
			t.Errorf("%q: got %v, want ErrConfig", bad, err)
		}
	}
}
