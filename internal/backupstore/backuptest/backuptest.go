// Package backuptest is the conformance suite of backupstore.Backups:
// every implementation's tests call Run with a way to open fresh storage,
// and must pass it unchanged.
package backuptest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/backupstore"
)

// Opener opens the store under test. Each call opens the same storage
// again, as a restarted node or a second node of a cluster would; the
// stores it returned before stay usable.
type Opener func() (backupstore.Backups, error)

// NewStorage returns an Opener over fresh, empty storage for one test.
type NewStorage func(t *testing.T) Opener

// Run runs the suite.
func Run(t *testing.T, newStorage NewStorage) {
	tests := []struct {
		name string
		f    func(*testing.T, Opener)
	}{
		{"RoundTrip", testRoundTrip},
		{"Empty", testEmpty},
		{"Replace", testReplace},
		{"UpdatedMovesForward", testUpdatedMovesForward},
		{"Delete", testDelete},
		{"InvalidHandles", testInvalidHandles},
		{"ValidHandles", testValidHandles},
		{"Large", testLarge},
		{"ConcurrentHandles", testConcurrentHandles},
		{"ConcurrentOneHandle", testConcurrentOneHandle},
		{"Reopen", testReopen},
		{"TwoOpen", testTwoOpen},
		{"Cancelled", testCancelled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.f(t, newStorage(t))
		})
	}
}

// ctx bounds every call of a test.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func open(t *testing.T, o Opener) backupstore.Backups {
	t.Helper()
	s, err := o()
	if err != nil {
		t.Fatalf("opening the store: %v", err)
	}
	return s
}

func random(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func put(t *testing.T, s backupstore.Backups, handle string, blob []byte) {
	t.Helper()
	if err := s.Put(ctx(t), handle, blob); err != nil {
		t.Fatalf("Put %s: %v", handle, err)
	}
}

// want requires handle's backup to be blob, and returns its time.
func want(t *testing.T, s backupstore.Backups, handle string, blob []byte) time.Time {
	t.Helper()
	b, updated, err := s.Get(ctx(t), handle)
	if err != nil {
		t.Fatalf("Get %s: %v", handle, err)
	}
	if !bytes.Equal(b, blob) {
		t.Fatalf("Get %s: %d bytes, want %d bytes %s", handle, len(b), len(blob), diff(b, blob))
	}
	if updated.IsZero() || updated.Location() != time.UTC {
		t.Fatalf("Get %s: updated %v, want a UTC time", handle, updated)
	}
	return updated
}

func diff(got, want []byte) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("(first difference at byte %d)", i)
		}
	}
	return "(one is a prefix of the other)"
}

func wantNotFound(t *testing.T, s backupstore.Backups, handle string) {
	t.Helper()
	b, updated, err := s.Get(ctx(t), handle)
	if !errors.Is(err, backupstore.ErrNotFound) {
		t.Fatalf("Get %s: %d bytes, %v, %v; want ErrNotFound", handle, len(b), updated, err)
	}
}

func testRoundTrip(t *testing.T, o Opener) {
	s := open(t, o)
	wantNotFound(t, s, "alice")
	blob := random(t, 300)
	put(t, s, "alice", blob)
	want(t, s, "alice", blob)
	wantNotFound(t, s, "bob")
	put(t, s, "bob", []byte("bob's"))
	want(t, s, "alice", blob)
	want(t, s, "bob", []byte("bob's"))
	// The store keeps its own copy.
	blob[0] ^= 0xff
	b, _, err := s.Get(ctx(t), "alice")
	if err != nil || bytes.Equal(b, blob) {
		t.Fatalf("the stored blob changed with the caller's slice: %v", err)
	}
}

func testEmpty(t *testing.T, o Opener) {
	s := open(t, o)
	for _, blob := range [][]byte{nil, {}} {
		put(t, s, "alice", blob)
		want(t, s, "alice", []byte{})
	}
}

func testReplace(t *testing.T, o Opener) {
	s := open(t, o)
	long, short := random(t, 4096), []byte("short")
	put(t, s, "alice", long)
	put(t, s, "alice", short)
	want(t, s, "alice", short) // nothing of the longer blob is left
	put(t, s, "alice", long)
	want(t, s, "alice", long)
}

// Each Put sets the time to when it was written: never earlier than the
// time of the Put before it, and later once the clock has moved on. The
// loop replaces the blob until the time changes (bounded).
func testUpdatedMovesForward(t *testing.T, o Opener) {
	s := open(t, o)
	put(t, s, "alice", []byte("first"))
	first := want(t, s, "alice", []byte("first"))
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		blob := fmt.Appendf(nil, "blob %d", i)
		put(t, s, "alice", blob)
		updated := want(t, s, "alice", blob)
		if updated.Before(first) {
			t.Fatalf("replacing the blob moved its time back: %v, before %v", updated, first)
		}
		if updated.After(first) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d replacements the time is still %v", i+1, first)
		}
		time.Sleep(time.Millisecond)
	}
}

func testDelete(t *testing.T, o Opener) {
	s := open(t, o)
	c := ctx(t)
	if err := s.Delete(c, "alice"); err != nil {
		t.Fatalf("Delete of a backup never stored: %v", err)
	}
	put(t, s, "alice", []byte("alice's"))
	put(t, s, "bob", []byte("bob's"))
	if err := s.Delete(c, "alice"); err != nil {
		t.Fatal(err)
	}
	wantNotFound(t, s, "alice")
	want(t, s, "bob", []byte("bob's"))
	if err := s.Delete(c, "alice"); err != nil {
		t.Fatalf("Delete twice: %v", err)
	}
	put(t, s, "alice", []byte("again"))
	want(t, s, "alice", []byte("again"))
}

// The handles every implementation refuses: identity.ValidHandle's rules
// (3 to 32 of a-z, 0-9 and _), with no case folding and nothing that
// could name another file or row.
var invalidHandles = []string{
	"", "al", strings.Repeat("a", 33), "Alice", "ALICE", "../x", "..", "a/b", `a\b`, "alice.backup",
	".alice", "ali ce", "alice\x00", "alice\n", "-alice", "al-ice", "élan", "alice%", "alice*", "al'ice",
}

func testInvalidHandles(t *testing.T, o Opener) {
	s := open(t, o)
	c := ctx(t)
	put(t, s, "alice", []byte("alice's"))
	for _, h := range invalidHandles {
		if err := s.Put(c, h, []byte("x")); !errors.Is(err, backupstore.ErrHandle) {
			t.Errorf("Put %q: %v, want ErrHandle", h, err)
		}
		if _, _, err := s.Get(c, h); !errors.Is(err, backupstore.ErrHandle) {
			t.Errorf("Get %q: %v, want ErrHandle", h, err)
		}
		if err := s.Delete(c, h); !errors.Is(err, backupstore.ErrHandle) {
			t.Errorf("Delete %q: %v, want ErrHandle", h, err)
		}
	}
	want(t, s, "alice", []byte("alice's"))
}

func testValidHandles(t *testing.T, o Opener) {
	s := open(t, o)
	hs := []string{"abc", strings.Repeat("z", 32), "a_1", "___", "007", "alice_smith_2"}
	for _, h := range hs {
		put(t, s, h, []byte(h))
	}
	for _, h := range hs {
		want(t, s, h, []byte(h))
	}
}

// A blob as large as parleyd accepts (server.MaxBackupBytes).
func testLarge(t *testing.T, o Opener) {
	s := open(t, o)
	for _, n := range []int{64 << 10, 1 << 20} {
		blob := random(t, n)
		put(t, s, "alice", blob)
		want(t, s, "alice", blob)
	}
}

// Puts of different handles at once: each handle ends with its own last
// blob.
func testConcurrentHandles(t *testing.T, o Opener) {
	s := open(t, o)
	c := ctx(t)
	const writers, rounds = 12, 8
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			h := fmt.Sprintf("user_%02d", i)
			for r := range rounds {
				if err := s.Put(c, h, fmt.Appendf(nil, "%s round %d", h, r)); err != nil {
					t.Errorf("Put %s: %v", h, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for i := range writers {
		h := fmt.Sprintf("user_%02d", i)
		want(t, s, h, fmt.Appendf(nil, "%s round %d", h, rounds-1))
	}
}

// Writers and readers of one handle: every read sees one whole blob.
func testConcurrentOneHandle(t *testing.T, o Opener) {
	s := open(t, o)
	c := ctx(t)
	blobs := [][]byte{bytes.Repeat([]byte("a"), 1<<16), bytes.Repeat([]byte("b"), 1<<15)}
	put(t, s, "bob", blobs[0])
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for range 20 {
				if err := s.Put(c, "bob", blobs[i%2]); err != nil {
					t.Error(err)
					return
				}
			}
		})
		wg.Go(func() {
			for range 20 {
				b, _, err := s.Get(c, "bob")
				if err != nil || (!bytes.Equal(b, blobs[0]) && !bytes.Equal(b, blobs[1])) {
					t.Errorf("read a torn blob (%d bytes): %v", len(b), err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// What was put survives reopening, with its time; what was deleted stays
// deleted.
func testReopen(t *testing.T, o Opener) {
	s := open(t, o)
	alice, bob := random(t, 1000), random(t, 10)
	put(t, s, "alice", alice)
	put(t, s, "bob", bob)
	put(t, s, "carol", []byte("carol's"))
	if err := s.Delete(ctx(t), "carol"); err != nil {
		t.Fatal(err)
	}
	at := want(t, s, "alice", alice)

	s = open(t, o)
	if got := want(t, s, "alice", alice); !got.Equal(at) {
		t.Fatalf("after reopening, alice's time is %v, was %v", got, at)
	}
	want(t, s, "bob", bob)
	wantNotFound(t, s, "carol")
	put(t, s, "carol", []byte("new"))
	want(t, s, "carol", []byte("new"))
}

// Two stores open on one storage (two nodes of a cluster) see each
// other's writes at once.
func testTwoOpen(t *testing.T, o Opener) {
	a, b := open(t, o), open(t, o)
	put(t, a, "alice", []byte("through a"))
	want(t, b, "alice", []byte("through a"))
	put(t, b, "alice", []byte("through b"))
	want(t, a, "alice", []byte("through b"))
	if err := b.Delete(ctx(t), "alice"); err != nil {
		t.Fatal(err)
	}
	wantNotFound(t, a, "alice")
}

// A cancelled context stores nothing.
func testCancelled(t *testing.T, o Opener) {
	s := open(t, o)
	c, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Put(c, "alice", []byte("x")); err == nil {
		t.Fatal("Put with a cancelled context: no error")
	}
	wantNotFound(t, s, "alice")
	if _, _, err := s.Get(c, "alice"); err == nil || errors.Is(err, backupstore.ErrNotFound) {
		t.Fatalf("Get with a cancelled context: %v, want the context's error", err)
	}
}
