package config

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestPprofAddr(t *testing.T) {
	if d := Defaults(); d.PprofAddr != "" {
		t.Fatalf("the profiler is on by default: %q", d.PprofAddr)
	}
	c, err := Load([]string{"--pprof-addr", "127.0.0.1:6060"}, env(nil), io.Discard)
	if err != nil || c.PprofAddr != "127.0.0.1:6060" {
		t.Fatalf("--pprof-addr: %q, %v", c.PprofAddr, err)
	}
	c, err = Load(nil, env(map[string]string{"PARLEY_PPROF_ADDR": "localhost:0"}), io.Discard)
	if err != nil || c.PprofAddr != "localhost:0" {
		t.Fatalf("PARLEY_PPROF_ADDR: %q, %v", c.PprofAddr, err)
	}
	for _, bad := range []string{"6060", "0.0.0.0:6060", "10.0.0.1:6060", "example.com:6060"} {
		_, err := Load([]string{"--pprof-addr", bad}, env(nil), io.Discard)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "pprof_addr") {
			t.Errorf("--pprof-addr %q: err = %v, want ErrInvalid about pprof_addr", bad, err)
		}
	}
}
