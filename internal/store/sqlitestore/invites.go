package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/parleychat/parley/internal/store"
)

// CreateInvite implements store.Store.
func (db *DB) CreateInvite(ctx context.Context, inv store.Invite) error {
	inv, err := store.CheckInvite(inv)
	if err != nil {
		return fmt.Errorf("sqlitestore: create invite: %w", err)
	}
	h := inv.Handle
	created := orNow(inv.Created)
	err = db.write(ctx, func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO invites (hash, handle, uses, expires, created) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT DO NOTHING`, inv.Hash, h, int64(inv.Uses), expiresMicros(inv.Expires), micros(created))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return errors.New("sqlitestore: create invite: an invite with this hash exists")
		}
		return nil
	})
	return wrap("create invite", err)
}

// Invites implements store.Store.
func (db *DB) Invites(ctx context.Context) ([]store.Invite, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT hash, handle, uses, expires, created FROM invites ORDER BY created, hash`)
	if err != nil {
		return nil, wrap("invites", err)
	}
	defer rows.Close()
	var invs []store.Invite
	for rows.Next() {
		var inv store.Invite
		var uses, created int64
		var expires sql.NullInt64
		if err := rows.Scan(&inv.Hash, &inv.Handle, &uses, &expires, &created); err != nil {
			return nil, wrap("invites", err)
		}
		inv.Uses = int(uses)
		if expires.Valid {
			inv.Expires = fromMicros(expires.Int64)
		}
		inv.Created = fromMicros(created)
		invs = append(invs, inv)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("invites", err)
	}
	return invs, nil
}

// DeleteInvite implements store.Store.
func (db *DB) DeleteInvite(ctx context.Context, hash []byte) error {
	err := db.write(ctx, func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM invites WHERE hash = ?`, nonNil(hash))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return store.ErrNotFound
		}
		return nil
	})
	return wrap("delete invite", err)
}

// useInvite uses one of the invite's uses for an account with handle h
// (normalised), in CreateAccount's transaction: the invite must exist, be
// live at now and be for any handle or for h (store.ErrInviteInvalid
// otherwise). The last use deletes it. The writer is the only one, so
// nothing changes the row between the read and the write; an error later
// in the transaction rolls the use back with the rest.
func useInvite(ctx context.Context, tx *txn, hash []byte, h string, now time.Time) error {
	var uses int64
	err := tx.QueryRowContext(ctx, `SELECT uses FROM invites
		WHERE hash = ? AND (expires IS NULL OR expires > ?) AND (handle = '' OR handle = ?)`,
		nonNil(hash), micros(now), h).Scan(&uses)
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrInviteInvalid
	}
	if err != nil {
		return err
	}
	if uses <= 1 {
		_, err = tx.ExecContext(ctx, `DELETE FROM invites WHERE hash = ?`, hash)
	} else {
		_, err = tx.ExecContext(ctx, `UPDATE invites SET uses = uses - 1 WHERE hash = ?`, hash)
	}
	return err
}
