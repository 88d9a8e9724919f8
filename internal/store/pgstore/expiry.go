package pgstore

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// expireEnvelopes deletes the queued envelopes of vanishing messages whose
// time is up (expires <= now) and gives their room in the recipients'
// queues back: one transaction per recipient device, which takes the
// device's row lock before it deletes envelopes, the order Enqueue and Ack
// use.
func (db *DB) expireEnvelopes(ctx context.Context, now time.Time) error {
	for {
		rows, err := db.pool.Query(ctx, `SELECT DISTINCT recipient, recipient_device FROM envelopes
			WHERE expires <= $1 LIMIT $2`, now, expireBatch)
		if err != nil {
			return err
		}
		devs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (deviceKey, error) {
			var d deviceKey
			var id int64
			err := r.Scan(&d.handle, &id)
			d.id = uint32(id)
			return d, err
		})
		if err != nil {
			return err
		}
		for _, d := range devs {
			err := db.tx(ctx, func(tx pgx.Tx) error {
				var one int
				err := tx.QueryRow(ctx, `SELECT 1 FROM devices WHERE handle = $1 AND id = $2 FOR NO KEY UPDATE`, d.handle, int64(d.id)).Scan(&one)
				if errors.Is(err, pgx.ErrNoRows) {
					return nil // the device is gone, and its envelopes with it
				}
				if err != nil {
					return err
				}
				_, err = tx.Exec(ctx, `WITH gone AS (
						DELETE FROM envelopes WHERE recipient = $1 AND recipient_device = $2 AND expires <= $3 RETURNING 1)
					UPDATE devices SET queued = queued - (SELECT count(*) FROM gone) WHERE handle = $1 AND id = $2`,
					d.handle, int64(d.id), now)
				return err
			})
			if err != nil {
				return err
			}
		}
		if len(devs) < expireBatch {
			return nil
		}
	}
}
