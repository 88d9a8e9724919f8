// Package pgstore is the PostgreSQL backend of store.Store, on
// github.com/jackc/pgx/v5 (pgxpool). Many parleyd nodes share one
// database through it; it behaves exactly as sqlitestore does, and passes
// the same conformance suite (storetest).
//
// Durability is PostgreSQL's: a method that changes state returns after
// its transaction committed, and with synchronous_commit on (Open sets it
// for its sessions unless the DSN names another value) a commit returns
// only after its WAL record is flushed to disk.
//
// Transactions run at READ COMMITTED. Concurrent writers are ordered by
// row locks taken in a fixed order (a device's row before its envelopes,
// devices sorted by handle then id), and the few failures PostgreSQL may
// still report under contention (serialization failure, deadlock) are
// retried. The schema is versioned: Open applies the embedded migrations
// the database has not seen yet, under an advisory lock, so several nodes
// may start at once.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/internal/store"
)

var _ store.Store = (*DB)(nil)

// Options tune a DB. The zero value is the production default.
type Options struct {
	// MaxQueue is the per-device queue limit; zero means store.MaxQueue.
	// Tests lower it to reach the limit quickly.
	MaxQueue int
}

// The default pool size bounds (see OpenOptions).
const (
	defaultMinConns = 16
	defaultMaxConns = 32
)

// DB is a store.Store on a PostgreSQL database.
type DB struct {
	pool     *pgxpool.Pool
	log      *slog.Logger
	maxQueue int
	where    string // host:port/database, for messages (no password)
}

// Open connects to the PostgreSQL database named by dsn (a URL such as
// postgres://user@host:5432/parley?sslmode=verify-full, or key=value
// pairs; pgxpool's pool_* settings are accepted, and pool_max_conns
// defaults to 4 per core, 16 to 32), with the default Options, and brings
// its schema up to date. The tables live in the first schema of the
// session's search_path (public by default; add search_path=name to the
// DSN for another). logger may be nil.
func Open(ctx context.Context, dsn string, logger *slog.Logger) (*DB, error) {
	return OpenOptions(ctx, dsn, logger, Options{})
}

// OpenOptions is Open with Options.
func OpenOptions(ctx context.Context, dsn string, logger *slog.Logger, o Options) (*DB, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxQueue < 0 {
		return nil, errors.New("pgstore: negative option")
	}
	if o.MaxQueue == 0 {
		o.MaxQueue = store.MaxQueue
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The parse error may quote the DSN, password included.
		return nil, errors.New("pgstore: the database DSN does not parse")
	}
	// Unless the DSN sets pool_max_conns: senders wait on commits (WAL
	// flushes), so more connections than cores let PostgreSQL flush many
	// commits at once; the cap keeps a few nodes within PostgreSQL's
	// default max_connections (100).
	if !hasParam(dsn, "pool_max_conns") {
		cfg.MaxConns = int32(min(max(defaultMinConns, 4*runtime.GOMAXPROCS(0)), defaultMaxConns))
	}
	rp := cfg.ConnConfig.RuntimeParams
	if _, ok := rp["synchronous_commit"]; !ok {
		rp["synchronous_commit"] = "on"
	}
	if _, ok := rp["application_name"]; !ok {
		rp["application_name"] = "parleyd"
	}
	where := fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: connecting to %s: %w", where, err)
	}
	db := &DB{pool: pool, log: logger, maxQueue: o.MaxQueue, where: where}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("pgstore: connecting to %s: %w", where, err)
	}
	if err := db.checkDurability(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if err := db.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	logger.Debug("pgstore: opened", "database", where, "max_conns", cfg.MaxConns, "max_queue", o.MaxQueue)
	return db, nil
}

// hasParam reports whether a DSN (URL or key=value form) sets key.
func hasParam(dsn, key string) bool {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return false
	}
	_, ok := cfg.RuntimeParams[key]
	return ok
}

// checkDurability warns when the server is set up to lose commits: fsync
// off loses them on a crash of the machine, synchronous_commit off on a
// crash of PostgreSQL.
func (db *DB) checkDurability(ctx context.Context) error {
	var fsync, syncCommit string
	if err := db.pool.QueryRow(ctx, `SELECT current_setting('fsync'), current_setting('synchronous_commit')`).
		Scan(&fsync, &syncCommit); err != nil {
		return fmt.Errorf("pgstore: reading settings of %s: %w", db.where, err)
	}
	if fsync != "on" || syncCommit == "off" {
		db.log.Warn("pgstore: PostgreSQL may lose acknowledged messages on a crash",
			"fsync", fsync, "synchronous_commit", syncCommit, "database", db.where)
	}
	return nil
}

// Close closes the pool, waiting for connections in use to be returned.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// Pool returns the connection pool, for metrics (Pool().Stat()) and tests.
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// maxAttempts bounds how often a transaction is tried when PostgreSQL
// reports a serialization failure or a deadlock.
const maxAttempts = 5

// tx runs fn in a READ COMMITTED transaction and commits it. fn's error
// rolls back and is returned as is; a serialization failure or deadlock
// runs fn again in a new transaction, so fn must reset whatever it
// records outside the transaction.
func (db *DB) tx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return db.retry(ctx, func() error { return pgx.BeginFunc(ctx, db.pool, fn) })
}

// retry runs fn, a whole transaction, again while it fails with a
// serialization failure or a deadlock, up to maxAttempts times.
func (db *DB) retry(ctx context.Context, fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || attempt == maxAttempts || !retryable(err) {
			return err
		}
		db.log.Debug("pgstore: retrying transaction", "attempt", attempt, "err", err)
		// A short pause that grows, so the other party finishes first.
		t := time.NewTimer(time.Duration(attempt*attempt) * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// SQLSTATE codes the store reacts to.
const (
	codeSerialization = "40001"
	codeDeadlock      = "40P01"
	codeForeignKey    = "23503"
	// Raised by parley_enqueue (migrations/0002_enqueue.sql).
	codeNoDevice  = "PY404"
	codeQueueFull = "PY507"
)

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func retryable(err error) bool {
	c := pgCode(err)
	return c == codeSerialization || c == codeDeadlock
}

// norm returns the stored form of a handle given to a lookup. An invalid
// handle matches nothing: it is returned as text PostgreSQL accepts
// (see text), never equal to a stored handle.
func norm(h string) string {
	if n, err := store.NormaliseHandle(h); err == nil {
		return n
	}
	return text(h)
}

// validText reports whether PostgreSQL can store s in a text column: valid
// UTF-8 without NUL.
func validText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// text returns s if it is valid text, else s with its invalid bytes and
// NULs replaced by U+FFFD. Stored keys (handles, link ids) are valid
// text, and link ids and message ids with U+FFFD are refused, so a
// replaced key matches nothing.
func text(s string) string {
	if validText(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// orNow returns t, or the current time if t is zero.
func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}

// utc returns a time read from the database in UTC, to the microsecond.
func utc(t time.Time) time.Time { return t.UTC() }

// nonNil returns b, or an empty slice for nil: pgx sends a nil slice as
// NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// wrap prefixes an unexpected database error with the package name and
// the operation; the store's sentinel errors pass unchanged.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return err
		}
	}
	return fmt.Errorf("pgstore: %s: %w", op, err)
}

var sentinels = []error{
	store.ErrNotFound, store.ErrHandleTaken, store.ErrStaleVersion,
	store.ErrDeviceExists, store.ErrLinkUsed, store.ErrQueueFull,
	store.ErrNoPrekeys, store.ErrInvalidHandle,
}
