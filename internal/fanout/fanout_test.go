package fanout

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestPublishWakesSubscribers(t *testing.T) {
	b := NewLocal()
	c1, cancel1 := b.Subscribe("k")
	c2, cancel2 := b.Subscribe("k")
	other, cancel3 := b.Subscribe("other")
	defer cancel2()
	defer cancel3()

	// Many publishes coalesce into one pending wake-up and never block.
	for range 100 {
		if err := b.Publish(context.Background(), "k"); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []<-chan struct{}{c1, c2} {
		select {
		case <-c:
		default:
			t.Fatal("subscriber not woken")
		}
		select {
		case <-c:
			t.Fatal("publishes did not coalesce")
		default:
		}
	}
	select {
	case <-other:
		t.Fatal("subscriber of another key woken")
	default:
	}

	cancel1()
	cancel1() // idempotent
	b.Publish(context.Background(), "k")
	select {
	case <-c1:
		t.Fatal("cancelled subscription woken")
	default:
	}
}

func TestUnsubscribeFreesKeys(t *testing.T) {
	b := NewLocal()
	_, c1 := b.Subscribe("a")
	_, c2 := b.Subscribe("a")
	if b.Keys() != 1 {
		t.Fatalf("Keys = %d", b.Keys())
	}
	c1()
	c2()
	if b.Keys() != 0 {
		t.Fatalf("Keys after unsubscribe = %d", b.Keys())
	}
}

func TestConcurrent(t *testing.T) {
	b := NewLocal()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch, unsub := b.Subscribe("k")
	defer unsub()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				b.Publish(ctx, "k")
				_, u := b.Subscribe("k")
				u()
			}
		})
	}
	wg.Wait()
	select {
	case <-ch:
	case <-ctx.Done():
		t.Fatal("no wake-up")
	}
}
