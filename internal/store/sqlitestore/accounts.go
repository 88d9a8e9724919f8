package sqlitestore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/parleychat/parley/internal/store"
)

// Hot statements, prepared at Open.
const (
	qDeviceExists = `SELECT COUNT(*) FROM devices WHERE handle = ? AND id = ?`
	// qTokenDevice finds a live token of a current device.
	qTokenDevice = `SELECT t.handle, t.device, t.expires FROM tokens t
		JOIN devices d ON d.handle = t.handle AND d.id = t.device
		WHERE t.hash = ? AND t.expires > ?`
)

// CreateAccount implements store.Store.
func (db *DB) CreateAccount(ctx context.Context, a store.Account, l store.DeviceList, p store.Prekeys) error {
	h, err := store.NormaliseHandle(a.Handle)
	if err != nil {
		return fmt.Errorf("sqlitestore: create account %q: %w", a.Handle, err)
	}
	if len(l.Devices) == 0 {
		return errors.New("sqlitestore: create account: the device list names no device")
	}
	if err := distinctIDs(l.Devices); err != nil {
		return err
	}
	created := orNow(a.Created)
	err = db.write(ctx, func(tx *txn) error {
		// The invite before the handle: without a good invite the answer
		// is ErrInviteInvalid, taken handle or not. A later failure rolls
		// the use back with the rest.
		if a.Invite != nil {
			if err := useInvite(ctx, tx, a.Invite, h, time.Now()); err != nil { // invites.go
				return err
			}
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM accounts WHERE handle = ?`, h).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return store.ErrHandleTaken
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO accounts (handle, identity_key, created, device_list, device_list_version)
			VALUES (?, ?, ?, ?, ?)`, h, nonNil(a.IdentityKey), micros(created), nonNil(l.Signed), int64(l.Version))
		if err != nil {
			return err
		}
		for i, d := range l.Devices {
			dc := d.Created
			if dc.IsZero() {
				dc = created
			}
			if err := insertDevice(ctx, tx, h, d, dc, i); err != nil {
				return err
			}
		}
		return putPrekeys(ctx, tx, h, l.Devices[0].ID, p)
	})
	return wrap("create account", err)
}

// distinctIDs returns ErrDeviceExists if ds names an id twice.
func distinctIDs(ds []store.Device) error {
	seen := make(map[uint32]bool, len(ds))
	for _, d := range ds {
		if seen[d.ID] {
			return fmt.Errorf("sqlitestore: device id %d named twice: %w", d.ID, store.ErrDeviceExists)
		}
		seen[d.ID] = true
	}
	return nil
}

func insertDevice(ctx context.Context, tx *txn, h string, d store.Device, created time.Time, pos int) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO devices (handle, id, signing_key, created, position) VALUES (?, ?, ?, ?, ?)`,
		h, int64(d.ID), nonNil(d.SigningKey), micros(created), pos)
	if err == nil {
		tx.counts.added(deviceKey{h, d.ID}) // counts.go
	}
	return err
}

// Account implements store.Store.
func (db *DB) Account(ctx context.Context, handle string) (store.Account, error) {
	a := store.Account{Handle: norm(handle)}
	var created int64
	err := db.r.QueryRowContext(ctx, `SELECT identity_key, created FROM accounts WHERE handle = ?`, a.Handle).
		Scan(&a.IdentityKey, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Account{}, store.ErrNotFound
	}
	if err != nil {
		return store.Account{}, wrap("account", err)
	}
	a.Created = fromMicros(created)
	return a, nil
}

// DeleteAccount implements store.Store. Each device goes as
// ReplaceDeviceList removes one (deleteDevice: rows, queue count and
// tail), then the account's links and the account itself; the dedup
// records of the ids its devices sent stay.
func (db *DB) DeleteAccount(ctx context.Context, handle string) ([]uint32, error) {
	h := norm(handle)
	defer db.cache.devicesChanged(h) // once committed (or not)
	var devices []uint32
	err := db.write(ctx, func(tx *txn) error {
		devices = nil
		l, err := deviceList(ctx, tx, h)
		if err != nil {
			return err
		}
		for _, d := range l.Devices {
			if err := deleteDevice(ctx, tx, h, d.ID); err != nil {
				return err
			}
			devices = append(devices, d.ID)
		}
		// The foreign key would cascade the links too.
		if _, err := tx.ExecContext(ctx, `DELETE FROM links WHERE handle = ?`, h); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM accounts WHERE handle = ?`, h)
		return err
	})
	if err != nil {
		return nil, wrap("delete account", err)
	}
	return devices, nil
}

// DeviceList implements store.Store.
func (db *DB) DeviceList(ctx context.Context, handle string) (store.DeviceList, error) {
	h := norm(handle)
	l, ok, gen := db.cache.list(h) // cache.go
	if ok {
		return l, nil
	}
	// One statement reads one snapshot: the list and its devices agree.
	l, err := readDeviceList(ctx, db.r, h)
	if err != nil {
		return store.DeviceList{}, wrap("device list", err)
	}
	db.cache.putList(h, l, gen)
	return l, nil
}

func deviceList(ctx context.Context, tx *txn, h string) (store.DeviceList, error) {
	return readDeviceList(ctx, tx, h)
}

// ReplaceDeviceList implements store.Store.
func (db *DB) ReplaceDeviceList(ctx context.Context, handle string, l store.DeviceList) ([]uint32, error) {
	h := norm(handle)
	defer db.cache.devicesChanged(h) // once committed (or not)
	if err := distinctIDs(l.Devices); err != nil {
		return nil, err
	}
	var removed []uint32
	err := db.write(ctx, func(tx *txn) error {
		removed = nil
		old, err := deviceList(ctx, tx, h)
		if err != nil {
			return err
		}
		if l.Version <= old.Version {
			return fmt.Errorf("sqlitestore: version %d, current %d: %w", l.Version, old.Version, store.ErrStaleVersion)
		}
		current := make(map[uint32]store.Device, len(old.Devices))
		for _, d := range old.Devices {
			current[d.ID] = d
		}
		kept := make(map[uint32]bool, len(l.Devices))
		for i, d := range l.Devices {
			if c, ok := current[d.ID]; ok {
				if !bytes.Equal(c.SigningKey, d.SigningKey) {
					return fmt.Errorf("sqlitestore: device %d has another signing key: %w", d.ID, store.ErrDeviceExists)
				}
				kept[d.ID] = true
				if _, err := tx.ExecContext(ctx, `UPDATE devices SET position = ? WHERE handle = ? AND id = ?`,
					i, h, int64(d.ID)); err != nil {
					return err
				}
				continue
			}
			if err := insertDevice(ctx, tx, h, d, orNow(d.Created), i); err != nil {
				return err
			}
		}
		for _, d := range old.Devices {
			if kept[d.ID] {
				continue
			}
			if err := deleteDevice(ctx, tx, h, d.ID); err != nil {
				return err
			}
			removed = append(removed, d.ID)
		}
		_, err = tx.ExecContext(ctx, `UPDATE accounts SET device_list = ?, device_list_version = ? WHERE handle = ?`,
			nonNil(l.Signed), int64(l.Version), h)
		return err
	})
	if err != nil {
		return nil, wrap("replace device list", err)
	}
	return removed, nil
}

// deleteDevice deletes a device and everything of it. The foreign keys
// would cascade; the explicit deletes keep it so if they were off.
func deleteDevice(ctx context.Context, tx *txn, h string, id uint32) error {
	for _, q := range []string{
		`DELETE FROM prekeys WHERE handle = ? AND device = ?`,
		`DELETE FROM tokens WHERE handle = ? AND device = ?`,
		`DELETE FROM challenges WHERE handle = ? AND device = ?`,
		`DELETE FROM envelopes WHERE recipient = ? AND recipient_device = ?`,
		`DELETE FROM devices WHERE handle = ? AND id = ?`,
	} {
		if _, err := tx.ExecContext(ctx, q, h, int64(id)); err != nil {
			return err
		}
	}
	tx.counts.removed(deviceKey{h, id}) // counts.go
	if tx.q != nil {
		tx.q.dropped = append(tx.q.dropped, deviceKey{h, id}) // its queue's tail (tail.go)
	}
	return nil
}

// deviceExists reports whether the device is in its account's current
// list.
func deviceExists(ctx context.Context, q querier, h string, id uint32) (bool, error) {
	var n int
	err := q.QueryRowContext(ctx, qDeviceExists, h, int64(id)).Scan(&n)
	return n > 0, err
}

// querier is what *sql.DB and *sql.Tx share.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// PutToken implements store.Store.
func (db *DB) PutToken(ctx context.Context, tokenHash []byte, handle string, device uint32, expires time.Time) error {
	h := norm(handle)
	if len(tokenHash) == 0 {
		return errors.New("sqlitestore: put token: empty hash")
	}
	defer db.cache.tokenChanged(tokenHash) // once committed (or not)
	err := db.write(ctx, func(tx *txn) error {
		ok, err := deviceExists(ctx, tx, h, device)
		if err != nil {
			return err
		}
		if !ok {
			return store.ErrNotFound
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO tokens (hash, handle, device, expires) VALUES (?, ?, ?, ?)
			ON CONFLICT (hash) DO UPDATE SET handle = excluded.handle, device = excluded.device, expires = excluded.expires`,
			tokenHash, h, int64(device), micros(expires))
		return err
	})
	return wrap("put token", err)
}

// TokenDevice implements store.Store.
func (db *DB) TokenDevice(ctx context.Context, tokenHash []byte) (string, uint32, error) {
	h, device, ok, gen := db.cache.token(tokenHash) // cache.go
	if ok {
		return h, device, nil
	}
	var id, expires int64
	err := db.r.QueryRowContext(ctx, qTokenDevice, tokenHash, micros(time.Now())).Scan(&h, &id, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, store.ErrNotFound
	}
	if err != nil {
		return "", 0, wrap("token device", err)
	}
	db.cache.putToken(tokenHash, h, uint32(id), fromMicros(expires), gen)
	return h, uint32(id), nil
}

// expireBatch is how many message ids Expire forgets per transaction, so
// that senders get the writer in between.
const expireBatch = 1000

// Expire implements store.Store: tokens, challenges, links and invites
// first, then message ids in batches.
func (db *DB) Expire(ctx context.Context, now time.Time) error {
	t := micros(now)
	defer db.cache.tokensExpired() // expired at now, which may be ahead of the clock
	err := db.write(ctx, func(tx *txn) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM tokens WHERE expires <= ?`, t); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM challenges WHERE expires <= ?`, t); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM links WHERE expires <= ?`, t); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM invites WHERE expires IS NOT NULL AND expires <= ?`, t)
		return err
	})
	if err != nil {
		return wrap("expire", err)
	}
	if err := db.expireEnvelopes(ctx, now); err != nil { // expiry.go
		return wrap("expire", err)
	}
	before := micros(now.Add(-store.DedupWindow))
	for {
		var n int64
		err := db.write(ctx, func(tx *txn) error {
			res, err := tx.ExecContext(ctx, `DELETE FROM dedup WHERE (sender, sender_device, message_id) IN
				(SELECT sender, sender_device, message_id FROM dedup WHERE created < ? LIMIT ?)`, before, expireBatch)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return wrap("expire", err)
		}
		if n < expireBatch {
			return nil
		}
	}
}
