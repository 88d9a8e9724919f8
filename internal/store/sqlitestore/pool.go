package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
)

// pool is a database/sql pool with the hot statements prepared once, so
// the hot paths skip SQLite's parser (a third of Enqueue's CPU time when
// every statement was parsed anew). Any other query runs unprepared.
//
// Statements are prepared at Open, outside any transaction:
// preparing through the writer pool inside a transaction would wait for
// its only connection forever. Inside a transaction, Tx.StmtContext reuses
// the statement already prepared on that connection (or prepares it on the
// transaction's own connection), once per transaction (txn.stmt).
type pool struct {
	*sql.DB
	prepared map[string]*sql.Stmt
}

// prepare prepares queries on the pool; they must be valid against the
// current schema.
func (p *pool) prepare(ctx context.Context, queries []string) error {
	if p.prepared == nil {
		p.prepared = make(map[string]*sql.Stmt, len(queries))
	}
	for _, q := range queries {
		st, err := p.DB.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("sqlitestore: prepare %q: %w", q, err)
		}
		p.prepared[q] = st
	}
	return nil
}

func (p *pool) closeStmts() {
	for _, st := range p.prepared {
		st.Close()
	}
}

// Close closes the statements and the pool.
func (p *pool) Close() error {
	p.closeStmts()
	return p.DB.Close()
}

func (p *pool) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	if st := p.prepared[q]; st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return p.DB.QueryRowContext(ctx, q, args...)
}

func (p *pool) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := p.prepared[q]; st != nil {
		return st.QueryContext(ctx, args...)
	}
	return p.DB.QueryContext(ctx, q, args...)
}

// begin starts a transaction that uses the pool's prepared statements.
func (p *pool) begin(ctx context.Context, opts *sql.TxOptions) (*txn, error) {
	tx, err := p.DB.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &txn{Tx: tx, p: p}, nil
}

// txn is a transaction on a pool.
type txn struct {
	*sql.Tx
	p *pool
	// batchCtx, when set, replaces the context of every statement: in a
	// group commit (batch.go) no caller's context may interrupt a
	// statement, since SQLite would roll back everyone's transaction.
	batchCtx context.Context
	// q collects what the running write does to device queues, applied
	// to the tail cache (tail.go) once committed; nil records nothing.
	q *queueChanges
	// counts are the queue counts (counts.go), which follow the
	// transaction.
	counts *queueCounts
	// undoable: an error from the running write undoes its changes (it
	// has a savepoint or the transaction to itself); see writePlain.
	undoable bool
	// executed is set by every ExecContext, whether it succeeded or not
	// (a failed statement may have rolled the whole transaction back).
	executed bool
	// stmts are the prepared statements bound to the transaction so far:
	// a group commit runs the same few for hundreds of writes.
	stmts map[string]*sql.Stmt
}

// stmt returns the transaction's binding of prepared statement q, or nil
// if q is not prepared. The transaction closes them when it ends.
func (t *txn) stmt(ctx context.Context, q string) *sql.Stmt {
	if st := t.stmts[q]; st != nil {
		return st
	}
	st := t.p.prepared[q]
	if st == nil {
		return nil
	}
	if t.stmts == nil {
		t.stmts = make(map[string]*sql.Stmt, 8)
	}
	ts := t.Tx.StmtContext(ctx, st)
	t.stmts[q] = ts
	return ts
}

// stmtCtx is the context a statement of t runs under.
func (t *txn) stmtCtx(ctx context.Context) context.Context {
	if t.batchCtx != nil {
		return t.batchCtx
	}
	return ctx
}

func (t *txn) ExecContext(ctx context.Context, q string, args ...any) (res sql.Result, err error) {
	ctx = t.stmtCtx(ctx)
	if st := t.stmt(ctx, q); st != nil {
		res, err = st.ExecContext(ctx, args...)
	} else {
		res, err = t.Tx.ExecContext(ctx, q, args...)
	}
	t.executed = true
	return res, err
}

func (t *txn) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	ctx = t.stmtCtx(ctx)
	if st := t.stmt(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.Tx.QueryRowContext(ctx, q, args...)
}

func (t *txn) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	ctx = t.stmtCtx(ctx)
	if st := t.stmt(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.Tx.QueryContext(ctx, q, args...)
}
