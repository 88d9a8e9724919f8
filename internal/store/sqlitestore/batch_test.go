package sqlitestore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/store"
	"github.com/parleychat/parley/internal/store/storetest"
)

// TestConformanceSerialWrites runs the suite on the write path without
// group commit, which Options.SerialWrites keeps for comparisons.
func TestConformanceSerialWrites(t *testing.T) {
	storetest.RunOptions(t, func(t *testing.T) store.Store {
		return openTest(t, filepath.Join(t.TempDir(), "parley.db"), Options{MaxQueue: testMaxQueue, SerialWrites: true})
	}, storetest.Options{MaxQueue: testMaxQueue})
}

// holdLeader takes the right to lead a batch, so that writes queue up
// until release is called; then one of them leads them all.
func holdLeader(db *DB) (release func()) {
	db.commits.lead <- struct{}{}
	return func() { <-db.commits.lead }
}

// waitQueued waits (bounded by ctx) until n writes are queued.
func waitQueued(t *testing.T, ctx context.Context, db *DB, n int) {
	t.Helper()
	for {
		db.commits.mu.Lock()
		got := len(db.commits.queue)
		db.commits.mu.Unlock()
		if got == n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d writes queued, want %d: %v", got, n, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

// TestGroupCommitIsolatesFailures queues many concurrent enqueues into one
// batch, some of which fail (a full queue, an unknown device, a caller
// that gave up): exactly those fail, and every other message commits, in
// one transaction.
func TestGroupCommitIsolatesFailures(t *testing.T) {
	ctx := testCtx(t)
	const n = 120 // within maxBatch: one batch
	const maxQueue = 2 * n
	db := openTest(t, filepath.Join(t.TempDir(), "parley.db"), Options{MaxQueue: maxQueue})
	mustAccount(t, db, "alice", 1)
	mustAccount(t, db, "bob", 1, 2)
	mustAccount(t, db, "carol", 1)
	// carol's queue is full.
	enqueueInOneCommit(t, db, "carol", "fill", maxQueue)

	type outcome struct {
		dup bool
		err error
	}
	results := make([]outcome, n)
	want := func(i int) error {
		switch {
		case i == 50:
			return store.ErrQueueFull
		case i%10 == 3:
			return store.ErrNotFound
		}
		return nil
	}
	msg := func(i int) []store.Envelope {
		id := fmt.Sprintf("m%03d", i)
		switch {
		case i == 50:
			// bob/1 would take it, carol/1 is full: all or nothing.
			return append(oneMessage("alice", id, "bob", 1), oneMessage("alice", id, "carol", 1)...)
		case i%10 == 3:
			return oneMessage("alice", id, "bob", 1, 9) // bob has no device 9
		}
		return oneMessage("alice", id, "bob", 1, 2)
	}

	release := holdLeader(db)
	commitsBefore, writesBefore := db.CommitStats()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			dup, err := db.Enqueue(ctx, msg(i))
			results[i] = outcome{dup, err}
		})
	}
	// One more caller gives up while queued: it is dropped unrun.
	gaveUp := make(chan error, 1)
	cctx, cancel := context.WithCancel(ctx)
	go func() {
		_, err := db.Enqueue(cctx, oneMessage("alice", "gave-up", "bob", 1))
		gaveUp <- err
	}()
	waitQueued(t, ctx, db, n+1)
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("Enqueue whose context ended while queued: %v, want context.Canceled", err)
	}
	waitQueued(t, ctx, db, n)
	release()
	wg.Wait()

	var stored []string
	for i, r := range results {
		if w := want(i); w == nil {
			if r.err != nil || r.dup {
				t.Fatalf("message %d: duplicate %v, err %v; want stored", i, r.dup, r.err)
			}
			stored = append(stored, fmt.Sprintf("m%03d", i))
		} else if !errors.Is(r.err, w) {
			t.Fatalf("message %d: err %v, want %v", i, r.err, w)
		}
	}
	commits, writes := db.CommitStats()
	if commits-commitsBefore != 1 || writes-writesBefore != int64(len(stored)) {
		t.Fatalf("%d commits carrying %d writes, want 1 carrying %d", commits-commitsBefore, writes-writesBefore, len(stored))
	}

	// Every stored message is queued for both of bob's devices, in the
	// order the batch ran them, and nothing else is.
	for _, d := range []uint32{1, 2} {
		envs, err := db.Pending(ctx, "bob", d, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(envs) != len(stored) {
			t.Fatalf("bob/%d: %d envelopes, want %d", d, len(envs), len(stored))
		}
		have := map[string]bool{}
		for i, e := range envs {
			if i > 0 && e.Seq <= envs[i-1].Seq {
				t.Fatalf("bob/%d: seq %d after %d", d, e.Seq, envs[i-1].Seq)
			}
			have[e.MessageID] = true
		}
		for _, id := range stored {
			if !have[id] {
				t.Fatalf("bob/%d: stored message %s missing", d, id)
			}
		}
		checkQueued(t, db, "bob", d, len(stored))
	}
	// The failed messages left no trace: their ids are not remembered.
	for _, i := range []int{3, 50, 113} {
		dup, err := db.Enqueue(ctx, oneMessage("alice", fmt.Sprintf("m%03d", i), "bob", 1, 2))
		if err != nil || dup {
			t.Fatalf("retry of failed message %d: duplicate %v, err %v", i, dup, err)
		}
	}
	if dup, err := db.Enqueue(ctx, oneMessage("alice", "gave-up", "bob", 1, 2)); err != nil || dup {
		t.Fatalf("retry of the message given up: duplicate %v, err %v", dup, err)
	}
}

// TestGroupCommitAcks batches acknowledgements of several devices with
// enqueues: each ack deletes its own device's envelopes only.
func TestGroupCommitAcks(t *testing.T) {
	ctx := testCtx(t)
	db := openTest(t, filepath.Join(t.TempDir(), "parley.db"), Options{})
	mustAccount(t, db, "alice", 1)
	mustAccount(t, db, "bob", 1, 2, 3)
	for i := range 10 {
		if _, err := db.Enqueue(ctx, oneMessage("alice", fmt.Sprintf("old%d", i), "bob", 1, 2, 3)); err != nil {
			t.Fatal(err)
		}
	}
	seqs := map[uint32][]int64{}
	for d := uint32(1); d <= 3; d++ {
		envs, err := db.Pending(ctx, "bob", d, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range envs {
			seqs[d] = append(seqs[d], e.Seq)
		}
	}

	release := holdLeader(db)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	// bob/1 acks everything, bob/2 half; bob/3 acks bob/1's seqs, which
	// are not its own: nothing of bob/3 goes.
	acks := []struct {
		dev  uint32
		seqs []int64
	}{{1, seqs[1]}, {2, seqs[2][:5]}, {3, seqs[1]}}
	for _, a := range acks {
		wg.Go(func() {
			if err := db.Ack(ctx, "bob", a.dev, a.seqs); err != nil {
				errs <- err
			}
		})
	}
	for i := range 5 {
		wg.Go(func() {
			if _, err := db.Enqueue(ctx, oneMessage("alice", fmt.Sprintf("new%d", i), "bob", 1, 2, 3)); err != nil {
				errs <- err
			}
		})
	}
	waitQueued(t, ctx, db, len(acks)+5)
	release()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for d, want := range map[uint32]int{1: 5, 2: 10, 3: 15} {
		envs, err := db.Pending(ctx, "bob", d, 0, 100)
		if err != nil || len(envs) != want {
			t.Fatalf("bob/%d: %d envelopes (%v), want %d", d, len(envs), err, want)
		}
		checkQueued(t, db, "bob", d, want)
	}
}

// TestGroupCommitPanic checks that a write function that panics inside a
// batch panics in its own caller's goroutine, the others in its batch
// fail without committing, and the store keeps working.
func TestGroupCommitPanic(t *testing.T) {
	ctx := testCtx(t)
	db := openTest(t, filepath.Join(t.TempDir(), "parley.db"), Options{})
	mustAccount(t, db, "alice", 1)
	mustAccount(t, db, "bob", 1)

	release := holdLeader(db)
	enqueued := make(chan error, 1)
	go func() {
		_, err := db.Enqueue(ctx, oneMessage("alice", "beside", "bob", 1))
		enqueued <- err
	}()
	waitQueued(t, ctx, db, 1)
	panicked := make(chan any, 1)
	go func() {
		defer func() { panicked <- recover() }()
		db.write(ctx, func(tx *txn) error { panic("boom") })
	}()
	waitQueued(t, ctx, db, 2)
	release()
	if p := <-panicked; p != "boom" {
		t.Fatalf("the panicking write's caller recovered %v, want boom", p)
	}
	if err := <-enqueued; err == nil {
		t.Fatal("a write in the panicked batch succeeded")
	}
	// The rolled-back message is not remembered, and the writer works.
	if dup, err := db.Enqueue(ctx, oneMessage("alice", "beside", "bob", 1)); err != nil || dup {
		t.Fatalf("Enqueue after the panic: duplicate %v, err %v", dup, err)
	}
}
