package config

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestClusterSettings(t *testing.T) {
	d := Defaults()
	if d.DB != "" || d.NATS != "" || d.NATSPrefix != "parley" || d.PollInterval != 5*time.Second || d.MetricsAddr != "" {
		t.Fatalf("defaults: db %q nats %q prefix %q poll %v metrics %q", d.DB, d.NATS, d.NATSPrefix, d.PollInterval, d.MetricsAddr)
	}
	c, err := Load([]string{
		"--db", "postgres://parley@db.internal:5432/parley?sslmode=verify-full",
		"--nats", "nats://n1:4222, nats://n2:4222",
		"--nats-prefix", "chat.prod-1",
		"--poll-interval", "0s",
		"--metrics-addr", "127.0.0.1:9100",
	}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.DB != "postgres://parley@db.internal:5432/parley?sslmode=verify-full" || c.NATS != "nats://n1:4222, nats://n2:4222" ||
		c.NATSPrefix != "chat.prod-1" || c.PollInterval != 0 || c.MetricsAddr != "127.0.0.1:9100" {
		t.Fatalf("flags not applied: %+v", c)
	}
	c, err = Load(nil, env(map[string]string{"PARLEY_DB": "postgresql://x/y", "PARLEY_NATS": "tls://n:4222", "PARLEY_NATS_PREFIX": "p"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.DB != "postgresql://x/y" || c.NATS != "tls://n:4222" || c.NATSPrefix != "p" {
		t.Fatalf("environment not applied: %+v", c)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--db", "mysql://x"}, "db must be"},
		{[]string{"--db", "/var/lib/parley.db"}, "db must be"},
		{[]string{"--nats", "127.0.0.1:4222"}, "nats"},
		{[]string{"--nats", "nats://a:1,http://b"}, "nats"},
		{[]string{"--nats-prefix", ""}, "nats_prefix"},
		{[]string{"--nats-prefix", "a..b"}, "nats_prefix"},
		{[]string{"--nats-prefix", "a.*"}, "nats_prefix"},
		{[]string{"--nats-prefix", "a b"}, "nats_prefix"},
		{[]string{"--nats-prefix", "a.>"}, "nats_prefix"},
		{[]string{"--poll-interval", "1ms"}, "poll_interval"},
		{[]string{"--metrics-addr", "9100"}, "metrics_addr"},
	} {
		_, err := Load(tc.args, env(nil), io.Discard)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want ErrInvalid mentioning %q", tc.args, err, tc.want)
		}
	}
}
