package client

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	neturl "net/url"
	"strings"
	"testing"

	"github.com/parleychat/parley/internal/api"
)

// sendsByRoute reads the server's /metrics and returns how many sends it
// answered 200 over the WebSocket and how many by POST /v1/messages.
func sendsByRoute(t *testing.T, url string) (ws, post int) {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "parley_http_request_duration_seconds_count{") || !strings.Contains(line, `status="200"`) {
			continue
		}
		var n int
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &n); err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		switch {
		case strings.Contains(line, `route="WS send"`):
			ws += n
		case strings.Contains(line, `route="POST /v1/messages"`):
			post += n
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return ws, post
}

// runConnected runs c.Run until stop, which returns Run's error; it
// returns once c is connected.
func runConnected(t *testing.T, ctx context.Context, c *Client) (stop func() error) {
	t.Helper()
	runCtx, cancel := context.WithCancel(ctx)
	connected := make(chan struct{}, 1)
	runDone := make(chan error, 1)
	go func() {
		runDone <- c.Run(runCtx, func(ev Event) {
			if ev.Type == EventConnected {
				select {
				case connected <- struct{}{}:
				default:
				}
			}
		})
	}()
	stop = func() error { cancel(); return <-runDone }
	select {
	case <-connected:
	case <-ctx.Done():
		stop()
		t.Fatal("the client did not connect")
	}
	t.Cleanup(func() { cancel() })
	return stop
}

// While Run holds the delivery connection, messages go out over it; with
// no connection they go by POST, and both arrive once.
func TestSendsUseTheDeliveryConnection(t *testing.T) {
	srv := newServer(t)
	ctx := testCtx(t)
	alice, bob := aliceAndBob(t, srv.URL)
	send(t, alice, "bob", "by post") // no connection: POST
	ws0, post0 := sendsByRoute(t, srv.URL)
	if ws0 != 0 || post0 != 1 {
		t.Fatalf("before connecting: %d sends over the socket, %d by POST; want 0 and 1", ws0, post0)
	}

	stop := runConnected(t, ctx, alice)
	const n = 5
	for i := range n {
		send(t, alice, "bob", fmt.Sprintf("over the socket %d", i))
	}
	ws, post := sendsByRoute(t, srv.URL)
	// Alice's connection may also carry receipts; POSTs are only the first.
	if ws < n || post != post0 {
		t.Fatalf("while connected: %d sends over the socket, %d by POST; want at least %d and %d", ws, post, n, post0)
	}
	if err := stop(); err != context.Canceled {
		t.Fatalf("Run: %v", err)
	}

	evs := syncAll(t, bob)
	wantStrings(t, "bob's messages", texts(only(evs, EventMessage)),
		"by post", "over the socket 0", "over the socket 1", "over the socket 2", "over the socket 3", "over the socket 4")
}

func TestHasFeature(t *testing.T) {
	for _, c := range []struct {
		list string
		want bool
	}{
		{"send", true},
		{"calls, send", true},
		{" send ,x", true},
		{"", false},
		{"sends", false},
		{"x,resend", false},
	} {
		if got := hasFeature(c.list, "send"); got != c.want {
			t.Errorf("hasFeature(%q, send) = %v, want %v", c.list, got, c.want)
		}
	}
}

// Through a proxy that hides Parley-Features (as an older server would
// not send it), the client keeps sending by POST while connected.
func TestNoSendsOverSocketWithoutTheFeature(t *testing.T) {
	srv := newServer(t)
	ctx := testCtx(t)
	target, err := neturl.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(r *http.Response) error {
		r.Header.Del(api.HeaderFeatures)
		return nil
	}
	proxy := httptest.NewServer(rp)
	defer proxy.Close()

	alice := register(t, proxy.URL, "alice")
	bob := register(t, proxy.URL, "bob")
	if err := bob.AddContact(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	stop := runConnected(t, ctx, alice)
	send(t, alice, "bob", "by post while connected")
	if ws, post := sendsByRoute(t, srv.URL); ws != 0 || post < 1 {
		t.Fatalf("%d sends over the socket, %d by POST; want 0 and at least 1", ws, post)
	}
	stop()
	wantStrings(t, "bob's messages", texts(only(syncAll(t, bob), EventMessage)), "by post while connected")
}
