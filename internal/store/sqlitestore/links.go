package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/parleychat/parley/internal/store"
)

// CreateLink implements store.Store.
func (db *DB) CreateLink(ctx context.Context, l store.Link) error {
	if l.ID == "" {
		return errors.New("sqlitestore: create link: empty id")
	}
	h := norm(l.Handle)
	err := db.write(ctx, func(tx *txn) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM accounts WHERE handle = ?`, h).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO links (id, handle, expires) VALUES (?, ?, ?)
			ON CONFLICT DO NOTHING`, l.ID, h, micros(l.Expires))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return store.ErrLinkUsed
		}
		return nil
	})
	return wrap("create link", err)
}

// Link implements store.Store.
func (db *DB) Link(ctx context.Context, id string) (store.Link, error) {
	l, err := getLink(ctx, db.r, id, time.Now())
	return l, wrap("link", err)
}

// getLink reads a live link (ErrNotFound if unknown or expired at now).
func getLink(ctx context.Context, q querier, id string, now time.Time) (store.Link, error) {
	l := store.Link{ID: id}
	var expires, fetched int64
	err := q.QueryRowContext(ctx, `SELECT handle, expires, join_data, sealed, device_list, fetched
		FROM links WHERE id = ? AND expires > ?`, id, micros(now)).
		Scan(&l.Handle, &expires, &l.Join, &l.Sealed, &l.DeviceList, &fetched)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Link{}, store.ErrNotFound
	}
	if err != nil {
		return store.Link{}, err
	}
	l.Expires = fromMicros(expires)
	l.Fetched = fetched != 0
	return l, nil
}

// JoinLink implements store.Store.
func (db *DB) JoinLink(ctx context.Context, id string, join []byte) error {
	if len(join) == 0 {
		return errors.New("sqlitestore: join link: empty join")
	}
	err := db.write(ctx, func(tx *txn) error {
		l, err := getLink(ctx, tx, id, time.Now())
		if err != nil {
			return err
		}
		if len(l.Join) > 0 {
			return store.ErrLinkUsed
		}
		_, err = tx.ExecContext(ctx, `UPDATE links SET join_data = ? WHERE id = ?`, join, id)
		return err
	})
	return wrap("join link", err)
}

// CompleteLink implements store.Store.
func (db *DB) CompleteLink(ctx context.Context, id string, sealed, deviceList []byte) error {
	if len(sealed) == 0 {
		return errors.New("sqlitestore: complete link: empty sealed transfer")
	}
	err := db.write(ctx, func(tx *txn) error {
		l, err := getLink(ctx, tx, id, time.Now())
		if err != nil {
			return err
		}
		if len(l.Sealed) > 0 {
			return store.ErrLinkUsed
		}
		_, err = tx.ExecContext(ctx, `UPDATE links SET sealed = ?, device_list = ? WHERE id = ?`,
			sealed, nonNil(deviceList), id)
		return err
	})
	return wrap("complete link", err)
}

// FetchLinkResult implements store.Store.
func (db *DB) FetchLinkResult(ctx context.Context, id string) (store.Link, error) {
	// Polling before completion is common: answer it from a reader.
	l, err := getLink(ctx, db.r, id, time.Now())
	if err != nil {
		return store.Link{}, wrap("fetch link result", err)
	}
	if l.Fetched {
		return store.Link{}, store.ErrLinkUsed
	}
	if len(l.Sealed) == 0 {
		return l, nil
	}
	err = db.write(ctx, func(tx *txn) error {
		var err error
		l, err = getLink(ctx, tx, id, time.Now())
		if err != nil {
			return err
		}
		if l.Fetched {
			return store.ErrLinkUsed
		}
		if len(l.Sealed) == 0 {
			return nil // not complete yet: nothing to hand out
		}
		l.Fetched = true
		_, err = tx.ExecContext(ctx, `UPDATE links SET fetched = 1 WHERE id = ?`, id)
		return err
	})
	if err != nil {
		return store.Link{}, wrap("fetch link result", err)
	}
	return l, nil
}
