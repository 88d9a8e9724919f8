package sqlitestore

import (
	"context"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/store"
)

// BenchmarkWriterBatch measures the writer alone, without the scheduling
// of the goroutines that feed it, which makes the figures of the delivery
// benchmarks vary by a tenth from run to run: each iteration is one group
// commit, run by this goroutine on one locked thread, of writerSends
// messages (three envelopes each: a random other account's two devices
// and the sender's other device, 100 accounts of two devices) and one Ack
// per device that received envelopes in the previous iteration.
// thread-µs/env is that thread's CPU time per acknowledged envelope: the
// statements and the commit, with the WAL writes, the fsync and the
// checkpoints.
//
//	go test -run '^$' -bench WriterBatch -benchtime 2000x ./internal/store/sqlitestore
func BenchmarkWriterBatch(b *testing.B) {
	const (
		accounts    = 100
		writerSends = 32
	)
	db := openTest(b, filepath.Join(b.TempDir(), "parley.db"), Options{MaxQueue: math.MaxInt32})
	for i := range accounts {
		mustAccount(b, db, fmt.Sprintf("user%03d", i), 1, 2)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	id := make([]byte, 16)
	var delivered int64
	var prev []*writeOp // the previous iteration's sends
	cpu0, thr0, io0 := cpuTime(), threadTime(), ioCounts()
	c0, w0 := db.CommitStats()
	b.ResetTimer()
	for b.Loop() {
		var ops []*writeOp
		// Acks of what the previous batch queued, one per device.
		acks := map[deviceKey][]int64{}
		for _, op := range prev {
			for _, e := range op.q.added {
				k := deviceKey{e.Recipient, e.RecipientDevice}
				acks[k] = append(acks[k], e.Seq)
			}
		}
		for k, seqs := range acks {
			ops = append(ops, ackOp(db, ctx, k, seqs))
			delivered += int64(len(seqs))
		}
		prev = prev[:0]
		for range writerSends {
			from := rng.IntN(accounts)
			dev := uint32(rng.IntN(2) + 1)
			to := (from + 1 + rng.IntN(accounts-1)) % accounts
			for k := range id {
				id[k] = byte(rng.Uint32())
			}
			me, them, mid := fmt.Sprintf("user%03d", from), fmt.Sprintf("user%03d", to), hex.EncodeToString(id)
			env := func(r string, d uint32) store.Envelope {
				return store.Envelope{MessageID: mid, Sender: me, SenderDevice: dev,
					Recipient: r, RecipientDevice: d, Ciphertext: make([]byte, 200)}
			}
			m, err := newMessage([]store.Envelope{env(them, 1), env(them, 2), env(me, 3-dev)}, time.Now())
			if err != nil {
				b.Fatal(err)
			}
			op := &writeOp{ctx: ctx, done: make(chan struct{}), plain: true}
			op.fn = func(tx *txn) error {
				_, err := db.enqueue(ctx, tx, m)
				return err
			}
			ops = append(ops, op)
			prev = append(prev, op)
		}
		c := db.commits
		c.mu.Lock()
		c.queue = append(c.queue, ops...)
		c.mu.Unlock()
		c.lead <- struct{}{}
		db.runBatch()
		<-c.lead
		for _, op := range ops {
			if op.err != nil {
				b.Fatal(op.err)
			}
		}
	}
	b.StopTimer()
	if delivered > 0 {
		b.ReportMetric(float64((threadTime()-thr0).Microseconds())/float64(delivered), "thread-µs/env")
	}
	reportCosts(b, db, delivered, "env", cpu0, io0, c0, w0)
}

// threadTime is the CPU time (user and system) the calling thread has
// used.
func threadTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ackOp is the op of an Ack, as Ack queues it.
func ackOp(db *DB, ctx context.Context, k deviceKey, seqs []int64) *writeOp {
	return &writeOp{ctx: ctx, fn: db.ack(ctx, k.handle, k.id, seqs), plain: true, done: make(chan struct{})}
}
