package sqlitestore

import (
	"context"
	"time"
)

// expiresMicros stores an envelope's expiry: NULL when it has none.
func expiresMicros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return micros(t)
}

// expireEnvelopes deletes the queued envelopes of vanishing messages whose
// time is up (expires <= now), expireBatch per transaction, and gives their
// room in the recipients' queues back.
func (db *DB) expireEnvelopes(ctx context.Context, now time.Time) error {
	t := micros(now)
	for {
		var n int
		err := db.write(ctx, func(tx *txn) error {
			rows, err := tx.QueryContext(ctx, `SELECT seq, recipient, recipient_device FROM envelopes
				WHERE expires IS NOT NULL AND expires <= ? ORDER BY expires LIMIT ?`, t, expireBatch)
			if err != nil {
				return err
			}
			var (
				seqs []int64
				devs []deviceKey // each seq's device
			)
			freed := map[deviceKey]int{}
			for rows.Next() {
				var seq, dev int64
				var h string
				if err := rows.Scan(&seq, &h, &dev); err != nil {
					rows.Close()
					return err
				}
				seqs = append(seqs, seq)
				devs = append(devs, deviceKey{h, uint32(dev)})
				freed[deviceKey{h, uint32(dev)}]++
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			n = len(seqs)
			for i, seq := range seqs {
				if _, err := tx.ExecContext(ctx, `DELETE FROM envelopes WHERE seq = ?`, seq); err != nil {
					return err
				}
				if tx.q != nil {
					tx.q.removed = append(tx.q.removed, deviceSeqs{devs[i], []int64{seq}})
				}
			}
			for d, k := range freed {
				db.counts.add(d, -k)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if n < expireBatch {
			return nil
		}
	}
}
