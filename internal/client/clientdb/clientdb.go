// Package clientdb is one device's local state: its keys, sessions, the
// peers it has seen, contacts, message history, the outbox and the ids it
// has already received. It is one SQLite file (modernc.org/sqlite, no cgo),
// mode 0600, in WAL mode with synchronous=FULL, changed only through
// versioned migrations.
//
// Every write happens inside Update, a transaction that takes SQLite's
// write lock when it begins, so a read-modify-write of a session is atomic
// even against a second process using the same file.
package clientdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Errors.
var (
	ErrNotFound = errors.New("clientdb: not found")
	ErrNewer    = errors.New("clientdb: database was written by a newer version of parley")
)

// DB is an open client database.
type DB struct {
	sql  *sql.DB
	path string
}

// Open opens (creating if needed, mode 0600) the database at path and
// brings its schema up to date.
func Open(ctx context.Context, path string) (*DB, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("clientdb: %w", err)
	}
	f.Close()
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, fmt.Errorf("clientdb: %w", err)
	}
	q := url.Values{}
	q.Set("_busy_timeout", "10000")
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "FULL")
	q.Set("_foreign_keys", "1")
	q.Set("_txlock", "immediate")
	// Deleted rows (vanished messages) are overwritten with zeros, not
	// left in free pages.
	q.Add("_pragma", "secure_delete(1)")
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
	s, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("clientdb: %w", err)
	}
	db := &DB{sql: s, path: path}
	if err := db.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return db, nil
}

// Close closes the database.
func (db *DB) Close() error { return db.sql.Close() }

// Path returns the file the database lives in.
func (db *DB) Path() string { return db.path }

// migrations are applied in order; user_version records how many ran.
// Never edit one that has shipped: append a new one.
var migrations = []string{
	// 1: the first schema.
	`
CREATE TABLE account (
	id              INTEGER PRIMARY KEY CHECK (id = 1),
	handle          TEXT NOT NULL,
	account_seed    BLOB NOT NULL,
	device_id       INTEGER NOT NULL,
	device_key      BLOB NOT NULL,
	server          TEXT NOT NULL,
	next_prekey_id  INTEGER NOT NULL,
	created         INTEGER NOT NULL
);
CREATE TABLE settings (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
CREATE TABLE auth_token (
	id      INTEGER PRIMARY KEY CHECK (id = 1),
	token   TEXT NOT NULL,
	expires INTEGER NOT NULL
);
CREATE TABLE prekeys (
	id        INTEGER PRIMARY KEY,
	kind      INTEGER NOT NULL,
	private   BLOB NOT NULL,
	public    BLOB NOT NULL,
	signature BLOB,
	created   INTEGER NOT NULL
);
CREATE TABLE sessions (
	handle   TEXT NOT NULL,
	device   INTEGER NOT NULL,
	base_key BLOB NOT NULL,
	state    BLOB NOT NULL,
	used     INTEGER NOT NULL,
	PRIMARY KEY (handle, device, base_key)
);
CREATE TABLE peers (
	handle       TEXT PRIMARY KEY,
	pinned_key   BLOB NOT NULL,
	current_key  BLOB NOT NULL,
	device_list  BLOB,
	list_version INTEGER NOT NULL DEFAULT 0,
	verified     INTEGER NOT NULL DEFAULT 0,
	key_changed  INTEGER NOT NULL DEFAULT 0,
	updated      INTEGER NOT NULL
);
CREATE TABLE contacts (
	handle  TEXT PRIMARY KEY,
	state   TEXT NOT NULL CHECK (state IN ('contact', 'blocked', 'rejected')),
	updated INTEGER NOT NULL
);
CREATE TABLE messages (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT,
	id          TEXT NOT NULL,
	peer        TEXT NOT NULL,
	sender      TEXT NOT NULL,
	device      INTEGER NOT NULL,
	sent_at     INTEGER NOT NULL,
	received_at INTEGER NOT NULL,
	body        TEXT NOT NULL,
	outgoing    INTEGER NOT NULL,
	status      INTEGER NOT NULL,
	request     INTEGER NOT NULL DEFAULT 0,
	UNIQUE (peer, sender, id)
);
CREATE INDEX messages_peer ON messages (peer, seq);
CREATE TABLE seen (
	sender TEXT NOT NULL,
	id     TEXT NOT NULL,
	at     INTEGER NOT NULL,
	PRIMARY KEY (sender, id)
);
CREATE INDEX seen_at ON seen (at);
CREATE TABLE outbox (
	id       TEXT PRIMARY KEY,
	to_handle TEXT NOT NULL,
	kind     INTEGER NOT NULL,
	content  BLOB NOT NULL,
	refs     INTEGER NOT NULL DEFAULT 0,
	attempts INTEGER NOT NULL DEFAULT 0,
	created  INTEGER NOT NULL
);
`,
	// 2: files and vanishing messages (files.go).
	migrationFiles,
	// 3: edited messages: when the text was last replaced (0: never).
	`ALTER TABLE messages ADD COLUMN edited_at INTEGER NOT NULL DEFAULT 0;`,
	// 4: replies: the id of the message a message answers ('' for none).
	`ALTER TABLE messages ADD COLUMN reply_to TEXT NOT NULL DEFAULT '';`,
	// 5: reactions: one per reacting account and message (reactions.go).
	migrationReactions,
}

// SchemaVersion is the number of migrations this build knows.
func SchemaVersion() int { return len(migrations) }

func (db *DB) migrate(ctx context.Context) error {
	for {
		done, err := db.migrateOne(ctx)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

// migrateOne applies the next migration, if any, in its own transaction.
func (db *DB) migrateOne(ctx context.Context) (done bool, err error) {
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("clientdb: migrate: %w", err)
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return false, fmt.Errorf("clientdb: migrate: %w", err)
	}
	if v > len(migrations) {
		return false, fmt.Errorf("%w (schema %d, this build knows %d)", ErrNewer, v, len(migrations))
	}
	if v == len(migrations) {
		return true, nil
	}
	if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
		return false, fmt.Errorf("clientdb: migration %d: %w", v+1, err)
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
		return false, fmt.Errorf("clientdb: migration %d: %w", v+1, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("clientdb: migration %d: %w", v+1, err)
	}
	return false, nil
}

// querier is what Tx needs from *sql.DB or *sql.Tx.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Tx runs statements: inside a transaction when it comes from Update,
// one by one when it comes from View.
type Tx struct {
	ctx context.Context
	q   querier
}

// Update runs fn in one write transaction and commits it if fn returns nil.
// The transaction takes the write lock at its start (BEGIN IMMEDIATE).
func (db *DB) Update(ctx context.Context, fn func(tx *Tx) error) error {
	stx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("clientdb: begin: %w", err)
	}
	defer stx.Rollback()
	if err := fn(&Tx{ctx: ctx, q: stx}); err != nil {
		return err
	}
	if err := stx.Commit(); err != nil {
		return fmt.Errorf("clientdb: commit: %w", err)
	}
	return nil
}

// View runs fn with statements that each see the latest committed state.
// fn must not write.
func (db *DB) View(ctx context.Context, fn func(tx *Tx) error) error {
	return fn(&Tx{ctx: ctx, q: db.sql})
}

// UnixMS is t as the database stores times: Unix milliseconds, 0 for the
// zero time.
func UnixMS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// FromUnixMS is UnixMS read back.
func FromUnixMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}

func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %s", ErrNotFound, what)
	}
	return fmt.Errorf("clientdb: %s: %w", what, err)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
