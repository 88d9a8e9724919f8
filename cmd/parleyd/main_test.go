package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/config"
)

// The test binary doubles as parleyd when this variable is set, so the
// serve test runs the real main (signals, exit code) without a build step.
const beMain = "PARLEYD_TEST_BE_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(beMain) == "1" {
		os.Args = append([]string{"parleyd"}, os.Args[1:]...)
		main()
		return
	}
	os.Exit(m.Run())
}

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func runCmd(args []string, e map[string]string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut, env(e))
	return code, out.String(), errOut.String()
}

func TestVersion(t *testing.T) {
	code, out, _ := runCmd([]string{"version"}, nil)
	if code != 0 || !strings.HasPrefix(out, "parleyd ") {
		t.Fatalf("version: %d %q", code, out)
	}
}

func TestConfigCommands(t *testing.T) {
	code, out, _ := runCmd([]string{"config", "defaults"}, nil)
	if code != 0 || out != string(config.Defaults().JSON()) {
		t.Fatalf("config defaults: %d\n%s", code, out)
	}

	code, out, errOut := runCmd([]string{"config", "show", "--addr", "127.0.0.1:9"}, map[string]string{
		"PARLEY_ADDR": "127.0.0.1:1", "PARLEY_LOG_LEVEL": "debug",
	})
	if code != 0 {
		t.Fatalf("config show: %d %s", code, errOut)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatal(err)
	}
	if m["addr"] != "127.0.0.1:9" || m["log_level"] != "debug" || m["token_ttl"] != "24h0m0s" {
		t.Fatalf("effective config:\n%s", out)
	}

	code, _, errOut = runCmd([]string{"config", "show", "--addr", "0.0.0.0:80"}, nil)
	if code != 2 || !strings.Contains(errOut, "not a loopback address") {
		t.Fatalf("non-loopback without TLS: %d %q", code, errOut)
	}
	code, _, errOut = runCmd([]string{"--addr", "0.0.0.0:80"}, nil)
	if code != 2 || !strings.Contains(errOut, "--tls-cert") {
		t.Fatalf("serving non-loopback without TLS: %d %q", code, errOut)
	}
	for _, args := range [][]string{{"config"}, {"config", "nope"}, {"config", "defaults", "x"}} {
		if code, _, _ := runCmd(args, nil); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if code, _, errOut := runCmd([]string{"-h"}, nil); code != 0 || !strings.Contains(errOut, "-data") {
		t.Fatalf("-h: %d %q", code, errOut)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var listening = regexp.MustCompile(`msg=listening addr=([0-9.]+:[0-9]+)`)

func TestServeAndSIGTERM(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "--addr", "127.0.0.1:0", "--data", t.TempDir())
	cmd.Env = append(os.Environ(), beMain+"=1")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	var addr string
	for addr == "" {
		if m := listening.FindStringSubmatch(stderr.String()); m != nil {
			addr = m[1]
			break
		}
		select {
		case err := <-done:
			t.Fatalf("parleyd exited: %v\n%s", err, stderr.String())
		case <-ctx.Done():
			t.Fatalf("no listening line:\n%s", stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+api.PathHealth, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var h api.Health
	json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if h.Status != "ok" {
		t.Fatalf("health %+v", h)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-ctx.Done():
		t.Fatal("parleyd did not exit after SIGTERM")
	}
	if !strings.Contains(stderr.String(), "msg=stopped") {
		t.Fatalf("no clean stop logged:\n%s", stderr.String())
	}
}
