package sqlitestore

import (
	"fmt"
	"math"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/store"
)

// The cost of one delivered message in the store, as a loaded parleyd
// pays it: Enqueue of one envelope, Pending to read it for its connected
// recipient, Ack to delete it.
//
//	go test -run '^$' -bench DeliveryCycle -benchtime 2s -count 3 ./internal/store/sqlitestore
//
// cpu-µs/msg is the process's CPU time (user and system, so the leaders'
// fsync calls too) per message: what the store costs the server. ns/op
// is wall time per message with 200 devices in flight at once.

// deliveryDevices is how many recipient devices take part, each served by
// one goroutine, as each connected device is by its own connection.
const deliveryDevices = 200

// BenchmarkDeliveryCycle runs Enqueue→Pending→Ack per message for 200
// devices in parallel, each device reading on from its last seq as the
// server's delivery loop does.
func BenchmarkDeliveryCycle(b *testing.B) {
	db := openTest(b, filepath.Join(b.TempDir(), "parley.db"), Options{MaxQueue: math.MaxInt32})
	mustAccount(b, db, "alice", 1)
	for i := range deliveryDevices {
		mustAccount(b, db, fmt.Sprintf("user%03d", i), 1)
	}
	ctx := testCtx(b)
	var next, msgs atomic.Int64
	// One goroutine per device: RunParallel starts parallelism×GOMAXPROCS.
	b.SetParallelism((deliveryDevices + 1) / 2)
	cpu0 := cpuTime()
	c0, w0 := db.CommitStats()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		dev := int(next.Add(1)-1) % deliveryDevices
		to := fmt.Sprintf("user%03d", dev)
		var last int64
		i := 0
		for pb.Next() {
			id := fmt.Sprintf("%s-%d", to, i)
			i++
			env := []store.Envelope{{MessageID: id, Sender: "alice", SenderDevice: 1,
				Recipient: to, RecipientDevice: 1, Ciphertext: make([]byte, 200)}}
			if _, err := db.Enqueue(ctx, env); err != nil {
				b.Error(err)
				return
			}
			got, err := db.Pending(ctx, to, 1, last, 64)
			if err != nil || len(got) == 0 {
				b.Errorf("Pending: %d envelopes, %v", len(got), err)
				return
			}
			seqs := make([]int64, len(got))
			for k, e := range got {
				seqs[k] = e.Seq
			}
			last = seqs[len(seqs)-1]
			if err := db.Ack(ctx, to, 1, seqs); err != nil {
				b.Error(err)
				return
			}
			msgs.Add(1)
		}
	})
	b.StopTimer()
	if n := msgs.Load(); n > 0 {
		b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(n), "cpu-µs/msg")
	}
	if c, w := db.CommitStats(); c > c0 {
		b.ReportMetric(float64(w-w0)/float64(c-c0), "writes/commit")
	}
}

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
