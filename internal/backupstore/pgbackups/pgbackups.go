// Package pgbackups keeps the sealed PIN-backup blobs of a cluster in the
// PostgreSQL database its nodes already share: one row per account in
// the pin_backups table (pgstore migration 0005), so any node serves a
// blob another node stored, with no folder shared between the machines.
//
// A Put is one INSERT ... ON CONFLICT DO UPDATE, durable once it returns
// (pgstore runs its sessions with synchronous_commit on). The time a blob
// was last written comes from the database's clock, the one clock every
// node shares, and never moves back: a replacement keeps the older time if
// the database's clock was stepped behind it.
package pgbackups

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/internal/backupstore"
)

var _ backupstore.Backups = (*Store)(nil)

// Store is a backupstore.Backups over a PostgreSQL database whose schema
// pgstore.Open has brought up to date. It is safe for concurrent use, by
// many nodes at once: the last Put wins.
type Store struct {
	pool *pgxpool.Pool
}

// New returns the store over pool (pgstore's DB.Pool()). The pool stays
// its owner's to close.
func New(pool *pgxpool.Pool) *Store {
	return &Store{pool: pool}
}

// Put stores blob as handle's backup, replacing the previous one.
func (s *Store) Put(ctx context.Context, handle string, blob []byte) error {
	if err := backupstore.CheckHandle(handle); err != nil {
		return err
	}
	if blob == nil {
		blob = []byte{} // pgx sends a nil slice as NULL
	}
	_, err := s.pool.Exec(ctx, `
		INSERT INTO pin_backups (handle, blob, updated) VALUES ($1, $2, now())
		ON CONFLICT (handle) DO UPDATE
			SET blob = EXCLUDED.blob, updated = GREATEST(EXCLUDED.updated, pin_backups.updated)`,
		handle, blob)
	if err != nil {
		return fmt.Errorf("pgbackups: storing a backup: %w", err)
	}
	return nil
}

// Get returns handle's backup and when it was last written.
func (s *Store) Get(ctx context.Context, handle string) ([]byte, time.Time, error) {
	if err := backupstore.CheckHandle(handle); err != nil {
		return nil, time.Time{}, err
	}
	var blob []byte
	var updated time.Time
	err := s.pool.QueryRow(ctx, `SELECT blob, updated FROM pin_backups WHERE handle = $1`, handle).Scan(&blob, &updated)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, time.Time{}, backupstore.ErrNotFound
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("pgbackups: reading a backup: %w", err)
	}
	if blob == nil {
		blob = []byte{}
	}
	return blob, updated.UTC(), nil
}

// Delete removes handle's backup; a missing one is not an error.
func (s *Store) Delete(ctx context.Context, handle string) error {
	if err := backupstore.CheckHandle(handle); err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM pin_backups WHERE handle = $1`, handle); err != nil {
		return fmt.Errorf("pgbackups: deleting a backup: %w", err)
	}
	return nil
}

// Import copies the backups of a folder store into the table, each with
// its file's modification time, skipping every account the table already
// has a backup for (a newer one, written through some node). It returns
// how many it copied and how many it skipped. The files stay as they are.
func (s *Store) Import(ctx context.Context, from *backupstore.Store) (imported, skipped int, err error) {
	handles, err := from.Handles()
	if err != nil {
		return 0, 0, err
	}
	for _, h := range handles {
		blob, updated, err := from.Get(ctx, h)
		if errors.Is(err, backupstore.ErrNotFound) {
			continue // deleted since it was listed
		}
		if err != nil {
			return imported, skipped, err
		}
		tag, err := s.pool.Exec(ctx, `
			INSERT INTO pin_backups (handle, blob, updated) VALUES ($1, $2, $3)
			ON CONFLICT (handle) DO NOTHING`, h, blob, updated)
		if err != nil {
			return imported, skipped, fmt.Errorf("pgbackups: importing @%s's backup: %w", h, err)
		}
		if tag.RowsAffected() == 1 {
			imported++
		} else {
			skipped++
		}
	}
	return imported, skipped, nil
}
