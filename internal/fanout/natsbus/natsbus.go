// Package natsbus is the fan-out bus of several parleyd nodes, over NATS
// core publish/subscribe (github.com/nats-io/nats.go).
//
// It carries hints only ("device X has new mail", "the device list of @h
// changed"), never data: durability stays in the store. A key k travels as
// the subject "<prefix>.<k>" with an empty payload. A hint can be lost
// (NATS restarts, a slow consumer, a node crashing between its commit and
// its publish), so the server also re-reads an idle queue now and then
// (config poll_interval), and this bus wakes every subscriber after it
// reconnects to NATS, so each re-reads what it watches.
//
// Publishes wake this node's own subscribers directly (the connection has
// NATS echo off), so a single node keeps delivering at once even while NATS
// is away. Each key has one NATS subscription per node however many local
// subscribers share it, and every subscription feeds one channel read by
// one dispatcher goroutine: an idle subscriber costs a map entry and a
// channel, not a goroutine.
package natsbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// Errors.
var (
	ErrClosed = errors.New("natsbus: closed")
	ErrBadKey = errors.New("natsbus: key is not dot-separated tokens of A-Z, a-z, 0-9, _ and -")
)

// DefaultPrefix is the subject prefix when Options.Prefix is empty.
const DefaultPrefix = "parley"

// Defaults of Options.
const (
	defaultFlushTimeout  = 2 * time.Second
	defaultReconnectWait = 500 * time.Millisecond
	defaultConnectWait   = 5 * time.Second
	// inboxSize bounds the hints received and not yet dispatched; beyond it
	// NATS reports a slow consumer and the bus wakes that key's subscribers.
	inboxSize = 1 << 16
)

// Options configure a Bus.
type Options struct {
	// URL is one NATS server URL, or several comma-separated (a cluster).
	URL string
	// Prefix starts every subject; nodes of one deployment share it, and
	// deployments (or test runs) on one NATS use different ones. "" means
	// DefaultPrefix.
	Prefix string
	// Name names the connection in NATS monitoring ("" for none).
	Name string
	// Logger; nil discards logs.
	Logger *slog.Logger
	// FlushTimeout bounds the round trip with which Subscribe makes sure
	// NATS knows the subscription before it returns. Zero means 2s.
	FlushTimeout time.Duration
	// ReconnectWait is the pause between reconnect attempts (with jitter).
	// Zero means 500ms.
	ReconnectWait time.Duration
}

// Bus is a fan-out bus over one NATS connection. It is safe for
// concurrent use. Methods of the server's Bus interface: Publish and
// Subscribe.
type Bus struct {
	nc           *nats.Conn
	prefix       string // with the trailing '.'
	log          *slog.Logger
	flushTimeout time.Duration
	inbox        chan *nats.Msg
	stop         chan struct{} // closed by Close
	dispatched   chan struct{} // closed when the dispatcher returns

	mu     sync.Mutex
	keys   map[string]*keySub // by subject
	closed bool

	reconnects atomic.Uint64
	dropped    atomic.Uint64
}

// keySub is one subject this node listens to, shared by its local
// subscribers.
type keySub struct {
	sub   *nats.Subscription // nil if subscribing failed
	local map[*localSub]struct{}
	ready chan struct{} // closed once NATS has (or could not be told of) the subscription
}

type localSub struct {
	ch chan struct{}
}

// Open connects to NATS. The first connection must succeed (within ctx, or
// five seconds without a deadline); after that the bus reconnects forever
// on its own.
func Open(ctx context.Context, o Options) (*Bus, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if !validSubject(o.Prefix) {
		return nil, fmt.Errorf("natsbus: prefix %q: %w", o.Prefix, ErrBadKey)
	}
	if o.FlushTimeout <= 0 {
		o.FlushTimeout = defaultFlushTimeout
	}
	if o.ReconnectWait <= 0 {
		o.ReconnectWait = defaultReconnectWait
	}
	wait := defaultConnectWait
	if dl, ok := ctx.Deadline(); ok {
		wait = time.Until(dl)
	}
	if wait <= 0 || ctx.Err() != nil {
		return nil, fmt.Errorf("natsbus: connecting: %w", context.DeadlineExceeded)
	}
	b := &Bus{
		prefix:       o.Prefix + ".",
		log:          o.Logger,
		flushTimeout: o.FlushTimeout,
		inbox:        make(chan *nats.Msg, inboxSize),
		stop:         make(chan struct{}),
		dispatched:   make(chan struct{}),
		keys:         make(map[string]*keySub),
	}
	opts := []nats.Option{
		nats.Timeout(wait),
		nats.NoEcho(), // Publish wakes local subscribers itself
		nats.MaxReconnects(-1),
		nats.ReconnectWait(o.ReconnectWait),
		nats.PingInterval(10 * time.Second),
		nats.MaxPingsOutstanding(2),
		nats.NoCallbacksAfterClientClose(),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			b.log.Warn("disconnected from NATS; reconnecting", "err", err)
		}),
		nats.ReconnectHandler(b.onReconnect),
		nats.ErrorHandler(b.onError),
	}
	if o.Name != "" {
		opts = append(opts, nats.Name(o.Name))
	}
	nc, err := nats.Connect(o.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("natsbus: connecting to %s: %w", redact(o.URL), err)
	}
	b.nc = nc
	go b.dispatch()
	b.log.Info("connected to NATS", "server", nc.ConnectedUrlRedacted(), "prefix", o.Prefix)
	return b, nil
}

// redact drops user information from NATS URLs for error messages.
func redact(urls string) string {
	var out []string
	for u := range strings.SplitSeq(urls, ",") {
		u = strings.TrimSpace(u)
		if i := strings.Index(u, "@"); i >= 0 {
			if j := strings.Index(u, "://"); j >= 0 && j < i {
				u = u[:j+3] + "***" + u[i:]
			}
		}
		out = append(out, u)
	}
	return strings.Join(out, ",")
}

// validSubject reports whether s is one or more subject tokens of
// [A-Za-z0-9_-]: no wildcard, no space, no empty token.
func validSubject(s string) bool {
	if s == "" {
		return false
	}
	for tok := range strings.SplitSeq(s, ".") {
		if tok == "" {
			return false
		}
		for i := 0; i < len(tok); i++ {
			c := tok[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
				return false
			}
		}
	}
	return true
}

// Subject returns the NATS subject of key.
func (b *Bus) Subject(key string) (string, error) {
	if !validSubject(key) {
		return "", fmt.Errorf("%w: %q", ErrBadKey, key)
	}
	return b.prefix + key, nil
}

// Publish wakes every subscriber of key on this node at once, and sends
// the hint to the other nodes. It does not wait for them: while NATS is
// away the hint is buffered by the client library (and the subscribers of
// the other nodes re-read their queues when they reconnect anyway).
func (b *Bus) Publish(_ context.Context, key string) error {
	subj, err := b.Subject(key)
	if err != nil {
		return err
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	b.wakeLocked(subj)
	b.mu.Unlock()
	if err := b.nc.Publish(subj, nil); err != nil {
		return fmt.Errorf("natsbus: publishing: %w", err)
	}
	return nil
}

// Subscribe returns a channel (capacity one) that receives a value after
// each publish of key on any node (publishes coalesce while the subscriber
// is busy), and a function that ends the subscription. When NATS is
// connected, Subscribe returns only after NATS has the subscription, so a
// publish after Subscribe returns is not missed; when it is not, the
// subscriber is woken after the reconnection instead. An invalid key (see
// ErrBadKey) or a closed bus gives a channel that is never woken.
func (b *Bus) Subscribe(key string) (<-chan struct{}, func()) {
	ls := &localSub{ch: make(chan struct{}, 1)}
	subj, err := b.Subject(key)
	if err != nil {
		b.log.Error("subscribing", "err", err)
		return ls.ch, func() {}
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ls.ch, func() {}
	}
	ks := b.keys[subj]
	first := ks == nil
	if first {
		ks = &keySub{local: make(map[*localSub]struct{}), ready: make(chan struct{})}
		b.keys[subj] = ks
		sub, err := b.nc.ChanSubscribe(subj, b.inbox)
		if err != nil {
			b.log.Warn("subscribing on NATS; relying on polling", "subject", subj, "err", err)
			close(ks.ready)
		} else {
			ks.sub = sub
		}
	}
	ks.local[ls] = struct{}{}
	b.mu.Unlock()

	if first && ks.sub != nil {
		// A PING/PONG after the SUB: once the PONG is back, NATS has
		// processed the SUB and routes every later publish to us.
		if b.nc.IsConnected() {
			if err := b.nc.FlushTimeout(b.flushTimeout); err != nil {
				b.log.Debug("NATS did not confirm a subscription in time", "subject", subj, "err", err)
			}
		}
		close(ks.ready)
	} else {
		<-ks.ready // bounded: the first subscriber closes it after at most flushTimeout
	}

	var once sync.Once
	return ls.ch, func() {
		once.Do(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			delete(ks.local, ls)
			if len(ks.local) == 0 && b.keys[subj] == ks {
				delete(b.keys, subj)
				if ks.sub != nil && !b.closed {
					ks.sub.Unsubscribe() // an error means the connection is closed: nothing to undo
				}
			}
		})
	}
}

// dispatch wakes the local subscribers of each hint received.
func (b *Bus) dispatch() {
	defer close(b.dispatched)
	for {
		select {
		case m := <-b.inbox:
			b.mu.Lock()
			b.wakeLocked(m.Subject)
			b.mu.Unlock()
		case <-b.stop:
			return
		}
	}
}

func (b *Bus) wakeLocked(subj string) {
	ks := b.keys[subj]
	if ks == nil {
		return
	}
	for ls := range ks.local {
		select {
		case ls.ch <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
}

// wakeAll wakes every local subscriber, so each re-reads what it watches.
func (b *Bus) wakeAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for subj := range b.keys {
		b.wakeLocked(subj)
	}
}

// onReconnect runs after the client library reconnected and re-sent the
// subscriptions: once NATS has them, every subscriber re-reads, which
// covers hints published while the connection was down.
func (b *Bus) onReconnect(nc *nats.Conn) {
	b.reconnects.Add(1)
	b.log.Info("reconnected to NATS", "server", nc.ConnectedUrlRedacted())
	go func() {
		if err := nc.FlushTimeout(b.flushTimeout); err != nil {
			b.log.Debug("NATS did not answer after reconnecting", "err", err)
		}
		b.wakeAll()
	}()
}

// onError handles asynchronous errors; a slow consumer dropped hints of
// sub's subject, so its subscribers are woken to re-read.
func (b *Bus) onError(_ *nats.Conn, sub *nats.Subscription, err error) {
	if errors.Is(err, nats.ErrSlowConsumer) {
		b.dropped.Add(1)
		if sub != nil {
			b.mu.Lock()
			b.wakeLocked(sub.Subject)
			b.mu.Unlock()
		} else {
			b.wakeAll()
		}
		b.log.Warn("NATS hints were dropped (slow consumer); subscribers re-read their queues")
		return
	}
	b.log.Warn("NATS error", "err", err)
}

// Connected reports whether the bus is connected to NATS now.
func (b *Bus) Connected() bool { return b.nc.IsConnected() }

// Reconnects returns how many times the bus reconnected to NATS.
func (b *Bus) Reconnects() uint64 { return b.reconnects.Load() }

// Dropped returns how many times NATS reported hints dropped because the
// dispatcher fell behind.
func (b *Bus) Dropped() uint64 { return b.dropped.Load() }

// Keys returns the number of keys with at least one local subscriber.
func (b *Bus) Keys() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.keys)
}

// Close sends what is buffered (bounded by the flush timeout), closes the
// connection and ends the dispatcher. Subscription channels are left open
// and never woken again. Close is idempotent.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.keys = make(map[string]*keySub)
	b.mu.Unlock()
	if b.nc.IsConnected() {
		b.nc.FlushTimeout(b.flushTimeout) // best effort: hints only
	}
	b.nc.Close()
	close(b.stop)
	<-b.dispatched
	return nil
}
