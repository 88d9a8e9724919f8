package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/store"
)

// testEnqueueConcurrentFailures sends many messages at once, a few of
// which must fail (a full queue, an unknown device): exactly those fail,
// the others are all stored, and the failed ones leave no trace. A
// backend that commits concurrent writes together (sqlitestore's group
// commit) must isolate each message's failure.
func (s *suite) testEnqueueConcurrentFailures(t *testing.T) {
	e := s.env(t)
	e.account("alice", 1)
	e.account("bob", 1, 2)
	e.account("carol", 1)
	// carol's queue is full.
	for range s.opt.MaxQueue {
		e.enqueue(message("alice", 1, messageID(), to{"carol", 1}))
	}
	n := min(40, s.opt.MaxQueue)
	ids := make([]string, n)
	errs := make([]error, n)
	want := func(i int) error {
		switch i {
		case n / 2:
			return store.ErrQueueFull // bob would take it, carol cannot
		case n/2 + 1:
			return store.ErrNotFound // bob has no device 3
		}
		return nil
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		ids[i] = messageID()
		recipients := []to{{"bob", 1}, {"bob", 2}}
		switch want(i) {
		case store.ErrQueueFull:
			recipients = []to{{"bob", 1}, {"carol", 1}}
		case store.ErrNotFound:
			recipients = []to{{"bob", 1}, {"bob", 3}}
		}
		wg.Go(func() {
			<-start
			_, errs[i] = e.s.Enqueue(e.ctx, message("alice", 1, ids[i], recipients...))
		})
	}
	close(start)
	wg.Wait()
	stored := map[string]bool{}
	for i, err := range errs {
		if w := want(i); w == nil {
			noErr(t, fmt.Sprintf("Enqueue %d", i), err)
			stored[ids[i]] = true
		} else if !errors.Is(err, w) {
			t.Fatalf("Enqueue %d: %v, want %v", i, err, w)
		}
	}
	for _, d := range []uint32{1, 2} {
		got := e.pending("bob", d)
		if len(got) != len(stored) {
			t.Fatalf("bob/%d: %d envelopes, want %d", d, len(got), len(stored))
		}
		for _, g := range got {
			if !stored[g.MessageID] {
				t.Fatalf("bob/%d: envelope of a failed message %s", d, g.MessageID)
			}
		}
	}
	// The failed messages are not remembered: they go through once the
	// recipients are right.
	for i := range n {
		if want(i) != nil {
			e.enqueue(message("alice", 1, ids[i], to{"bob", 1}, to{"bob", 2}))
		}
	}
}

// testInviteConcurrent registers n handles at once with one invite good
// for k < n accounts: exactly k succeed, the others get ErrInviteInvalid
// and leave no account, and the used-up invite is gone. A backend that
// commits concurrent writes together must not hand the last use out
// twice, nor lose a use to a refused registration.
func (s *suite) testInviteConcurrent(t *testing.T) {
	e := s.env(t)
	const n, k = 24, 7
	inv := e.invite("", k, time.Time{})
	errs := make([]error, n)
	handle := func(i int) string { return fmt.Sprintf("user_%02d", i) }
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = e.register(handle(i), inv.Hash)
		})
	}
	close(start)
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
			_, err := e.s.Account(e.ctx, handle(i))
			noErr(t, "Account of a registration that succeeded", err)
		case errors.Is(err, store.ErrInviteInvalid):
			e.noAccount("after a refused registration", handle(i))
		default:
			t.Fatalf("CreateAccount %s: %v", handle(i), err)
		}
	}
	if ok != k {
		t.Fatalf("%d registrations succeeded with an invite of %d uses", ok, k)
	}
	if _, listed := e.inviteUses(inv.Hash); listed {
		t.Fatal("the used-up invite is still listed")
	}
}
