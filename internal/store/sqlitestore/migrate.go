package sqlitestore

import (
	"context"
	"embed"
	"fmt"
	"time"

	"github.com/parleychat/parley/internal/store/migration"
)

// migrationFiles holds the schema changes, one file per version (see
// internal/store/migration).
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrations returns the embedded migrations in version order.
func migrations() ([]migration.Migration, error) {
	ms, err := migration.Load(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: %w", err)
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
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, m.Version).Scan(&done); err != nil {
				return err
			}
			if done > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied) VALUES (?, ?, ?)`,
				m.Version, m.Name, micros(time.Now()))
			return err
		})
		if err != nil {
			return fmt.Errorf("sqlitestore: migration %s: %w", m.Name, err)
		}
		db.log.Info("sqlitestore: applied migration", "version", m.Version, "name", m.Name, "path", db.path)
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
