package pgbackups_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/backupstore"
	"github.com/parleychat/parley/internal/backupstore/backuptest"
	"github.com/parleychat/parley/internal/backupstore/pgbackups"
	"github.com/parleychat/parley/internal/pgtest"
	"github.com/parleychat/parley/internal/store/pgstore/pgstoretest"
)

func testCtx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// Each test of the suite gets its own schema; each open is a new pgstore
// (a new pool) on it, as a restarted or second node would be.
func TestConformance(t *testing.T) {
	dsn := pgtest.Database(t)
	backuptest.Run(t, func(t *testing.T) backuptest.Opener {
		schema := pgtest.Schema(t, dsn)
		return func() (backupstore.Backups, error) { return pgbackups.New(pgstoretest.Pool(t, schema)), nil }
	})
}

// The time of a backup is the database's clock at the write, and a
// replacement never moves it back.
func TestUpdatedIsTheDatabaseClock(t *testing.T) {
	ctx := testCtx(t)
	pool := pgstoretest.Pool(t, pgtest.Schema(t, pgtest.Database(t)))
	s := pgbackups.New(pool)
	dbNow := func() time.Time {
		var now time.Time
		if err := pool.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
			t.Fatal(err)
		}
		return now
	}
	before := dbNow()
	if err := s.Put(ctx, "alice", []byte("x")); err != nil {
		t.Fatal(err)
	}
	after := dbNow()
	_, updated, err := s.Get(ctx, "alice")
	if err != nil || updated.Before(before) || updated.After(after) {
		t.Fatalf("updated %v (%v), want within the database's %v .. %v", updated, err, before, after)
	}

	// A clock stepped back (a failover to a standby whose clock lags):
	// here the stored time is moved into the future instead.
	future := time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := pool.Exec(ctx, `UPDATE pin_backups SET updated = $1 WHERE handle = 'alice'`, future); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "alice", []byte("y")); err != nil {
		t.Fatal(err)
	}
	b, updated, err := s.Get(ctx, "alice")
	if err != nil || string(b) != "y" || !updated.Equal(future) {
		t.Fatalf("after a replacement: %q, %v, %v; want \"y\" at %v", b, updated, err, future)
	}
}

// Import copies a folder's backups with their files' times, keeps what
// the table already has, and changes no file.
func TestImport(t *testing.T) {
	ctx := testCtx(t)
	s := pgbackups.New(pgstoretest.Pool(t, pgtest.Schema(t, pgtest.Database(t))))
	files, err := backupstore.Open(filepath.Join(t.TempDir(), "backups"))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"alice", "bob", "carol"} {
		if err := files.Put(ctx, h, []byte(h+"'s file")); err != nil {
			t.Fatal(err)
		}
	}
	if err := files.Put(ctx, "empty", nil); err != nil {
		t.Fatal(err)
	}
	// bob stored a newer backup through a node already on PostgreSQL.
	if err := s.Put(ctx, "bob", []byte("bob's newer")); err != nil {
		t.Fatal(err)
	}
	imported, skipped, err := s.Import(ctx, files)
	if err != nil || imported != 3 || skipped != 1 {
		t.Fatalf("Import: %d imported, %d skipped, %v; want 3, 1", imported, skipped, err)
	}
	for h, want := range map[string]string{"alice": "alice's file", "bob": "bob's newer", "carol": "carol's file", "empty": ""} {
		b, updated, err := s.Get(ctx, h)
		if err != nil || string(b) != want {
			t.Fatalf("%s after Import: %q, %v; want %q", h, b, err, want)
		}
		if h == "bob" {
			continue
		}
		fb, ftime, err := files.Get(ctx, h)
		if err != nil || !bytes.Equal(fb, b) {
			t.Fatalf("%s's file after Import: %q, %v", h, fb, err)
		}
		if !updated.Equal(ftime.Truncate(time.Microsecond)) {
			t.Fatalf("%s imported with time %v, the file's is %v", h, updated, ftime)
		}
	}
	imported, skipped, err = s.Import(ctx, files)
	if err != nil || imported != 0 || skipped != 4 {
		t.Fatalf("second Import: %d imported, %d skipped, %v; want 0, 4", imported, skipped, err)
	}
}
