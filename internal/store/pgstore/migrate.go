package pgstore

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5"

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
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	return ms, nil
}

// migrateLockClass is the first key of the advisory lock that serialises
// migrations; the second is a hash of the schema the tables live in, so
// nodes migrating one schema wait for each other and other schemas in the
// same database do not.
const migrateLockClass = 0x70617279 // "pary"

// migrate applies the migrations the database has not seen, each in its
// own transaction together with its row in schema_migrations, while
// holding a session advisory lock: of several nodes starting at once, one
// migrates and the others then find nothing to do. (If the process dies,
// its session ends and PostgreSQL releases the lock.) A database with a
// version newer than this binary knows is refused.
func (db *DB) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("pgstore: migrate: %w", err)
	}
	defer conn.Release()

	var schema *string
	if err := conn.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return fmt.Errorf("pgstore: migrate: %w", err)
	}
	if schema == nil {
		return fmt.Errorf("pgstore: migrate %s: no schema of the search_path exists", db.where)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1, hashtext($2))`, migrateLockClass, *schema); err != nil {
		return fmt.Errorf("pgstore: migrate: taking the migration lock: %w", err)
	}
	defer func() {
		// A cancelled ctx must not leave the lock held by a pooled session.
		if _, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1, hashtext($2))`,
			migrateLockClass, *schema); err != nil {
			conn.Conn().Close(context.WithoutCancel(ctx)) // closing the session releases it
		}
	}()

	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version integer     NOT NULL PRIMARY KEY,
			name    text        NOT NULL,
			applied timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
		return fmt.Errorf("pgstore: migrate: %w", err)
	}
	var current int
	if err := conn.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("pgstore: migrate: %w", err)
	}
	if current > len(ms) {
		return fmt.Errorf("pgstore: %s has schema version %d, newer than this program's %d", db.where, current, len(ms))
	}
	for _, m := range ms[current:] {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL, pgx.QueryExecModeSimpleProtocol); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name)
			return err
		})
		if err != nil {
			return fmt.Errorf("pgstore: migration %s: %w", m.Name, err)
		}
		db.log.Info("pgstore: applied migration", "version", m.Version, "name", m.Name, "database", db.where, "schema", *schema)
	}
	return nil
}

// SchemaVersion returns the newest migration applied to the database.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := db.pool.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, wrap("schema version", err)
	}
	return v, nil
}
