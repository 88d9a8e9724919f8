package backupstore

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestPutGetDelete(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "backups")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("folder: %v %v", fi.Mode(), err)
	}
	if _, _, err := s.Get("alice"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get before put: %v", err)
	}
	if err := s.Put("alice", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put("alice", []byte("two, longer")); err != nil {
		t.Fatal(err)
	}
	b, updated, err := s.Get("alice")
	if err != nil || string(b) != "two, longer" || updated.IsZero() {
		t.Fatalf("get: %q %v %v", b, updated, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "alice.backup")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode: %v %v", fi.Mode(), err)
	}
	// Nothing else is left in the folder (no temporary files).
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("folder holds %d entries", len(ents))
	}
	if err := s.Delete("alice"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("alice"); err != nil {
		t.Fatalf("deleting twice: %v", err)
	}
	if _, _, err := s.Get("alice"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	for _, h := range []string{"", "../x", "Alice", "a/b", "..", "al"} {
		if err := s.Put(h, []byte("x")); !errors.Is(err, ErrHandle) {
			t.Errorf("put %q: %v", h, err)
		}
	}
}

// Concurrent writers and readers: every read sees one whole blob.
func TestConcurrent(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	blobs := [][]byte{bytes.Repeat([]byte("a"), 1<<16), bytes.Repeat([]byte("b"), 1<<15)}
	if err := s.Put("bob", blobs[0]); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for range 20 {
				if err := s.Put("bob", blobs[i%2]); err != nil {
					t.Error(err)
					return
				}
			}
		})
		wg.Go(func() {
			for range 20 {
				b, _, err := s.Get("bob")
				if err != nil || (!bytes.Equal(b, blobs[0]) && !bytes.Equal(b, blobs[1])) {
					t.Errorf("read a torn blob (%d bytes): %v", len(b), err)
					return
				}
			}
		})
	}
	wg.Wait()
}
