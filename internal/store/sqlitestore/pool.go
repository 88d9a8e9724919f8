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
// transaction's own connection).
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
}

// stmtCtx is the context a statement of t runs under.
func (t *txn) stmtCtx(ctx context.Context) context.Context {
	if t.batchCtx != nil {
		return t.batchCtx
	}
	return ctx
}

func (t *txn) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	ctx = t.stmtCtx(ctx)
	if st := t.p.prepared[q]; st != nil {
		return t.Tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.Tx.ExecContext(ctx, q, args...)
}

func (t *txn) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	ctx = t.stmtCtx(ctx)
	if st := t.p.prepared[q]; st != nil {
		return t.Tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.Tx.QueryRowContext(ctx, q, args...)
}

func (t *txn) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	ctx = t.stmtCtx(ctx)
	if st := t.p.prepared[q]; st != nil {
		return t.Tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return t.Tx.QueryContext(ctx, q, args...)
}
