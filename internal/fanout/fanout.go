// Package fanout tells connections that something they watch changed
// ("device X has new mail"), without carrying the data itself: a
// subscriber wakes and reads the store. Local is the in-process bus; a
// NATS bus for several nodes comes later with the same methods.
package fanout

import (
	"context"
	"sync"
)

// Local is an in-process bus. Each subscription has a channel of capacity
// one: publishes coalesce while the subscriber is busy, and Publish never
// blocks. It is safe for concurrent use; the zero value is not, use
// NewLocal.
type Local struct {
	mu   sync.Mutex
	subs map[string]map[*subscription]struct{}
}

type subscription struct {
	ch chan struct{}
}

// NewLocal returns an empty bus.
func NewLocal() *Local {
	return &Local{subs: make(map[string]map[*subscription]struct{})}
}

// Publish wakes every current subscriber of key. It never blocks and
// always returns nil.
func (b *Local) Publish(_ context.Context, key string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs[key] {
		select {
		case s.ch <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
	return nil
}

// Subscribe returns a channel that receives a value after each Publish of
// key (coalesced), and a function that ends the subscription. A publish
// that happens after Subscribe returns is never lost.
func (b *Local) Subscribe(key string) (<-chan struct{}, func()) {
	s := &subscription{ch: make(chan struct{}, 1)}
	b.mu.Lock()
	m := b.subs[key]
	if m == nil {
		m = make(map[*subscription]struct{})
		b.subs[key] = m
	}
	m[s] = struct{}{}
	b.mu.Unlock()
	var once sync.Once
	return s.ch, func() {
		once.Do(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			delete(b.subs[key], s)
			if len(b.subs[key]) == 0 {
				delete(b.subs, key)
			}
		})
	}
}

// Keys returns the number of keys with at least one subscriber.
func (b *Local) Keys() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}
