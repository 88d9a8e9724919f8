package sqlitestore

import (
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
// is wall time per message with 200 devices in flight at once. wB/msg
// and syscw/msg are the bytes and the write calls the process made per
// message (WAL frames and checkpoints; Linux only).
//
// BenchmarkDeliveryAccounts is closer to a loaded server: accounts of two
// devices, random message ids, each send queued for the recipient's two
// devices and the sender's other device, and acknowledged by each device
// in whatever groups its reads find.

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
	cpu0, io0 := cpuTime(), ioCounts()
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
	reportCosts(b, db, msgs.Load(), "msg", cpu0, io0, c0, w0)
}

// accountDevices is how many devices each account of
// BenchmarkDeliveryAccounts has.
const accountDevices = 2

// BenchmarkDeliveryAccounts runs 100 accounts of two devices, one
// goroutine per device: each loop sends a message to a random other
// account (three envelopes: the recipient's devices and the sender's
// other device), then reads its own queue on from its last seq and
// acknowledges what it found, if anything. cpu-µs/env is per delivered
// (acknowledged) envelope.
func BenchmarkDeliveryAccounts(b *testing.B) {
	db := openTest(b, filepath.Join(b.TempDir(), "parley.db"), Options{MaxQueue: math.MaxInt32})
	accounts := deliveryDevices / accountDevices
	for i := range accounts {
		mustAccount(b, db, fmt.Sprintf("user%03d", i), 1, 2)
	}
	ctx := testCtx(b)
	var next, delivered atomic.Int64
	b.SetParallelism((deliveryDevices + 1) / 2)
	cpu0, io0 := cpuTime(), ioCounts()
	c0, w0 := db.CommitStats()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		n := int(next.Add(1) - 1)
		me := fmt.Sprintf("user%03d", n/accountDevices%accounts)
		dev := uint32(n%accountDevices + 1)
		other := 3 - dev
		rng := rand.New(rand.NewPCG(uint64(n), 1))
		id := make([]byte, 16)
		var last int64
		for pb.Next() {
			to := fmt.Sprintf("user%03d", (n/accountDevices+1+rng.IntN(accounts-1))%accounts)
			for k := range id {
				id[k] = byte(rng.Uint32())
			}
			mid := hex.EncodeToString(id)
			env := func(r string, d uint32) store.Envelope {
				return store.Envelope{MessageID: mid, Sender: me, SenderDevice: dev,
					Recipient: r, RecipientDevice: d, Ciphertext: make([]byte, 200)}
			}
			if _, err := db.Enqueue(ctx, []store.Envelope{env(to, 1), env(to, 2), env(me, other)}); err != nil {
				b.Error(err)
				return
			}
			got, err := db.Pending(ctx, me, dev, last, 64)
			if err != nil {
				b.Error(err)
				return
			}
			if len(got) == 0 {
				continue
			}
			seqs := make([]int64, len(got))
			for k, e := range got {
				seqs[k] = e.Seq
			}
			last = seqs[len(seqs)-1]
			if err := db.Ack(ctx, me, dev, seqs); err != nil {
				b.Error(err)
				return
			}
			delivered.Add(int64(len(seqs)))
		}
	})
	b.StopTimer()
	reportCosts(b, db, delivered.Load(), "env", cpu0, io0, c0, w0)
}

// reportCosts reports the CPU time, the bytes and write calls, and the
// writes per commit, per unit since the starting values.
func reportCosts(b *testing.B, db *DB, n int64, unit string, cpu0 time.Duration, io0 [2]int64, c0, w0 int64) {
	if n > 0 {
		b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(n), "cpu-µs/"+unit)
		if io := ioCounts(); io[0] > 0 {
			b.ReportMetric(float64(io[0]-io0[0])/float64(n), "wB/"+unit)
			b.ReportMetric(float64(io[1]-io0[1])/float64(n), "syscw/"+unit)
		}
	}
	if c, w := db.CommitStats(); c > c0 {
		b.ReportMetric(float64(w-w0)/float64(c-c0), "writes/commit")
	}
}

// ioCounts returns the bytes the process passed to write calls and the
// number of those calls (wchar and syscw of /proc/self/io), or zeros
// where that file does not exist.
func ioCounts() [2]int64 {
	var c [2]int64
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return c
	}
	for line := range strings.Lines(string(b)) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ": ")
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "wchar":
			c[0] = n
		case "syscw":
			c[1] = n
		}
	}
	return c
}

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
