package loadgen_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/loadgen"
	"github.com/parleychat/parley/internal/server"
)

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

	cfg := config.Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.RegisterRate = 1e6 // per minute per address: no limit for this run
	cfg.RegisterBurst = 1000
	var serverLog bytes.Buffer
	srv, err := server.New(cfg, slog.New(slog.NewTextHandler(&serverLog, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	srvCtx, stopSrv := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- srv.Run(srvCtx) }()
	defer func() {
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
	}()
	select {
	case <-srv.Ready():
	case err := <-runErr:
		t.Fatalf("server.Run: %v", err)
	case <-ctx.Done():
		t.Fatal("server not ready")
	}

	lc := loadgen.Config{
		Server:      "http://" + srv.Addr().String(),
		Devices:     20,
		Senders:     4,
		Duration:    2 * time.Second,
		Size:        200,
		Echo:        true,
		SourceAddrs: []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")},
		ServerPID:   os.Getpid(), // the server runs in this process
		Drain:       30 * time.Second,
		FsyncDir:    cfg.DataDir,
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
	if s := rep.Setup; s.Registered != 20 || s.Connected != 20 || len(s.Errors) != 0 {
		t.Fatalf("setup %+v", s)
	}
	p := rep.Parley
	if p.Acked == 0 {
		t.Fatal("no send was acknowledged")
	}
	if len(p.Errors) != 0 {
		t.Fatalf("errors during the run: %v", p.Errors)
	}
	if p.DeliveredTotal != p.Acked || p.Check.Missing != 0 || p.Check.Duplicates != 0 || p.Check.Unacknowledged != 0 {
		t.Fatalf("acked %d, delivered %d, check %+v", p.Acked, p.DeliveredTotal, *p.Check)
	}
	if p.Latency.Count != p.DeliveredTotal || p.Foreign != 0 {
		t.Fatalf("latency samples %d, delivered %d, foreign %d", p.Latency.Count, p.DeliveredTotal, p.Foreign)
	}
	if e := rep.Echo; e == nil || e.Acked == 0 || e.Check.Missing != 0 || len(e.Errors) != 0 {
		t.Fatalf("echo phase %+v", e)
	}
}
