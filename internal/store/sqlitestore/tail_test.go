package sqlitestore

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/store"
)

// validTail reports whether k has a tail the cache answers from.
func validTail(db *DB, k deviceKey) bool {
	db.tails.mu.Lock()
	defer db.tails.mu.Unlock()
	t := db.tails.tails[k]
	return t != nil && t.valid
}

// checkPending compares Pending (from the tail cache when it can) with
// the same read from SQLite.
func checkPending(t *testing.T, ctx context.Context, db *DB, h string, dev uint32, after int64, limit int) []store.Envelope {
	t.Helper()
	got, err := db.Pending(ctx, h, dev, after, limit)
	if err != nil {
		t.Fatal(err)
	}
	want, err := db.pendingSQL(ctx, h, dev, after, limit)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Pending(%s/%d, after %d, limit %d) =\n%#v\nfrom SQLite:\n%#v", h, dev, after, limit, got, want)
	}
	return got
}

// TestTailMatchesSQL runs a seeded random mix of Enqueue (some envelopes
// empty, some vanishing), Pending, Ack, Expire and device removal and
// re-adding, and checks after each step that every device's Pending
// answers exactly as the SQL read does, for cursors at and around the
// queue's seqs.
func TestTailMatchesSQL(t *testing.T) {
	for _, o := range []Options{{}, {SerialWrites: true}} {
		t.Run(fmt.Sprintf("serial=%v", o.SerialWrites), func(t *testing.T) {
			testTailMatchesSQL(t, o)
		})
	}
}

func testTailMatchesSQL(t *testing.T, o Options) {
	ctx := testCtx(t)
	o.MaxQueue = math.MaxInt32
	db := openTest(t, filepath.Join(t.TempDir(), "parley.db"), o)
	mustAccount(t, db, "alice", 1)
	mustAccount(t, db, "bob", 1, 2, 3)
	rng := rand.New(rand.NewPCG(1, 2))
	devs := []uint32{1, 2, 3}
	listVersion := uint64(1)
	last := map[uint32]int64{} // each device's reading cursor
	now := time.Now()
	hits := 0
	for step := range 600 {
		switch r := rng.IntN(100); {
		case r < 40: // a message to some of bob's devices
			var envs []store.Envelope
			for _, d := range devs {
				if rng.IntN(3) == 0 {
					continue
				}
				e := store.Envelope{MessageID: fmt.Sprintf("m%d", step), Sender: "Alice", SenderDevice: 1,
					Recipient: "BOB", RecipientDevice: d, Ciphertext: make([]byte, rng.IntN(3)*50)}
				if rng.IntN(2) == 0 {
					e.Ciphertext = nil
				}
				envs = append(envs, e)
			}
			if len(envs) > 0 && rng.IntN(4) == 0 {
				exp := now.Add(time.Duration(rng.IntN(10)) * time.Minute)
				for i := range envs {
					envs[i].Expires = exp
				}
			}
			if _, err := db.Enqueue(ctx, envs); err != nil {
				t.Fatal(err)
			}
		case r < 75: // a device reads on, as the server's delivery loop does
			d := devs[rng.IntN(len(devs))]
			got := checkPending(t, ctx, db, "bob", d, last[d], 1+rng.IntN(6))
			if len(got) > 0 {
				last[d] = got[len(got)-1].Seq
			}
		case r < 90: // acknowledges some of what it was sent
			d := devs[rng.IntN(len(devs))]
			all, err := db.pendingSQL(ctx, "bob", d, 0, 1000)
			if err != nil {
				t.Fatal(err)
			}
			var seqs []int64
			for _, e := range all {
				if e.Seq <= last[d] && rng.IntN(2) == 0 {
					seqs = append(seqs, e.Seq)
				}
			}
			seqs = append(seqs, 1<<40) // unknown: ignored
			if err := db.Ack(ctx, "bob", d, seqs); err != nil {
				t.Fatal(err)
			}
		case r < 95: // vanishing messages expire
			now = now.Add(3 * time.Minute)
			if err := db.Expire(ctx, now); err != nil {
				t.Fatal(err)
			}
		default: // device 3 is removed, or comes back
			listVersion++
			l := store.DeviceList{Signed: []byte("signed list"), Version: listVersion}
			for _, id := range []uint32{1, 2, 3} {
				if id == 3 && len(devs) == 3 {
					continue
				}
				l.Devices = append(l.Devices, store.Device{ID: id, SigningKey: []byte(fmt.Sprintf("key bob %d", id))})
			}
			if _, err := db.ReplaceDeviceList(ctx, "bob", l); err != nil {
				t.Fatal(err)
			}
			if len(devs) == 3 {
				devs = devs[:2]
			} else {
				devs = append(devs, 3)
			}
			last[3] = 0
		}
		for _, d := range []uint32{1, 2, 3} {
			if validTail(db, deviceKey{"bob", d}) {
				hits++
			}
			for _, after := range []int64{0, last[d] - 1, last[d], last[d] + 1} {
				checkPending(t, ctx, db, "bob", d, after, 3)
			}
		}
	}
	if hits == 0 {
		t.Fatal("no device ever had a tail in memory: the test did not test it")
	}
}

// TestTailConcurrent sends to bob's three devices from several goroutines
// at once while each device reads on from its last seq and acknowledges
// what it got, as connected devices do, and another goroutine expires
// vanishing messages meant for nobody's reading. Every device must get
// every message sent to it once, in seq order, skipping none. Run it with
// -race.
//
// With tiny bounds, tails are dropped and installed again all the time,
// so reads that install a tail race with commits to the same device.
func TestTailConcurrent(t *testing.T) {
	for _, small := range []bool{false, true} {
		t.Run(fmt.Sprintf("small=%v", small), func(t *testing.T) {
			testTailConcurrent(t, small)
		})
	}
}

func testTailConcurrent(t *testing.T, small bool) {
	ctx, cancel := context.WithTimeout(testCtx(t), time.Minute)
	defer cancel()
	db := openTest(t, filepath.Join(t.TempDir(), "parley.db"), Options{MaxQueue: math.MaxInt32})
	if small {
		db.tails.maxEntries = 2
		db.tails.maxBytes = 3 * (tailOverhead + 16)
	}
	mustAccount(t, db, "alice", 1)
	mustAccount(t, db, "bob", 1, 2, 3)
	mustAccount(t, db, "carol", 1)
	const (
		senders  = 4
		messages = 150 // per sender
	)
	var (
		sent     [4]atomic.Int64 // per bob device
		done     atomic.Bool
		senderWG sync.WaitGroup
	)
	for s := range senders {
		senderWG.Add(1)
		go func() {
			defer senderWG.Done()
			rng := rand.New(rand.NewPCG(uint64(s), 7))
			for i := range messages {
				id := fmt.Sprintf("s%d-%d", s, i)
				var envs []store.Envelope
				for _, d := range []uint32{1, 2, 3} {
					if rng.IntN(2) == 0 {
						envs = append(envs, store.Envelope{MessageID: id, Sender: "alice", SenderDevice: 1,
							Recipient: "bob", RecipientDevice: d, Ciphertext: []byte(id)})
					}
				}
				// carol gets vanishing messages she never reads.
				envs = append(envs, store.Envelope{MessageID: id, Sender: "alice", SenderDevice: 1,
					Recipient: "carol", RecipientDevice: 1, Ciphertext: []byte(id), Expires: time.Now()})
				if _, err := db.Enqueue(ctx, envs); err != nil {
					t.Error(err)
					return
				}
				for _, e := range envs {
					if e.Recipient == "bob" {
						sent[e.RecipientDevice].Add(1)
					}
				}
			}
		}()
	}
	go func() {
		senderWG.Wait()
		done.Store(true)
	}()
	var readers sync.WaitGroup
	for _, d := range []uint32{1, 2, 3} {
		readers.Add(1)
		go func() {
			defer readers.Done()
			seen := map[string]bool{}
			var last int64
			rng := rand.New(rand.NewPCG(uint64(d), 9))
			for {
				finished := done.Load() // before the read: all sent by then is in it
				envs, err := db.Pending(ctx, "bob", d, last, 1+rng.IntN(4))
				if err != nil {
					t.Error(err)
					return
				}
				var seqs []int64
				for _, e := range envs {
					if e.Seq <= last || seen[e.MessageID] || string(e.Ciphertext) != e.MessageID {
						t.Errorf("device %d: envelope %d %q after seq %d (seen before: %v)", d, e.Seq, e.MessageID, last, seen[e.MessageID])
						return
					}
					seen[e.MessageID] = true
					last = e.Seq
					seqs = append(seqs, e.Seq)
				}
				if len(seqs) > 0 {
					if err := db.Ack(ctx, "bob", d, seqs); err != nil {
						t.Error(err)
						return
					}
					continue
				}
				if !finished {
					if ctx.Err() != nil {
						t.Errorf("device %d: %v", d, ctx.Err())
						return
					}
					time.Sleep(time.Millisecond)
					continue
				}
				// Caught up after the last send: everything arrived, and
				// nothing is left behind the cursor.
				if n := int64(len(seen)); n != sent[d].Load() {
					t.Errorf("device %d got %d messages, %d were sent", d, n, sent[d].Load())
				}
				left, err := db.pendingSQL(ctx, "bob", d, 0, 10)
				if err != nil || len(left) > 0 {
					t.Errorf("device %d: still queued: %d envelopes (%v)", d, len(left), err)
				}
				return
			}
		}()
	}
	// Vanishing messages expire meanwhile; carol reads from time to time,
	// so that her queue has a tail that expiry must keep exact.
	readers.Add(1)
	go func() {
		defer readers.Done()
		for !done.Load() && ctx.Err() == nil {
			if err := db.Expire(ctx, time.Now()); err != nil {
				t.Error(err)
				return
			}
			if _, err := db.Pending(ctx, "carol", 1, 0, 1000); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	readers.Wait()
	for _, d := range []uint32{1, 2, 3} {
		checkPending(t, ctx, db, "bob", d, 0, 10)
	}
	if err := db.Expire(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	if got := checkPending(t, ctx, db, "carol", 1, 0, 1000); len(got) != 0 {
		t.Fatalf("carol: %d vanishing envelopes left after Expire", len(got))
	}
}

// TestTailBounds checks that a device whose queue outgrows tailEntries
// loses its tail and reads SQLite, with the same answers.
func TestTailBounds(t *testing.T) {
	ctx := testCtx(t)
	db := openTest(t, filepath.Join(t.TempDir(), "parley.db"), Options{MaxQueue: math.MaxInt32})
	mustAccount(t, db, "alice", 1)
	mustAccount(t, db, "bob", 1)
	k := deviceKey{"bob", 1}
	checkPending(t, ctx, db, "bob", 1, 0, 10)
	if !validTail(db, k) {
		t.Fatal("no tail after a read that reached the end of the queue")
	}
	// One transaction (one commit) with more envelopes than a tail holds.
	enqueueInOneCommit(t, db, "bob", "m", tailEntries+1)
	if validTail(db, k) {
		t.Fatalf("a tail of more than %d envelopes was kept", tailEntries)
	}
	all := checkPending(t, ctx, db, "bob", 1, 0, tailEntries+10)
	if len(all) != tailEntries+1 {
		t.Fatalf("%d envelopes, want %d", len(all), tailEntries+1)
	}
	if validTail(db, k) {
		t.Fatal("a read of more than tailEntries envelopes installed a tail")
	}
	seqs := make([]int64, 0, len(all))
	for _, e := range all {
		seqs = append(seqs, e.Seq)
	}
	if err := db.Ack(ctx, "bob", 1, seqs[:len(seqs)-1]); err != nil {
		t.Fatal(err)
	}
	got := checkPending(t, ctx, db, "bob", 1, 0, 10)
	if len(got) != 1 || !validTail(db, k) {
		t.Fatalf("after acking all but one: %d envelopes, tail %v; want 1 and a tail", len(got), validTail(db, k))
	}
	db.tails.mu.Lock()
	size := db.tails.bytes
	db.tails.mu.Unlock()
	if size <= 0 || size > tailBytes {
		t.Fatalf("tail cache accounts %d bytes", size)
	}
	if err := db.Ack(ctx, "bob", 1, slices.Clone(seqs[len(seqs)-1:])); err != nil {
		t.Fatal(err)
	}
	if got := checkPending(t, ctx, db, "bob", 1, 0, 10); len(got) != 0 {
		t.Fatalf("%d envelopes after acking all", len(got))
	}
}

// TestTailFillRace checks the rule that keeps installs exact: a read that
// began before a change to the device was applied installs nothing,
// whether the change added or removed envelopes or removed the device.
func TestTailFillRace(t *testing.T) {
	k := deviceKey{"bob", 1}
	e := store.Envelope{Seq: 5, MessageID: "m", Sender: "alice", SenderDevice: 1, Recipient: "bob", RecipientDevice: 1}
	for name, q := range map[string]*queueChanges{
		"added":   {added: []store.Envelope{e}},
		"removed": {removed: []deviceSeqs{{k, []int64{5}}}},
		"dropped": {dropped: []deviceKey{k}},
	} {
		c := newTailCache()
		f := c.beginFill(k)
		c.apply(q) // committed after the read's snapshot, or not: unknown
		c.endFill(k, f, 0, 10, nil)
		if _, ok := c.pending(k, 0, 10); ok {
			t.Errorf("%s: a read that raced with a change installed a tail", name)
		}
		// A read after the change installs one, which later changes keep
		// exact.
		f = c.beginFill(k)
		c.endFill(k, f, 0, 10, nil)
		c.apply(&queueChanges{added: []store.Envelope{{Seq: 7, Recipient: "bob", RecipientDevice: 1, Ciphertext: []byte("x")}}})
		got, ok := c.pending(k, 0, 10)
		if !ok || len(got) != 1 || got[0].Seq != 7 {
			t.Errorf("%s: after a clean read and one new envelope: %+v, %v", name, got, ok)
		}
		if got, ok := c.pending(k, 7, 10); !ok || len(got) != 0 {
			t.Errorf("%s: after the last seq: %+v, %v", name, got, ok)
		}
		if _, ok := c.pending(k, -1, 10); ok {
			t.Errorf("%s: answered a read from before the tail begins", name)
		}
	}
}

// TestTailEviction: when the cache is full, installing a tail drops
// another device's, and the bytes stay within the bound.
func TestTailEviction(t *testing.T) {
	c := newTailCache()
	c.maxBytes = 2 * tailOverhead
	for i := range uint32(5) {
		k := deviceKey{"bob", i}
		c.endFill(k, c.beginFill(k), 0, 10, nil)
		if _, ok := c.pending(k, 0, 10); !ok {
			t.Fatalf("device %d: no tail installed in a full cache", i)
		}
		if c.bytes > c.maxBytes || len(c.tails) > 2 {
			t.Fatalf("device %d: %d tails, %d bytes; bound %d", i, len(c.tails), c.bytes, c.maxBytes)
		}
	}
	// An envelope that does not fit even alone drops its own tail.
	k := deviceKey{"bob", 4}
	c.apply(&queueChanges{added: []store.Envelope{{Seq: 1, Recipient: "bob", RecipientDevice: 4, Ciphertext: make([]byte, 2*tailOverhead)}}})
	if _, ok := c.pending(k, 0, 10); ok {
		t.Fatal("a tail past the cache's bound was kept")
	}
}
