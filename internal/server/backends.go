package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/fanout/natsbus"
	"github.com/parleychat/parley/internal/store"
	"github.com/parleychat/parley/internal/store/pgstore"
	"github.com/parleychat/parley/internal/store/sqlitestore"
)

// openStore opens the store cfg names: SQLite in cfg.DataDir when cfg.DB
// is empty, else PostgreSQL at the URL cfg.DB.
func openStore(ctx context.Context, cfg config.Config, logger *slog.Logger) (store.Store, error) {
	log := logger.With("component", "store")
	if cfg.DB == "" {
		db, err := sqlitestore.Open(ctx, filepath.Join(cfg.DataDir, DBFile), log)
		if err != nil {
			return nil, fmt.Errorf("server: opening store: %w", err)
		}
		return db, nil
	}
	db, err := pgstore.Open(ctx, cfg.DB, log)
	if err != nil {
		// pgstore's errors never contain the password of the URL.
		return nil, fmt.Errorf("server: opening PostgreSQL: %w", err)
	}
	return db, nil
}

// natsConnectWait bounds the first connection to NATS at start.
const natsConnectWait = 10 * time.Second

// openBus returns the bus cfg names: nil (an in-process bus) when cfg.NATS
// is empty, else a NATS bus and its closer.
func openBus(ctx context.Context, cfg config.Config, logger *slog.Logger) (Bus, io.Closer, error) {
	if cfg.NATS == "" {
		return nil, nil, nil
	}
	host, _ := os.Hostname()
	ctx, cancel := context.WithTimeout(ctx, natsConnectWait)
	defer cancel()
	b, err := natsbus.Open(ctx, natsbus.Options{
		URL:    cfg.NATS,
		Prefix: cfg.NATSPrefix,
		Name:   "parleyd " + host,
		Logger: logger.With("component", "bus"),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("server: %w", err)
	}
	return b, b, nil
}

var _ Bus = (*natsbus.Bus)(nil)

// pgPool returns the PostgreSQL pool behind st when st is pgstore, for the
// stores that keep their tables beside it (s3store, pgbackups).
func pgPool(st store.Store) (*pgxpool.Pool, bool) {
	db, ok := st.(interface{ Pool() *pgxpool.Pool })
	if !ok {
		return nil, false
	}
	return db.Pool(), true
}
