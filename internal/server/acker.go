package server

import (
	"context"
	"sync"
)

// acker applies one delivery connection's acknowledgements to the store.
// The reader hands it the seqs of each ack frame; while one store.Ack
// runs, the seqs of the frames that arrive meanwhile gather, and the next
// store.Ack takes them all. A client that acknowledges each envelope in a
// frame of its own (internal/client does, after committing each message
// locally) therefore costs the store one Ack per commit round, not one per
// envelope, and its acks keep up with delivery. The acker runs on a
// short-lived goroutine only while it has seqs to apply: an idle
// connection keeps no goroutine for it.
type acker struct {
	s      *Server
	ctx    context.Context
	cancel context.CancelCauseFunc // ends the connection when the store fails
	c      caller
	out    chan<- []int64 // applied seqs, to the delivery loop
	wg     *sync.WaitGroup

	mu      sync.Mutex
	room    sync.Cond // signalled when pending empties or the acker fails
	pending []int64
	running bool
	failed  error
}

func newAcker(s *Server, ctx context.Context, cancel context.CancelCauseFunc, c caller, out chan<- []int64, wg *sync.WaitGroup) *acker {
	a := &acker{s: s, ctx: ctx, cancel: cancel, c: c, out: out, wg: wg}
	a.room.L = &a.mu
	return a
}

// add queues seqs for the store. It waits while maxAckSeqs seqs are
// pending already (a client acking faster than the store can apply), and
// returns the error that stopped the acker, if any. It is called by the
// connection's reader, which is counted in wg, so starting the acker's
// goroutine never races with wg.Wait.
func (a *acker) add(seqs []int64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for a.failed == nil && len(a.pending) > 0 && len(a.pending)+len(seqs) > maxAckSeqs {
		a.room.Wait()
	}
	if a.failed != nil {
		return a.failed
	}
	a.pending = append(a.pending, seqs...)
	if !a.running {
		a.running = true
		a.wg.Go(a.run)
	}
	return nil
}

// run applies the pending seqs until none are left.
func (a *acker) run() {
	for {
		a.mu.Lock()
		seqs := a.pending
		a.pending = nil
		if len(seqs) == 0 {
			a.running = false
			a.mu.Unlock()
			return
		}
		a.room.Broadcast()
		a.mu.Unlock()

		err := a.s.store.Ack(a.ctx, a.c.handle, a.c.device, seqs)
		if err == nil {
			select {
			case a.out <- seqs:
			case <-a.ctx.Done():
				err = context.Cause(a.ctx)
			}
		}
		if err != nil {
			a.mu.Lock()
			a.failed = err
			a.running = false
			a.room.Broadcast()
			a.mu.Unlock()
			a.cancel(err) // a no-op if the connection is ending already
			return
		}
	}
}
