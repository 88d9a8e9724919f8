package call_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"

	"github.com/parleychat/parley/internal/call"
	"github.com/parleychat/parley/internal/client"
	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/content"
	"github.com/parleychat/parley/internal/server"
)

// Each test runs a real parleyd (in process, SQLite, TURN on loopback) and
// real clients; the engines signal through the clients' end-to-end
// encrypted sessions and relay media through parleyd's TURN.

func testLogger(t testing.TB, who string) *slog.Logger {
	if os.Getenv("PARLEY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name(), "who", who)
	}
	return slog.New(slog.DiscardHandler)
}

type testServer struct {
	url string
	srv *server.Server
}

func startServer(t *testing.T) *testServer {
	t.Helper()
	cfg := config.Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.RegisterRate, cfg.RegisterBurst = 6000, 1000
	cfg.BundleRate, cfg.BundleBurst = 60000, 10000
	cfg.JoinRate, cfg.JoinBurst = 6000, 1000
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.TURNUDPAddr, cfg.TURNTCPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.TURNAllowLoopback = true
	srv, err := server.New(cfg, testLogger(t, "server"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("server: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("server did not start")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("server did not stop")
		}
	})
	return &testServer{url: "http://" + srv.Addr().String(), srv: srv}
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// loopback keeps pion's ICE on the loopback interface, UDP and TCP over
// IPv4, without mDNS (TESTING.md).
func loopback() *webrtc.SettingEngine {
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeTCP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return &se
}

// device is one client device with its call engine.
type device struct {
	t      *testing.T
	name   string
	c      *client.Client
	e      *call.Engine
	events chan call.Event
	client chan client.Event
	sent   *recordingSignaler
	cancel context.CancelFunc
	done   chan error
}

func openDevice(t *testing.T, url, name string) *client.Client {
	t.Helper()
	c, err := client.Open(ctxFor(t, time.Minute), client.Options{
		Home: filepath.Join(t.TempDir(), name), Server: url, DeviceName: name, Logger: testLogger(t, name),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func register(t *testing.T, url, handle string) *client.Client {
	t.Helper()
	c := openDevice(t, url, handle)
	if err := c.Register(ctxFor(t, time.Minute), handle); err != nil {
		t.Fatal(err)
	}
	return c
}

// link adds a new device to existing's account.
func link(t *testing.T, existing *client.Client, url, name string) *client.Client {
	t.Helper()
	nd := openDevice(t, url, name)
	ctx := ctxFor(t, time.Minute)
	codes := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		_, err := existing.LinkNew(ctx, func(code string) { codes <- code })
		done <- err
	}()
	var code string
	select {
	case code = <-codes:
	case err := <-done:
		t.Fatalf("link new: %v", err)
	}
	if err := nd.Link(ctx, code); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return nd
}

func befriend(t *testing.T, a, b *client.Client) {
	t.Helper()
	ctx := ctxFor(t, time.Minute)
	if err := a.AddContact(ctx, b.Handle()); err != nil {
		t.Fatal(err)
	}
	if err := b.AddContact(ctx, a.Handle()); err != nil {
		t.Fatal(err)
	}
}

// recordingSignaler sends through the client and keeps what it sent; an
// optional tamper function changes a signal before it is encrypted (a
// stand-in for a server that could rewrite the SDP, which end-to-end
// encryption prevents).
type recordingSignaler struct {
	c      *client.Client
	mu     sync.Mutex
	sent   []content.Call
	tamper func(*content.Call)
}

func (r *recordingSignaler) SendCall(ctx context.Context, peer string, c *content.Call) error {
	cp := *c
	if r.tamper != nil {
		r.tamper(&cp)
	}
	r.mu.Lock()
	r.sent = append(r.sent, cp)
	r.mu.Unlock()
	return r.c.SendCall(ctx, peer, &cp)
}

func (r *recordingSignaler) of(typ content.CallType) []content.Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []content.Call
	for _, c := range r.sent {
		if c.Type == typ {
			out = append(out, c)
		}
	}
	return out
}

// start runs the device's receive loop and call engine.
func start(t *testing.T, c *client.Client, name string, mod func(*call.Options)) *device {
	t.Helper()
	d := &device{t: t, name: name, c: c, events: make(chan call.Event, 256), client: make(chan client.Event, 256), done: make(chan error, 1)}
	d.sent = &recordingSignaler{c: c}
	o := call.ClientOptions(c)
	o.Signaler = d.sent
	o.SettingEngine = loopback()
	o.Logger = testLogger(t, name)
	o.OnEvent = func(ev call.Event) {
		select {
		case d.events <- ev:
		default:
			t.Errorf("%s: event queue full", name)
		}
	}
	if mod != nil {
		mod(&o)
	}
	e, err := call.New(o)
	if err != nil {
		t.Fatal(err)
	}
	d.e = e
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	connected := make(chan struct{})
	var once sync.Once
	go func() {
		d.done <- c.Run(ctx, func(ev client.Event) {
			if ev.Type == client.EventConnected {
				once.Do(func() { close(connected) })
			}
			if s, ok := call.SignalOf(ev); ok {
				e.Handle(s)
			}
			select {
			case d.client <- ev:
			default:
			}
		})
	}()
	select {
	case <-connected:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not connect", name)
	}
	t.Cleanup(d.stop)
	return d
}

func (d *device) stop() {
	d.e.Close()
	d.cancel()
	<-d.done
}

// wait returns the next event of type typ, failing on timeout; events of
// other types are kept in seen.
func (d *device) wait(typ string, timeout time.Duration) call.Event {
	d.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev := <-d.events:
			if ev.Type == typ {
				return ev
			}
			if ev.Type == call.EventEnded && typ != call.EventEnded {
				d.t.Fatalf("%s: the call ended (%s, %v) while waiting for %s", d.name, ev.Result.Reason, ev.Result.Err, typ)
			}
		case <-deadline:
			d.t.Fatalf("%s: no %s event within %s", d.name, typ, timeout)
		}
	}
}

// waitClient returns the next client event of type typ.
func (d *device) waitClient(typ string, timeout time.Duration) client.Event {
	d.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev := <-d.client:
			if ev.Type == typ {
				return ev
			}
		case <-deadline:
			d.t.Fatalf("%s: no client %s event within %s", d.name, typ, timeout)
		}
	}
}

// mediaFiles writes n audio packets and m video frames of test media.
func mediaFiles(t *testing.T, n, m int) (ogg, ivf string) {
	t.Helper()
	dir := t.TempDir()
	ogg, ivf = filepath.Join(dir, "in.ogg"), filepath.Join(dir, "in.ivf")
	var a, v bytes.Buffer
	if err := call.WriteOpusSilence(&a, n); err != nil {
		t.Fatal(err)
	}
	if err := call.WriteVP8IVF(&v, m, 320, 240); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(ogg, a.Bytes(), 0o600)
	os.WriteFile(ivf, v.Bytes(), 0o600)
	return ogg, ivf
}

// countOgg counts the Opus packets of a recording: one a page after the
// two header pages, as pion's oggwriter writes them.
func countOgg(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, _, err := oggreader.NewWith(f)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		payload, _, err := r.ParseNextPage()
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			t.Fatalf("%s: page %d: %v", path, n, err)
		}
		if !bytes.HasPrefix(payload, []byte("OpusTags")) && len(payload) > 0 {
			n++
		}
	}
}

// countIVF counts the frames of a recording.
func countIVF(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, h, err := ivfreader.NewWith(f)
	if err != nil {
		t.Fatal(err)
	}
	if h.FourCC != "VP80" {
		t.Fatalf("recording codec %q", h.FourCC)
	}
	n := 0
	for {
		_, _, err := r.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			t.Fatalf("%s: frame %d: %v", path, n, err)
		}
		n++
	}
}

func recording(t *testing.T, r *call.Result, suffix string) string {
	t.Helper()
	for _, p := range r.Recordings {
		if strings.HasSuffix(p, suffix) {
			return p
		}
	}
	t.Fatalf("no %s recording in %v", suffix, r.Recordings)
	return ""
}

func describe(r *call.Result) string {
	return fmt.Sprintf("%s err=%v connected=%v stats=%+v", r.Reason, r.Err, r.Connected, r.Stats)
}
