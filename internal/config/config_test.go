package config

import (
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "parleyd.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultsAreValid(t *testing.T) {
	if err := Defaults().Validate(); err != nil {
		t.Fatal(err)
	}
	c, err := Load(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c != Defaults() {
		t.Fatalf("Load with nothing set = %+v, want the defaults", c)
	}
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, `{"addr": "127.0.0.1:1000", "data_dir": "/from/file", "log_level": "warn", "token_ttl": "2h", "bundle_rate": 7.5}`)

	// File over defaults.
	c, err := Load([]string{"--config", file}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:1000" || c.DataDir != "/from/file" || c.LogLevel != "warn" || c.TokenTTL != 2*time.Hour || c.BundleRate != 7.5 {
		t.Fatalf("file not applied: %+v", c)
	}
	if c.LinkTTL != Defaults().LinkTTL {
		t.Fatalf("unset key changed: %v", c.LinkTTL)
	}

	// PARLEY_CONFIG names the file; environment over file.
	e := env(map[string]string{
		EnvConfigFile:      file,
		"PARLEY_ADDR":      "127.0.0.1:2000",
		"PARLEY_DATA_DIR":  "/from/env",
		"PARLEY_TOKEN_TTL": "3h",
	})
	c, err = Load(nil, e, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:2000" || c.DataDir != "/from/env" || c.TokenTTL != 3*time.Hour || c.LogLevel != "warn" {
		t.Fatalf("env not applied over file: %+v", c)
	}

	// Flags over environment.
	c, err = Load([]string{"--addr", "127.0.0.1:3000", "--data=/from/flag", "--insecure-http", "--token-ttl", "4h"}, e, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:3000" || c.DataDir != "/from/flag" || !c.InsecureHTTP || c.TokenTTL != 4*time.Hour || c.LogLevel != "warn" {
		t.Fatalf("flags not applied over env: %+v", c)
	}

	// --config wins over PARLEY_CONFIG.
	other := writeFile(t, `{"log_level": "debug"}`)
	c, err = Load([]string{"--config", other}, env(map[string]string{EnvConfigFile: file}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.LogLevel != "debug" || c.Addr != Defaults().Addr {
		t.Fatalf("--config did not replace PARLEY_CONFIG: %+v", c)
	}
}

func TestNonLoopbackNeedsTLS(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:8080", ":8080", "192.0.2.1:443", "[::]:8080", "example.com:80"} {
		_, err := Load([]string{"--addr", addr}, env(nil), io.Discard)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "not a loopback address") {
			t.Errorf("addr %s without TLS: err = %v, want a refusal", addr, err)
		}
		if _, err := Load([]string{"--addr", addr, "--insecure-http"}, env(nil), io.Discard); err != nil {
			t.Errorf("addr %s with --insecure-http: %v", addr, err)
		}
		if _, err := Load([]string{"--addr", addr, "--tls-cert", "c.pem", "--tls-key", "k.pem"}, env(nil), io.Discard); err != nil {
			t.Errorf("addr %s with TLS: %v", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "localhost:8080", "[::1]:8080", "127.9.9.9:1"} {
		if _, err := Load([]string{"--addr", addr}, env(nil), io.Discard); err != nil {
			t.Errorf("loopback addr %s: %v", addr, err)
		}
	}
}

func TestInvalid(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		file string
		want string
	}{
		{"unknown file key", nil, nil, `{"adr": "127.0.0.1:1"}`, `unknown key "adr"`},
		{"file wrong type", nil, nil, `{"register_burst": "ten"}`, `register_burst`},
		{"file bad duration", nil, nil, `{"token_ttl": 5}`, `token_ttl`},
		{"file not object", nil, nil, `[1]`, `not a JSON object`},
		{"file trailing", nil, nil, `{} {}`, `trailing`},
		{"env bad duration", nil, map[string]string{"PARLEY_LINK_TTL": "soon"}, "", "PARLEY_LINK_TTL"},
		{"env bad bool", nil, map[string]string{"PARLEY_INSECURE_HTTP": "maybe"}, "", "PARLEY_INSECURE_HTTP"},
		{"flag bad number", []string{"--max-unacked", "many"}, nil, "", "--max-unacked"},
		{"unknown flag", []string{"--nope"}, nil, "", "nope"},
		{"stray argument", []string{"serve"}, nil, "", `unexpected argument "serve"`},
		{"bad addr", []string{"--addr", "nowhere"}, nil, "", "not host:port"},
		{"cert without key", []string{"--tls-cert", "c.pem"}, nil, "", "together"},
		{"log level", []string{"--log-level", "loud"}, nil, "", "log_level"},
		{"log format", []string{"--log-format", "xml"}, nil, "", "log_format"},
		{"token ttl range", []string{"--token-ttl", "1s"}, nil, "", "token_ttl"},
		{"challenge ttl range", []string{"--challenge-ttl", "0s"}, nil, "", "challenge_ttl"},
		{"rate zero", []string{"--register-rate", "0"}, nil, "", "register_rate"},
		{"burst zero", []string{"--join-burst", "0"}, nil, "", "join_burst"},
		{"envelope over body", []string{"--max-envelope-bytes", "9999999"}, nil, "", "max_envelope_bytes"},
		{"body too small", []string{"--max-body-bytes", "10"}, nil, "", "max_body_bytes"},
		{"empty data dir", []string{"--data", ""}, nil, "", "data_dir"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.file != "" {
				args = append([]string{"--config", writeFile(t, tc.file)}, args...)
			}
			_, err := Load(args, env(tc.env), io.Discard)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %q, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	var out strings.Builder
	_, err := Load([]string{"-h"}, env(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"-addr", "PARLEY_ADDR", "-data", "PARLEY_DATA_DIR", "-config"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestJSONRoundTrip(t *testing.T) {
	c := Defaults()
	c.Addr = "127.0.0.1:9"
	c.InsecureHTTP = true
	c.ChallengeTTL = 90 * time.Second
	out := c.JSON()
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("JSON() is not JSON: %v\n%s", err, out)
	}
	if m["challenge_ttl"] != "1m30s" || m["max_envelope_bytes"] != float64(131072) {
		t.Fatalf("unexpected encoding:\n%s", out)
	}
	// Printing then loading gives the same configuration.
	got, err := Load([]string{"--config", writeFile(t, string(out))}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got != c {
		t.Fatalf("round trip: got %+v, want %+v", got, c)
	}
	if !strings.HasPrefix(string(out), "{\n  \"addr\": ") {
		t.Fatalf("not indented in field order:\n%s", out)
	}
}
