package sqlitestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/parleychat/parley/internal/store"
)

// TestEnqueueManyEnvelopes sends messages of more envelopes than one
// INSERT stores (maxInsertRows), several to the same device: the seqs must
// grow in the order of the envelopes, and the tail cache, which takes each
// envelope's seq from the INSERT's last rowid, must answer as SQLite does.
func TestEnqueueManyEnvelopes(t *testing.T) {
	bothWriters(t, []uint32{1, 2, 3}, func(t *testing.T, ctx context.Context, db *DB) {
		for _, n := range []int{1, 2, 3, maxInsertRows, maxInsertRows + 1, 2*maxInsertRows + 3} {
			// Every device reads to the end of its queue: the cache
			// holds its tail, which the Enqueue below extends.
			for d := uint32(1); d <= 3; d++ {
				checkPending(t, ctx, db, "bob", d, 0, 1000)
				if !validTail(db, deviceKey{"bob", d}) {
					t.Fatalf("bob/%d has no tail after reading to the end", d)
				}
			}
			var envs []store.Envelope
			for i := range n {
				envs = append(envs, store.Envelope{MessageID: fmt.Sprintf("m%d", n), Sender: "alice", SenderDevice: 1,
					Recipient: "bob", RecipientDevice: uint32(1 + i%3), Ciphertext: []byte(fmt.Sprintf("envelope %d of %d", i, n))})
			}
			if _, err := db.Enqueue(ctx, envs); err != nil {
				t.Fatal(err)
			}
			for d := uint32(1); d <= 3; d++ {
				checkPending(t, ctx, db, "bob", d, 0, 1000)
			}
			// The seqs follow the order of envs.
			rows, err := db.r.QueryContext(ctx, `SELECT ciphertext FROM envelopes WHERE message_id = ? ORDER BY seq`, envs[0].MessageID)
			if err != nil {
				t.Fatal(err)
			}
			i := 0
			for rows.Next() {
				var c []byte
				if err := rows.Scan(&c); err != nil {
					t.Fatal(err)
				}
				if i >= n || !bytes.Equal(c, envs[i].Ciphertext) {
					t.Fatalf("%d envelopes: row %d in seq order is %q", n, i, c)
				}
				i++
			}
			if err := rows.Close(); err != nil || i != n {
				t.Fatalf("%d envelopes: %d rows, %v", n, i, err)
			}
		}
	})
}

// TestAckSizes acknowledges lists of every length around ackSingly (one
// statement per seq up to it, one JSON array beyond), each with a seq of
// another device and an unknown one: only the device's own envelopes go,
// and its queue count follows.
func TestAckSizes(t *testing.T) {
	bothWriters(t, []uint32{1, 2}, func(t *testing.T, ctx context.Context, db *DB) {
		queued := 0
		for k := 1; k <= ackSingly+2; k++ {
			for i := range k {
				if _, err := db.Enqueue(ctx, oneMessage("alice", fmt.Sprintf("k%d-%d", k, i), "bob", 1, 2)); err != nil {
					t.Fatal(err)
				}
			}
			queued += k
			mine, err := db.pendingSQL(ctx, "bob", 1, 0, 1000)
			if err != nil {
				t.Fatal(err)
			}
			other, err := db.pendingSQL(ctx, "bob", 2, 0, 1000)
			if err != nil {
				t.Fatal(err)
			}
			var seqs []int64
			for _, e := range mine[len(mine)-k:] {
				seqs = append(seqs, e.Seq)
			}
			// Another device's envelope and an unknown seq are ignored.
			seqs = append(seqs[:k-1], other[0].Seq, 1<<50, seqs[k-1])
			if err := db.Ack(ctx, "bob", 1, seqs); err != nil {
				t.Fatal(err)
			}
			checkQueued(t, db, "bob", 1, len(mine)-k)
			checkQueued(t, db, "bob", 2, queued)
			after, err := db.pendingSQL(ctx, "bob", 1, 0, 1000)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range after {
				for _, s := range seqs {
					if e.Seq == s {
						t.Fatalf("ack of %d seqs: seq %d still queued", k, s)
					}
				}
			}
		}
	})
}

// TestQueueCountsAddAll checks that addAll changes no count unless every
// device passes, and that its changes roll back.
func TestQueueCountsAddAll(t *testing.T) {
	a, b := deviceKey{"a", 1}, deviceKey{"b", 1}
	c := &queueCounts{n: map[deviceKey]int{a: 1, b: 5}}
	for _, tc := range []struct {
		ds   []deviceCount
		want error
	}{
		{[]deviceCount{{a, 1}, {deviceKey{"nobody", 1}, 1}}, store.ErrNotFound},
		{[]deviceCount{{a, 1}, {b, 2}}, store.ErrQueueFull},
	} {
		if err := c.check(tc.ds, 6); !errors.Is(err, tc.want) {
			t.Errorf("check %v: %v, want %v", tc.ds, err, tc.want)
		}
		if err := c.addAll(tc.ds, 6); !errors.Is(err, tc.want) {
			t.Errorf("addAll %v: %v, want %v", tc.ds, err, tc.want)
		}
		if c.n[a] != 1 || c.n[b] != 5 || len(c.undo) != 0 {
			t.Fatalf("after a failed addAll: %v, undo log %v", c.n, c.undo)
		}
	}
	m := c.mark()
	if err := c.addAll([]deviceCount{{a, 2}, {b, 1}}, 6); err != nil {
		t.Fatal(err)
	}
	if c.n[a] != 3 || c.n[b] != 6 {
		t.Fatalf("after addAll: %v", c.n)
	}
	c.rollback(m)
	if c.n[a] != 1 || c.n[b] != 5 {
		t.Fatalf("after rollback: %v", c.n)
	}
}

// TestWALPragmas checks the writer's checkpoint settings.
func TestWALPragmas(t *testing.T) {
	ctx := testCtx(t)
	db := openTest(t, filepath.Join(t.TempDir(), "parley.db"), Options{})
	var pages, limit int64
	if err := db.w.QueryRowContext(ctx, `PRAGMA wal_autocheckpoint`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if err := db.w.QueryRowContext(ctx, `PRAGMA journal_size_limit`).Scan(&limit); err != nil {
		t.Fatal(err)
	}
	if pages != walCheckpointPages || limit != walSizeLimit {
		t.Fatalf("wal_autocheckpoint=%d journal_size_limit=%d, want %d and %d", pages, limit, walCheckpointPages, walSizeLimit)
	}
}

// bothWriters runs f with group commit and with SerialWrites, each time
// on a fresh database without a queue limit, with alice (device 1) and bob
// (bobDevices).
func bothWriters(t *testing.T, bobDevices []uint32, f func(t *testing.T, ctx context.Context, db *DB)) {
	for _, o := range []Options{{MaxQueue: math.MaxInt32}, {MaxQueue: math.MaxInt32, SerialWrites: true}} {
		t.Run(fmt.Sprintf("serial=%v", o.SerialWrites), func(t *testing.T) {
			db := openTest(t, filepath.Join(t.TempDir(), "parley.db"), o)
			mustAccount(t, db, "alice", 1)
			mustAccount(t, db, "bob", bobDevices...)
			f(t, testCtx(t), db)
		})
	}
}
