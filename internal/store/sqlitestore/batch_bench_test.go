package sqlitestore

import (
	"fmt"
	"math"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// Group commit against one transaction per write, in the same run:
//
//	go test -run '^$' -bench 'EnqueueParallel' -benchtime 3s ./internal/store/sqlitestore
//
// BenchmarkEnqueueParallel (bench_test.go) is the default, group commit.

// BenchmarkEnqueueParallelSerial is BenchmarkEnqueueParallel with
// Options.SerialWrites: one transaction and one fsync per message.
func BenchmarkEnqueueParallelSerial(b *testing.B) {
	benchEnqueueParallel(b, Options{SerialWrites: true}, 4)
}

// BenchmarkEnqueueParallel64 has 32 senders per GOMAXPROCS (64 on two
// cores), about as many as a loaded server has sends in flight.
func BenchmarkEnqueueParallel64(b *testing.B) {
	benchEnqueueParallel(b, Options{}, 32)
}

func BenchmarkEnqueueParallel64Serial(b *testing.B) {
	benchEnqueueParallel(b, Options{SerialWrites: true}, 32)
}

// benchEnqueueParallel sends one message to bob's three devices per
// operation from parallelism×GOMAXPROCS goroutines, and reports messages
// per second and the mean number of writes per commit.
func benchEnqueueParallel(b *testing.B, o Options, parallelism int) {
	o.MaxQueue = math.MaxInt32
	db := openTest(b, filepath.Join(b.TempDir(), "parley.db"), o)
	mustAccount(b, db, "alice", 1)
	mustAccount(b, db, "bob", 1, 2, 3)
	ctx := testCtx(b)
	var n atomic.Int64
	c0, w0 := db.CommitStats()
	b.SetParallelism(parallelism)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if _, err := db.Enqueue(ctx, oneMessage("alice", fmt.Sprintf("%032x", i), "bob", 1, 2, 3)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "msgs/s")
	if c, w := db.CommitStats(); c > c0 {
		b.ReportMetric(float64(w-w0)/float64(c-c0), "writes/commit")
	}
}

// BenchmarkDeviceList reads one account's device list, as every send does
// twice (the server checks the recipient's and the sender's devices): from
// the read cache (cache.go) but for the first read of each second.
func BenchmarkDeviceList(b *testing.B) {
	db := openTest(b, filepath.Join(b.TempDir(), "parley.db"), Options{})
	mustAccount(b, db, "alice", 1)
	mustAccount(b, db, "bob", 1, 2, 3)
	ctx := testCtx(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := db.DeviceList(ctx, "bob"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
