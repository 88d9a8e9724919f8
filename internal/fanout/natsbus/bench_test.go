package natsbus_test

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkCrossNodeWake is one hint from one connection to a subscriber
// on another: publish, then wait for the wake-up (a round trip through
// the NATS server).
func BenchmarkCrossNodeWake(b *testing.B) {
	p := randomPrefix()
	x, y := openB(b, p), openB(b, p)
	ch, cancel := x.Subscribe("mail.bench.1")
	defer cancel()
	ctx := context.Background()
	for b.Loop() {
		if err := y.Publish(ctx, "mail.bench.1"); err != nil {
			b.Fatal(err)
		}
		select {
		case <-ch:
		case <-time.After(20 * time.Second):
			b.Fatal("no wake-up")
		}
	}
}

// BenchmarkSubscribe is one subscription of a new key, with the round
// trip that makes NATS know it before Subscribe returns.
func BenchmarkSubscribe(b *testing.B) {
	x := openB(b, randomPrefix())
	i := 0
	for b.Loop() {
		_, cancel := x.Subscribe(fmt.Sprintf("mail.bench.%d", i))
		cancel()
		i++
	}
}
