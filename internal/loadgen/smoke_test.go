package loadgen_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/loadgen"
	"github.com/parleychat/parley/internal/server"
)

// startServer starts parleyd in-process on 127.0.0.1:0 with its SQLite
// store in a temporary folder and returns its URL and data folder; it is
// stopped (bounded) when the test ends.
func startServer(t *testing.T, ctx context.Context) (url, dataDir string) {
	t.Helper()
	cfg := config.Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.RegisterRate = 1e6 // per minute per address: no limit for this run
	cfg.RegisterBurst = 1000
	cfg.JoinRate = 1e6
	cfg.JoinBurst = 1000
	var serverLog lockedBuffer
	srv, err := server.New(cfg, slog.New(slog.NewTextHandler(&serverLog, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	srvCtx, stopSrv := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- srv.Run(srvCtx) }()
	t.Cleanup(func() {
		stopSrv()
		select {
		case err := <-runErr:
			if err != nil {
				t.Errorf("server.Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("server did not stop")
		}
		if t.Failed() {
			t.Logf("server log:\n%s", serverLog.String())
		}
	})
	select {
	case <-srv.Ready():
	case err := <-runErr:
		t.Fatalf("server.Run: %v", err)
	case <-ctx.Done():
		t.Fatal("server not ready")
	}
	return "http://" + srv.Addr().String(), cfg.DataDir
}

// lockedBuffer is a bytes.Buffer the server's log writes to from many
// goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// checkParley requires a parleyd phase without errors in which every
// envelope of every acknowledged send reached its device exactly once.
func checkParley(t *testing.T, rep *loadgen.Report, devices, perAccount int) {
	t.Helper()
	if s := rep.Setup; s.Registered != devices || s.Connected != devices || s.Accounts != devices/perAccount || len(s.Errors) != 0 {
		t.Fatalf("setup %+v", s)
	}
	p := rep.Parley
	if p.Acked == 0 {
		t.Fatal("no send was acknowledged")
	}
	if len(p.Errors) != 0 {
		t.Fatalf("errors during the run: %v", p.Errors)
	}
	// Each send: perAccount envelopes for the recipient, perAccount-1 for
	// the sender's other devices.
	if want := p.Acked * int64(2*perAccount-1); p.AckedEnvelopes != want {
		t.Fatalf("acked %d sends, %d envelopes, want %d", p.Acked, p.AckedEnvelopes, want)
	}
	if p.DeliveredTotal != p.AckedEnvelopes || p.Check.Missing != 0 || p.Check.Duplicates != 0 || p.Check.Unacknowledged != 0 {
		t.Fatalf("envelopes due %d, delivered %d, check %+v", p.AckedEnvelopes, p.DeliveredTotal, *p.Check)
	}
	if p.Latency.Count != p.DeliveredTotal || p.Foreign != 0 {
		t.Fatalf("latency samples %d, delivered %d, foreign %d", p.Latency.Count, p.DeliveredTotal, p.Foreign)
	}
}

// TestParleydModes runs short loads against an in-process parleyd with
// sends over HTTP and over the WebSocket, and with accounts of one and of
// two devices (the second linked), and checks exactly-once delivery per
// device. It asserts no timings.
func TestParleydModes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and runs load for a few seconds")
	}
	for _, tc := range []struct {
		over       string
		perAccount int
	}{
		{loadgen.SendOverHTTP, 2},
		{loadgen.SendOverWS, 1},
		{loadgen.SendOverWS, 2},
		{loadgen.SendOverWS, 3},
	} {
		t.Run(fmt.Sprintf("%s_K%d", tc.over, tc.perAccount), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			url, _ := startServer(t, ctx)
			devices := 6 * tc.perAccount
			lc := loadgen.Config{
				Server:            url,
				Devices:           devices,
				DevicesPerAccount: tc.perAccount,
				SendOver:          tc.over,
				Senders:           8, // more senders than devices with K=1: two send over one WebSocket
				Duration:          time.Second,
				Size:              100,
				Drain:             30 * time.Second,
			}
			var toolLog lockedBuffer
			rep, err := loadgen.Run(ctx, lc, slog.New(slog.NewTextHandler(&toolLog, &slog.HandlerOptions{Level: slog.LevelDebug})))
			if err != nil {
				t.Fatalf("Run: %v\n%s", err, toolLog.String())
			}
			var text bytes.Buffer
			if err := rep.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			t.Logf("report:\n%s", text.String())
			if rep.Run.SendOver != tc.over || rep.Run.DevicesPerAccount != tc.perAccount {
				t.Fatalf("run %+v", rep.Run)
			}
			checkParley(t, rep, devices, tc.perAccount)
		})
	}
}

// TestSmokeParleyd runs the load for about two seconds with 20 devices
// against the real server, started in-process on 127.0.0.1:0 with its
// SQLite store in a temporary folder, and checks that every acknowledged
// send was delivered exactly once. It asserts no timings.
func TestSmokeParleyd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and runs load for a few seconds")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url, dataDir := startServer(t, ctx)

	lc := loadgen.Config{
		Server:      url,
		Devices:     20,
		Senders:     4,
		Duration:    2 * time.Second,
		Size:        200,
		Echo:        true,
		SourceAddrs: []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")},
		ServerPID:   os.Getpid(), // the server runs in this process
		Drain:       30 * time.Second,
		FsyncDir:    dataDir,
		FsyncTime:   300 * time.Millisecond,
	}
	var toolLog bytes.Buffer
	rep, err := loadgen.Run(ctx, lc, slog.New(slog.NewTextHandler(&toolLog, nil)))
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, toolLog.String())
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", text.String())

	if rep.Fsync == nil || rep.Fsync.Latency.Count == 0 {
		t.Fatalf("fsync baseline %+v", rep.Fsync)
	}
	checkParley(t, rep, 20, 1)
	if e := rep.Echo; e == nil || e.Acked == 0 || e.Check.Missing != 0 || len(e.Errors) != 0 {
		t.Fatalf("echo phase %+v", e)
	}
}
