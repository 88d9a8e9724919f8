// Package pgstoretest opens pgstore for the tests of packages whose
// tables live beside its schema (PIN backups, blob metadata): they need
// its migrations applied and its pool.
package pgstoretest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/internal/store/pgstore"
)

// Pool opens pgstore on the database or schema at dsn (running its
// migrations) and returns its pool, closed when the test ends.
func Pool(t testing.TB, dsn string) *pgxpool.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db, err := pgstore.Open(ctx, dsn, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db.Pool()
}
