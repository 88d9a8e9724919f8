package sqlitestore

import (
	"cmp"
	"context"
	"errors"
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
	qPending = `SELECT seq, message_id, sender, sender_device, ciphertext, server_time FROM envelopes
		WHERE recipient = ? AND recipient_device = ? AND seq > ? ORDER BY seq LIMIT ?`
	qAckOne = `DELETE FROM envelopes WHERE recipient = ? AND recipient_device = ? AND seq = ?`
	// qAckMany deletes the seqs of a JSON array.
	qAckMany = `DELETE FROM envelopes WHERE recipient = ? AND recipient_device = ?
		AND seq IN (SELECT value FROM json_each(?))`
)

// maxInsertRows bounds the envelopes one INSERT stores: a message with
// more takes several statements.
const maxInsertRows = 8

// qEnvelopeInserts[n] stores n envelopes of one message in one statement:
// each statement has a fixed cost (the driver's call, opening the
// cursors), and one per envelope cost the writer about 5% more CPU time
// with three envelopes a message (BenchmarkWriterBatch). Eight plain
// parameters per envelope: the driver binds a numbered one (?NNN) by
// name, at a cost per parameter that undid the gain, and an INSERT ...
// SELECT FROM (VALUES ...) sharing the message's three was slower still.
// The rows are inserted in VALUES order, and since this connection is the
// only writer AUTOINCREMENT gives them consecutive seqs: the last insert
// rowid and the n-1 before it.
var qEnvelopeInserts = func() (qs [maxInsertRows + 1]string) {
	for n := 1; n <= maxInsertRows; n++ {
		var b strings.Builder
		b.WriteString(`INSERT INTO envelopes
		(recipient, recipient_device, message_id, sender, sender_device, ciphertext, server_time, expires) VALUES `)
		for i := range n {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?)")
		}
		qs[n] = b.String()
	}
	return qs
}()

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
	if !tx.undoable && db.counts.check(m.perDevice, db.maxQueue) != nil {
		return false, errNeedSavepoint // a duplicate, or an error
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
	if err := db.counts.addAll(m.perDevice, db.maxQueue); err != nil {
		return false, err
	}
	// Rows get seqs in the order of envs.
	args := make([]any, 0, 8*min(len(m.envs), maxInsertRows))
	for rest := m.envs; len(rest) > 0; {
		chunk := rest[:min(len(rest), maxInsertRows)]
		rest = rest[len(chunk):]
		args = args[:0]
		for _, e := range chunk {
			args = append(args, e.Recipient, int64(e.RecipientDevice), m.id, m.sender, int64(m.senderDev),
				nonNil(e.Ciphertext), micros(e.ServerTime), expiresMicros(e.Expires))
		}
		res, err := tx.ExecContext(ctx, qEnvelopeInserts[len(chunk)], args...)
		if err != nil {
			return false, err
		}
		if tx.q == nil {
			continue
		}
		last, err := res.LastInsertId()
		if err != nil {
			return false, err
		}
		for i, e := range chunk {
			// As Pending reads it back (tail.go).
			tx.q.added = append(tx.q.added, store.Envelope{
				Seq: last - int64(len(chunk)-1-i), MessageID: m.id, Sender: m.sender, SenderDevice: m.senderDev,
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

// Ack implements store.Store.
func (db *DB) Ack(ctx context.Context, handle string, device uint32, seqs []int64) error {
	if len(seqs) == 0 {
		return nil
	}
	return wrap("ack", db.writePlain(ctx, db.ack(ctx, norm(handle), device, seqs)))
}

// ackSingly is the most seqs an Ack deletes one statement each (qAckOne);
// more take one statement (qAckMany). For the short Acks of a connected
// device, json_each's parsing cost more than the statements it saves
// (about a quarter more CPU time per seq for two and three seqs).
const ackSingly = 4

// ack is the write of an Ack of seqs (not empty) by device h/device.
func (db *DB) ack(ctx context.Context, h string, device uint32, seqs []int64) func(tx *txn) error {
	var list string // seqs as a JSON array, for qAckMany
	if len(seqs) > ackSingly {
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
	return func(tx *txn) error {
		var deleted int64
		del := func(q string, args ...any) error {
			res, err := tx.ExecContext(ctx, q, args...)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			deleted += n
			return err
		}
		if list != "" {
			if err := del(qAckMany, h, int64(device), list); err != nil {
				return err
			}
		} else {
			for _, seq := range seqs {
				if err := del(qAckOne, h, int64(device), seq); err != nil {
					return err
				}
			}
		}
		if deleted == 0 {
			return nil
		}
		k := deviceKey{h, device}
		db.counts.add(k, -int(deleted))
		if tx.q != nil {
			tx.q.removed = append(tx.q.removed, deviceSeqs{k, seqs})
		}
		return nil
	}
}
