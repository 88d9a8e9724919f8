package server_test

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/server"
	"github.com/parleychat/parley/internal/store"
	"github.com/parleychat/parley/internal/store/sqlitestore"
)

// ackCountingStore is the real SQLite store, counting Ack calls; the first
// Ack waits until release is closed.
type ackCountingStore struct {
	store.Store
	calls, seqs atomic.Int64
	first       sync.Once
	release     chan struct{}
}

func (s *ackCountingStore) Ack(ctx context.Context, handle string, device uint32, seqs []int64) error {
	s.first.Do(func() {
		select {
		case <-s.release:
		case <-ctx.Done():
		}
	})
	s.calls.Add(1)
	s.seqs.Add(int64(len(seqs)))
	return s.Store.Ack(ctx, handle, device, seqs)
}

// TestAckFramesMerged acknowledges each envelope in a frame of its own, as
// internal/client does: the frames that arrive while the store applies one
// ack are applied together, every ack is applied, and nothing acknowledged
// comes back.
func TestAckFramesMerged(t *testing.T) {
	cfg := testConfig(t)
	db, err := sqlitestore.Open(context.Background(), filepath.Join(cfg.DataDir, server.DBFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	cs := &ackCountingStore{Store: db, release: make(chan struct{})}
	srv, err := server.NewWithOptions(cfg, server.Options{Store: cs, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ts := runServer(t, srv)
	a := ts.register("alice")
	b := ts.register("bob")
	ad, bd := a.devices[0], b.devices[0]
	const n = 300
	for range n {
		ts.mustDo("POST", api.PathMessages, ad.token, sendReq(a, ad, b, "m"), nil)
	}
	ws := ts.dialWS(bd)
	envs := ws.readUntilDrained()
	if len(envs) != n {
		t.Fatalf("%d envelopes delivered, want %d", len(envs), n)
	}
	// The first ack holds the store while the others arrive.
	for _, e := range envs {
		ws.ack(e.Seq)
	}
	close(cs.release)
	ws.close()

	ws = ts.dialWS(bd)
	if again := ws.readUntilDrained(); len(again) != 0 {
		t.Fatalf("%d acknowledged envelopes delivered again", len(again))
	}
	ws.close()
	calls, seqs := cs.calls.Load(), cs.seqs.Load()
	t.Logf("%d ack frames applied in %d store.Ack calls", seqs, calls)
	if seqs != n || calls >= n/2 {
		t.Fatalf("%d seqs in %d store.Ack calls; want %d seqs in far fewer calls than frames", seqs, calls, n)
	}
}
