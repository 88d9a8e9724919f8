package natsbus_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/parleychat/parley/internal/fanout/bustest"
	"github.com/parleychat/parley/internal/fanout/natsbus"
)

// natsURL is the NATS server the machine runs (PARLEY_TEST_NATS overrides).
func natsURL() string {
	if u := os.Getenv("PARLEY_TEST_NATS"); u != "" {
		return u
	}
	return "nats://127.0.0.1:4222"
}

// randomPrefix keeps each test's subjects apart on a shared NATS.
func randomPrefix() string {
	var b [6]byte
	rand.Read(b[:])
	return "parleytest." + hex.EncodeToString(b[:])
}

func open(t *testing.T, url, prefix string) *natsbus.Bus { return openB(t, prefix, url) }

func openB(t testing.TB, prefix string, url ...string) *natsbus.Bus {
	t.Helper()
	if len(url) == 0 {
		url = []string{natsURL()}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := natsbus.Open(ctx, natsbus.Options{URL: url[0], Prefix: prefix, Name: t.Name(), ReconnectWait: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("connecting to NATS at %s (is it running?): %v", url[0], err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// Two connections with one prefix are two nodes of one deployment.
func TestConformance(t *testing.T) {
	bustest.Run(t, func(t *testing.T) (a, b bustest.Bus) {
		p := randomPrefix()
		return open(t, natsURL(), p), open(t, natsURL(), p)
	})
}

// One connection is also a conforming bus (a single node on NATS).
func TestConformanceOneConnection(t *testing.T) {
	bustest.Run(t, func(t *testing.T) (a, b bustest.Bus) {
		bus := open(t, natsURL(), randomPrefix())
		return bus, bus
	})
}

// The wire format: subject "<prefix>.<key>", empty payload.
func TestSubjects(t *testing.T) {
	p := randomPrefix()
	bus := open(t, natsURL(), p)
	nc, err := nats.Connect(natsURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync(p + ".>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := bus.Publish(context.Background(), "mail.alice.42"); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsg(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != p+".mail.alice.42" || len(m.Data) != 0 {
		t.Fatalf("subject %q, payload %q", m.Subject, m.Data)
	}
	if s, _ := bus.Subject("devices.bob"); s != p+".devices.bob" {
		t.Fatalf("Subject = %q", s)
	}

	for _, bad := range []string{"", "a..b", "mail.*", "mail.>", "a b", ".a", "a.", "mail.ä"} {
		if err := bus.Publish(context.Background(), bad); !errors.Is(err, natsbus.ErrBadKey) {
			t.Errorf("Publish(%q) = %v, want ErrBadKey", bad, err)
		}
		ch, cancel := bus.Subscribe(bad) // never woken, does not panic
		cancel()
		if ch == nil {
			t.Errorf("Subscribe(%q) returned a nil channel", bad)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := natsbus.Open(ctx, natsbus.Options{URL: natsURL(), Prefix: "bad prefix"}); !errors.Is(err, natsbus.ErrBadKey) {
		t.Errorf("Open with a bad prefix: %v", err)
	}
}

// Buses with different prefixes on one NATS do not hear each other.
func TestPrefixesIsolate(t *testing.T) {
	p1, p2 := randomPrefix(), randomPrefix()
	a1, a2 := open(t, natsURL(), p1), open(t, natsURL(), p1)
	b, c := open(t, natsURL(), p2), open(t, natsURL(), p2)
	ch, cancel := a1.Subscribe("mail.alice.1")
	defer cancel()
	other, cancelO := c.Subscribe("mail.alice.1")
	defer cancelO()
	if err := b.Publish(context.Background(), "mail.alice.1"); err != nil {
		t.Fatal(err)
	}
	// Once c has b's hint, NATS has routed it; a2's sentinel is routed
	// after it, so a1 would see b's hint (were it routed to a1) first.
	waitCh(t, other, "subscriber under the publisher's prefix")
	sentinel, cancelS := a1.Subscribe("sentinel.x")
	defer cancelS()
	if err := a2.Publish(context.Background(), "sentinel.x"); err != nil {
		t.Fatal(err)
	}
	waitCh(t, sentinel, "sentinel")
	select {
	case <-ch:
		t.Fatal("a hint under another prefix woke a subscriber")
	default:
	}
}

func TestOpenFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err = natsbus.Open(ctx, natsbus.Options{URL: "nats://user:secret@" + addr})
	if err == nil {
		t.Fatal("Open succeeded with no NATS server")
	}
	if strings.Contains(err.Error(), "secret") {
		t.Fatalf("error shows the password: %v", err)
	}
}

// runNATS runs an in-process nats-server on 127.0.0.1:port (-1: any).
func runNATS(t *testing.T, port int) *natsserver.Server {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(20 * time.Second) {
		ns.Shutdown()
		t.Fatal("nats-server not ready within 20s")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

// A NATS restart: hints published while it is down are lost, and each
// subscriber is woken after the reconnection to re-read; subscriptions made
// before and during the outage work afterwards; local subscribers are woken
// throughout.
func TestReconnectAfterNATSRestart(t *testing.T) {
	ns := runNATS(t, -1)
	port := ns.Addr().(*net.TCPAddr).Port
	url := ns.ClientURL()
	a, b := open(t, url, "parley"), open(t, url, "parley")

	before, c1 := a.Subscribe("mail.alice.1")
	defer c1()
	local, c2 := b.Subscribe("mail.bob.1")
	defer c2()
	if err := b.Publish(context.Background(), "mail.alice.1"); err != nil {
		t.Fatal(err)
	}
	waitCh(t, before, "before the restart")

	ns.Shutdown()
	ns.WaitForShutdown()
	waitFor(t, "both buses to notice the outage", func() bool { return !a.Connected() && !b.Connected() })

	// Subscribing during the outage returns (bounded), and a local
	// publish still wakes a local subscriber at once.
	during, c3 := a.Subscribe("devices.carol")
	defer c3()
	if err := b.Publish(context.Background(), "mail.bob.1"); err != nil {
		t.Fatalf("publish while NATS is down: %v", err)
	}
	waitCh(t, local, "local subscriber while NATS is down")

	runNATS(t, port)
	waitFor(t, "both buses to reconnect", func() bool {
		return a.Connected() && b.Connected() && a.Reconnects() >= 1 && b.Reconnects() >= 1
	})
	// The reconnection woke the subscribers so they re-read.
	waitCh(t, before, "subscriber from before, after the reconnection")
	waitCh(t, during, "subscriber from the outage, after the reconnection")
	drain(before, during)

	// Hints flow again, to subscriptions made before and during the outage.
	for _, key := range []string{"mail.alice.1", "devices.carol"} {
		if err := b.Publish(context.Background(), key); err != nil {
			t.Fatal(err)
		}
	}
	waitCh(t, before, "subscriber from before, new hint")
	waitCh(t, during, "subscriber from the outage, new hint")
	// And new subscriptions too.
	after, c4 := a.Subscribe("mail.dave.9")
	defer c4()
	if err := b.Publish(context.Background(), "mail.dave.9"); err != nil {
		t.Fatal(err)
	}
	waitCh(t, after, "subscriber after the restart")
}

// Close is idempotent; afterwards Publish fails and Subscribe gives a
// channel that is never woken.
func TestClose(t *testing.T) {
	b := open(t, natsURL(), randomPrefix())
	ch, cancel := b.Subscribe("mail.x.1")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := b.Publish(context.Background(), "mail.x.1"); !errors.Is(err, natsbus.ErrClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
	ch2, cancel2 := b.Subscribe("mail.x.1")
	cancel2()
	select {
	case <-ch:
		t.Fatal("woken after Close")
	case <-ch2:
		t.Fatal("woken after Close")
	default:
	}
}

func waitCh(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: no wake-up within 20s", what)
	}
}

func drain(chs ...<-chan struct{}) {
	for _, ch := range chs {
		select {
		case <-ch:
		default:
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not within 30s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
