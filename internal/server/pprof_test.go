package server_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/config"
)

// With pprof_addr, Go's profiler answers on its own listener, and only
// there.
func TestPprofListener(t *testing.T) {
	ts := startServer(t, nil)
	if ts.srv.PprofAddr() != nil {
		t.Fatal("a profiler listener without pprof_addr")
	}
	ts = startServer(t, func(c *config.Config) { c.PprofAddr = "127.0.0.1:0" })
	addr := ts.srv.PprofAddr()
	if addr == nil {
		t.Fatal("no profiler listener")
	}
	get := func(url string) (int, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("http://" + addr.String() + "/debug/pprof/goroutine?debug=1"); code != 200 || !strings.Contains(body, "goroutine profile") {
		t.Fatalf("goroutine profile: %d %.80q", code, body)
	}
	if code, _ := get(ts.url + "/debug/pprof/"); code != 404 {
		t.Fatalf("/debug/pprof/ on the API listener: %d, want 404", code)
	}
}
