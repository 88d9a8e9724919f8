package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/parleychat/parley/internal/store"
)

// PutChallenge implements store.Store.
func (db *DB) PutChallenge(ctx context.Context, challenge []byte, handle string, device uint32, expires time.Time) error {
	if len(challenge) == 0 {
		return errors.New("sqlitestore: put challenge: empty challenge")
	}
	h := norm(handle)
	err := db.write(ctx, func(tx *txn) error {
		ok, err := deviceExists(ctx, tx, h, device)
		if err != nil {
			return err
		}
		if !ok {
			return store.ErrNotFound
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO challenges (challenge, handle, device, expires) VALUES (?, ?, ?, ?)
			ON CONFLICT (challenge) DO UPDATE SET handle = excluded.handle, device = excluded.device, expires = excluded.expires`,
			challenge, h, int64(device), micros(expires))
		return err
	})
	return wrap("put challenge", err)
}

// TakeChallenge implements store.Store.
func (db *DB) TakeChallenge(ctx context.Context, challenge []byte) (string, uint32, time.Time, error) {
	var h string
	var id, exp int64
	err := db.write(ctx, func(tx *txn) error {
		err := tx.QueryRowContext(ctx, `DELETE FROM challenges WHERE challenge = ? RETURNING handle, device, expires`, challenge).
			Scan(&h, &id, &exp)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return "", 0, time.Time{}, wrap("take challenge", err)
	}
	expires := fromMicros(exp)
	if !time.Now().Before(expires) {
		return "", 0, time.Time{}, store.ErrNotFound
	}
	return h, uint32(id), expires, nil
}
