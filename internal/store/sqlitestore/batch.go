package sqlitestore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Group commit.
//
// SQLite has one writer, and with synchronous=FULL every commit waits for
// an fsync of the write-ahead log. One transaction per Enqueue or Ack
// therefore caps the whole server at the disk's fsyncs per second. Instead,
// every write (db.write) joins a queue, and whoever takes the writer
// becomes the leader: it runs every queued write, up to maxBatch, in one
// transaction, each under its own SAVEPOINT, and commits once. A write
// whose function fails is rolled back to its savepoint and fails alone
// (a full queue, an unknown device); the others commit. Each caller gets
// its answer only after the commit that holds its change, so a method
// still returns only once its change is durable. While one batch waits for
// its fsync, the next one gathers: under load a commit carries many
// writes, and with one writer at a time nothing waits for a timer.
//
// A savepoint costs two statements. Enqueue and Ack, the writes of every
// message, run as plain writes (writePlain): without a savepoint, since
// they fail only before their first statement (or ask for a savepoint
// then); a plain write that fails after one fails the batch.
//
// After the commit, before any caller has its answer, the leader hands
// the committed changes to the queue tails (tail.go) in commit order; the
// queue counts (counts.go) follow each write and savepoint as they run.

// maxBatch bounds the writes one transaction carries, which bounds the
// wait of the last of them and the size of one commit.
const maxBatch = 512

// SQL of the savepoint around each write in a batch (prepared at Open).
const (
	qSavepoint  = `SAVEPOINT w`
	qRelease    = `RELEASE w`
	qRollbackTo = `ROLLBACK TO w`
)

// writeOp is one write waiting for a commit.
type writeOp struct {
	ctx  context.Context
	fn   func(tx *txn) error
	err  error
	done chan struct{} // closed once err (or panicked) is final
	// panicked is what fn panicked with: the caller panics with it in its
	// own goroutine, as it would have without group commit.
	panicked any
	// q is what fn did to device queues, for the tail cache (tail.go).
	q queueChanges
	// plain: fn runs without a savepoint (writePlain).
	plain bool
	// taken is set, under committer.mu, when a leader has claimed the
	// write: from then on the caller waits for done even if its context
	// ends, because the write may commit.
	taken bool
}

// committer is the queue of writes and the right to lead a batch.
type committer struct {
	mu    sync.Mutex
	queue []*writeOp
	lead  chan struct{} // capacity one: holding a value is leading

	commits atomic.Int64 // transactions committed by leaders
	writes  atomic.Int64 // writes they carried
}

func newCommitter() *committer { return &committer{lead: make(chan struct{}, 1)} }

// groupWrite runs fn in a write transaction shared with the writes queued
// beside it, and returns once that transaction committed (fn's error, or
// the commit's, or ctx's error if ctx ended before a leader claimed it).
func (db *DB) groupWrite(ctx context.Context, fn func(tx *txn) error, plain bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := db.commits
	op := &writeOp{ctx: ctx, fn: fn, done: make(chan struct{}), plain: plain}
	c.mu.Lock()
	c.queue = append(c.queue, op)
	c.mu.Unlock()
	for {
		select {
		case <-op.done:
			return op.result()
		case c.lead <- struct{}{}:
			func() {
				defer func() { <-c.lead }()
				db.runBatch()
			}()
			// op went in this batch or an earlier one, or is still
			// queued behind a full batch: then lead again or wait.
		case <-ctx.Done():
			c.mu.Lock()
			if !op.taken {
				c.remove(op)
				c.mu.Unlock()
				return ctx.Err()
			}
			c.mu.Unlock()
			<-op.done
			return op.result()
		}
	}
}

// result is the answer of a finished op.
func (op *writeOp) result() error {
	if op.panicked != nil {
		panic(op.panicked)
	}
	return op.err
}

// CommitStats returns how many group-commit transactions committed so
// far and how many writes they carried (zero with Options.SerialWrites):
// writes/commits is the mean batch size.
func (db *DB) CommitStats() (commits, writes int64) {
	if db.commits == nil {
		return 0, 0
	}
	return db.commits.commits.Load(), db.commits.writes.Load()
}

// remove drops an unclaimed op from the queue; c.mu is held.
func (c *committer) remove(op *writeOp) {
	for i, o := range c.queue {
		if o == op {
			c.queue = append(c.queue[:i], c.queue[i+1:]...)
			return
		}
	}
}

// claim takes up to maxBatch writes from the head of the queue.
func (c *committer) claim() []*writeOp {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := min(len(c.queue), maxBatch)
	if n == 0 {
		return nil
	}
	batch := make([]*writeOp, n)
	copy(batch, c.queue)
	for _, op := range batch {
		op.taken = true
	}
	// Keep the rest in a fresh slice, so that the claimed ops are not
	// held by the queue's backing array.
	c.queue = append([]*writeOp(nil), c.queue[n:]...)
	return batch
}

// runBatch is the leader's work: claim the queued writes, run them in one
// transaction and commit, then give every caller its answer. Whatever
// happens every claimed write gets an answer and the transaction does not
// stay open: if a write function panics, the transaction is rolled back,
// its caller panics in its own goroutine and the others fail.
func (db *DB) runBatch() {
	batch := db.commits.claim()
	if len(batch) == 0 {
		return
	}
	cur := -1 // the write whose function is running
	defer func() {
		if p := recover(); p != nil {
			for i, op := range batch {
				if i == cur {
					op.panicked = p
				} else {
					op.err = fmt.Errorf("sqlitestore: group commit: a write in the same transaction panicked: %v", p)
				}
			}
		}
		for _, op := range batch {
			close(op.done)
		}
	}()
	// The batch's statements run under a context that never ends: SQLite
	// answers a cancelled statement inside a transaction by rolling the
	// whole transaction back (sqlite3_interrupt), which would undo the
	// other callers' writes. A caller's context is checked before its
	// write runs instead.
	ctx := context.Background()
	tx, err := db.w.begin(ctx, nil)
	if err != nil {
		for _, op := range batch {
			op.err = fmt.Errorf("sqlitestore: begin: %w", err)
		}
		return
	}
	tx.batchCtx = ctx
	tx.counts = db.counts
	committed := false
	defer func() {
		if !committed {
			tx.Rollback()
			db.counts.rollback(0)
		}
	}()
	if err := db.counts.begin(ctx, tx); err != nil {
		for _, op := range batch {
			op.err = err
		}
		return
	}

	// Alone, a write needs no savepoint: its failure rolls the transaction
	// back. A plain write (writePlain) needs none either: it fails before
	// changing anything, or asks for one (errNeedSavepoint).
	alone := len(batch) == 1
	ok := make([]bool, len(batch))
	anyOK := false
	for i, op := range batch {
		if op.err = op.ctx.Err(); op.err != nil {
			continue
		}
		if alone || op.plain {
			m := db.counts.mark()
			tx.q, tx.executed, tx.undoable = &op.q, false, alone
			cur = i
			op.err = op.fn(tx)
			cur = -1
			switch {
			case op.err == nil:
				ok[i], anyOK = true, true
				continue
			case alone:
				return // the deferred rollback ends tx
			case tx.executed:
				// A plain write failed after running a statement (a
				// disk error): nothing of the batch can commit.
				abort(batch, ok, i+1, op.err)
				return
			}
			db.counts.rollback(m)
			op.q.reset()
			if !errors.Is(op.err, errNeedSavepoint) {
				continue
			}
			// Run it again under a savepoint.
		}
		if _, err := tx.ExecContext(ctx, qSavepoint); err != nil {
			abort(batch, ok, i, err)
			return
		}
		m := db.counts.mark()
		tx.q, tx.undoable = &op.q, true
		cur = i
		op.err = op.fn(tx)
		cur = -1
		if op.err != nil {
			// Undo this write only; the savepoint stays on the stack
			// until released.
			op.q.reset()
			db.counts.rollback(m)
			if _, err := tx.ExecContext(ctx, qRollbackTo); err != nil {
				abort(batch, ok, i+1, err)
				return
			}
		} else {
			ok[i], anyOK = true, true
		}
		if _, err := tx.ExecContext(ctx, qRelease); err != nil {
			abort(batch, ok, i+1, err)
			return
		}
	}
	if !anyOK {
		return // every write failed: nothing to commit (the deferred rollback ends tx)
	}
	committed = true
	if err := tx.Commit(); err != nil {
		// What the disk holds now is not known.
		db.counts.committed(false)
		db.tails.clear()
		for i, op := range batch {
			if ok[i] {
				op.err = fmt.Errorf("sqlitestore: commit: %w", err)
			}
		}
		return
	}
	db.counts.committed(true)
	// The tail cache learns the batch's changes in commit order, before
	// any caller has its answer (and before the next batch can commit).
	changes := make([]*queueChanges, 0, len(batch))
	for i, k := range ok {
		if k {
			changes = append(changes, &batch[i].q)
		}
	}
	db.tails.apply(changes...)
	db.commits.commits.Add(1)
	db.commits.writes.Add(int64(len(changes)))
}

// abort fails a batch whose transaction broke (a savepoint statement
// failed: SQLite rolled the transaction back, after a disk error for
// instance): the writes that had succeeded are lost with it, and those
// from index next on never ran.
func abort(batch []*writeOp, ok []bool, next int, cause error) {
	err := fmt.Errorf("sqlitestore: group commit: %w", cause)
	for i, op := range batch {
		if ok[i] || i >= next {
			op.err = err
		}
	}
}
