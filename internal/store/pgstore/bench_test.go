package pgstore

import (
	"fmt"
	"math"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/pgtest"
)

// benchDB is a database of its own with alice (device 1) and bob (devices
// 1, 2, 3), and no queue limit to reach. PARLEY_BENCH_POOL sets the pool
// size (default: Open's).
func benchDB(b *testing.B) *DB {
	dsn := pgtest.Database(b)
	if n := benchPool(); n != "" {
		dsn = pgtest.WithParams(b, dsn, "pool_max_conns", n)
	}
	db := openTest(b, dsn, Options{MaxQueue: math.MaxInt32})
	mustAccount(b, db, "alice", 1)
	mustAccount(b, db, "bob", 1, 2, 3)
	return db
}

// BenchmarkEnqueue sends one message to three devices at a time: one
// transaction and one commit (WAL flush) per message.
func BenchmarkEnqueue(b *testing.B) {
	db := benchDB(b)
	ctx := testCtx(b)
	i := 0
	start := time.Now()
	for b.Loop() {
		if _, err := db.Enqueue(ctx, oneMessage("alice", fmt.Sprintf("%032x", i), "bob", 1, 2, 3)); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(i)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkEnqueueParallel is BenchmarkEnqueue with many senders at once
// (4 goroutines per GOMAXPROCS), all to bob's three devices: they queue
// on those devices' row locks, and PostgreSQL flushes their commits
// together.
func BenchmarkEnqueueParallel(b *testing.B) {
	db := benchDB(b)
	ctx := testCtx(b)
	var n atomic.Int64
	b.SetParallelism(4)
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
}

// BenchmarkEnqueueParallelDevices is BenchmarkEnqueueParallel with each
// message to a different recipient device (bob's 1, 2 or 3): fewer
// senders wait on one row lock.
func BenchmarkEnqueueParallelDevices(b *testing.B) {
	db := benchDB(b)
	ctx := testCtx(b)
	var n atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if _, err := db.Enqueue(ctx, oneMessage("alice", fmt.Sprintf("%032x", i), "bob", uint32(1+i%3))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkTokenDevice resolves a token, as every authenticated request
// does.
func BenchmarkTokenDevice(b *testing.B) {
	db := benchDB(b)
	ctx := testCtx(b)
	tok := []byte("0123456789abcdef0123456789abcdef")
	if err := db.PutToken(ctx, tok, "bob", 2, time.Now().Add(time.Hour)); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := db.TokenDevice(ctx, tok); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func benchPool() string { return os.Getenv("PARLEY_BENCH_POOL") }
