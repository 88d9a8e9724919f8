package pgstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parleychat/parley/internal/store"
)

// CreateAccount implements store.Store.
func (db *DB) CreateAccount(ctx context.Context, a store.Account, l store.DeviceList, p store.Prekeys) error {
	h, err := store.NormaliseHandle(a.Handle)
	if err != nil {
		return fmt.Errorf("pgstore: create account %q: %w", a.Handle, err)
	}
	if len(l.Devices) == 0 {
		return errors.New("pgstore: create account: the device list names no device")
	}
	if err := distinctIDs(l.Devices); err != nil {
		return err
	}
	created := orNow(a.Created)
	err = db.tx(ctx, func(tx pgx.Tx) error {
		// The invite before the handle: without a good invite the answer
		// is ErrInviteInvalid, taken handle or not. A later failure rolls
		// the use back with the rest. (Every transaction takes at most one
		// invite's row lock before the account's key: no lock cycle.)
		if a.Invite != nil {
			if err := useInvite(ctx, tx, a.Invite, h, time.Now()); err != nil { // invites.go
				return err
			}
		}
		tag, err := tx.Exec(ctx, `INSERT INTO accounts (handle, identity_key, created, device_list, device_list_version)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
			h, nonNil(a.IdentityKey), created, nonNil(l.Signed), int64(l.Version))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrHandleTaken
		}
		b := &pgx.Batch{}
		for i, d := range l.Devices {
			dc := d.Created
			if dc.IsZero() {
				dc = created
			}
			queueInsertDevice(b, h, d, dc, i)
		}
		queuePutPrekeys(b, h, l.Devices[0].ID, p)
		return tx.SendBatch(ctx, b).Close()
	})
	return wrap("create account", err)
}

// distinctIDs returns ErrDeviceExists if ds names an id twice.
func distinctIDs(ds []store.Device) error {
	seen := make(map[uint32]bool, len(ds))
	for _, d := range ds {
		if seen[d.ID] {
			return fmt.Errorf("pgstore: device id %d named twice: %w", d.ID, store.ErrDeviceExists)
		}
		seen[d.ID] = true
	}
	return nil
}

func queueInsertDevice(b *pgx.Batch, h string, d store.Device, created time.Time, pos int) {
	b.Queue(`INSERT INTO devices (handle, id, signing_key, created, position) VALUES ($1, $2, $3, $4, $5)`,
		h, int64(d.ID), nonNil(d.SigningKey), created, pos)
}

// Account implements store.Store.
func (db *DB) Account(ctx context.Context, handle string) (store.Account, error) {
	a := store.Account{Handle: norm(handle)}
	err := db.pool.QueryRow(ctx, `SELECT identity_key, created FROM accounts WHERE handle = $1`, a.Handle).
		Scan(&a.IdentityKey, &a.Created)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Account{}, store.ErrNotFound
	}
	if err != nil {
		return store.Account{}, wrap("account", err)
	}
	a.Created = utc(a.Created)
	return a, nil
}

// DeviceList implements store.Store.
func (db *DB) DeviceList(ctx context.Context, handle string) (store.DeviceList, error) {
	l, err := deviceList(ctx, db.pool, norm(handle))
	return l, wrap("device list", err)
}

// querier is what a pool and a transaction share.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// deviceList reads an account's list and its devices in one statement
// (one snapshot), devices in list order.
func deviceList(ctx context.Context, q querier, h string) (store.DeviceList, error) {
	rows, err := q.Query(ctx, `SELECT a.device_list, a.device_list_version, d.id, d.signing_key, d.created
		FROM accounts a LEFT JOIN devices d ON d.handle = a.handle
		WHERE a.handle = $1 ORDER BY d.position`, h)
	if err != nil {
		return store.DeviceList{}, err
	}
	defer rows.Close()
	var l store.DeviceList
	found := false
	for rows.Next() {
		var version int64
		var id *int64
		var key []byte
		var created *time.Time
		if err := rows.Scan(&l.Signed, &version, &id, &key, &created); err != nil {
			return store.DeviceList{}, err
		}
		found = true
		l.Version = uint64(version)
		if id != nil {
			l.Devices = append(l.Devices, store.Device{Handle: h, ID: uint32(*id), SigningKey: key, Created: utc(*created)})
		}
	}
	if err := rows.Err(); err != nil {
		return store.DeviceList{}, err
	}
	if !found {
		return store.DeviceList{}, store.ErrNotFound
	}
	return l, nil
}

// ReplaceDeviceList implements store.Store.
func (db *DB) ReplaceDeviceList(ctx context.Context, handle string, l store.DeviceList) ([]uint32, error) {
	h := norm(handle)
	if err := distinctIDs(l.Devices); err != nil {
		return nil, err
	}
	var removed []uint32
	err := db.tx(ctx, func(tx pgx.Tx) error {
		removed = nil
		// The account's row lock serialises replacements of its list.
		var version int64
		err := tx.QueryRow(ctx, `SELECT device_list_version FROM accounts WHERE handle = $1 FOR UPDATE`, h).Scan(&version)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if l.Version <= uint64(version) {
			return fmt.Errorf("pgstore: version %d, current %d: %w", l.Version, uint64(version), store.ErrStaleVersion)
		}
		// The devices' row locks, in id order (as Enqueue takes them):
		// no envelope, token or challenge is added for a device while it
		// is being removed.
		type current struct {
			id  uint32
			key []byte
			pos int
		}
		rows, err := tx.Query(ctx, `SELECT id, signing_key, position FROM devices WHERE handle = $1 ORDER BY id FOR UPDATE`, h)
		if err != nil {
			return err
		}
		old, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (current, error) {
			var c current
			var id int64
			err := r.Scan(&id, &c.key, &c.pos)
			c.id = uint32(id)
			return c, err
		})
		if err != nil {
			return err
		}
		byID := make(map[uint32]current, len(old))
		for _, c := range old {
			byID[c.id] = c
		}
		b := &pgx.Batch{}
		kept := make(map[uint32]bool, len(l.Devices))
		for i, d := range l.Devices {
			if c, ok := byID[d.ID]; ok {
				if !bytes.Equal(c.key, d.SigningKey) {
					return fmt.Errorf("pgstore: device %d has another signing key: %w", d.ID, store.ErrDeviceExists)
				}
				kept[d.ID] = true
				b.Queue(`UPDATE devices SET position = $1 WHERE handle = $2 AND id = $3`, i, h, int64(d.ID))
				continue
			}
			queueInsertDevice(b, h, d, orNow(d.Created), i)
		}
		slices.SortFunc(old, func(a, b current) int { return a.pos - b.pos })
		var gone []int64
		for _, c := range old {
			if !kept[c.id] {
				removed = append(removed, c.id)
				gone = append(gone, int64(c.id))
			}
		}
		if len(gone) > 0 {
			queueDeleteDevices(b, h, gone)
		}
		b.Queue(`UPDATE accounts SET device_list = $1, device_list_version = $2 WHERE handle = $3`,
			nonNil(l.Signed), int64(l.Version), h)
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return nil, wrap("replace device list", err)
	}
	return removed, nil
}

// queueDeleteDevices queues the deletion of devices ids of h and
// everything of them: prekeys, tokens, challenges and queued envelopes
// (their queue counts are the devices' queued column, which goes with
// the row). The foreign keys would cascade; the explicit deletes say
// what goes. The caller holds the devices' row locks.
func queueDeleteDevices(b *pgx.Batch, h string, ids []int64) {
	for _, q := range []string{
		`DELETE FROM prekeys WHERE handle = $1 AND device = ANY($2)`,
		`DELETE FROM tokens WHERE handle = $1 AND device = ANY($2)`,
		`DELETE FROM challenges WHERE handle = $1 AND device = ANY($2)`,
		`DELETE FROM envelopes WHERE recipient = $1 AND recipient_device = ANY($2)`,
		`DELETE FROM devices WHERE handle = $1 AND id = ANY($2)`,
	} {
		b.Queue(q, h, ids)
	}
}

// DeleteAccount implements store.Store. It takes the account's row lock
// first, as ReplaceDeviceList does, then its devices' row locks in id
// order (as Enqueue takes them), so that no envelope, token or challenge
// is added for a device while it goes; a concurrent CreateAccount of the
// handle waits for the commit and then finds the handle free. The dedup
// records of the ids its devices sent stay.
func (db *DB) DeleteAccount(ctx context.Context, handle string) ([]uint32, error) {
	h := norm(handle)
	var devices []uint32
	err := db.tx(ctx, func(tx pgx.Tx) error {
		devices = nil
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM accounts WHERE handle = $1 FOR UPDATE`, h).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		type current struct {
			id  uint32
			pos int
		}
		rows, err := tx.Query(ctx, `SELECT id, position FROM devices WHERE handle = $1 ORDER BY id FOR UPDATE`, h)
		if err != nil {
			return err
		}
		old, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (current, error) {
			var c current
			var id int64
			err := r.Scan(&id, &c.pos)
			c.id = uint32(id)
			return c, err
		})
		if err != nil {
			return err
		}
		slices.SortFunc(old, func(a, b current) int { return a.pos - b.pos })
		ids := make([]int64, 0, len(old))
		for _, c := range old {
			devices = append(devices, c.id)
			ids = append(ids, int64(c.id))
		}
		b := &pgx.Batch{}
		queueDeleteDevices(b, h, ids)
		// The foreign key would cascade the links too.
		b.Queue(`DELETE FROM links WHERE handle = $1`, h)
		b.Queue(`DELETE FROM accounts WHERE handle = $1`, h)
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return nil, wrap("delete account", err)
	}
	return devices, nil
}

// PutToken implements store.Store.
func (db *DB) PutToken(ctx context.Context, tokenHash []byte, handle string, device uint32, expires time.Time) error {
	if len(tokenHash) == 0 {
		return errors.New("pgstore: put token: empty hash")
	}
	err := db.putForDevice(ctx, `INSERT INTO tokens (hash, handle, device, expires)
		SELECT $1, handle, id, $4 FROM devices WHERE handle = $2 AND id = $3
		ON CONFLICT (hash) DO UPDATE SET handle = excluded.handle, device = excluded.device, expires = excluded.expires`,
		tokenHash, norm(handle), int64(device), expires)
	return wrap("put token", err)
}

// putForDevice runs an INSERT ... SELECT ... FROM devices that stores one
// row if the device is current: ErrNotFound if not (or if it was removed
// concurrently, which the foreign key reports).
func (db *DB) putForDevice(ctx context.Context, q string, args ...any) error {
	tag, err := db.pool.Exec(ctx, q, args...)
	if pgCode(err) == codeForeignKey {
		return store.ErrNotFound
	}
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

// TokenDevice implements store.Store. A token goes with its device (the
// foreign key cascades), so a live token names a current device.
func (db *DB) TokenDevice(ctx context.Context, tokenHash []byte) (string, uint32, error) {
	var h string
	var id int64
	err := db.pool.QueryRow(ctx, `SELECT handle, device FROM tokens WHERE hash = $1 AND expires > $2`,
		tokenHash, time.Now()).Scan(&h, &id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", 0, store.ErrNotFound
	}
	if err != nil {
		return "", 0, wrap("token device", err)
	}
	return h, uint32(id), nil
}

// PutChallenge implements store.Store.
func (db *DB) PutChallenge(ctx context.Context, challenge []byte, handle string, device uint32, expires time.Time) error {
	if len(challenge) == 0 {
		return errors.New("pgstore: put challenge: empty challenge")
	}
	err := db.putForDevice(ctx, `INSERT INTO challenges (challenge, handle, device, expires)
		SELECT $1, handle, id, $4 FROM devices WHERE handle = $2 AND id = $3
		ON CONFLICT (challenge) DO UPDATE SET handle = excluded.handle, device = excluded.device, expires = excluded.expires`,
		challenge, norm(handle), int64(device), expires)
	return wrap("put challenge", err)
}

// TakeChallenge implements store.Store.
func (db *DB) TakeChallenge(ctx context.Context, challenge []byte) (string, uint32, time.Time, error) {
	var h string
	var id int64
	var expires time.Time
	err := db.pool.QueryRow(ctx, `DELETE FROM challenges WHERE challenge = $1 RETURNING handle, device, expires`,
		challenge).Scan(&h, &id, &expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", 0, time.Time{}, store.ErrNotFound
	}
	if err != nil {
		return "", 0, time.Time{}, wrap("take challenge", err)
	}
	if !time.Now().Before(expires) {
		return "", 0, time.Time{}, store.ErrNotFound
	}
	return h, uint32(id), utc(expires), nil
}

// expireBatch is how many message ids Expire forgets per transaction, so
// that no transaction holds many row locks for long.
const expireBatch = 1000

// Expire implements store.Store: tokens, challenges, links and invites
// first, then message ids in batches. Several nodes may expire at once: a
// batch skips the rows another node is deleting.
func (db *DB) Expire(ctx context.Context, now time.Time) error {
	err := db.tx(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`DELETE FROM tokens WHERE expires <= $1`, now)
		b.Queue(`DELETE FROM challenges WHERE expires <= $1`, now)
		b.Queue(`DELETE FROM links WHERE expires <= $1`, now)
		b.Queue(`DELETE FROM invites WHERE expires <= $1`, now)
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return wrap("expire", err)
	}
	if err := db.expireEnvelopes(ctx, now); err != nil { // expiry.go
		return wrap("expire", err)
	}
	before := now.Add(-store.DedupWindow)
	for {
		tag, err := db.pool.Exec(ctx, `DELETE FROM dedup WHERE ctid = ANY (ARRAY(
			SELECT ctid FROM dedup WHERE created < $1 LIMIT $2 FOR UPDATE SKIP LOCKED))`, before, expireBatch)
		if err != nil {
			return wrap("expire", err)
		}
		if tag.RowsAffected() < expireBatch {
			return nil
		}
	}
}
