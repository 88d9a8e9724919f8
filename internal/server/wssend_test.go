package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/internal/api"
)

// sendWS writes a send frame with the given id.
func (w *wsConn) sendWS(id uint64, req *api.SendRequest) {
	w.t.Helper()
	b, err := json.Marshal(api.Frame{Type: api.FrameSend, ID: id, Send: req})
	if err != nil {
		w.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := w.c.Write(ctx, websocket.MessageText, b); err != nil {
		w.t.Fatal(err)
	}
}

// answers reads frames until it has the answers (sent or error) to n
// sends, and returns them by id; other frames are returned in order.
func (w *wsConn) answers(n int) (map[uint64]api.Frame, []api.Frame) {
	w.t.Helper()
	got := make(map[uint64]api.Frame)
	var other []api.Frame
	for len(got) < n {
		f := w.mustRead()
		switch f.Type {
		case api.FrameSent, api.FrameError:
			if _, dup := got[f.ID]; dup {
				w.t.Fatalf("two answers for send %d", f.ID)
			}
			got[f.ID] = f
		default:
			other = append(other, f)
		}
	}
	return got, other
}

func TestSendOverWebSocket(t *testing.T) {
	ts := startServer(t, nil)
	a := ts.register("alice")
	b := ts.register("bob")
	ad, bd := a.devices[0], b.devices[0]

	// The upgrade's answer says the connection takes sends.
	dctx, dcancel := context.WithTimeout(context.Background(), 20*time.Second)
	c, resp, err := websocket.Dial(dctx, "ws"+strings.TrimPrefix(ts.url, "http")+api.PathWebSocket, &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + ad.token}},
	})
	dcancel()
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Get(api.HeaderFeatures); got != api.FeatureSend {
		t.Fatalf("%s: %q, want %q", api.HeaderFeatures, got, api.FeatureSend)
	}
	c.Close(websocket.StatusNormalClosure, "")
	aws, bws := ts.dialWS(ad), ts.dialWS(bd)
	aws.readUntilDrained()
	bws.readUntilDrained()

	// One send: answered once durable, delivered like a POST's.
	req := sendReq(a, ad, b, "over the socket")
	aws.sendWS(1, &req)
	ans, _ := aws.answers(1)
	sent := ans[1]
	if sent.Type != api.FrameSent || sent.Sent == nil || sent.Sent.MessageID != req.MessageID || sent.Sent.Duplicate || sent.Sent.ServerTime == 0 {
		t.Fatalf("answer %+v", sent)
	}
	f := bws.mustRead()
	if f.Type != api.FrameEnvelope || string(f.Envelope.Ciphertext) != "over the socket" || f.Envelope.Sender != "alice" ||
		f.Envelope.SenderDevice != ad.id || f.Envelope.ServerTime != sent.Sent.ServerTime {
		t.Fatalf("delivered %+v", f)
	}
	bws.ack(f.Envelope.Seq)

	// The same message again is a duplicate, over either path.
	aws.sendWS(2, &req)
	if ans, _ := aws.answers(1); ans[2].Type != api.FrameSent || !ans[2].Sent.Duplicate {
		t.Fatalf("retry answered %+v", ans[2])
	}
	var sr api.SendResponse
	ts.mustDo("POST", api.PathMessages, ad.token, req, &sr)
	if !sr.Duplicate {
		t.Fatal("a message sent over the socket was stored again by POST")
	}

	// Errors carry the same codes as over HTTP, and the send's id.
	bad := sendReq(a, ad, b, "x")
	bad.MessageID = "nope"
	aws.sendWS(3, &bad)
	stale := sendReq(a, ad, b, "x")
	stale.Envelopes[0].DeviceID++
	aws.sendWS(4, &stale)
	aws.sendWS(5, nil)
	ans, _ = aws.answers(3)
	if e := ans[3]; e.Type != api.FrameError || e.Error.Code != api.CodeBadRequest {
		t.Fatalf("bad message id answered %+v", e)
	}
	if e := ans[4]; e.Type != api.FrameError || e.Error.Code != api.CodeDeviceMismatch || len(e.Error.Mismatch) != 1 ||
		e.Error.Mismatch[0].Handle != "bob" || len(e.Error.Mismatch[0].Missing) != 1 || e.Error.Mismatch[0].Missing[0] != bd.id {
		t.Fatalf("stale device answered %+v", e.Error)
	}
	if e := ans[5]; e.Type != api.FrameError || e.Error.Code != api.CodeBadRequest {
		t.Fatalf("send frame without a send answered %+v", e)
	}

	// Many sends in flight at once, more than the server runs together:
	// each answered once, each delivered once, in no particular order.
	const n = 300
	want := make(map[string]bool, n)
	for i := range n {
		r := sendReq(a, ad, b, "burst")
		want[r.MessageID] = true
		aws.sendWS(uint64(100+i), &r)
	}
	ans, _ = aws.answers(n)
	for id, f := range ans {
		if f.Type != api.FrameSent || !want[f.Sent.MessageID] || id < 100 || id >= 100+n {
			t.Fatalf("answer %d: %+v", id, f)
		}
	}
	seen := make(map[string]bool, n)
	for len(seen) < n {
		f := bws.mustRead()
		if f.Type != api.FrameEnvelope {
			continue
		}
		if !want[f.Envelope.MessageID] || seen[f.Envelope.MessageID] {
			t.Fatalf("unexpected or repeated delivery %s", f.Envelope.MessageID)
		}
		seen[f.Envelope.MessageID] = true
		bws.ack(f.Envelope.Seq)
	}
	bws.close()
	if envs := ts.dialWS(bd).readUntilDrained(); len(envs) != 0 {
		t.Fatalf("%d acknowledged envelopes delivered again", len(envs))
	}

	// A send frame without an id cannot be answered: the connection is
	// closed as a protocol violation.
	b0, _ := json.Marshal(api.Frame{Type: api.FrameSend, Send: &req})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := aws.c.Write(ctx, websocket.MessageText, b0); err != nil {
		t.Fatal(err)
	}
	for {
		_, _, err := aws.c.Read(ctx)
		if err != nil {
			if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
				t.Fatalf("connection ended with %v, want policy violation", err)
			}
			break
		}
	}
}
