package pgstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/parleychat/parley/internal/store"
)

// The queue's statements.
const (
	// qEnqueue stores one message (migrations/0002_enqueue.sql, with the
	// expiry of 0003_envelope_expiry.sql); it returns whether the message
	// id was seen before.
	qEnqueue = `SELECT parley_enqueue($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`
	qPending = `SELECT seq, message_id, sender, sender_device, ciphertext, server_time FROM envelopes
		WHERE recipient = $1 AND recipient_device = $2 AND seq > $3 ORDER BY seq LIMIT $4`
)

// Enqueue implements store.Store.
//
// One statement, one transaction (parley_enqueue): the message id goes
// into dedup (a concurrent retry of the same message waits on that row,
// then finds it); then each recipient device's queue count goes up, in
// (handle, id) order, which takes the devices' row locks until commit;
// then the envelopes are inserted, drawing their seqs from the envelopes'
// identity sequence while those locks are held. Two enqueues to one
// device therefore draw seqs in the order they commit.
func (db *DB) Enqueue(ctx context.Context, envs []store.Envelope) (bool, error) {
	if len(envs) == 0 {
		return false, nil
	}
	m, err := newMessage(envs, time.Now())
	if err != nil {
		return false, err
	}
	var dup bool
	err = db.retry(ctx, func() error {
		var err error
		dup, err = db.enqueue(ctx, db.pool, m)
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
	// The envelopes as columns, in the order given.
	recipients  []string
	devices     []int64
	ciphertexts [][]byte
	times       []time.Time
	expires     *time.Time // nil: the envelopes do not expire
	// The recipient devices, sorted by handle then id (the order in
	// which their row locks are taken), and their envelope counts.
	lockHandles []string
	lockIDs     []int64
	lockCounts  []int32
}

type deviceKey struct {
	handle string
	id     uint32
}

func newMessage(envs []store.Envelope, now time.Time) (*message, error) {
	if !validText(envs[0].MessageID) || strings.ContainsRune(envs[0].MessageID, utf8.RuneError) {
		return nil, errors.New("pgstore: enqueue: the message id is not UTF-8 text")
	}
	m := &message{
		sender:      norm(envs[0].Sender),
		senderDev:   envs[0].SenderDevice,
		id:          envs[0].MessageID,
		now:         now,
		recipients:  make([]string, len(envs)),
		devices:     make([]int64, len(envs)),
		ciphertexts: make([][]byte, len(envs)),
		times:       make([]time.Time, len(envs)),
	}
	counts := make(map[deviceKey]int, len(envs))
	for i, e := range envs {
		if norm(e.Sender) != m.sender || e.SenderDevice != m.senderDev || e.MessageID != m.id || !e.Expires.Equal(envs[0].Expires) {
			return nil, errors.New("pgstore: enqueue: envelopes of one message differ in sender, sender device, message id or expiry")
		}
		r := norm(e.Recipient)
		m.recipients[i] = r
		m.devices[i] = int64(e.RecipientDevice)
		m.ciphertexts[i] = nonNil(e.Ciphertext)
		m.times[i] = e.ServerTime
		if e.ServerTime.IsZero() {
			m.times[i] = now
		}
		counts[deviceKey{r, e.RecipientDevice}]++
	}
	if t := envs[0].Expires; !t.IsZero() {
		m.expires = &t
	}
	keys := slices.SortedFunc(maps.Keys(counts), func(a, b deviceKey) int {
		return cmp.Or(strings.Compare(a.handle, b.handle), cmp.Compare(a.id, b.id))
	})
	for _, k := range keys {
		m.lockHandles = append(m.lockHandles, k.handle)
		m.lockIDs = append(m.lockIDs, int64(k.id))
		m.lockCounts = append(m.lockCounts, int32(counts[k]))
	}
	return m, nil
}

// enqueue stores one message through q: the pool (a transaction of its
// own) or a transaction.
func (db *DB) enqueue(ctx context.Context, q querier, m *message) (duplicate bool, err error) {
	err = q.QueryRow(ctx, qEnqueue, m.sender, int64(m.senderDev), m.id, m.now, db.maxQueue,
		m.lockHandles, m.lockIDs, m.lockCounts, m.recipients, m.devices, m.ciphertexts, m.times, m.expires).Scan(&duplicate)
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case codeNoDevice:
			return false, fmt.Errorf("pgstore: %s: %w", pe.Message, store.ErrNotFound)
		case codeQueueFull:
			return false, fmt.Errorf("pgstore: %s: %w", pe.Message, store.ErrQueueFull)
		}
	}
	return duplicate, err
}

// Pending implements store.Store.
func (db *DB) Pending(ctx context.Context, handle string, device uint32, after int64, limit int) ([]store.Envelope, error) {
	if limit <= 0 {
		return nil, nil
	}
	h := norm(handle)
	rows, err := db.pool.Query(ctx, qPending, h, int64(device), after, limit)
	if err != nil {
		return nil, wrap("pending", err)
	}
	envs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Envelope, error) {
		e := store.Envelope{Recipient: h, RecipientDevice: device}
		var senderDev int64
		err := r.Scan(&e.Seq, &e.MessageID, &e.Sender, &senderDev, &e.Ciphertext, &e.ServerTime)
		e.SenderDevice = uint32(senderDev)
		e.ServerTime = utc(e.ServerTime)
		return e, err
	})
	if err != nil {
		return nil, wrap("pending", err)
	}
	return envs, nil
}

// Ack implements store.Store, in one statement (one round trip, one
// commit). It takes the device's row lock before it deletes envelopes, the
// order every other writer uses: in qAck the delete runs only once the
// lock is held (a one-time filter on the locking CTE).
func (db *DB) Ack(ctx context.Context, handle string, device uint32, seqs []int64) error {
	if len(seqs) == 0 {
		return nil
	}
	h := norm(handle)
	err := db.retry(ctx, func() error {
		_, err := db.pool.Exec(ctx, qAck, h, int64(device), seqs)
		return err
	})
	return wrap("ack", err)
}

// qAck locks the device's row, deletes its envelopes by seq and releases
// their room in its queue; an unknown device, or seqs that are not its,
// change nothing.
const qAck = `WITH dev AS (
		SELECT 1 FROM devices WHERE handle = $1 AND id = $2 FOR NO KEY UPDATE),
	gone AS (
		DELETE FROM envelopes WHERE recipient = $1 AND recipient_device = $2 AND seq = ANY ($3)
			AND EXISTS (SELECT 1 FROM dev) RETURNING 1)
	UPDATE devices SET queued = queued - (SELECT count(*) FROM gone)
	WHERE handle = $1 AND id = $2 AND EXISTS (SELECT 1 FROM gone)`
