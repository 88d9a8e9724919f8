package client

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/api"
)

// The same envelope delivered twice (the ack was lost) is shown once.
func TestRedeliveredEnvelopeShownOnce(t *testing.T) {
	srv := newServer(t)
	ctx := testCtx(t)
	alice, bob := aliceAndBob(t, srv.URL)
	m := send(t, alice, "bob", "once only")

	lost := errors.New("connection lost before the ack")
	bob.testHook = func(point string) error {
		if point == "before-ack" {
			return lost
		}
		return nil
	}
	var first []Event
	err := bob.Sync(ctx, 0, func(ev Event) { first = append(first, ev) })
	if !errors.Is(err, lost) {
		t.Fatalf("first sync: %v", err)
	}
	bob.testHook = nil
	second := syncAll(t, bob) // the server delivers it again
	wantStrings(t, "first sync", texts(first), "once only")
	if len(second) != 0 {
		t.Errorf("redelivery showed %s", describe(second))
	}
	h, _ := bob.History(ctx, "alice", 0)
	if len(h) != 1 || h[0].ID != m.ID {
		t.Errorf("history %+v", h)
	}
	// Acked now: a third sync gets nothing.
	if evs := syncAll(t, bob); len(evs) != 0 {
		t.Errorf("third sync %s", describe(evs))
	}
	if d := only(syncAll(t, alice), EventDelivered); len(d) != 1 {
		t.Errorf("delivery receipts %d", len(d))
	}
}

// A failure before the commit (the database, say) leaves nothing behind
// and does not acknowledge: the next sync takes the envelope again.
func TestReceiveFailureBeforeCommitIsRetried(t *testing.T) {
	srv := newServer(t)
	ctx := testCtx(t)
	alice := register(t, srv.URL, "alice")
	bob := register(t, srv.URL, "bob")
	send(t, alice, "bob", "try again")
	boom := errors.New("disk full")
	bob.testHook = func(point string) error {
		if point == "before-commit" {
			return boom
		}
		return nil
	}
	evs, err := trySync(t, bob)
	if !errors.Is(err, boom) || len(evs) != 0 {
		t.Fatalf("failing sync: %v %s", err, describe(evs))
	}
	if h, _ := bob.History(ctx, "alice", 0); len(h) != 0 {
		t.Fatalf("stored despite the rollback: %+v", h)
	}
	bob.testHook = nil
	wantStrings(t, "retry", texts(syncAll(t, bob)), "try again")
}

// crashEnv names the home and the hook point where TestCrashHelper kills
// its own process.
const (
	crashEnvHome  = "PARLEY_CLIENT_CRASH_HOME"
	crashEnvPoint = "PARLEY_CLIENT_CRASH_POINT"
)

// TestCrashHelper is the child process of TestReceiveSurvivesKill: it
// syncs and sends itself SIGKILL at the hook point.
func TestCrashHelper(t *testing.T) {
	home := os.Getenv(crashEnvHome)
	if home == "" {
		t.Skip("run by TestReceiveSurvivesKill")
	}
	point := os.Getenv(crashEnvPoint)
	c, err := Open(context.Background(), Options{Home: home})
	if err != nil {
		t.Fatal(err)
	}
	c.testHook = func(p string) error {
		if p == point {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			time.Sleep(time.Minute)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = c.Sync(ctx, 0, nil)
	t.Fatalf("the helper was not killed at %q (sync: %v)", point, err)
}

// kill -9 of the receiving process, just before or just after the commit
// of an envelope, loses nothing and shows nothing twice.
func TestReceiveSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	for _, point := range []string{"before-commit", "after-commit", "before-ack"} {
		t.Run(point, func(t *testing.T) {
			srv := newServer(t)
			ctx := testCtx(t)
			alice := register(t, srv.URL, "alice")
			home := filepath.Join(t.TempDir(), "bob")
			bob := openClient(t, srv.URL, home, "bob-1")
			if err := bob.Register(ctx, "bob"); err != nil {
				t.Fatal(err)
			}
			if err := bob.AddContact(ctx, "alice"); err != nil {
				t.Fatal(err)
			}
			m := send(t, alice, "bob", "survive this")
			send(t, alice, "bob", "and this")
			bob.Close()

			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
			cmd.Env = append(os.Environ(), crashEnvHome+"="+home, crashEnvPoint+"="+point)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("helper was not killed: %v\n%s", err, out)
			}

			bob = openClient(t, "", home, "bob-1")
			evs := syncAll(t, bob)
			switch point {
			case "before-commit":
				wantStrings(t, "after the crash", texts(evs), "survive this", "and this")
			default:
				// The first envelope was committed (and maybe shown) before
				// the kill; only the second is new.
				wantStrings(t, "after the crash", texts(evs), "and this")
			}
			wantStrings(t, "history", historyTexts(t, bob, "alice"), "<survive this", "<and this")
			h, _ := bob.History(ctx, "alice", 0)
			if h[0].ID != m.ID {
				t.Errorf("first message id %s, want %s", h[0].ID, m.ID)
			}
			// The delivery receipts queued with the commit went out.
			n := 0
			for _, ev := range only(syncAll(t, alice), EventDelivered) {
				n += len(ev.Refs)
			}
			if n != 2 {
				t.Errorf("alice got receipts for %d messages, want 2", n)
			}
		})
	}
}

// Run stays connected, and reconnects when the server goes away and comes
// back.
func TestRunReconnects(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	srv := startServer(t, dir, addr)
	ctx := testCtx(t)
	alice := register(t, srv.URL, "alice")
	bob := register(t, srv.URL, "bob")

	events := make(chan Event, 100)
	runCtx, stop := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- bob.Run(runCtx, func(ev Event) { events <- ev }) }()
	next := func(typ string) Event {
		t.Helper()
		for {
			select {
			case ev := <-events:
				if ev.Type == typ {
					return ev
				}
			case <-ctx.Done():
				t.Fatalf("no %s event", typ)
			}
		}
	}
	next(EventConnected)
	send(t, alice, "bob", "live")
	if ev := next(EventMessage); ev.Message.Text != "live" {
		t.Errorf("live message %+v", ev.Message)
	}

	srv.stop()
	next(EventDisconnected)
	startServer(t, dir, addr)
	next(EventConnected)
	send(t, alice, "bob", "after the restart")
	if ev := next(EventMessage); ev.Message.Text != "after the restart" {
		t.Errorf("message after restart %+v", ev.Message)
	}
	stop()
	if err := <-runDone; !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v", err)
	}
}

func TestBackoff(t *testing.T) {
	for n := 0; n < 40; n++ {
		limit := backoffMax
		if n < 20 {
			limit = min(backoffMax, backoffBase<<n)
		}
		for i := 0; i < 50; i++ {
			if d := backoff(n); d < 0 || d > limit {
				t.Fatalf("backoff(%d) = %v, want within [0, %v]", n, d, limit)
			}
		}
	}
}

// Using up one-time prekeys is noticed on connect and refilled.
func TestPrekeyTopUp(t *testing.T) {
	srv := newServer(t)
	ctx := testCtx(t)
	alice := register(t, srv.URL, "alice")
	bob := register(t, srv.URL, "bob")
	counts := func() api.PrekeyCounts {
		var pc api.PrekeyCounts
		if err := bob.call(ctx, http.MethodGet, api.PathKeys, nil, &pc, true); err != nil {
			t.Fatal(err)
		}
		return pc
	}
	if pc := counts(); pc.OneTime != prekeyBatch || pc.OneTimePQ != prekeyBatch {
		t.Fatalf("after registering: %+v", pc)
	}
	// Someone takes 80 bundles.
	for i := 0; i < 80; i++ {
		if _, err := alice.bundles(ctx, "bob", []uint32{bob.DeviceID()}); err != nil {
			t.Fatal(err)
		}
	}
	if pc := counts(); pc.OneTime != prekeyBatch-80 {
		t.Fatalf("after 80 fetches: %+v", pc)
	}
	syncAll(t, bob)
	if pc := counts(); pc.OneTime != prekeyBatch || pc.OneTimePQ != prekeyBatch {
		t.Errorf("after the top-up: %+v", pc)
	}
	// Sessions still start (with the new keys) and work.
	send(t, alice, "bob", "fresh keys")
	wantStrings(t, "bob receives", texts(syncAll(t, bob)), "fresh keys")
}

// A message sent while the server is unreachable stays queued (status
// "sending") and goes out, with the same id, on the next sync.
func TestSendWhileOfflineIsQueued(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	srv := startServer(t, dir, addr)
	ctx := testCtx(t)
	alice := register(t, srv.URL, "alice")
	bob := register(t, srv.URL, "bob")
	send(t, alice, "bob", "online")
	srv.stop()

	m, err := alice.Send(ctx, "bob", "while offline")
	if err == nil {
		t.Fatal("send without a server succeeded")
	}
	if m.Status != StatusSending || m.ID == "" {
		t.Errorf("queued message %+v", m)
	}
	h, _ := alice.History(ctx, "bob", 0)
	if len(h) != 2 || h[1].Status != StatusSending {
		t.Errorf("history while offline %+v", h)
	}

	startServer(t, dir, addr)
	syncAll(t, alice) // flushes the outbox
	h, _ = alice.History(ctx, "bob", 0)
	if h[1].Status != StatusSent {
		t.Errorf("status after the sync %q", h[1].Status)
	}
	evs := syncAll(t, bob)
	msgs := only(evs, EventMessage)
	if len(msgs) != 2 || msgs[1].Message.Text != "while offline" || msgs[1].Message.ID != m.ID {
		t.Errorf("bob's events %s", describe(evs))
	}
}

// A second connection of the same device (another process on the same
// home) takes over; Run stops instead of fighting over the stream.
func TestRunStopsWhenReplaced(t *testing.T) {
	srv := newServer(t)
	ctx := testCtx(t)
	home := filepath.Join(t.TempDir(), "bob")
	bob := openClient(t, srv.URL, home, "bob-1")
	if err := bob.Register(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	connected := make(chan struct{}, 1)
	runDone := make(chan error, 1)
	go func() {
		runDone <- bob.Run(ctx, func(ev Event) {
			if ev.Type == EventConnected {
				connected <- struct{}{}
			}
		})
	}()
	select {
	case <-connected:
	case <-ctx.Done():
		t.Fatal("Run did not connect")
	}
	other := openClient(t, "", home, "bob-1")
	syncAll(t, other)
	select {
	case err := <-runDone:
		if !errors.Is(err, ErrReplaced) {
			t.Errorf("Run returned %v, want ErrReplaced", err)
		}
	case <-ctx.Done():
		t.Fatal("Run kept going after being replaced")
	}
}
