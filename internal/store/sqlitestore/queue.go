package sqlitestore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/parleychat/parley/internal/store"
)

// The queue's hot statements, prepared at Open.
const (
	qDedupInsert = `INSERT INTO dedup (sender, sender_device, message_id, created) VALUES (?, ?, ?, ?)
		ON CONFLICT DO NOTHING`
	qEnvelopeInsert = `INSERT INTO envelopes
		(recipient, recipient_device, message_id, sender, sender_device, ciphertext, server_time, expires)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
	qPending = `SELECT seq, message_id, sender, sender_device, ciphertext, server_time FROM envelopes
		WHERE recipient = ? AND recipient_device = ? AND seq > ? ORDER BY seq LIMIT ?`
	qAckOne = `DELETE FROM envelopes WHERE recipient = ? AND recipient_device = ? AND seq = ?`
	// qAckMany deletes the seqs of a JSON array.
	qAckMany = `DELETE FROM envelopes WHERE recipient = ? AND recipient_device = ?
		AND seq IN (SELECT value FROM json_each(?))`
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
	err = db.writePlain(ctx, func(tx *txn) error {
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

// enqueue stores one message in tx: the dedup record, the queue counts
// (counts.go), the envelopes. It is the unit a group commit batches, as
// a plain write (writePlain): without a savepoint it checks first that
// the message can be stored, and asks for one if not.
func (db *DB) enqueue(ctx context.Context, tx *txn, m *message) (duplicate bool, err error) {
	if !tx.undoable {
		for _, d := range m.perDevice {
			if n, ok := db.counts.get(d.deviceKey); !ok || n+d.n > db.maxQueue {
				return false, errNeedSavepoint // a duplicate, or an error
			}
		}
	}
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
		n, ok := db.counts.get(d.deviceKey)
		if !ok {
			return false, fmt.Errorf("sqlitestore: recipient device %s/%d: %w", d.handle, d.id, store.ErrNotFound)
		}
		if n+d.n > db.maxQueue {
			return false, fmt.Errorf("sqlitestore: recipient device %s/%d: %w", d.handle, d.id, store.ErrQueueFull)
		}
	}
	for _, d := range m.perDevice {
		db.counts.add(d.deviceKey, d.n)
	}
	// Rows get seqs in the order of envs.
	for _, e := range m.envs {
		res, err := tx.ExecContext(ctx, qEnvelopeInsert, e.Recipient, int64(e.RecipientDevice), m.id, m.sender,
			int64(m.senderDev), nonNil(e.Ciphertext), micros(e.ServerTime), expiresMicros(e.Expires))
		if err != nil {
			return false, err
		}
		if tx.q != nil {
			seq, err := res.LastInsertId()
			if err != nil {
				return false, err
			}
			// As Pending reads it back (tail.go).
			tx.q.added = append(tx.q.added, store.Envelope{
				Seq: seq, MessageID: m.id, Sender: m.sender, SenderDevice: m.senderDev,
				Recipient: e.Recipient, RecipientDevice: e.RecipientDevice,
				Ciphertext: e.Ciphertext, ServerTime: fromMicros(micros(e.ServerTime)),
			})
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
	k := deviceKey{h, device}
	if envs, ok := db.tails.pending(k, after, limit); ok { // tail.go
		return envs, nil
	}
	f := db.tails.beginFill(k)
	envs, err := db.pendingSQL(ctx, h, device, after, limit)
	if err != nil {
		return nil, err
	}
	db.tails.endFill(k, f, after, limit, envs)
	return envs, nil
}

// pendingSQL is Pending read from the database.
func (db *DB) pendingSQL(ctx context.Context, h string, device uint32, after int64, limit int) ([]store.Envelope, error) {
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

// Ack implements store.Store: one DELETE for all of seqs.
func (db *DB) Ack(ctx context.Context, handle string, device uint32, seqs []int64) error {
	if len(seqs) == 0 {
		return nil
	}
	h := norm(handle)
	var list string // seqs as a JSON array, for qAckMany
	if len(seqs) > 1 {
		b := make([]byte, 0, 1+len(seqs)*8)
		b = append(b, '[')
		for i, seq := range seqs {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, seq, 10)
		}
		list = string(append(b, ']'))
	}
	err := db.writePlain(ctx, func(tx *txn) error { // one statement
		var (
			res sql.Result
			err error
		)
		if len(seqs) == 1 {
			res, err = tx.ExecContext(ctx, qAckOne, h, int64(device), seqs[0])
		} else {
			res, err = tx.ExecContext(ctx, qAckMany, h, int64(device), list)
		}
		if err != nil {
			return err
		}
		deleted, err := res.RowsAffected()
		if err != nil || deleted == 0 {
			return err
		}
		k := deviceKey{h, device}
		db.counts.add(k, -int(deleted))
		if tx.q != nil {
			tx.q.removed = append(tx.q.removed, deviceSeqs{k, seqs})
		}
		return nil
	})
	return wrap("ack", err)
}
