// Package sqlitestore is the embedded SQLite backend of store.Store, on the
// pure-Go driver modernc.org/sqlite.
//
// The database runs in WAL mode with synchronous=FULL, so a method that
// returns has its change on disk. SQLite has one writer at a time: every
// change goes through one write connection (transactions begin IMMEDIATE),
// and reads use a separate pool of read-only connections that WAL lets run
// beside the writer. Concurrent writes share one transaction and one
// commit, each under a savepoint unless it cannot fail after a change
// (group commit, batch.go). The database file belongs to one parleyd,
// which lets the store keep in memory what only its own writes change:
// the token and device-list reads every request makes (cache.go), the
// recent end of each connected device's queue, which Pending answers from
// (tail.go), and every device's queue count, which Enqueue checks
// (counts.go); each is updated by the writes of this process, the first
// two once committed. The schema is versioned: Open applies the embedded
// migrations the database has not seen yet.
package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/parleychat/parley/internal/store"
)

var _ store.Store = (*DB)(nil)

// Options tune a DB. The zero value is the production default.
type Options struct {
	// MaxQueue is the per-device queue limit; zero means store.MaxQueue.
	// Tests lower it to reach the limit quickly.
	MaxQueue int
	// Readers is the size of the read pool; zero means a default from
	// GOMAXPROCS.
	Readers int
	// SerialWrites gives every write its own transaction and commit (one
	// fsync each), as before group commit (batch.go): for comparisons.
	SerialWrites bool
}

// DB is a store.Store on one SQLite database file.
type DB struct {
	path     string
	log      *slog.Logger
	w        *pool // exactly one connection: the only writer
	r        *pool // read-only connections
	maxQueue int
	commits  *committer   // group commit of writes (batch.go); nil with Options.SerialWrites
	cache    *readCache   // recent device lists and tokens (cache.go)
	tails    *tailCache   // the ends of device queues (tail.go)
	counts   *queueCounts // envelopes queued per current device (counts.go)
	serial   sync.Mutex   // held by a write with Options.SerialWrites
}

// The WAL's size. Every commit appends a 4 KiB frame for each page it
// changed, and a checkpoint copies each page that has a frame into the
// database file once, however many frames it has: the pages every commit
// changes (the ends of the envelopes table and of its indexes, the
// dedup's time index, SQLite's header and sequence pages) are copied once
// per checkpoint. 4000 pages (16 MiB) instead of SQLite's 1000 cut the
// bytes written per message by a sixth (BenchmarkWriterBatch), and the
// writer's CPU time by a few percent at most: the dedup rows land on
// random pages, which a checkpoint copies once each whatever its
// interval. The checkpoint still runs in the commit that crosses the mark.
// journal_size_limit truncates a WAL that grew past 64 MiB (while readers
// kept a checkpoint from restarting it) back to that size once it
// restarts.
const (
	walCheckpointPages = 4000
	walSizeLimit       = 64 << 20
)

// busyTimeout bounds how long a connection waits for a lock held by
// another process (or by a checkpoint) before SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// Open opens (creating if needed) the database file at path, with the
// default Options, and brings its schema up to date. A new file is created
// with mode 0600 and a new parent folder with mode 0700. logger may be nil.
func Open(ctx context.Context, path string, logger *slog.Logger) (*DB, error) {
	return OpenOptions(ctx, path, logger, Options{})
}

// OpenOptions is Open with Options.
func OpenOptions(ctx context.Context, path string, logger *slog.Logger, o Options) (*DB, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxQueue < 0 || o.Readers < 0 {
		return nil, errors.New("sqlitestore: negative option")
	}
	if o.MaxQueue == 0 {
		o.MaxQueue = store.MaxQueue
	}
	if o.Readers == 0 {
		o.Readers = max(4, 2*runtime.GOMAXPROCS(0))
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: %w", err)
	}
	if strings.ContainsAny(abs, "?#") {
		return nil, fmt.Errorf("sqlitestore: database path %q contains '?' or '#'", abs)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("sqlitestore: %w", err)
	}
	// Create the file ourselves so that it gets mode 0600 whatever the
	// umask; SQLite gives the -wal and -shm files the database's mode.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("sqlitestore: %w", err)
	}

	// Every connection: wait for locks rather than fail at once, enforce
	// foreign keys, fsync the WAL at every commit.
	pragmas := []string{
		fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()),
		"foreign_keys(1)",
		"synchronous(FULL)",
	}
	// The writer keeps its sub-journal (the undo log of the savepoints of a
	// group commit, batch.go) in memory instead of a temporary file, and
	// checkpoints the WAL into the database every walCheckpointPages.
	w, err := sql.Open("sqlite", dsn(abs, slices.Concat(pragmas, []string{"journal_mode(WAL)", "temp_store(MEMORY)",
		fmt.Sprintf("wal_autocheckpoint(%d)", walCheckpointPages), fmt.Sprintf("journal_size_limit(%d)", walSizeLimit)}))+
		"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	db := &DB{path: abs, log: logger, w: &pool{DB: w}, maxQueue: o.MaxQueue, cache: newReadCache(), tails: newTailCache(),
		counts: &queueCounts{}}
	if !o.SerialWrites {
		db.commits = newCommitter()
	}
	// The writer switches the file to WAL before any reader opens it; then
	// the migrations run, then the statements are prepared.
	err = db.checkWriter(ctx)
	if err == nil {
		err = db.migrate(ctx)
	}
	if err == nil {
		err = db.counts.load(ctx, db.w)
	}
	if err == nil {
		err = db.w.prepare(ctx, writeQueries)
	}
	if err != nil {
		db.w.Close()
		return nil, err
	}

	r, err := sql.Open("sqlite", dsn(abs, slices.Concat(pragmas, []string{"query_only(1)"})))
	if err != nil {
		db.w.Close()
		return nil, fmt.Errorf("sqlitestore: %w", err)
	}
	r.SetMaxOpenConns(o.Readers)
	r.SetMaxIdleConns(o.Readers)
	db.r = &pool{DB: r}
	if err := db.r.prepare(ctx, readQueries); err != nil {
		db.r.Close()
		db.w.Close()
		return nil, err
	}
	logger.Debug("sqlitestore: opened", "path", abs, "readers", o.Readers, "max_queue", o.MaxQueue)
	return db, nil
}

// The statements prepared on each pool: the hot paths (Enqueue, Ack,
// TakeBundle on the writer; TokenDevice, Pending on the readers).
var (
	writeQueries = slices.Concat([]string{qDedupInsert, qAckOne, qAckMany,
		qDeviceExists, qPrekeyFirst, qPrekeyDelete, qSavepoint, qRelease, qRollbackTo, qDeviceList},
		qEnvelopeInserts[1:])
	readQueries = []string{qTokenDevice, qPending, qDeviceExists, qDeviceList}
)

// dsn is the driver's data source name for the file at path, running
// pragmas on every new connection.
func dsn(path string, pragmas []string) string {
	q := url.Values{}
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	return path + "?" + q.Encode()
}

// checkWriter opens the write connection and checks that the settings
// durability depends on took effect.
func (db *DB) checkWriter(ctx context.Context) error {
	var mode string
	if err := db.w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("sqlitestore: open %s: %w", db.path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("sqlitestore: open %s: journal_mode is %q, not wal", db.path, mode)
	}
	var syncMode, fk int
	if err := db.w.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&syncMode); err != nil {
		return fmt.Errorf("sqlitestore: open %s: %w", db.path, err)
	}
	if err := db.w.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
		return fmt.Errorf("sqlitestore: open %s: %w", db.path, err)
	}
	if syncMode != 2 || fk != 1 {
		return fmt.Errorf("sqlitestore: open %s: synchronous=%d foreign_keys=%d, want 2 and 1", db.path, syncMode, fk)
	}
	return nil
}

// Close closes the database. Methods called after Close fail.
func (db *DB) Close() error {
	var errs []error
	if db.r != nil {
		errs = append(errs, db.r.Close())
	}
	errs = append(errs, db.w.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlitestore: close: %w", err)
	}
	return nil
}

// Path returns the absolute path of the database file.
func (db *DB) Path() string { return db.path }

// write runs fn in a write transaction and returns once it committed.
// Every change goes through here, on the single write connection: callers
// queue for it instead of failing with SQLITE_BUSY. fn's error rolls back
// fn's changes (only them) and is returned as is.
//
// Concurrent writes share one transaction and one commit (group commit,
// batch.go), each under a SAVEPOINT. What fn records outside the
// transaction (a duplicate flag, removed ids) is only good when write
// returns nil: the shared commit may still fail after fn succeeded; fn may
// also run twice (writePlain).
func (db *DB) write(ctx context.Context, fn func(tx *txn) error) error {
	return db.writeOp(ctx, fn, false)
}

// writePlain is write for a function that needs no savepoint in a group
// commit (each costs two statements per write): one that uses tx only
// through tx.ExecContext, and fails only before its first statement,
// returning errNeedSavepoint if it might fail after one; it then runs
// again under a savepoint, with tx.undoable set. A plain write that fails
// after a statement (a disk error) fails its whole batch.
func (db *DB) writePlain(ctx context.Context, fn func(tx *txn) error) error {
	return db.writeOp(ctx, fn, true)
}

// errNeedSavepoint is what a plain write returns, before any statement,
// to run again under a savepoint.
var errNeedSavepoint = errors.New("sqlitestore: run the write under a savepoint")

func (db *DB) writeOp(ctx context.Context, fn func(tx *txn) error, plain bool) error {
	if db.commits != nil {
		return db.groupWrite(ctx, fn, plain)
	}
	// One write at a time from begin to the caches' update, so that they
	// see the changes in commit order (the one connection would serialise
	// the transactions, but not what follows their commit).
	db.serial.Lock()
	defer db.serial.Unlock()
	tx, err := db.w.begin(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlitestore: begin: %w", err)
	}
	tx.q, tx.counts, tx.undoable = new(queueChanges), db.counts, true
	done := false
	defer func() {
		if !done { // fn failed or panicked
			tx.Rollback()
			db.counts.rollback(0)
		}
	}()
	if err := db.counts.begin(ctx, tx); err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return err
	}
	done = true
	if err := tx.Commit(); err != nil {
		// What the disk holds now is not known.
		db.counts.committed(false)
		db.tails.clear()
		return fmt.Errorf("sqlitestore: commit: %w", err)
	}
	db.counts.committed(true)
	db.tails.apply(tx.q)
	return nil
}

// norm returns the stored form of a handle given to a lookup. An invalid
// handle is returned unchanged: it matches nothing.
func norm(h string) string {
	if n, err := store.NormaliseHandle(h); err == nil {
		return n
	}
	return h
}

// micros converts a time to its stored form.
func micros(t time.Time) int64 { return t.UnixMicro() }

// fromMicros converts a stored time back.
func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// orNow returns t, or the current time if t is zero.
func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}

// nonNil returns b, or an empty slice for nil: the driver stores a nil
// slice as NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// wrap prefixes an unexpected database error with the package name and
// the operation.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return err
		}
	}
	return fmt.Errorf("sqlitestore: %s: %w", op, err)
}

var sentinels = []error{
	store.ErrNotFound, store.ErrHandleTaken, store.ErrStaleVersion,
	store.ErrDeviceExists, store.ErrLinkUsed, store.ErrQueueFull,
	store.ErrNoPrekeys, store.ErrInvalidHandle,
}
