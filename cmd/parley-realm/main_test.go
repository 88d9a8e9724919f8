package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/realm"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestVersionAndConfig(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"version"}, &out, &errOut, env(nil)); code != 0 || !strings.HasPrefix(out.String(), "parley-realm ") {
		t.Fatalf("version: %d %q", code, out.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"--addr", "127.0.0.1:0"}, &out, &errOut, env(nil)); code != 2 || !strings.Contains(errOut.String(), "issuer_key") {
		t.Fatalf("without an issuer key: %d %q", code, errOut.String())
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	key := base64.StdEncoding.EncodeToString(pub)
	out.Reset()
	code := run(context.Background(), []string{"config", "show", "--guess-burst", "4"}, &out, &errOut,
		env(map[string]string{"PARLEY_REALM_ISSUER_KEY": key}))
	var m map[string]any
	if code != 0 || json.Unmarshal(out.Bytes(), &m) != nil || m["guess_burst"] != 4.0 || m["issuer_key"] != key {
		t.Fatalf("config show: %d %s", code, out.String())
	}
}

func TestKeyCommand(t *testing.T) {
	dir := t.TempDir()
	var out1, out2, errOut bytes.Buffer
	if code := run(context.Background(), []string{"key", "--data", dir}, &out1, &errOut, env(nil)); code != 0 {
		t.Fatalf("key: %d %s", code, errOut.String())
	}
	run(context.Background(), []string{"key", "--data", dir}, &out2, &errOut, env(nil))
	if out1.String() != out2.String() || !regexp.MustCompile(`^id [0-9a-f]{32}\npublic_key \S{44}\n$`).MatchString(out1.String()) {
		t.Fatalf("key output %q then %q", out1.String(), out2.String())
	}
}

// TestServe runs the realm as the binary would and reads its logged address.
func TestServe(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(nil)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--addr", "127.0.0.1:0", "--data", dir, "--issuer-key", base64.StdEncoding.EncodeToString(pub)},
			io.Discard, pw, env(nil))
		pw.Close()
	}()
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		re := regexp.MustCompile(`msg=listening addr=(\S+)`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addrc <- m[1]:
				default:
				}
			}
		}
	}()
	var addr string
	select {
	case addr = <-addrc:
	case code := <-done:
		t.Fatalf("exited with %d before listening", code)
	case <-time.After(30 * time.Second):
		t.Fatal("no listening line within 30s")
	}
	rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer rcancel()
	req, _ := http.NewRequestWithContext(rctx, "GET", "http://"+addr+realm.PathInfo, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var info realm.Info
	err = json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if err != nil || len(info.PublicKey) != 32 {
		t.Fatalf("info: %v", err)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit code %d", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("did not stop within 30s")
	}
}
