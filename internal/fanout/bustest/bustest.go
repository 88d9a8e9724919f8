// Package bustest is the conformance suite every fan-out bus passes
// unchanged: the in-process fanout.Local and the NATS natsbus.Bus. The
// contract is the server's Bus interface: Publish never blocks on slow
// subscribers; a subscription's channel has capacity one and coalesces
// wake-ups; a publish made after Subscribe returned, on any node, is never
// missed.
//
//	func TestConformance(t *testing.T) {
//		bustest.Run(t, func(t *testing.T) (a, b bustest.Bus) { ... })
//	}
package bustest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// Bus is the method set under test (the server's Bus interface).
type Bus interface {
	Publish(ctx context.Context, key string) error
	Subscribe(key string) (<-chan struct{}, func())
}

// Open returns two handles on one fresh bus, as two nodes see it: a publish
// on either wakes the subscribers of both. An in-process bus returns the
// same value twice. Open registers its own clean-up with t.Cleanup.
type Open func(t *testing.T) (a, b Bus)

// wait bounds every wait for a wake-up. Generous: the suite asserts what
// happens, never how fast.
const wait = 20 * time.Second

// Run runs every conformance test against buses from open.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(t *testing.T, a, b Bus)
	}{
		{"WakesEverySubscriberOfTheKey", testWakes},
		{"BothDirections", testBothDirections},
		{"CoalescesAndNeverBlocks", testCoalesces},
		{"NoMissAfterSubscribe", testNoMissAfterSubscribe},
		{"Unsubscribe", testUnsubscribe},
		{"ServerKeys", testServerKeys},
		{"ManyKeys", testManyKeys},
		{"Concurrent", testConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := open(t)
			tc.fn(t, a, b)
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return c
}

func publish(t *testing.T, b Bus, key string) {
	t.Helper()
	if err := b.Publish(ctx(t), key); err != nil {
		t.Fatalf("Publish(%q): %v", key, err)
	}
}

// woken waits (bounded) for a wake-up on ch.
func woken(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(wait):
		t.Fatalf("%s: no wake-up within %s", what, wait)
	}
}

// notWoken requires that nothing is pending on ch now.
func notWoken(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
		t.Fatalf("%s: woken, but should not be", what)
	default:
	}
}

// settle publishes a sentinel key on pub and waits until sub's subscriber
// of it wakes: hints published on pub before it have been handled on sub's
// side by then (hints from one publisher arrive in order).
func settle(t *testing.T, pub, sub Bus) {
	t.Helper()
	key := fmt.Sprintf("sentinel.k%d", time.Now().UnixNano())
	ch, cancel := sub.Subscribe(key)
	defer cancel()
	publish(t, pub, key)
	woken(t, ch, "sentinel")
}

func testWakes(t *testing.T, a, b Bus) {
	a1, c1 := a.Subscribe("mail.alice.1")
	defer c1()
	a2, c2 := a.Subscribe("mail.alice.1")
	defer c2()
	b1, c3 := b.Subscribe("mail.alice.1")
	defer c3()
	other, c4 := a.Subscribe("mail.alice.2")
	defer c4()
	prefix, c5 := a.Subscribe("mail.alice")
	defer c5()
	if cap(a1) != 1 {
		t.Fatalf("subscription channel capacity %d, want 1", cap(a1))
	}

	publish(t, b, "mail.alice.1")
	woken(t, a1, "first subscriber on the other node")
	woken(t, a2, "second subscriber on the other node")
	woken(t, b1, "subscriber on the publishing node")
	settle(t, b, a)
	notWoken(t, other, "subscriber of another key")
	notWoken(t, prefix, "subscriber of a prefix of the key")
}

func testBothDirections(t *testing.T, a, b Bus) {
	ca, cancelA := a.Subscribe("devices.bob")
	defer cancelA()
	cb, cancelB := b.Subscribe("devices.bob")
	defer cancelB()
	for range 3 {
		publish(t, a, "devices.bob")
		woken(t, ca, "a after a's publish")
		woken(t, cb, "b after a's publish")
		publish(t, b, "devices.bob")
		woken(t, ca, "a after b's publish")
		woken(t, cb, "b after b's publish")
	}
}

func testCoalesces(t *testing.T, a, b Bus) {
	ch, cancel := a.Subscribe("mail.carol.7")
	defer cancel()
	// Nobody reads ch: 10,000 publishes must still all return.
	done := make(chan error, 1)
	go func() {
		c := ctx(t)
		for range 10_000 {
			if err := b.Publish(c, "mail.carol.7"); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait):
		t.Fatal("Publish blocked on a subscriber that does not read")
	}
	woken(t, ch, "after many publishes")
	settle(t, b, a)
	// However many arrived, at most one is pending: the channel holds one.
	select {
	case <-ch:
	default:
	}
	notWoken(t, ch, "after draining the coalesced wake-up")
}

func testNoMissAfterSubscribe(t *testing.T, a, b Bus) {
	for i := range 200 {
		key := fmt.Sprintf("mail.dave.%d", i)
		sub, pub := a, b
		if i%2 == 1 {
			sub, pub = b, a
		}
		ch, cancel := sub.Subscribe(key)
		publish(t, pub, key)
		woken(t, ch, "a publish right after Subscribe returned")
		cancel()
	}
}

func testUnsubscribe(t *testing.T, a, b Bus) {
	gone, cancelGone := a.Subscribe("link.0123456789abcdef0123456789abcdef")
	stay, cancelStay := a.Subscribe("link.0123456789abcdef0123456789abcdef")
	cancelGone()
	cancelGone() // idempotent
	publish(t, b, "link.0123456789abcdef0123456789abcdef")
	woken(t, stay, "remaining subscriber")
	settle(t, b, a)
	notWoken(t, gone, "cancelled subscriber")
	cancelStay()

	// With no subscriber left, publishing still works, and a new
	// subscription of the same key works.
	publish(t, b, "link.0123456789abcdef0123456789abcdef")
	again, cancelAgain := a.Subscribe("link.0123456789abcdef0123456789abcdef")
	defer cancelAgain()
	settle(t, b, a)
	select { // the publish before Subscribe may or may not be seen
	case <-again:
	default:
	}
	publish(t, b, "link.0123456789abcdef0123456789abcdef")
	woken(t, again, "subscriber after re-subscribing")
	notWoken(t, gone, "cancelled subscriber")
}

func testServerKeys(t *testing.T, a, b Bus) {
	for _, key := range []string{
		"mail.alice_1.4294967295",
		"mail.abc.1",
		"devices.a_very_long_handle_of_32_chars",
		"link.ffffffffffffffffffffffffffffffff",
		"other.bob_2.12",
	} {
		ch, cancel := a.Subscribe(key)
		publish(t, b, key)
		woken(t, ch, key)
		cancel()
	}
}

func testManyKeys(t *testing.T, a, b Bus) {
	const n = 2000
	chans := make([]<-chan struct{}, n)
	for i := range n {
		ch, cancel := a.Subscribe(fmt.Sprintf("mail.many.%d", i))
		defer cancel()
		chans[i] = ch
	}
	for i := range n {
		publish(t, b, fmt.Sprintf("mail.many.%d", i))
	}
	for i, ch := range chans {
		woken(t, ch, fmt.Sprintf("key %d of %d", i, n))
	}
}

func testConcurrent(t *testing.T, a, b Bus) {
	steady, cancel := a.Subscribe("mail.erin.1")
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			c := ctx(t)
			for i := range 200 {
				sub, pub := a, b
				if (g+i)%2 == 0 {
					sub, pub = b, a
				}
				key := fmt.Sprintf("mail.erin.%d", i%5)
				ch, unsub := sub.Subscribe(key)
				if err := pub.Publish(c, key); err != nil {
					errs <- err
					unsub()
					return
				}
				select {
				case <-ch:
				case <-c.Done():
					errs <- fmt.Errorf("goroutine %d: no wake-up for %s", g, key)
					unsub()
					return
				}
				unsub()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	publish(t, b, "mail.erin.1")
	woken(t, steady, "steady subscriber after the churn")
}
