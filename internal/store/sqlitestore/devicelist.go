package sqlitestore

import (
	"context"
	"database/sql"

	"github.com/parleychat/parley/internal/store"
)

// qDeviceList reads an account's device list and its devices in one
// statement (prepared on both pools): a single statement reads one
// snapshot, so the list and its devices agree without a read transaction
// around two queries, and every send runs it twice (checkDevices). An
// account without devices cannot exist (CreateAccount and
// ReplaceDeviceList require one), but the LEFT JOIN keeps the list even so.
const qDeviceList = `SELECT a.device_list, a.device_list_version, d.id, d.signing_key, d.created
	FROM accounts a LEFT JOIN devices d ON d.handle = a.handle
	WHERE a.handle = ? ORDER BY d.position`

// rowsQuerier is a pool or a transaction.
type rowsQuerier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

// readDeviceList reads the device list of the account with stored handle
// h, or store.ErrNotFound.
func readDeviceList(ctx context.Context, q rowsQuerier, h string) (store.DeviceList, error) {
	rows, err := q.QueryContext(ctx, qDeviceList, h)
	if err != nil {
		return store.DeviceList{}, err
	}
	defer rows.Close()
	var (
		l     store.DeviceList
		found bool
	)
	for rows.Next() {
		var (
			signed      sql.RawBytes // the same on every row: copied once
			version     int64
			id, created sql.NullInt64
			key         []byte
		)
		if err := rows.Scan(&signed, &version, &id, &key, &created); err != nil {
			return store.DeviceList{}, err
		}
		if !found {
			found = true
			l.Signed = append([]byte{}, signed...)
			l.Version = uint64(version)
		}
		if id.Valid {
			l.Devices = append(l.Devices, store.Device{
				Handle: h, ID: uint32(id.Int64), SigningKey: key, Created: fromMicros(created.Int64),
			})
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
