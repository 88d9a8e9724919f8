package sqlitestore

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// migrationFiles holds the schema changes, one file per version, named
// NNNN_what.sql. A migration, once released, is never edited: a change
// is a new file with the next number.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one numbered schema change.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in version order. The
// numbers must run 1, 2, 3, ... without gaps.
func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, n := range names {
		base := path.Base(n)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("sqlitestore: migration file %q is not named NNNN_name.sql", base)
		}
		b, err := migrationFiles.ReadFile(n)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: base, sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("sqlitestore: migration %q out of sequence, want version %d", m.name, i+1)
		}
	}
	return ms, nil
}

// migrate applies the migrations the database has not seen, each in its
// own transaction together with its row in schema_migrations. A database
// with a version newer than this binary knows is refused.
func (db *DB) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	err = db.write(ctx, func(tx *txn) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version INTEGER NOT NULL PRIMARY KEY,
			name    TEXT    NOT NULL,
			applied INTEGER NOT NULL
		)`)
		return err
	})
	if err != nil {
		return wrap("migrate", err)
	}
	var current int
	if err := db.w.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return wrap("migrate", err)
	}
	if current > len(ms) {
		return fmt.Errorf("sqlitestore: %s has schema version %d, newer than this program's %d", db.path, current, len(ms))
	}
	for _, m := range ms[current:] {
		err := db.write(ctx, func(tx *txn) error {
			// Re-check inside the transaction: another process may have
			// migrated since.
			var done int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, m.version).Scan(&done); err != nil {
				return err
			}
			if done > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied) VALUES (?, ?, ?)`,
				m.version, m.name, micros(time.Now()))
			return err
		})
		if err != nil {
			return fmt.Errorf("sqlitestore: migration %s: %w", m.name, err)
		}
		db.log.Info("sqlitestore: applied migration", "version", m.version, "name", m.name, "path", db.path)
	}
	return nil
}

// SchemaVersion returns the newest migration applied to the database.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := db.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, wrap("schema version", err)
	}
	return v, nil
}
