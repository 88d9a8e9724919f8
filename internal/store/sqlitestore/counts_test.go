package sqlitestore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/parleychat/parley/internal/store"
)

// checkQueued checks a device's queue count (counts.go) against want and
// against the envelopes in the table.
func checkQueued(t *testing.T, db *DB, h string, dev uint32, want int) {
	t.Helper()
	var rows int
	if err := db.r.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM envelopes WHERE recipient = ? AND recipient_device = ?`,
		h, int64(dev)).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	n, ok := db.counts.get(deviceKey{h, dev})
	if !ok || n != want || rows != want {
		t.Fatalf("%s/%d: queue count %d (device known: %v), %d rows; want %d", h, dev, n, ok, rows, want)
	}
}

// TestQueueCountsInBatch fills a queue within one batch of plain writes:
// the counts see the earlier writes of the batch, and a write that fails
// under its savepoint gives its count back.
func TestQueueCountsInBatch(t *testing.T) {
	ctx := testCtx(t)
	const maxQueue = 10
	db := openTest(t, filepath.Join(t.TempDir(), "parley.db"), Options{MaxQueue: maxQueue})
	mustAccount(t, db, "alice", 1)
	mustAccount(t, db, "bob", 1)
	for i := range 5 {
		if _, err := db.Enqueue(ctx, oneMessage("alice", fmt.Sprintf("old%d", i), "bob", 1)); err != nil {
			t.Fatal(err)
		}
	}
	release := holdLeader(db)
	var wg sync.WaitGroup
	errs := make([]error, 9)
	// One message reserves room on bob/1, then fails on an unknown device.
	wg.Go(func() { _, errs[8] = db.Enqueue(ctx, oneMessage("alice", "to-nine", "bob", 1, 9)) })
	waitQueued(t, ctx, db, 1)
	for i := range 8 {
		wg.Go(func() { _, errs[i] = db.Enqueue(ctx, oneMessage("alice", fmt.Sprintf("new%d", i), "bob", 1)) })
	}
	waitQueued(t, ctx, db, 9)
	release()
	wg.Wait()
	if !errors.Is(errs[8], store.ErrNotFound) {
		t.Fatalf("message to an unknown device: %v", errs[8])
	}
	stored, full := 0, 0
	for _, err := range errs[:8] {
		switch {
		case err == nil:
			stored++
		case errors.Is(err, store.ErrQueueFull):
			full++
		default:
			t.Fatal(err)
		}
	}
	if stored != 5 || full != 3 {
		t.Fatalf("%d stored, %d refused as full; want 5 and 3", stored, full)
	}
	checkQueued(t, db, "bob", 1, maxQueue)

	// A device list that adds device 5, then fails (device 1 with another
	// key), leaves no count for device 5, alone or in a batch.
	for _, batched := range []bool{false, true} {
		l := store.DeviceList{Signed: []byte("list"), Version: 2, Devices: []store.Device{
			{ID: 5, SigningKey: []byte("key bob 5")}, {ID: 1, SigningKey: []byte("another key")}}}
		var release func()
		if batched {
			release = holdLeader(db)
		}
		var listErr, sendErr error
		wg.Go(func() { _, listErr = db.ReplaceDeviceList(ctx, "bob", l) })
		if batched {
			waitQueued(t, ctx, db, 1)
			wg.Go(func() { _, sendErr = db.Enqueue(ctx, oneMessage("alice", "to five", "bob", 5)) })
			waitQueued(t, ctx, db, 2)
			release()
		}
		wg.Wait()
		if !batched {
			_, sendErr = db.Enqueue(ctx, oneMessage("alice", "to five", "bob", 5))
		}
		if !errors.Is(listErr, store.ErrDeviceExists) || !errors.Is(sendErr, store.ErrNotFound) {
			t.Fatalf("batched %v: ReplaceDeviceList %v (want ErrDeviceExists), then Enqueue to its device 5: %v (want ErrNotFound)",
				batched, listErr, sendErr)
		}
	}

	// Counts a failed commit left unknown are loaded again.
	db.counts.mu.Lock()
	db.counts.n[deviceKey{"bob", 1}] = 0
	db.counts.stale = true
	db.counts.mu.Unlock()
	if _, err := db.Enqueue(ctx, oneMessage("alice", "one more", "bob", 1)); !errors.Is(err, store.ErrQueueFull) {
		t.Fatalf("Enqueue to a full queue after reloading the counts: %v", err)
	}
	envs, err := db.Pending(ctx, "bob", 1, 0, 1)
	if err != nil || len(envs) != 1 {
		t.Fatalf("Pending: %d, %v", len(envs), err)
	}
	if err := db.Ack(ctx, "bob", 1, []int64{envs[0].Seq}); err != nil {
		t.Fatal(err)
	}
	checkQueued(t, db, "bob", 1, maxQueue-1)
}

// TestPlainWriteFailureFailsBatch: a plain write that fails after running
// a statement (as after a disk error) fails its whole batch, and nothing
// of it is stored.
func TestPlainWriteFailureFailsBatch(t *testing.T) {
	ctx := testCtx(t)
	db := openTest(t, filepath.Join(t.TempDir(), "parley.db"), Options{})
	mustAccount(t, db, "alice", 1)
	mustAccount(t, db, "bob", 1)
	release := holdLeader(db)
	var wg sync.WaitGroup
	var before, after, bad error
	wg.Go(func() { _, before = db.Enqueue(ctx, oneMessage("alice", "before", "bob", 1)) })
	waitQueued(t, ctx, db, 1)
	broken := errors.New("broken after a statement")
	wg.Go(func() {
		bad = db.writePlain(ctx, func(tx *txn) error {
			if _, err := tx.ExecContext(ctx, qDedupInsert, "alice", 1, "bad", 0); err != nil {
				return err
			}
			return broken
		})
	})
	waitQueued(t, ctx, db, 2)
	wg.Go(func() { _, after = db.Enqueue(ctx, oneMessage("alice", "after", "bob", 1)) })
	waitQueued(t, ctx, db, 3)
	release()
	wg.Wait()
	if !errors.Is(bad, broken) || before == nil || after == nil {
		t.Fatalf("errors: broken write %v, before it %v, after it %v; want it, and both failed", bad, before, after)
	}
	checkQueued(t, db, "bob", 1, 0)
	for _, id := range []string{"before", "after"} {
		if dup, err := db.Enqueue(ctx, oneMessage("alice", id, "bob", 1)); err != nil || dup {
			t.Fatalf("message %q again: duplicate %v, %v", id, dup, err)
		}
	}
	checkQueued(t, db, "bob", 1, 2)
}
