package pgstore

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/parleychat/parley/internal/store"
)

// Kinds of prekey (the prekeys.kind column).
const (
	kindSigned     = 1 // signed X25519 prekey, one per device
	kindLastResort = 2 // last-resort ML-KEM prekey, one per device
	kindOneTime    = 3 // one-time X25519 prekey
	kindOneTimePQ  = 4 // one-time ML-KEM prekey
)

// PutPrekeys implements store.Store.
func (db *DB) PutPrekeys(ctx context.Context, handle string, device uint32, p store.Prekeys) error {
	h := norm(handle)
	err := db.tx(ctx, func(tx pgx.Tx) error {
		// A key share on the device's row: it stays current until commit,
		// without waiting for senders (who hold a no-key update lock).
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM devices WHERE handle = $1 AND id = $2 FOR KEY SHARE`, h, int64(device)).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		b := &pgx.Batch{}
		queuePutPrekeys(b, h, device, p)
		return tx.SendBatch(ctx, b).Close()
	})
	return wrap("put prekeys", err)
}

// queuePutPrekeys adds to b the statements that store p for a device that
// exists.
func queuePutPrekeys(b *pgx.Batch, h string, device uint32, p store.Prekeys) {
	replace := func(kind int, k *store.Prekey) {
		if k == nil {
			return
		}
		b.Queue(`DELETE FROM prekeys WHERE handle = $1 AND device = $2 AND kind = $3`, h, int64(device), kind)
		queueUpsertPrekeys(b, h, device, kind, []store.Prekey{*k})
	}
	replace(kindSigned, p.Signed)
	replace(kindLastResort, p.LastResort)
	queueUpsertPrekeys(b, h, device, kindOneTime, p.OneTime)
	queueUpsertPrekeys(b, h, device, kindOneTimePQ, p.OneTimePQ)
}

// queueUpsertPrekeys adds one statement that stores ks (of one kind),
// replacing keys with the same id. An id named twice in ks: the later key
// wins, as if they were stored one after the other.
func queueUpsertPrekeys(b *pgx.Batch, h string, device uint32, kind int, ks []store.Prekey) {
	if len(ks) == 0 {
		return
	}
	last := make(map[uint32]int, len(ks))
	for i, k := range ks {
		last[k.ID] = i
	}
	ids := make([]int64, 0, len(last))
	pubs := make([][]byte, 0, len(last))
	sigs := make([][]byte, 0, len(last))
	for i, k := range ks {
		if last[k.ID] != i {
			continue
		}
		var sig []byte
		if len(k.Signature) > 0 {
			sig = k.Signature
		}
		ids = append(ids, int64(k.ID))
		pubs = append(pubs, nonNil(k.Public))
		sigs = append(sigs, sig)
	}
	b.Queue(`INSERT INTO prekeys (handle, device, kind, id, public, signature)
		SELECT $1, $2, $3, u.id, u.public, u.signature FROM unnest($4::bigint[], $5::bytea[], $6::bytea[]) AS u (id, public, signature)
		ON CONFLICT (handle, device, kind, id) DO UPDATE SET public = excluded.public, signature = excluded.signature`,
		h, int64(device), kind, ids, pubs, sigs)
}

// PrekeyCounts implements store.Store.
func (db *DB) PrekeyCounts(ctx context.Context, handle string, device uint32) (oneTime, oneTimePQ int, err error) {
	err = db.pool.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM prekeys p WHERE p.handle = d.handle AND p.device = d.id AND p.kind = $3),
			(SELECT count(*) FROM prekeys p WHERE p.handle = d.handle AND p.device = d.id AND p.kind = $4)
		FROM devices d WHERE d.handle = $1 AND d.id = $2`,
		norm(handle), int64(device), kindOneTime, kindOneTimePQ).Scan(&oneTime, &oneTimePQ)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, store.ErrNotFound
	}
	if err != nil {
		return 0, 0, wrap("prekey counts", err)
	}
	return oneTime, oneTimePQ, nil
}

// TakeBundle's statements. qPrekeyTake deletes and returns the lowest-id
// key of a kind; SKIP LOCKED makes concurrent takers pass over a key
// another transaction is taking instead of waiting for it (and then
// finding it gone), so each key goes to exactly one of them.
const (
	qPrekeyGet  = `SELECT id, public, signature FROM prekeys WHERE handle = $1 AND device = $2 AND kind = $3`
	qPrekeyTake = `DELETE FROM prekeys WHERE handle = $1 AND device = $2 AND kind = $3 AND id = (
		SELECT id FROM prekeys WHERE handle = $1 AND device = $2 AND kind = $3
		ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING id, public, signature`
)

// TakeBundle implements store.Store.
func (db *DB) TakeBundle(ctx context.Context, handle string, device uint32) (store.Bundle, error) {
	h := norm(handle)
	var b store.Bundle
	err := db.tx(ctx, func(tx pgx.Tx) error {
		var err error
		b, err = takeBundle(ctx, tx, h, device)
		return err
	})
	if err != nil {
		return store.Bundle{}, wrap("take bundle", err)
	}
	return b, nil
}

func takeBundle(ctx context.Context, tx pgx.Tx, h string, device uint32) (store.Bundle, error) {
	b := store.Bundle{DeviceID: device}
	// key reads one key with q, or reports false.
	key := func(q string, kind int) (store.Prekey, bool, error) {
		var k store.Prekey
		var id int64
		err := tx.QueryRow(ctx, q, h, int64(device), kind).Scan(&id, &k.Public, &k.Signature)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.Prekey{}, false, nil
		}
		if err != nil {
			return store.Prekey{}, false, err
		}
		k.ID = uint32(id)
		return k, true, nil
	}

	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM devices WHERE handle = $1 AND id = $2)`,
		h, int64(device)).Scan(&exists); err != nil {
		return b, err
	}
	if !exists {
		return b, store.ErrNotFound
	}
	signed, ok, err := key(qPrekeyGet, kindSigned)
	if err != nil {
		return b, err
	}
	if !ok {
		return b, store.ErrNoPrekeys
	}
	b.Signed = signed

	pq, ok, err := key(qPrekeyTake, kindOneTimePQ)
	if err != nil {
		return b, err
	}
	if !ok {
		pq, ok, err = key(qPrekeyGet, kindLastResort)
		if err != nil {
			return b, err
		}
		if !ok {
			return b, store.ErrNoPrekeys
		}
		b.PQLastResort = true
	}
	b.PQ = pq

	ot, ok, err := key(qPrekeyTake, kindOneTime)
	if err != nil {
		return b, err
	}
	if ok {
		ot.Signature = nil
		b.OneTime = &ot
	}
	return b, nil
}
