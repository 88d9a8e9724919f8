package e2e

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"
)

// Every message the server acknowledged survives kill -9, and is delivered
// once after the restart.
func TestKill9AfterAcknowledgementLosesNothing(t *testing.T) {
	srv := startServer(t, "")
	alice, bob := registerPair(t, srv)
	var want []string
	for i := range 5 {
		text := fmt.Sprintf("before kill %d", i)
		alice.run("send", "bob", text)
		want = append(want, text)
	}
	srv.kill9()

	srv2 := startServer(t, srv.data)
	alice.srv, bob.srv = srv2, srv2
	for i := range 3 {
		text := fmt.Sprintf("after restart %d", i)
		alice.run("send", "bob", text)
		want = append(want, text)
	}
	requireTexts(t, "bob", bob.sync(""), want...)
}

// A stream of sends during SIGTERM: every send that parley reported as
// accepted is delivered after the restart, none twice.
func TestSIGTERMDuringSendsLosesNothing(t *testing.T) {
	srv := startServer(t, "")
	alice, bob := registerPair(t, srv)

	var (
		mu       sync.Mutex
		accepted []string
	)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	stopped := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stopped:
				return
			case <-ctx.Done():
				return
			default:
			}
			text := fmt.Sprintf("m%03d", i)
			if _, _, err := alice.try("send", "bob", text); err == nil {
				mu.Lock()
				accepted = append(accepted, text)
				mu.Unlock()
			}
		}
	}()
	// Let some sends land, then stop the server under load.
	for {
		mu.Lock()
		n := len(accepted)
		mu.Unlock()
		if n >= 5 || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	srv.stop()
	close(stopped)
	wg.Wait()

	srv2 := startServer(t, srv.data)
	alice.srv, bob.srv = srv2, srv2
	got := texts(bob.sync(""))
	seen := map[string]int{}
	for _, s := range got {
		seen[s]++
		if seen[s] > 1 {
			t.Fatalf("%q delivered twice", s)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, s := range accepted {
		if seen[s] != 1 {
			sort.Strings(got)
			t.Fatalf("accepted message %q was lost; delivered: %q", s, got)
		}
	}
	t.Logf("%d sends accepted before SIGTERM, %d delivered after restart", len(accepted), len(got))
}
