package server

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/store"
)

// wsPair opens a WebSocket over loopback TCP and returns both ends.
func wsPair(t *testing.T) (server, client *websocket.Conn) {
	t.Helper()
	accepted := make(chan *websocket.Conn, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		accepted <- c
	}))
	t.Cleanup(hs.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	client.SetReadLimit(-1)
	t.Cleanup(func() { client.CloseNow() })
	select {
	case server = <-accepted:
	case <-ctx.Done():
		t.Fatal("no connection accepted")
	}
	t.Cleanup(func() { server.CloseNow() })
	return server, client
}

// TestFrameWriterTimeout: a client that stops reading has its connection
// ended once a write waits longer than the timeout; the frames written
// before arrive as json.Marshal would have written them, and a writer
// idle for longer than the timeout is not ended.
func TestFrameWriterTimeout(t *testing.T) {
	server, client := wsPair(t)
	const timeout = 100 * time.Millisecond
	w := newFrameWriter(server, timeout)
	defer w.stop()

	e := store.Envelope{Seq: 1, MessageID: "00112233445566778899aabbccddeeff", Sender: "alice", SenderDevice: 1,
		Ciphertext: []byte("hi"), ServerTime: time.UnixMilli(1_700_000_000_000)}
	if err := w.writeEnvelope(e); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * timeout) // idle: the watchdog disarms, and must not end the connection
	sent := api.Frame{Type: api.FrameSent, ID: 3, Sent: &api.SendResponse{MessageID: e.MessageID, ServerTime: 5}}
	if err := w.writeFrame(sent); err != nil {
		t.Fatalf("write after an idle spell: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, want := range []any{deliveryFrame(e), sent} {
		_, got, err := client.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if w, _ := appendMarshal(nil, want); string(got) != string(w) {
			t.Fatalf("read %s, want %s", got, w)
		}
	}

	// The client reads no more: the socket buffers fill, a write blocks,
	// and the watchdog ends it.
	big := store.Envelope{Seq: 2, MessageID: e.MessageID, Sender: "alice", SenderDevice: 1,
		Ciphertext: make([]byte, 1<<20), ServerTime: e.ServerTime}
	var err error
	for i := 0; i < 4096 && err == nil; i++ { // 4 GiB: far beyond any socket buffer
		err = w.writeEnvelope(big)
	}
	if !errors.Is(err, errWriteTimeout) {
		t.Fatalf("writes to a client that does not read end with %v, want %v", err, errWriteTimeout)
	}
	if err := w.writeFrame(sent); !errors.Is(err, errWriteTimeout) {
		t.Fatalf("a write after the timeout: %v, want %v", err, errWriteTimeout)
	}
	if err := server.Ping(ctx); err == nil {
		t.Fatal("the connection is still open after a write timed out")
	}
}
