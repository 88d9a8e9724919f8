package pgstore

import (
	"context"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/parleychat/parley/internal/store"
)

// CreateLink implements store.Store.
func (db *DB) CreateLink(ctx context.Context, l store.Link) error {
	if l.ID == "" || !validText(l.ID) || strings.ContainsRune(l.ID, utf8.RuneError) {
		return errors.New("pgstore: create link: empty id, or not UTF-8 text")
	}
	h := norm(l.Handle)
	err := db.tx(ctx, func(tx pgx.Tx) error {
		// A key share on the account's row keeps it until commit.
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM accounts WHERE handle = $1 FOR KEY SHARE`, h).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO links (id, handle, expires) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
			l.ID, h, l.Expires)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrLinkUsed
		}
		return nil
	})
	return wrap("create link", err)
}

// qLink reads a live link.
const qLink = `SELECT handle, expires, join_data, sealed, device_list, fetched FROM links WHERE id = $1 AND expires > $2`

// Link implements store.Store.
func (db *DB) Link(ctx context.Context, id string) (store.Link, error) {
	l, err := scanLink(id, db.pool.QueryRow(ctx, qLink, text(id), time.Now()))
	return l, wrap("link", err)
}

// scanLink scans a row of (handle, expires, join_data, sealed,
// device_list, fetched); no row is ErrNotFound.
func scanLink(id string, row pgx.Row) (store.Link, error) {
	l := store.Link{ID: id}
	err := row.Scan(&l.Handle, &l.Expires, &l.Join, &l.Sealed, &l.DeviceList, &l.Fetched)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Link{}, store.ErrNotFound
	}
	if err != nil {
		return store.Link{}, err
	}
	l.Expires = utc(l.Expires)
	return l, nil
}

// setOnce runs an UPDATE of a live link that succeeds only once (its
// WHERE requires the field still unset); when it changes nothing, the
// link is unknown or expired (ErrNotFound) or was already set
// (ErrLinkUsed).
func (db *DB) setOnce(ctx context.Context, id, q string, args ...any) error {
	tag, err := db.pool.Exec(ctx, q, args...)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	if _, err := scanLink(id, db.pool.QueryRow(ctx, qLink, text(id), time.Now())); err != nil {
		return err
	}
	return store.ErrLinkUsed
}

// JoinLink implements store.Store.
func (db *DB) JoinLink(ctx context.Context, id string, join []byte) error {
	if len(join) == 0 {
		return errors.New("pgstore: join link: empty join")
	}
	err := db.setOnce(ctx, id, `UPDATE links SET join_data = $2 WHERE id = $1 AND expires > $3 AND join_data IS NULL`,
		text(id), join, time.Now())
	return wrap("join link", err)
}

// CompleteLink implements store.Store.
func (db *DB) CompleteLink(ctx context.Context, id string, sealed, deviceList []byte) error {
	if len(sealed) == 0 {
		return errors.New("pgstore: complete link: empty sealed transfer")
	}
	err := db.setOnce(ctx, id, `UPDATE links SET sealed = $2, device_list = $3 WHERE id = $1 AND expires > $4 AND sealed IS NULL`,
		text(id), sealed, nonNil(deviceList), time.Now())
	return wrap("complete link", err)
}

// FetchLinkResult implements store.Store. Concurrent fetchers queue on the
// link's row lock; the first marks it fetched, the others then see it so.
func (db *DB) FetchLinkResult(ctx context.Context, id string) (store.Link, error) {
	var l store.Link
	err := db.tx(ctx, func(tx pgx.Tx) error {
		var err error
		l, err = scanLink(id, tx.QueryRow(ctx, qLink+` FOR UPDATE`, text(id), time.Now()))
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
		_, err = tx.Exec(ctx, `UPDATE links SET fetched = true WHERE id = $1`, text(id))
		return err
	})
	if err != nil {
		return store.Link{}, wrap("fetch link result", err)
	}
	return l, nil
}
