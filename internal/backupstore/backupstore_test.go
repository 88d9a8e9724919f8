package backupstore_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/backupstore"
	"github.com/parleychat/parley/internal/backupstore/backuptest"
)

func TestConformance(t *testing.T) {
	backuptest.Run(t, func(t *testing.T) backuptest.Opener {
		dir := filepath.Join(t.TempDir(), "backups")
		return func() (backupstore.Backups, error) { return backupstore.Open(dir) }
	})
}

func testCtx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// The folder's layout: mode 0700, one file <handle>.backup of mode 0600 per
// account, no temporary files left behind.
func TestFiles(t *testing.T) {
	ctx := testCtx(t)
	dir := filepath.Join(t.TempDir(), "backups")
	s, err := backupstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("folder: %v %v", fi.Mode(), err)
	}
	if err := s.Put(ctx, "alice", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "alice", []byte("two, longer")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "alice.backup")); err != nil || string(b) != "two, longer" {
		t.Fatalf("alice.backup holds %q: %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "alice.backup")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode: %v %v", fi.Mode(), err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("folder holds %d entries", len(ents))
	}
	// A refused handle creates nothing.
	for _, h := range []string{"../x", "a/b", ".."} {
		if err := s.Put(ctx, h, []byte("x")); err == nil {
			t.Fatalf("Put %q: no error", h)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("folder holds %d entries after refused puts", len(ents))
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "x.backup")); err == nil {
		t.Fatal("a handle escaped the folder")
	}
}

// Handles lists the accounts with a backup and nothing else.
func TestHandles(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	s, err := backupstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"carol", "alice", "bob"} {
		if err := s.Put(ctx, h, []byte(h)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Upper.backup", ".alice-1.tmp", "notes.txt", "x.backup"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "dave.backup"), 0o700); err != nil {
		t.Fatal(err)
	}
	hs, err := s.Handles()
	if err != nil || !slices.Equal(hs, []string{"alice", "carol"}) {
		t.Fatalf("Handles = %q, %v", hs, err)
	}
}
