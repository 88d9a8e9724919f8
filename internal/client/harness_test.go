package client

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/server"
)

// testServer is a real parleyd running in this process.
type testServer struct {
	URL  string
	Addr string
	dir  string
	stop func()
}

func testConfig(dir, addr string) config.Config {
	cfg := config.Defaults()
	cfg.Addr = addr
	cfg.DataDir = dir
	// Tests register many accounts and fetch many bundles from one address.
	cfg.RegisterRate, cfg.RegisterBurst = 6000, 1000
	cfg.BundleRate, cfg.BundleBurst = 60000, 10000
	cfg.JoinRate, cfg.JoinBurst = 6000, 1000
	cfg.ShutdownTimeout = 5 * time.Second
	return cfg
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("PARLEY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// startServer runs a server on 127.0.0.1:0 (or addr) with data in dir.
func startServer(t testing.TB, dir, addr string) *testServer {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	srv, err := server.New(testConfig(dir, addr), testLogger(t).With("side", "server"))
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
		t.Fatalf("server did not start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("server did not start in 30s")
	}
	var once sync.Once
	ts := &testServer{URL: "http://" + srv.Addr().String(), Addr: srv.Addr().String(), dir: dir}
	ts.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("server: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("server did not stop in 30s")
			}
		})
	}
	t.Cleanup(ts.stop)
	return ts
}

func newServer(t testing.TB) *testServer { return startServer(t, t.TempDir(), "") }

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// openClient opens a client with home dir (a new temporary one if "").
func openClient(t testing.TB, url, home, name string) *Client {
	t.Helper()
	if home == "" {
		home = filepath.Join(t.TempDir(), "home")
	}
	c, err := Open(testCtx(t), Options{Home: home, Server: url, DeviceName: name, Logger: testLogger(t).With("side", name)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func register(t testing.TB, url, handle string) *Client {
	t.Helper()
	c := openClient(t, url, "", handle+"-1")
	if err := c.Register(testCtx(t), handle); err != nil {
		t.Fatalf("register %s: %v", handle, err)
	}
	return c
}

// aliceAndBob registers alice and bob, bob with alice as a contact (so
// that her messages reach him as a conversation, not a request).
func aliceAndBob(t testing.TB, url string) (alice, bob *Client) {
	t.Helper()
	alice, bob = register(t, url, "alice"), register(t, url, "bob")
	if err := bob.AddContact(testCtx(t), "alice"); err != nil {
		t.Fatal(err)
	}
	return alice, bob
}

// syncAll runs one Sync (wait 0) and returns its events, failing the test
// on an error.
func syncAll(t testing.TB, c *Client) []Event {
	t.Helper()
	evs, err := trySync(t, c)
	if err != nil {
		t.Fatalf("sync %s/%d: %v", c.Handle(), c.DeviceID(), err)
	}
	return evs
}

func trySync(t testing.TB, c *Client) ([]Event, error) {
	var evs []Event
	err := c.Sync(testCtx(t), 0, func(ev Event) {
		if ev.Type != EventConnected {
			evs = append(evs, ev)
		}
	})
	return evs, err
}

func send(t testing.TB, c *Client, to, text string) Message {
	t.Helper()
	m, err := c.Send(testCtx(t), to, text)
	if err != nil {
		t.Fatalf("%s sends to %s: %v", c.Handle(), to, err)
	}
	return m
}

// only returns the events of type typ.
func only(evs []Event, typ string) []Event {
	var out []Event
	for _, ev := range evs {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

// texts returns the texts of the message events.
func texts(evs []Event) []string {
	var out []string
	for _, ev := range only(evs, EventMessage) {
		out = append(out, ev.Message.Text)
	}
	return out
}

func historyTexts(t testing.TB, c *Client, peer string) []string {
	t.Helper()
	h, err := c.History(testCtx(t), peer, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range h {
		prefix := "<"
		if m.Outgoing {
			prefix = ">"
		}
		out = append(out, prefix+m.Text)
	}
	return out
}

func wantStrings(t testing.TB, what string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

func describe(evs []Event) string {
	var parts []string
	for _, ev := range evs {
		s := ev.Type
		if ev.Message != nil {
			s += ":" + ev.Message.Text
		}
		if ev.Detail != "" {
			s += "(" + ev.Detail + ")"
		}
		parts = append(parts, s)
	}
	return fmt.Sprint(parts)
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
