package sqlitestore

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/store"
	"github.com/parleychat/parley/internal/store/storetest"
)

// testMaxQueue is the queue limit the conformance suite runs with, so that
// filling a queue takes a moment (TestQueueLimitDefault checks the real
// limit).
const testMaxQueue = 50

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func openTest(t testing.TB, path string, o Options) *DB {
	t.Helper()
	db, err := OpenOptions(testCtx(t), path, slog.New(slog.DiscardHandler), o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	storetest.RunOptions(t, func(t *testing.T) store.Store {
		return openTest(t, filepath.Join(t.TempDir(), "parley.db"), Options{MaxQueue: testMaxQueue})
	}, storetest.Options{MaxQueue: testMaxQueue})
}

// TestQueueLimitDefault checks the default limit, store.MaxQueue. It fills
// the queue to one below the limit with the enqueue step Enqueue uses, all
// in one transaction (as a group commit would), to spare 10000 fsyncs;
// then Enqueue takes the last one and refuses the next.
func TestQueueLimitDefault(t *testing.T) {
	ctx := testCtx(t)
	db := openTest(t, filepath.Join(t.TempDir(), "parley.db"), Options{})
	mustAccount(t, db, "alice", 1)
	mustAccount(t, db, "bob", 1)
	enqueueInOneCommit(t, db, "bob", "m", store.MaxQueue-1)
	if _, err := db.Enqueue(ctx, oneMessage("alice", "last", "bob", 1)); err != nil {
		t.Fatalf("Enqueue of envelope number store.MaxQueue: %v", err)
	}
	_, err := db.Enqueue(ctx, oneMessage("alice", "one more", "bob", 1))
	if !errors.Is(err, store.ErrQueueFull) {
		t.Fatalf("Enqueue past store.MaxQueue: %v, want ErrQueueFull", err)
	}
	envs, err := db.Pending(ctx, "bob", 1, 0, 2*store.MaxQueue)
	if err != nil || len(envs) != store.MaxQueue {
		t.Fatalf("Pending: %d envelopes, %v; want %d", len(envs), err, store.MaxQueue)
	}
}

// TestExpireBatches checks that Expire forgets more message ids than one
// batch holds.
func TestExpireBatches(t *testing.T) {
	ctx := testCtx(t)
	db := openTest(t, filepath.Join(t.TempDir(), "parley.db"), Options{MaxQueue: 10 * expireBatch})
	mustAccount(t, db, "alice", 1)
	mustAccount(t, db, "bob", 1)
	const n = 2*expireBatch + 17
	enqueueInOneCommit(t, db, "bob", "m", n)
	count := func() (c int) {
		if err := db.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM dedup`).Scan(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	if err := db.Expire(ctx, time.Now()); err != nil || count() != n {
		t.Fatalf("early Expire: %v, %d ids left, want %d", err, count(), n)
	}
	if err := db.Expire(ctx, time.Now().Add(store.DedupWindow+time.Minute)); err != nil || count() != 0 {
		t.Fatalf("Expire after the window: %v, %d ids left", err, count())
	}
}

func mustAccount(t testing.TB, db *DB, handle string, ids ...uint32) {
	t.Helper()
	l := store.DeviceList{Signed: []byte("signed list"), Version: 1}
	for _, id := range ids {
		l.Devices = append(l.Devices, store.Device{ID: id, SigningKey: []byte(fmt.Sprintf("key %s %d", handle, id))})
	}
	p := store.Prekeys{
		Signed:     &store.Prekey{ID: 1, Public: []byte("spk"), Signature: []byte("sig")},
		LastResort: &store.Prekey{ID: 2, Public: []byte("pq"), Signature: []byte("sig")},
	}
	if err := db.CreateAccount(testCtx(t), store.Account{Handle: handle, IdentityKey: []byte("ik")}, l, p); err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
}

// oneMessage is a message from sender's device 1 to the given devices.
func oneMessage(sender, id, recipient string, devices ...uint32) []store.Envelope {
	var envs []store.Envelope
	for _, d := range devices {
		envs = append(envs, store.Envelope{
			MessageID: id, Sender: sender, SenderDevice: 1, Recipient: recipient, RecipientDevice: d,
			Ciphertext: make([]byte, 200),
		})
	}
	return envs
}

// enqueueInOneCommit queues n messages from alice (ids prefix0, prefix1,
// ...) for recipient's device 1 with the enqueue step Enqueue uses, all in
// one transaction, as one group commit would: the tests that need a full
// queue are spared thousands of fsyncs.
func enqueueInOneCommit(t testing.TB, db *DB, recipient, prefix string, n int) {
	t.Helper()
	ctx := testCtx(t)
	err := db.write(ctx, func(tx *txn) error {
		for i := range n {
			m, err := newMessage(oneMessage("alice", fmt.Sprintf("%s%d", prefix, i), recipient, 1), time.Now())
			if err != nil {
				return err
			}
			if dup, err := db.enqueue(ctx, tx, m); err != nil || dup {
				return fmt.Errorf("message %d: duplicate %v, %w", i, dup, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestReopenMigrations checks that reopening applies nothing twice and
// keeps the data, and that a database from a newer program is refused.
func TestReopenMigrations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db")
	ctx := testCtx(t)
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustAccount(t, db, "alice", 1)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		db, err = Open(ctx, path, nil)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		v, err := db.SchemaVersion(ctx)
		if err != nil || v != len(ms) {
			t.Fatalf("SchemaVersion = %d, %v; want %d", v, err, len(ms))
		}
		var rows int
		if err := db.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&rows); err != nil || rows != len(ms) {
			t.Fatalf("schema_migrations has %d rows (%v), want %d", rows, err, len(ms))
		}
		if _, err := db.Account(ctx, "alice"); err != nil {
			t.Fatalf("Account after reopen: %v", err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}

	// A schema version this program does not know: refused.
	db, err = Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.w.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied) VALUES (?, 'future.sql', 0)`, len(ms)+1); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err := Open(ctx, path, nil); err == nil {
		db.Close()
		t.Fatal("Open of a database with a newer schema: no error")
	}
}

func TestMigrationFilesNumbered(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Fatal("no migrations embedded")
	}
}

// TestFileModes checks that the database and its WAL files are readable by
// the owner only, and a new data folder too.
func TestFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "db")
	path := filepath.Join(dir, "parley.db")
	db := openTest(t, path, Options{})
	mustAccount(t, db, "alice", 1) // so that the WAL exists
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s: mode %v, want 0600", filepath.Base(p), m)
		}
	}
	for _, d := range []string{dir, filepath.Dir(dir)} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m != 0o700 {
			t.Errorf("%s: mode %v, want 0700", d, m)
		}
	}
}

// TestPragmas checks the settings durability and integrity depend on, on
// the writer and on every reader.
func TestPragmas(t *testing.T) {
	ctx := testCtx(t)
	db := openTest(t, filepath.Join(t.TempDir(), "parley.db"), Options{Readers: 3})
	for who, pool := range map[string]*sql.DB{"writer": db.w.DB, "reader": db.r.DB} {
		var mode string
		var syncMode, fk, busy int
		if err := pool.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if err := pool.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&syncMode); err != nil {
			t.Fatal(err)
		}
		if err := pool.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil {
			t.Fatal(err)
		}
		if err := pool.QueryRowContext(ctx, `PRAGMA busy_timeout`).Scan(&busy); err != nil {
			t.Fatal(err)
		}
		if mode != "wal" || syncMode != 2 || fk != 1 || busy <= 0 {
			t.Errorf("%s: journal_mode=%s synchronous=%d foreign_keys=%d busy_timeout=%d", who, mode, syncMode, fk, busy)
		}
	}
	// Readers cannot write.
	if _, err := db.r.ExecContext(ctx, `DELETE FROM accounts`); err == nil {
		t.Error("a reader connection could write")
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := testCtx(t)
	if _, err := Open(ctx, filepath.Join(t.TempDir(), "what?.db"), nil); err == nil {
		t.Error("Open of a path with '?': no error")
	}
	if _, err := OpenOptions(ctx, filepath.Join(t.TempDir(), "x.db"), nil, Options{MaxQueue: -1}); err == nil {
		t.Error("Open with a negative MaxQueue: no error")
	}
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, filepath.Join(notDir, "x.db"), nil); err == nil {
		t.Error("Open under a regular file: no error")
	}
}

// The durability test: a child process (this test binary again) enqueues
// messages and prints "committed <id>" after each Enqueue returns; the
// parent kills it with SIGKILL mid-stream, reopens the database and
// finds every message the child reported.

const childEnv = "PARLEY_SQLITESTORE_DURABILITY_DB"

func TestDurabilityChild(t *testing.T) {
	path := os.Getenv(childEnv)
	if path == "" {
		t.Skip("run by TestDurabilityKill")
	}
	ctx := testCtx(t)
	db, err := Open(ctx, path, nil)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	for i := 0; ; i++ {
		id := fmt.Sprintf("%032x", i)
		if _, err := db.Enqueue(ctx, oneMessage("alice", id, "bob", 1, 2, 3)); err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		fmt.Println("committed", id)
	}
}

func TestDurabilityKill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a child process")
	}
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "parley.db")
	db, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustAccount(t, db, "alice", 1)
	mustAccount(t, db, "bob", 1, 2, 3)
	db.Close()

	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestDurabilityChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	const killAfter = 300
	var committed []string
	var killed atomic.Bool
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if id, ok := strings.CutPrefix(line, "committed "); ok {
			committed = append(committed, id)
			if len(committed) == killAfter && killed.CompareAndSwap(false, true) {
				if err := cmd.Process.Kill(); err != nil {
					t.Fatal(err)
				}
			}
		} else if strings.HasPrefix(line, "error") {
			t.Fatalf("child: %s", line)
		}
	}
	io.Copy(io.Discard, out)
	cmd.Wait()
	if !killed.Load() {
		t.Fatalf("child stopped after %d messages without being killed", len(committed))
	}
	t.Logf("child reported %d committed messages before SIGKILL took effect", len(committed))

	db = openTest(t, path, Options{})
	for d := uint32(1); d <= 3; d++ {
		envs, err := db.Pending(ctx, "bob", d, 0, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		have := make(map[string]bool, len(envs))
		for _, e := range envs {
			have[e.MessageID] = true
		}
		for _, id := range committed {
			if !have[id] {
				t.Fatalf("bob/%d: committed message %s lost (have %d envelopes)", d, id, len(envs))
			}
		}
		// The queue count (counts.go) agrees with the rows after recovery.
		checkQueued(t, db, "bob", d, len(envs))
	}
	var integrity string
	if err := db.r.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&integrity); err != nil || integrity != "ok" {
		t.Fatalf("integrity_check: %q, %v", integrity, err)
	}
}
