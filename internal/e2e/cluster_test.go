package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/client"
	"github.com/parleychat/parley/internal/pgtest"
)

// The scale-out proofs of issue 3: several parleyd processes on one
// PostgreSQL and NATS, and one SQLite node killed again and again; in both,
// every message the server acknowledged reaches the receiving application
// exactly once. Clients reach the nodes through a TCP load balancer (lb),
// as in a deployment: when a node dies, its connections break and the
// clients reconnect through the balancer to a live node.

func natsURL() string {
	if u := os.Getenv("PARLEY_TEST_NATS"); u != "" {
		return u
	}
	return "nats://127.0.0.1:4222"
}

func randomName() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// lb is a TCP load balancer: each new connection goes to the first of the
// backends that accepts it, and lives as long as both sides do.
type lb struct {
	t  *testing.T
	ln net.Listener

	mu       sync.Mutex
	backends []string
	conns    map[net.Conn]struct{}
	wg       sync.WaitGroup
}

func newLB(t *testing.T, backends ...string) *lb {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &lb{t: t, ln: ln, backends: backends, conns: map[net.Conn]struct{}{}}
	l.wg.Go(l.accept)
	t.Cleanup(func() {
		ln.Close()
		l.mu.Lock()
		for c := range l.conns {
			c.Close()
		}
		l.mu.Unlock()
		l.wg.Wait()
	})
	return l
}

func (l *lb) URL() string { return "http://" + l.ln.Addr().String() }

func (l *lb) setBackends(b ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.backends = b
}

func (l *lb) accept() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.wg.Go(func() { l.serve(c) })
	}
}

// track adds or removes c from the connections closed at clean-up.
func (l *lb) track(c net.Conn, add bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if add {
		l.conns[c] = struct{}{}
	} else {
		delete(l.conns, c)
	}
}

func (l *lb) serve(c net.Conn) {
	defer c.Close()
	l.track(c, true)
	defer l.track(c, false)
	l.mu.Lock()
	backends := append([]string(nil), l.backends...)
	l.mu.Unlock()
	var up net.Conn
	for _, b := range backends {
		var err error
		if up, err = net.DialTimeout("tcp", b, 2*time.Second); err == nil {
			break
		}
	}
	if up == nil {
		return // no backend: the client sees the connection close
	}
	defer up.Close()
	l.track(up, true)
	defer l.track(up, false)
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done // either side gone: close both
	c.Close()
	up.Close()
	<-done
}

// app is one device running the real client library: what "the
// application" sees is its events.
type app struct {
	t      *testing.T
	handle string
	c      *client.Client

	mu   sync.Mutex
	seen map[string]int // message id -> times shown
	text map[string]string

	cancel context.CancelFunc
	done   chan error
}

func newApp(t *testing.T, server, handle string) *app {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := client.Open(ctx, client.Options{Home: filepath.Join(t.TempDir(), handle), Server: server, DeviceName: handle})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Register(ctx, handle); err != nil {
		t.Fatalf("registering %s: %v", handle, err)
	}
	return &app{t: t, handle: handle, c: c, seen: map[string]int{}, text: map[string]string{}}
}

func (a *app) event(ev client.Event) {
	if ev.Type != client.EventMessage || ev.Message == nil || ev.Message.Outgoing {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seen[ev.Message.ID]++
	a.text[ev.Message.ID] = ev.Message.Text
}

// run receives in the background (client.Run: reconnects on its own).
func (a *app) run() {
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel, a.done = cancel, make(chan error, 1)
	go func() { a.done <- a.c.Run(ctx, a.event) }()
}

// stop ends run, then drains what is still queued (redeliveries too) with
// one Sync.
func (a *app) stop() {
	a.t.Helper()
	a.cancel()
	select {
	case err := <-a.done:
		if !errors.Is(err, context.Canceled) {
			a.t.Fatalf("%s: Run: %v", a.handle, err)
		}
	case <-time.After(30 * time.Second):
		a.t.Fatalf("%s: Run did not return", a.handle)
	}
	a.sync()
}

// sync runs one Sync (bounded), which also sends what is queued.
func (a *app) sync() {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := a.c.Sync(ctx, 0, a.event); err != nil {
		a.t.Fatalf("%s: Sync: %v", a.handle, err)
	}
}

func (a *app) count(ids map[string]string) (have int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for id := range ids {
		if a.seen[id] > 0 {
			have++
		}
	}
	return have
}

// stream sends n texts from a to handle as fast as the server takes them
// and records which the server acknowledged. A send that fails (the node
// died) stays in the client's outbox and is retried later by the client.
type stream struct {
	from   *app
	to     string
	prefix string

	mu     sync.Mutex
	acked  map[string]string // id -> text, acknowledged when sent
	failed int
	done   chan struct{}
}

func startStream(from *app, to, prefix string, n int) *stream {
	s := &stream{from: from, to: to, prefix: prefix, acked: map[string]string{}, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for i := range n {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			m, err := from.c.Send(ctx, to, fmt.Sprintf("%s%04d", prefix, i))
			cancel()
			s.mu.Lock()
			if err == nil {
				s.acked[m.ID] = m.Text
			} else {
				s.failed++
			}
			s.mu.Unlock()
			if err != nil {
				time.Sleep(50 * time.Millisecond) // the balancer finds a live node on the next try
			}
		}
	}()
	return s
}

func (s *stream) ackedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acked)
}

func (s *stream) wait(t *testing.T) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(180 * time.Second):
		t.Fatalf("stream %s did not finish", s.prefix)
	}
}

// waitUntil polls cond (bounded).
func waitUntil(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not within %s", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// check requires every message acknowledged to s.from, counted after its
// final outbox flush, to have reached the receiver exactly once, and the
// receiver to have shown nothing else from s.from.
func (s *stream) check(t *testing.T, to *app) (acked, ackedAtOnce int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	hist, err := s.from.c.History(ctx, s.to, 0)
	if err != nil {
		t.Fatal(err)
	}
	final := map[string]string{}
	for _, m := range hist {
		if m.Outgoing && m.Status != client.StatusSending && m.Status != client.StatusFailed {
			final[m.ID] = m.Text
		}
	}
	s.mu.Lock()
	ackedAtOnce = len(s.acked)
	for id := range s.acked {
		if _, ok := final[id]; !ok {
			t.Errorf("%s: message %s acknowledged at send is not marked sent", s.prefix, id)
		}
	}
	s.mu.Unlock()

	to.mu.Lock()
	defer to.mu.Unlock()
	var missing, twice []string
	for id, text := range final {
		switch n := to.seen[id]; {
		case n == 0:
			missing = append(missing, text)
		case n > 1:
			twice = append(twice, text)
		}
	}
	for id, n := range to.seen {
		if _, ok := final[id]; !ok && n > 0 && len(to.text[id]) >= len(s.prefix) && to.text[id][:len(s.prefix)] == s.prefix {
			t.Errorf("%s: %s received %q, which was never acknowledged", s.prefix, to.handle, to.text[id])
		}
	}
	sort.Strings(missing)
	sort.Strings(twice)
	if len(missing) > 0 {
		t.Errorf("%s: %d acknowledged messages never reached %s: %q", s.prefix, len(missing), to.handle, missing)
	}
	if len(twice) > 0 {
		t.Errorf("%s: %d messages reached %s more than once: %q", s.prefix, len(twice), to.handle, twice)
	}
	return len(final), ackedAtOnce
}

// Three nodes on one PostgreSQL and one NATS. alice (node 0) writes to bob
// (node 1), carol (node 1) to dave (node 2). Node 1 is killed with SIGKILL
// in the middle of both streams; bob and carol reconnect through the
// balancer to node 2; every acknowledged message arrives exactly once.
func TestCluster(t *testing.T) {
	dsn := pgtest.Database(t)
	prefix := "parleytest." + randomName()
	var nodes []*server
	for range 3 {
		nodes = append(nodes, startServer(t, "", "--db", dsn, "--nats", natsURL(), "--nats-prefix", prefix,
			"--poll-interval", "1s", "--register-burst", "100"))
	}
	addr := func(i int) string { return nodes[i].addr }
	// Each client's balancer prefers a node, then the next ones.
	order := func(first int) []string { return []string{addr(first), addr((first + 1) % 3), addr((first + 2) % 3)} }
	alice := newApp(t, newLB(t, order(0)...).URL(), "alice")
	bob := newApp(t, newLB(t, order(1)...).URL(), "bob")
	carol := newApp(t, newLB(t, order(1)...).URL(), "carol")
	dave := newApp(t, newLB(t, order(2)...).URL(), "dave")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := bob.c.AddContact(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := dave.c.AddContact(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	bob.run()
	dave.run()
	// bob's delivery stream is on node 1, dave's on node 2.
	waitUntil(t, "bob and dave to connect", 60*time.Second, func() bool {
		return metric(t, addr(1), "parley_websockets") == 1 && metric(t, addr(2), "parley_websockets") == 1
	})

	const n = 200
	ab := startStream(alice, "bob", "ab", n)
	cd := startStream(carol, "dave", "cd", n)
	waitUntil(t, "carol's stream to get going", 120*time.Second, func() bool { return cd.ackedCount() >= n/4 })
	nodes[1].kill9()
	killedAt := cd.ackedCount()
	// bob's client reconnects through its balancer, to node 2.
	waitUntil(t, "bob to reconnect to node 2", 60*time.Second, func() bool {
		return metric(t, addr(2), "parley_websockets") == 2
	})
	ab.wait(t)
	cd.wait(t)

	// The senders' outboxes send what failed when node 1 died.
	alice.sync()
	carol.sync()
	waitUntil(t, "bob and dave to receive every acknowledged message", 120*time.Second, func() bool {
		return bob.count(ab.snapshot()) == len(ab.snapshot()) && dave.count(cd.snapshot()) == len(cd.snapshot())
	})
	bob.stop()
	dave.stop()
	abAcked, abAtOnce := ab.check(t, bob)
	cdAcked, cdAtOnce := cd.check(t, dave)
	t.Logf("node 1 killed after %d of carol's %d sends were acknowledged", killedAt, n)
	t.Logf("alice->bob: %d sends, %d acknowledged at once, %d failed then retried, %d acknowledged in the end, all delivered once",
		n, abAtOnce, ab.failed, abAcked)
	t.Logf("carol->dave: %d sends, %d acknowledged at once, %d failed then retried, %d acknowledged in the end, all delivered once",
		n, cdAtOnce, cd.failed, cdAcked)
}

// metric reads one unlabelled sample from a node's /metrics.
func metric(t *testing.T, addr, name string) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scraping %s: %v", addr, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %q", name, sc.Text())
			}
			return f
		}
	}
	t.Fatalf("%s has no sample %s", addr, name)
	return 0
}

// snapshot returns a copy of the messages acknowledged so far.
func (s *stream) snapshot() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.acked))
	for k, v := range s.acked {
		out[k] = v
	}
	return out
}

// One SQLite node, killed with SIGKILL again and again while alice keeps
// sending and bob keeps receiving; each time it restarts on the same data.
// Acknowledged and delivered counts match, message by message.
func TestKill9LoopSQLite(t *testing.T) {
	srv := startServer(t, "", "--register-burst", "100")
	bal := newLB(t, srv.addr)
	alice := newApp(t, bal.URL(), "alice")
	bob := newApp(t, bal.URL(), "bob")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := bob.c.AddContact(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	bob.run()

	const rounds, n = 4, 300
	ab := startStream(alice, "bob", "k", n)
	for r := range rounds {
		target := (r + 1) * n / (rounds + 2)
		waitUntil(t, fmt.Sprintf("round %d: %d acknowledged sends", r, target), 120*time.Second,
			func() bool { return ab.ackedCount() >= target })
		srv.kill9()
		srv = startServer(t, srv.data, "--register-burst", "100")
		bal.setBackends(srv.addr)
	}
	ab.wait(t)
	alice.sync()
	waitUntil(t, "bob to receive every acknowledged message", 120*time.Second, func() bool {
		return bob.count(ab.snapshot()) == len(ab.snapshot())
	})
	bob.stop()
	acked, atOnce := ab.check(t, bob)
	delivered := 0
	bob.mu.Lock()
	for _, c := range bob.seen {
		delivered += c
	}
	bob.mu.Unlock()
	if delivered != acked {
		t.Errorf("acknowledged %d, delivered %d", acked, delivered)
	}
	t.Logf("%d kill -9 rounds: %d sends, %d acknowledged at once, %d failed then retried, %d acknowledged in the end, %d delivered",
		rounds, n, atOnce, ab.failed, acked, delivered)
}
