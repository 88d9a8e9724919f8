package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/config"
)

// TestTrustedProxies: behind a proxy of trusted_proxies, the per-address
// limits key on the client its X-Forwarded-For names (the nearest
// untrusted hop, so a client cannot pick its key by writing the header
// itself); from anyone else, the header is ignored.
func TestTrustedProxies(t *testing.T) {
	join := func(ts *testServer, xff ...string) int {
		t.Helper()
		b, _ := json.Marshal(api.JoinLinkRequest{Join: []byte("x")})
		req, _ := http.NewRequest("POST", ts.url+"/v1/links/00000000000000000000000000000000/join", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		for _, v := range xff {
			req.Header.Add("X-Forwarded-For", v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	want := func(got, want int, what string) {
		t.Helper()
		if got != want {
			t.Fatalf("%s: %d, want %d", what, got, want)
		}
	}
	behind := startServer(t, func(c *config.Config) {
		c.JoinRate, c.JoinBurst = 1, 2
		c.TrustedProxies = "127.0.0.1, 10.0.0.0/8"
	})
	want(join(behind, "203.0.113.1"), 400, "client 1, first")
	want(join(behind, "203.0.113.1"), 400, "client 1, second")
	want(join(behind, "203.0.113.1"), 429, "client 1, third")
	want(join(behind, "203.0.113.2"), 400, "client 2, first")
	// A forged entry left of the real client does not make a new key; an
	// inner proxy of the list (10.1.2.3) is skipped.
	want(join(behind, "198.51.100.9, 203.0.113.2"), 400, "client 2 with a forged entry")
	want(join(behind, "198.51.100.77", "203.0.113.2, 10.1.2.3"), 429, "client 2 through an inner proxy")
	want(join(behind), 400, "the proxy itself")

	direct := startServer(t, func(c *config.Config) { c.JoinRate, c.JoinBurst = 1, 2 })
	want(join(direct, "203.0.113.1"), 400, "no trusted proxies, first")
	want(join(direct, "203.0.113.2"), 400, "no trusted proxies, second")
	want(join(direct, "203.0.113.3"), 429, "no trusted proxies: the header changes nothing")
}
