package sqlitestore

import (
	"context"
	"fmt"
	"sync"

	"github.com/parleychat/parley/internal/store"
)

// Queue counts in memory.
//
// Enqueue refuses a device that is not current (ErrNotFound) or whose
// queue holds MaxQueue envelopes (ErrQueueFull). The writer keeps, for
// every current device, how many envelopes it has queued: loaded from the
// tables at Open, changed by the writes that insert or delete devices and
// envelopes, inside their transaction. Enqueue and Ack then need no
// statement for the check and the count (once a counter column updated by
// each of them, a fifth of their CPU time). Like the read cache
// (cache.go), this assumes that this process is the only writer of the
// database file.
//
// The counts follow the transaction: every change is logged, and undone
// when the write's savepoint or the whole transaction rolls back; a commit
// clears the log. A commit that fails leaves the file's state unknown: the
// counts are loaded again from the tables at the start of the next
// transaction. The map holds one entry per current device.
type queueCounts struct {
	mu    sync.Mutex // the writer alone uses it; the lock keeps tests' reads ordered
	n     map[deviceKey]int
	undo  []countUndo
	stale bool // load again before use
}

// countUndo restores one entry.
type countUndo struct {
	k       deviceKey
	n       int
	existed bool
}

// qQueueCounts counts every current device's envelopes.
const qQueueCounts = `SELECT d.handle, d.id,
	(SELECT COUNT(*) FROM envelopes e WHERE e.recipient = d.handle AND e.recipient_device = d.id)
	FROM devices d`

// load reads the counts from the database (in the write transaction, or
// at Open before any).
func (c *queueCounts) load(ctx context.Context, q rowsQuerier) error {
	rows, err := q.QueryContext(ctx, qQueueCounts)
	if err != nil {
		return fmt.Errorf("sqlitestore: queue counts: %w", err)
	}
	defer rows.Close()
	n := make(map[deviceKey]int)
	for rows.Next() {
		var (
			k   deviceKey
			id  int64
			cnt int
		)
		if err := rows.Scan(&k.handle, &id, &cnt); err != nil {
			return fmt.Errorf("sqlitestore: queue counts: %w", err)
		}
		k.id = uint32(id)
		n[k] = cnt
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlitestore: queue counts: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n, c.undo, c.stale = n, nil, false
	return nil
}

// begin is called at the start of each write transaction: it loads the
// counts again if a failed commit left them unknown.
func (c *queueCounts) begin(ctx context.Context, tx *txn) error {
	c.mu.Lock()
	stale := c.stale
	c.mu.Unlock()
	if !stale {
		return nil
	}
	return c.load(ctx, tx)
}

// get returns a device's count, and whether the device is current.
func (c *queueCounts) get(k deviceKey) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.n[k]
	return n, ok
}

// logLocked records how to undo a change of k; c.mu is held.
func (c *queueCounts) logLocked(k deviceKey) {
	n, ok := c.n[k]
	c.undo = append(c.undo, countUndo{k, n, ok})
}

// added records a new device, with an empty queue.
func (c *queueCounts) added(k deviceKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.logLocked(k)
	c.n[k] = 0
}

// removed records a device removed.
func (c *queueCounts) removed(k deviceKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.logLocked(k)
	delete(c.n, k)
}

// add changes a current device's count by d.
func (c *queueCounts) add(k deviceKey, d int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.n[k]; ok {
		c.logLocked(k)
		c.n[k] = n + d
	}
}

// check returns nil if every device of ds is current and has room for
// its envelopes within limit; else ErrNotFound or ErrQueueFull, for the
// first device that fails. It takes the lock once for a whole message.
func (c *queueCounts) check(ds []deviceCount, limit int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.checkLocked(ds, limit)
}

func (c *queueCounts) checkLocked(ds []deviceCount, limit int) error {
	for _, d := range ds {
		n, ok := c.n[d.deviceKey]
		if !ok {
			return fmt.Errorf("sqlitestore: recipient device %s/%d: %w", d.handle, d.id, store.ErrNotFound)
		}
		if n+d.n > limit {
			return fmt.Errorf("sqlitestore: recipient device %s/%d: %w", d.handle, d.id, store.ErrQueueFull)
		}
	}
	return nil
}

// addAll is check, then, if it passes, adds each device's envelopes to
// its count.
func (c *queueCounts) addAll(ds []deviceCount, limit int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.checkLocked(ds, limit); err != nil {
		return err
	}
	for _, d := range ds {
		c.logLocked(d.deviceKey)
		c.n[d.deviceKey] += d.n
	}
	return nil
}

// mark returns the point to roll back to if the write about to run fails.
func (c *queueCounts) mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.undo)
}

// rollback undoes the changes since mark m (0: the whole transaction).
func (c *queueCounts) rollback(m int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.undo) - 1; i >= m; i-- {
		u := c.undo[i]
		if u.existed {
			c.n[u.k] = u.n
		} else {
			delete(c.n, u.k)
		}
	}
	c.undo = c.undo[:m]
}

// committed is called after the transaction committed (ok) or after its
// commit failed (the counts are then loaded again).
func (c *queueCounts) committed(ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.undo = c.undo[:0]
	if !ok {
		c.stale = true
	}
}
