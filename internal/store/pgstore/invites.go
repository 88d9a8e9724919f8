package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parleychat/parley/internal/store"
)

// CreateInvite implements store.Store.
func (db *DB) CreateInvite(ctx context.Context, inv store.Invite) error {
	inv, err := store.CheckInvite(inv)
	if err != nil {
		return fmt.Errorf("pgstore: create invite: %w", err)
	}
	h := inv.Handle
	var expires *time.Time // NULL: never
	if !inv.Expires.IsZero() {
		expires = &inv.Expires
	}
	tag, err := db.pool.Exec(ctx, `INSERT INTO invites (hash, handle, uses, expires, created) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT DO NOTHING`, inv.Hash, h, int64(inv.Uses), expires, orNow(inv.Created))
	if err != nil {
		return wrap("create invite", err)
	}
	if tag.RowsAffected() == 0 {
		return errors.New("pgstore: create invite: an invite with this hash exists")
	}
	return nil
}

// Invites implements store.Store.
func (db *DB) Invites(ctx context.Context) ([]store.Invite, error) {
	rows, err := db.pool.Query(ctx, `SELECT hash, handle, uses, expires, created FROM invites ORDER BY created, hash`)
	if err != nil {
		return nil, wrap("invites", err)
	}
	invs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Invite, error) {
		var inv store.Invite
		var uses int64
		var expires *time.Time
		if err := r.Scan(&inv.Hash, &inv.Handle, &uses, &expires, &inv.Created); err != nil {
			return store.Invite{}, err
		}
		inv.Uses = int(uses)
		if expires != nil {
			inv.Expires = utc(*expires)
		}
		inv.Created = utc(inv.Created)
		return inv, nil
	})
	if err != nil {
		return nil, wrap("invites", err)
	}
	return invs, nil
}

// DeleteInvite implements store.Store.
func (db *DB) DeleteInvite(ctx context.Context, hash []byte) error {
	tag, err := db.pool.Exec(ctx, `DELETE FROM invites WHERE hash = $1`, nonNil(hash))
	if err != nil {
		return wrap("delete invite", err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

// useInvite uses one of the invite's uses for an account with handle h
// (normalised), in CreateAccount's transaction: the invite must exist, be
// live at now and be for any handle or for h (store.ErrInviteInvalid
// otherwise). The last use deletes it.
//
// The row lock makes concurrent registrations with one invite take turns:
// a second one waits for the first to commit or roll back, then reads the
// row again (READ COMMITTED re-checks the conditions on its newest
// version), so it sees the use taken, or the row deleted with the last
// one. The lock is held to the end of the transaction, so a later failure
// rolls the use back before anyone else can count on it.
func useInvite(ctx context.Context, tx pgx.Tx, hash []byte, h string, now time.Time) error {
	var uses int64
	err := tx.QueryRow(ctx, `SELECT uses FROM invites
		WHERE hash = $1 AND (expires IS NULL OR expires > $2) AND (handle = '' OR handle = $3)
		FOR UPDATE`, nonNil(hash), now, h).Scan(&uses)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrInviteInvalid
	}
	if err != nil {
		return err
	}
	if uses <= 1 {
		_, err = tx.Exec(ctx, `DELETE FROM invites WHERE hash = $1`, hash)
	} else {
		_, err = tx.Exec(ctx, `UPDATE invites SET uses = uses - 1 WHERE hash = $1`, hash)
	}
	return err
}
