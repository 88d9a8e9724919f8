package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/devicelist"
	"github.com/parleychat/parley/internal/identity"
	"github.com/parleychat/parley/internal/pqxdh"
	"github.com/parleychat/parley/internal/server"
)

// testServer is a real server on 127.0.0.1:0 with SQLite in a temp folder.
type testServer struct {
	t      *testing.T
	cfg    config.Config
	srv    *server.Server
	url    string
	cancel context.CancelFunc
	done   chan error
}

// testConfig is the defaults with generous rate limits.
func testConfig(t *testing.T) config.Config {
	cfg := config.Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.RegisterRate, cfg.RegisterBurst = 1e6, 1000
	cfg.BundleRate, cfg.BundleBurst = 1e6, 1000
	cfg.JoinRate, cfg.JoinBurst = 1e6, 1000
	return cfg
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func startServer(t *testing.T, mod func(*config.Config)) *testServer {
	t.Helper()
	cfg := testConfig(t)
	if mod != nil {
		mod(&cfg)
	}
	srv, err := server.New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ts := runServer(t, srv)
	ts.cfg = cfg
	return ts
}

func runServer(t *testing.T, srv *server.Server) *testServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{t: t, srv: srv, cancel: cancel, done: make(chan error, 1)}
	go func() { ts.done <- srv.Run(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-ts.done:
		t.Fatalf("Run returned before listening: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("server not ready within 20s")
	}
	ts.url = "http://" + srv.Addr().String()
	t.Cleanup(func() { ts.stop() })
	return ts
}

// stop cancels Run and waits (bounded) for it to return.
func (ts *testServer) stop() error {
	ts.cancel()
	select {
	case err, ok := <-ts.done:
		if ok {
			close(ts.done)
		}
		return err
	case <-time.After(30 * time.Second):
		ts.t.Error("Run did not return within 30s of cancel")
		return errors.New("timeout")
	}
}

// do sends a JSON request and decodes a 200 body into out. It returns the
// status and, for errors, the decoded api.Error.
func (ts *testServer) do(method, path, token string, body, out any) (int, api.Error) {
	ts.t.Helper()
	var rd io.Reader
	if body != nil {
		if b, ok := body.([]byte); ok {
			rd = bytes.NewReader(b)
		} else {
			b, err := json.Marshal(body)
			if err != nil {
				ts.t.Fatal(err)
			}
			rd = bytes.NewReader(b)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, ts.url+path, rd)
	if err != nil {
		ts.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		ts.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		var e api.ErrorResponse
		if err := json.Unmarshal(b, &e); err != nil || e.Error.Code == "" {
			ts.t.Fatalf("%s %s: status %d with a body that is not an api.ErrorResponse: %s", method, path, resp.StatusCode, b)
		}
		if e.Error.Message == "" {
			ts.t.Fatalf("%s %s: error %s without a message", method, path, e.Error.Code)
		}
		return resp.StatusCode, e.Error
	}
	if out != nil {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(out); err != nil {
			ts.t.Fatalf("%s %s: decoding %s: %v", method, path, b, err)
		}
	}
	return resp.StatusCode, api.Error{}
}

// mustDo is do that requires 200.
func (ts *testServer) mustDo(method, path, token string, body, out any) {
	ts.t.Helper()
	if status, e := ts.do(method, path, token, body, out); status != http.StatusOK {
		ts.t.Fatalf("%s %s: %d %s: %s", method, path, status, e.Code, e.Message)
	}
}

// wantErr requires a given status and code.
func (ts *testServer) wantErr(status int, code, method, path, token string, body any) api.Error {
	ts.t.Helper()
	got, e := ts.do(method, path, token, body, nil)
	if got != status || e.Code != code {
		ts.t.Fatalf("%s %s: got %d %q (%s), want %d %q", method, path, got, e.Code, e.Message, status, code)
	}
	return e
}

// account is a test user with its devices.
type account struct {
	handle  string
	key     *identity.AccountKey
	version uint64
	devices []*device
	list    *devicelist.List
}

// device is one device of an account.
type device struct {
	id    uint32
	key   *identity.DeviceKey
	token string
}

func newDevice(t *testing.T, id uint32) *device {
	k, err := identity.NewDeviceKey()
	if err != nil {
		t.Fatal(err)
	}
	return &device{id: id, key: k}
}

func (d *device) entry(name string) devicelist.Device {
	return devicelist.Device{ID: d.id, SigningKey: d.key.SigningPublic(), DHKey: d.key.DHPublic(), Name: name, Created: time.Now().UnixMilli()}
}

// signedList signs a list of the given devices at the given version.
func (a *account) signedList(t *testing.T, version uint64, devs ...*device) []byte {
	t.Helper()
	l := &devicelist.List{Handle: a.handle, Version: version}
	for i, d := range devs {
		l.Devices = append(l.Devices, d.entry(fmt.Sprintf("dev%d", i)))
	}
	b, err := l.Sign(a.key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func prekey(t *testing.T, d *device, kind byte, id uint32) *pqxdh.Prekey {
	t.Helper()
	p, err := pqxdh.GeneratePrekey(d.key, kind, id)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func signedPrekey(p *pqxdh.Prekey) *api.SignedPrekey {
	return &api.SignedPrekey{ID: p.ID, Public: p.Public, Signature: p.Signature}
}

// prekeys makes an upload with the signed and last-resort keys (if base)
// and n one-time keys of each kind starting at id first.
func prekeys(t *testing.T, d *device, base bool, first uint32, n int) api.Prekeys {
	t.Helper()
	var p api.Prekeys
	if base {
		p.SignedPrekey = signedPrekey(prekey(t, d, identity.PrekeySigned, 1))
		p.LastResortPQ = signedPrekey(prekey(t, d, identity.PrekeyPQLastResort, 1))
	}
	for i := range n {
		id := first + uint32(i)
		ot := prekey(t, d, identity.PrekeyOneTime, id)
		p.OneTime = append(p.OneTime, api.OneTimePrekey{ID: id, Public: ot.Public})
		p.OneTimePQ = append(p.OneTimePQ, *signedPrekey(prekey(t, d, identity.PrekeyPQOneTime, id)))
	}
	return p
}

// registerRequest builds a valid registration for a new account.
func registerRequest(t *testing.T, handle string) (*account, api.RegisterRequest) {
	t.Helper()
	k, err := identity.NewAccountKey()
	if err != nil {
		t.Fatal(err)
	}
	a := &account{handle: handle, key: k, version: 1}
	d := newDevice(t, 1+randUint32()%1000)
	a.devices = []*device{d}
	return a, api.RegisterRequest{
		Handle:      handle,
		IdentityKey: k.Public(),
		DeviceList:  a.signedList(t, 1, d),
		DeviceID:    d.id,
		Prekeys:     prekeys(t, d, true, 1, 2),
	}
}

func randUint32() uint32 {
	var b [4]byte
	rand.Read(b[:])
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// register registers a new account and signs its device in.
func (ts *testServer) register(handle string) *account {
	ts.t.Helper()
	a, req := registerRequest(ts.t, handle)
	var resp api.RegisterResponse
	ts.mustDo("POST", api.PathAccounts, "", req, &resp)
	if resp.Handle != handle {
		ts.t.Fatalf("registered %q, want %q", resp.Handle, handle)
	}
	ts.login(a, a.devices[0])
	return a
}

// login gets a token for d.
func (ts *testServer) login(a *account, d *device) {
	ts.t.Helper()
	var ch api.ChallengeResponse
	ts.mustDo("POST", api.PathChallenge, "", api.ChallengeRequest{Handle: a.handle, DeviceID: d.id}, &ch)
	var tok api.TokenResponse
	ts.mustDo("POST", api.PathToken, "", api.TokenRequest{
		Handle: a.handle, DeviceID: d.id, Challenge: ch.Challenge,
		Signature: d.key.Sign(identity.AuthMessage(a.handle, d.id, ch.Challenge)),
	}, &tok)
	d.token = tok.Token
}

func newMessageID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// sendReq builds a send from d of from to every device of to and every
// other device of from, with ciphertext text.
func sendReq(from *account, d *device, to *account, text string) api.SendRequest {
	req := api.SendRequest{MessageID: newMessageID(), To: to.handle}
	for _, r := range to.devices {
		req.Envelopes = append(req.Envelopes, api.OutgoingEnvelope{Handle: to.handle, DeviceID: r.id, Ciphertext: []byte(text)})
	}
	if from != to {
		for _, o := range from.devices {
			if o != d {
				req.Envelopes = append(req.Envelopes, api.OutgoingEnvelope{Handle: from.handle, DeviceID: o.id, Ciphertext: []byte(text)})
			}
		}
	}
	return req
}

// wsConn is a test delivery connection.
type wsConn struct {
	t *testing.T
	c *websocket.Conn
}

func (ts *testServer) dialWS(d *device) *wsConn {
	ts.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.url, "http")+api.PathWebSocket, &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + d.token}},
	})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		ts.t.Fatalf("dialing WebSocket: %v (status %d)", err, status)
	}
	c.SetReadLimit(4 << 20)
	w := &wsConn{t: ts.t, c: c}
	ts.t.Cleanup(func() { c.CloseNow() })
	return w
}

// read reads one frame (bounded wait).
func (w *wsConn) read() (api.Frame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, b, err := w.c.Read(ctx)
	if err != nil {
		return api.Frame{}, err
	}
	var f api.Frame
	if err := json.Unmarshal(b, &f); err != nil {
		w.t.Fatalf("frame %s: %v", b, err)
	}
	return f, nil
}

func (w *wsConn) mustRead() api.Frame {
	w.t.Helper()
	f, err := w.read()
	if err != nil {
		w.t.Fatalf("reading a frame: %v", err)
	}
	return f
}

// readUntilDrained returns the envelopes before the drained frame.
func (w *wsConn) readUntilDrained() []api.Envelope {
	w.t.Helper()
	var out []api.Envelope
	for {
		f := w.mustRead()
		switch f.Type {
		case api.FrameDrained:
			return out
		case api.FrameEnvelope:
			out = append(out, *f.Envelope)
		}
	}
}

func (w *wsConn) ack(seqs ...int64) {
	w.t.Helper()
	b, _ := json.Marshal(api.Frame{Type: api.FrameAck, Seqs: seqs})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := w.c.Write(ctx, websocket.MessageText, b); err != nil {
		w.t.Fatal(err)
	}
}

// close closes the connection cleanly.
func (w *wsConn) close() {
	w.c.Close(websocket.StatusNormalClosure, "")
}
