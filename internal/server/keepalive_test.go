package server_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/config"
)

// TestKeepalive checks the pings of a delivery connection: a client that
// answers them stays connected through many of them, and one that stops
// answering is disconnected.
func TestKeepalive(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.PingInterval = 100 * time.Millisecond
		c.WriteTimeout = 200 * time.Millisecond
	})
	a := ts.register("alice")
	b := ts.register("bob")
	ad, bd := a.devices[0], b.devices[0]

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var pings atomic.Int64
	enough := make(chan struct{})
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.url, "http")+api.PathWebSocket, &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + bd.token}},
		OnPingReceived: func(context.Context, []byte) bool {
			if pings.Add(1) == 5 {
				close(enough)
			}
			return true
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	frames := make(chan string, 10)
	go func() { // reading answers the pings
		for {
			_, data, err := c.Read(ctx)
			if err != nil {
				close(frames)
				return
			}
			frames <- string(data)
		}
	}()
	select {
	case <-enough:
	case <-ctx.Done():
		t.Fatalf("%d pings in 20s", pings.Load())
	}
	// Still connected: a message arrives.
	ts.mustDo("POST", api.PathMessages, ad.token, sendReq(a, ad, b, "after the pings"), nil)
	got := false
	for f := range frames {
		if strings.Contains(f, `"`+api.FrameEnvelope+`"`) {
			got = true
			break
		}
	}
	if !got {
		t.Fatal("the connection ended without the envelope sent after the pings")
	}
	c.Close(websocket.StatusNormalClosure, "")

	// A client that reads nothing answers no ping: the server hangs up.
	ts.dialWS(ad)
	for {
		n := metricValue(t, scrapeMetrics(t, ts.url), "parley_websockets", nil)
		if n == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%v WebSockets still open 20s after their client stopped answering pings", n)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
