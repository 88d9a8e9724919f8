package sqlitestore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/parleychat/parley/internal/store"
)

// The queue's hot statements, prepared at Open.
const (
	qDedupInsert = `INSERT INTO dedup (sender, sender_device, message_id, created) VALUES (?, ?, ?, ?)
		ON CONFLICT DO NOTHING`
	// qQueueReserve counts n more envelopes for a device if its queue has
	// room; no row changes if the device is unknown or its queue is full.
	qQueueReserve   = `UPDATE devices SET queued = queued + ? WHERE handle = ? AND id = ? AND queued + ? <= ?`
	qQueueRelease   = `UPDATE devices SET queued = queued - ? WHERE handle = ? AND id = ?`
	qEnvelopeInsert = `INSERT INTO envelopes
		(recipient, recipient_device, message_id, sender, sender_device, ciphertext, server_time, expires)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
	qPending = `SELECT seq, message_id, sender, sender_device, ciphertext, server_time FROM envelopes
		WHERE recipient = ? AND recipient_device = ? AND seq > ? ORDER BY seq LIMIT ?`
	qAckOne = `DELETE FROM envelopes WHERE recipient = ? AND recipient_device = ? AND seq = ?`
)

// Enqueue implements store.Store.
func (db *DB) Enqueue(ctx context.Context, envs []store.Envelope) (bool, error) {
	if len(envs) == 0 {
		return false, nil
	}
	m, err := newMessage(envs, time.Now())
	if err != nil {
		return false, err
	}
	var dup bool
	err = db.write(ctx, func(tx *txn) error {
		var err error
		dup, err = db.enqueue(ctx, tx, m)
		return err
	})
	if err != nil {
		return false, wrap("enqueue", err)
	}
	return dup, nil
}

// message is one Enqueue call, checked and normalised.
type message struct {
	sender    string
	senderDev uint32
	id        string
	now       time.Time
	envs      []store.Envelope
	// perDevice counts the envelopes for each recipient device, in a
	// fixed order (so that a backend with row locks takes them in order).
	perDevice []deviceCount
}

type deviceKey struct {
	handle string
	id     uint32
}

type deviceCount struct {
	deviceKey
	n int
}

func newMessage(envs []store.Envelope, now time.Time) (*message, error) {
	m := &message{
		sender:    norm(envs[0].Sender),
		senderDev: envs[0].SenderDevice,
		id:        envs[0].MessageID,
		now:       now,
		envs:      make([]store.Envelope, len(envs)),
	}
	counts := make(map[deviceKey]int, len(envs))
	for i, e := range envs {
		e.Sender = norm(e.Sender)
		e.Recipient = norm(e.Recipient)
		if e.Sender != m.sender || e.SenderDevice != m.senderDev || e.MessageID != m.id {
			return nil, errors.New("sqlitestore: enqueue: envelopes of one message differ in sender, sender device or message id")
		}
		if e.ServerTime.IsZero() {
			e.ServerTime = now
		}
		m.envs[i] = e
		counts[deviceKey{e.Recipient, e.RecipientDevice}]++
	}
	for k, n := range counts {
		m.perDevice = append(m.perDevice, deviceCount{k, n})
	}
	slices.SortFunc(m.perDevice, func(a, b deviceCount) int {
		return cmp.Or(strings.Compare(a.handle, b.handle), cmp.Compare(a.id, b.id))
	})
	return m, nil
}

// enqueue stores one message in tx: the dedup record, the queue counts,
// the envelopes. It is the unit a group commit would batch.
func (db *DB) enqueue(ctx context.Context, tx *txn, m *message) (duplicate bool, err error) {
	res, err := tx.ExecContext(ctx, qDedupInsert, m.sender, int64(m.senderDev), m.id, micros(m.now))
	if err != nil {
		return false, err
	}
	if n, err := res.RowsAffected(); err != nil {
		return false, err
	} else if n == 0 {
		return true, nil
	}
	for _, d := range m.perDevice {
		res, err := tx.ExecContext(ctx, qQueueReserve, d.n, d.handle, int64(d.id), d.n, db.maxQueue)
		if err != nil {
			return false, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return false, err
		}
		if n == 1 {
			continue
		}
		ok, err := deviceExists(ctx, tx, d.handle, d.id)
		if err != nil {
			return false, err
		}
		if !ok {
			return false, fmt.Errorf("sqlitestore: recipient device %s/%d: %w", d.handle, d.id, store.ErrNotFound)
		}
		return false, fmt.Errorf("sqlitestore: recipient device %s/%d: %w", d.handle, d.id, store.ErrQueueFull)
	}
	// Rows get seqs in the order of envs.
	for _, e := range m.envs {
		if _, err := tx.ExecContext(ctx, qEnvelopeInsert, e.Recipient, int64(e.RecipientDevice), m.id, m.sender,
			int64(m.senderDev), nonNil(e.Ciphertext), micros(e.ServerTime), expiresMicros(e.Expires)); err != nil {
			return false, err
		}
	}
	return false, nil
}

// Pending implements store.Store.
func (db *DB) Pending(ctx context.Context, handle string, device uint32, after int64, limit int) ([]store.Envelope, error) {
	if limit <= 0 {
		return nil, nil
	}
	h := norm(handle)
	rows, err := db.r.QueryContext(ctx, qPending, h, int64(device), after, limit)
	if err != nil {
		return nil, wrap("pending", err)
	}
	defer rows.Close()
	var envs []store.Envelope
	for rows.Next() {
		e := store.Envelope{Recipient: h, RecipientDevice: device}
		var senderDev, st int64
		if err := rows.Scan(&e.Seq, &e.MessageID, &e.Sender, &senderDev, &e.Ciphertext, &st); err != nil {
			return nil, wrap("pending", err)
		}
		e.SenderDevice = uint32(senderDev)
		e.ServerTime = fromMicros(st)
		envs = append(envs, e)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("pending", err)
	}
	return envs, nil
}

// Ack implements store.Store.
func (db *DB) Ack(ctx context.Context, handle string, device uint32, seqs []int64) error {
	if len(seqs) == 0 {
		return nil
	}
	h := norm(handle)
	err := db.write(ctx, func(tx *txn) error {
		var deleted int64
		for _, seq := range seqs {
			res, err := tx.ExecContext(ctx, qAckOne, h, int64(device), seq)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			deleted += n
		}
		if deleted == 0 {
			return nil
		}
		_, err := tx.ExecContext(ctx, qQueueRelease, deleted, h, int64(device))
		return err
	})
	return wrap("ack", err)
}
