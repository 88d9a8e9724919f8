package sqlitestore

import (
	"context"
	"database/sql"
	"errors"

	"github.com/parleychat/parley/internal/store"
)

// Kinds of prekey (the prekeys.kind column).
const (
	kindSigned     = 1 // signed X25519 prekey, one per device
	kindLastResort = 2 // last-resort ML-KEM prekey, one per device
	kindOneTime    = 3 // one-time X25519 prekey
	kindOneTimePQ  = 4 // one-time ML-KEM prekey
)

// TakeBundle's statements, prepared at Open.
const (
	qPrekeyFirst = `SELECT id, public, signature FROM prekeys
		WHERE handle = ? AND device = ? AND kind = ? ORDER BY id LIMIT 1`
	qPrekeyDelete = `DELETE FROM prekeys WHERE handle = ? AND device = ? AND kind = ? AND id = ?`
)

// PutPrekeys implements store.Store.
func (db *DB) PutPrekeys(ctx context.Context, handle string, device uint32, p store.Prekeys) error {
	h := norm(handle)
	err := db.write(ctx, func(tx *txn) error {
		ok, err := deviceExists(ctx, tx, h, device)
		if err != nil {
			return err
		}
		if !ok {
			return store.ErrNotFound
		}
		return putPrekeys(ctx, tx, h, device, p)
	})
	return wrap("put prekeys", err)
}

// putPrekeys stores p for a device that exists.
func putPrekeys(ctx context.Context, tx *txn, h string, device uint32, p store.Prekeys) error {
	replace := func(kind int, k *store.Prekey) error {
		if k == nil {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM prekeys WHERE handle = ? AND device = ? AND kind = ?`,
			h, int64(device), kind); err != nil {
			return err
		}
		return upsertPrekey(ctx, tx, h, device, kind, *k)
	}
	if err := replace(kindSigned, p.Signed); err != nil {
		return err
	}
	if err := replace(kindLastResort, p.LastResort); err != nil {
		return err
	}
	for _, k := range p.OneTime {
		if err := upsertPrekey(ctx, tx, h, device, kindOneTime, k); err != nil {
			return err
		}
	}
	for _, k := range p.OneTimePQ {
		if err := upsertPrekey(ctx, tx, h, device, kindOneTimePQ, k); err != nil {
			return err
		}
	}
	return nil
}

func upsertPrekey(ctx context.Context, tx *txn, h string, device uint32, kind int, k store.Prekey) error {
	var sig []byte
	if len(k.Signature) > 0 {
		sig = k.Signature
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO prekeys (handle, device, kind, id, public, signature) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (handle, device, kind, id) DO UPDATE SET public = excluded.public, signature = excluded.signature`,
		h, int64(device), kind, int64(k.ID), nonNil(k.Public), sig)
	return err
}

// PrekeyCounts implements store.Store.
func (db *DB) PrekeyCounts(ctx context.Context, handle string, device uint32) (oneTime, oneTimePQ int, err error) {
	h := norm(handle)
	tx, err := db.r.begin(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return 0, 0, wrap("prekey counts", err)
	}
	defer tx.Rollback()
	ok, err := deviceExists(ctx, tx, h, device)
	if err != nil {
		return 0, 0, wrap("prekey counts", err)
	}
	if !ok {
		return 0, 0, store.ErrNotFound
	}
	err = tx.QueryRowContext(ctx, `SELECT
			COALESCE(SUM(CASE WHEN kind = ? THEN 1 ELSE 0 END), 0),
			COALESCE(SUM(CASE WHEN kind = ? THEN 1 ELSE 0 END), 0)
		FROM prekeys WHERE handle = ? AND device = ? AND kind IN (?, ?)`,
		kindOneTime, kindOneTimePQ, h, int64(device), kindOneTime, kindOneTimePQ).Scan(&oneTime, &oneTimePQ)
	if err != nil {
		return 0, 0, wrap("prekey counts", err)
	}
	return oneTime, oneTimePQ, nil
}

// TakeBundle implements store.Store.
func (db *DB) TakeBundle(ctx context.Context, handle string, device uint32) (store.Bundle, error) {
	h := norm(handle)
	var b store.Bundle
	err := db.write(ctx, func(tx *txn) error {
		var err error
		b, err = takeBundle(ctx, tx, h, device)
		return err
	})
	if err != nil {
		return store.Bundle{}, wrap("take bundle", err)
	}
	return b, nil
}

func takeBundle(ctx context.Context, tx *txn, h string, device uint32) (store.Bundle, error) {
	b := store.Bundle{DeviceID: device}
	ok, err := deviceExists(ctx, tx, h, device)
	if err != nil {
		return b, err
	}
	if !ok {
		return b, store.ErrNotFound
	}
	// first returns the lowest-id key of a kind, or false.
	first := func(kind int) (store.Prekey, bool, error) {
		var k store.Prekey
		var id int64
		err := tx.QueryRowContext(ctx, qPrekeyFirst, h, int64(device), kind).
			Scan(&id, &k.Public, &k.Signature)
		if errors.Is(err, sql.ErrNoRows) {
			return store.Prekey{}, false, nil
		}
		if err != nil {
			return store.Prekey{}, false, err
		}
		k.ID = uint32(id)
		return k, true, nil
	}
	consume := func(kind int, id uint32) error {
		_, err := tx.ExecContext(ctx, qPrekeyDelete, h, int64(device), kind, int64(id))
		return err
	}

	signed, ok, err := first(kindSigned)
	if err != nil {
		return b, err
	}
	if !ok {
		return b, store.ErrNoPrekeys
	}
	b.Signed = signed

	pq, ok, err := first(kindOneTimePQ)
	if err != nil {
		return b, err
	}
	if ok {
		if err := consume(kindOneTimePQ, pq.ID); err != nil {
			return b, err
		}
	} else {
		pq, ok, err = first(kindLastResort)
		if err != nil {
			return b, err
		}
		if !ok {
			return b, store.ErrNoPrekeys
		}
		b.PQLastResort = true
	}
	b.PQ = pq

	ot, ok, err := first(kindOneTime)
	if err != nil {
		return b, err
	}
	if ok {
		if err := consume(kindOneTime, ot.ID); err != nil {
			return b, err
		}
		ot.Signature = nil
		b.OneTime = &ot
	}
	return b, nil
}
