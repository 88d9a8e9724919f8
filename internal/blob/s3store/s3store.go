// Package s3store is the blob store of a cluster: the bytes of each blob
// live in an S3-compatible bucket, its metadata in the `blobs` table of the
// PostgreSQL database the nodes share (pgstore migration 0004). Any node
// can therefore resume an upload another node began, serve a download,
// count a quota or expire a blob, which a folder on one node's disk
// (diskstore) cannot do.
//
// A blob's bytes are segments, one object per append, or per SegmentSize
// bytes of a long one, named <prefix><id>/<start offset as 16 hex
// digits>.<8 characters of the append's lease token>: the token keeps an
// append that lost its lease from overwriting, or deleting, the object of
// the append that took over at the same offset.
// An object is written whole and acknowledged by the service before the
// row records it, so what the row says was received is durable; S3 has no
// append, and multipart uploads would need parts of at least 5 MiB, which
// resumable appends of any length cannot promise. The running SHA-256
// state is kept in the row after each segment, so Finish needs no re-read.
//
// An append holds a lease on its row (busy_until, renewed while it runs,
// judged by the database's clock), so a second append or a finish is
// refused with blob.ErrBusy on every node, and a node that dies mid-append
// blocks the blob only until the lease runs out. Objects whose row is gone
// (a delete racing an append, a node dying between its PUT and its UPDATE)
// are deleted where they are noticed; Sweep, which parleyd runs hourly,
// deletes those that were not (sweep.go), and a bucket lifecycle rule that
// deletes objects older than the longest blob lifetime is an optional
// belt-and-braces (docs/OPERATIONS.md).
package s3store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/internal/blob"
	"github.com/parleychat/parley/internal/s3"
)

// Objects is what the store needs of a bucket; *s3.Client provides it.
type Objects interface {
	// Put stores data under key, durably once it returns nil.
	Put(ctx context.Context, key string, data []byte) error
	// Get reads key from offset to its end.
	Get(ctx context.Context, key string, offset int64) (io.ReadCloser, error)
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List returns a page of the keys under a prefix (Sweep uses it).
	List(ctx context.Context, o s3.ListOptions) (s3.ListPage, error)
}

// Defaults of Options.
const (
	// SegmentSize is the most bytes one object holds: an append buffers up
	// to this much in memory before it writes an object.
	SegmentSize = 8 << 20
	// Lease is how long an append holds its blob without renewing; a node
	// that dies mid-append blocks the blob this long at most.
	Lease = 15 * time.Second
)

// Options tune a Store; zero values take the defaults.
type Options struct {
	Prefix      string        // object key prefix, e.g. "blobs/"
	SegmentSize int           // default SegmentSize
	Lease       time.Duration // default Lease
}

// Store is a blob.Store over a bucket and a PostgreSQL table.
type Store struct {
	pool *pgxpool.Pool
	obj  Objects
	log  *slog.Logger
	opt  Options

	mu     sync.Mutex
	closed bool
	ops    sync.WaitGroup

	listKeys int // keys per List page in Sweep; 0 is the service's most (tests lower it)
}

var _ blob.Store = (*Store)(nil)

// Open returns a store over pool, whose database must have pgstore's
// schema (pgstore.Open applies it), and the bucket behind obj. The store
// does not own either: Close leaves them open.
func Open(pool *pgxpool.Pool, obj Objects, logger *slog.Logger, o Options) *Store {
	if o.SegmentSize <= 0 {
		o.SegmentSize = SegmentSize
	}
	if o.Lease <= 0 {
		o.Lease = Lease
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Store{pool: pool, obj: obj, log: logger, opt: o}
}

// begin registers an operation; it fails once the store is closed.
func (s *Store) begin() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return blob.ErrClosed
	}
	s.ops.Add(1)
	return nil
}

// Close waits for operations in progress; later calls fail with
// blob.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.ops.Wait()
	return nil
}

// segment is one object of a blob: bytes [start, end) under key.
type segment struct {
	start, end int64
	key        string
}

// segments pairs the ends and objects columns.
func (s *Store) segments(x row) []segment {
	out := make([]segment, 0, len(x.ends))
	var start int64
	for i, e := range x.ends {
		if i < len(x.objects) {
			out = append(out, segment{start: start, end: e, key: s.opt.Prefix + x.objects[i]})
		}
		start = e
	}
	return out
}

func (s *Store) keys(objects []string) []string {
	ks := make([]string, len(objects))
	for i, o := range objects {
		ks[i] = s.opt.Prefix + o
	}
	return ks
}

func (s *Store) Create(ctx context.Context, m blob.Meta, quota int64) error {
	if !blob.ValidID(m.ID) || m.Size < 1 || m.Owner.Handle == "" {
		return fmt.Errorf("%w: id %q, size %d, owner %q", blob.ErrInvalid, m.ID, m.Size, m.Owner.Handle)
	}
	if err := s.begin(); err != nil {
		return err
	}
	defer s.ops.Done()
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Creates of one account take turns, on every node, so two cannot
		// both fit under the quota that only one fits under.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('parley.blob.quota:' || $1, 0))`, m.Owner.Handle); err != nil {
			return err
		}
		var used int64
		if err := tx.QueryRow(ctx, `SELECT COALESCE(SUM(size), 0) FROM blobs WHERE owner_handle = $1`, m.Owner.Handle).Scan(&used); err != nil {
			return err
		}
		if used+m.Size > quota {
			return fmt.Errorf("%w: %d bytes held, %d more asked, quota %d", blob.ErrQuota, used, m.Size, quota)
		}
		tag, err := tx.Exec(ctx, `
			INSERT INTO blobs (id, owner_handle, owner_device, size, created_ms, expires_ms, lifetime_ns)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING`,
			m.ID, m.Owner.Handle, int64(m.Owner.ID), m.Size, m.Created.UnixMilli(), m.Expires.UnixMilli(), int64(m.Lifetime))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return blob.ErrExists
		}
		return nil
	})
}

// row is a blobs row.
type row struct {
	info    blob.Info
	ends    []int64
	objects []string // names of the segments' objects, under Options.Prefix
	hash    []byte   // hash_state
	busy    bool     // an append holds the lease now
}

const rowColumns = `id, owner_handle, owner_device, size, created_ms, expires_ms, lifetime_ns,
	received, ends, objects, hash_state, complete, sha256, pending, claimed, busy_until > now()`

func scanRow(r pgx.Row) (row, error) {
	var (
		x                          row
		dev                        int64
		created, expires, lifetime int64
		pending, claimed           []byte // JSON
	)
	err := r.Scan(&x.info.ID, &x.info.Owner.Handle, &dev, &x.info.Size, &created, &expires, &lifetime,
		&x.info.Offset, &x.ends, &x.objects, &x.hash, &x.info.Complete, &x.info.SHA256, &pending, &claimed, &x.busy)
	if errors.Is(err, pgx.ErrNoRows) {
		return x, blob.ErrNotFound
	}
	if err != nil {
		return x, err
	}
	x.info.Owner.ID = uint32(dev)
	x.info.Created = time.UnixMilli(created)
	x.info.Expires = time.UnixMilli(expires)
	x.info.Lifetime = time.Duration(lifetime)
	if err := json.Unmarshal(pending, &x.info.Pending); err != nil {
		return x, fmt.Errorf("s3store: blob %s: pending: %w", x.info.ID, err)
	}
	if err := json.Unmarshal(claimed, &x.info.Claimed); err != nil {
		return x, fmt.Errorf("s3store: blob %s: claimed: %w", x.info.ID, err)
	}
	if !x.info.Complete {
		x.info.SHA256 = nil
	}
	if len(x.info.Pending) == 0 {
		x.info.Pending = nil
	}
	if len(x.info.Claimed) == 0 {
		x.info.Claimed = nil
	}
	return x, nil
}

func (s *Store) get(ctx context.Context, q pgx.Tx, id string, lock bool) (row, error) {
	if !blob.ValidID(id) {
		return row{}, blob.ErrNotFound
	}
	sql := `SELECT ` + rowColumns + ` FROM blobs WHERE id = $1`
	if lock {
		sql += ` FOR UPDATE`
	}
	if q != nil {
		return scanRow(q.QueryRow(ctx, sql, id))
	}
	return scanRow(s.pool.QueryRow(ctx, sql, id))
}

func (s *Store) Info(ctx context.Context, id string) (blob.Info, error) {
	if err := s.begin(); err != nil {
		return blob.Info{}, err
	}
	defer s.ops.Done()
	x, err := s.get(ctx, nil, id, false)
	return x.info, err
}

// lease is an append's hold on a blob.
type lease struct {
	s     *Store
	id    string
	token string
	stop  chan struct{}
	done  chan struct{}
}

// acquire takes the blob's lease for an append at offset and returns the
// row as it was.
func (s *Store) acquire(ctx context.Context, id string, offset int64) (*lease, row, error) {
	token := blob.NewID()
	x, err := scanRow(s.pool.QueryRow(ctx, `
		UPDATE blobs SET busy_until = now() + $3 * interval '1 millisecond', busy_token = $2
		WHERE id = $1 AND NOT complete AND busy_until <= now() AND received = $4
		RETURNING `+rowColumns, id, token, s.opt.Lease.Milliseconds(), offset))
	if errors.Is(err, blob.ErrNotFound) {
		// Nothing matched: say why, in the order diskstore does.
		cur, err := s.get(ctx, nil, id, false)
		switch {
		case err != nil:
			return nil, cur, err
		case cur.info.Complete:
			return nil, cur, blob.ErrComplete
		case cur.busy:
			return nil, cur, blob.ErrBusy
		case cur.info.Offset != offset:
			return nil, cur, fmt.Errorf("%w: offset %d, current size %d", blob.ErrOffset, offset, cur.info.Offset)
		}
		return nil, cur, fmt.Errorf("%w: lost a race for the lease", blob.ErrBusy)
	}
	if err != nil {
		return nil, x, err
	}
	l := &lease{s: s, id: id, token: token, stop: make(chan struct{}), done: make(chan struct{})}
	go l.renew()
	return l, x, nil
}

// renew extends the lease every third of its length until release.
func (l *lease) renew() {
	defer close(l.done)
	t := time.NewTicker(l.s.opt.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), l.s.opt.Lease/3)
			_, err := l.s.pool.Exec(ctx, `UPDATE blobs SET busy_until = now() + $3 * interval '1 millisecond'
				WHERE id = $1 AND busy_token = $2`, l.id, l.token, l.s.opt.Lease.Milliseconds())
			cancel()
			if err != nil {
				l.s.log.Warn("s3store: renewing an append's lease", "err", err)
			}
		}
	}
}

// release ends the lease, even when the append's context is done.
func (l *lease) release() {
	close(l.stop)
	<-l.done
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := l.s.pool.Exec(ctx, `UPDATE blobs SET busy_until = '-infinity', busy_token = ''
		WHERE id = $1 AND busy_token = $2`, l.id, l.token); err != nil {
		l.s.log.Warn("s3store: releasing an append's lease", "err", err)
	}
}

func (s *Store) Append(ctx context.Context, id string, offset int64, r io.Reader) (int64, error) {
	if err := s.begin(); err != nil {
		return 0, err
	}
	defer s.ops.Done()
	l, x, err := s.acquire(ctx, id, offset)
	if err != nil {
		if errors.Is(err, blob.ErrOffset) {
			return x.info.Offset, err
		}
		return 0, err
	}
	defer l.release()

	h := sha256.New()
	if len(x.hash) > 0 {
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(x.hash); err != nil {
			return x.info.Offset, fmt.Errorf("s3store: blob %s: hash state: %w", id, err)
		}
	}
	received := x.info.Offset
	buf := make([]byte, 0, min(int64(s.opt.SegmentSize), x.info.Size-received+1))
	for {
		// Fill a segment, at most up to the declared size plus one byte
		// (which tells data beyond the size from data that ends there).
		room := min(int64(s.opt.SegmentSize), x.info.Size-received+1)
		buf = buf[:0]
		var rerr error
		for int64(len(buf)) < room {
			if err := ctx.Err(); err != nil {
				rerr = err
				break
			}
			n, err := r.Read(buf[len(buf):room])
			buf = buf[:len(buf)+n]
			if err != nil {
				rerr = err
				break
			}
		}
		ended := rerr == io.EOF
		if ended {
			rerr = nil
		}
		tooLong := received+int64(len(buf)) > x.info.Size
		if tooLong {
			buf = buf[:x.info.Size-received]
		}
		if len(buf) > 0 {
			// The bytes that arrived are kept even when the reader failed.
			if err := s.putSegment(id, l, h, received, buf); err != nil {
				return received, err
			}
			received += int64(len(buf))
		}
		switch {
		case tooLong:
			return received, fmt.Errorf("%w: declared %d bytes", blob.ErrTooLong, x.info.Size)
		case rerr != nil:
			return received, rerr
		case ended:
			return received, nil
		}
		// A full segment, and more may follow.
	}
}

// tagLen is how many characters of an append's lease token name its
// objects.
const tagLen = 8

// objectName is the name, under Options.Prefix, of the object that holds
// the segment of blob id starting at start, written by the append whose
// lease token is token: <id>/<start as 16 hex digits>.<token[:tagLen]>.
// parseObjectName (sweep.go) reads it back.
func objectName(id string, start int64, token string) string {
	return fmt.Sprintf("%s/%016x.%s", id, start, token[:tagLen])
}

// putSegment writes one segment and records it in the row, under the
// lease. It uses its own context: once bytes arrived, the client leaving
// must not lose them.
func (s *Store) putSegment(id string, l *lease, h hash.Hash, start int64, b []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	name := objectName(id, start, l.token)
	key := s.opt.Prefix + name
	// Hash the segment while it travels (the other core is otherwise idle
	// while Put signs and sends it).
	hashed := make(chan struct{})
	go func() {
		h.Write(b)
		close(hashed)
	}()
	err := s.obj.Put(ctx, key, b)
	<-hashed
	if err != nil {
		return fmt.Errorf("s3store: writing %d bytes of blob %s: %w", len(b), id, err)
	}
	state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return err
	}
	end := start + int64(len(b))
	tag, err := s.pool.Exec(ctx, `
		UPDATE blobs SET ends = array_append(ends, $3), objects = array_append(objects, $6), hash_state = $4
		WHERE id = $1 AND busy_token = $2 AND received = $5`, id, l.token, end, state, start, name)
	if err == nil && tag.RowsAffected() == 0 {
		// Deleted meanwhile, or the lease ran out and another append
		// took the blob over.
		err = blob.ErrNotFound
		var exists bool
		if s.pool.QueryRow(ctx, `SELECT true FROM blobs WHERE id = $1`, id).Scan(&exists) == nil {
			err = fmt.Errorf("%w: the append lost its lease", blob.ErrBusy)
		}
	}
	if err != nil {
		s.deleteObjects(key)
		return err
	}
	return nil
}

// deleteObjects removes objects whose row is gone; a failure only leaves
// garbage for Sweep.
func (s *Store) deleteObjects(keys ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, k := range keys {
		if err := s.obj.Delete(ctx, k); err != nil {
			s.log.Warn("s3store: deleting an object (the orphan sweep will)", "key", k, "err", err)
		}
	}
}

func encodeDevices(ds []blob.Device) []byte {
	if ds == nil {
		ds = []blob.Device{}
	}
	b, _ := json.Marshal(ds)
	return b
}

func (s *Store) Finish(ctx context.Context, id string, f blob.Finish) (blob.Info, error) {
	if err := s.begin(); err != nil {
		return blob.Info{}, err
	}
	defer s.ops.Done()
	var info blob.Info
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		x, err := s.get(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if x.info.Complete {
			if !bytes.Equal(f.SHA256, x.info.SHA256) {
				return fmt.Errorf("%w: finished with another SHA-256", blob.ErrComplete)
			}
			// A retry: add the recipients not named before.
			known := append(slices.Clone(x.info.Pending), x.info.Claimed...)
			var added []blob.Device
			for _, d := range blob.SortDevices(f.Recipients) {
				if !slices.Contains(known, d) {
					added = append(added, d)
				}
			}
			if len(added) > 0 {
				x.info.Pending = blob.SortDevices(append(x.info.Pending, added...))
				if _, err := tx.Exec(ctx, `UPDATE blobs SET pending = $2 WHERE id = $1`, id, encodeDevices(x.info.Pending)); err != nil {
					return err
				}
			}
			info = x.info
			return nil
		}
		if x.busy {
			return blob.ErrBusy
		}
		if x.info.Offset < x.info.Size {
			return fmt.Errorf("%w: %d of %d bytes", blob.ErrIncomplete, x.info.Offset, x.info.Size)
		}
		h := sha256.New()
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(x.hash); err != nil {
			return fmt.Errorf("s3store: blob %s: hash state: %w", id, err)
		}
		if got := h.Sum(nil); !bytes.Equal(got, f.SHA256) {
			return blob.ErrHash
		}
		x.info.Complete = true
		x.info.SHA256 = slices.Clone(f.SHA256)
		x.info.Pending = blob.SortDevices(f.Recipients)
		if len(x.info.Pending) == 0 {
			x.info.Pending = nil
		}
		x.info.Expires = time.UnixMilli(f.Expires.UnixMilli())
		_, err = tx.Exec(ctx, `UPDATE blobs SET complete = true, sha256 = $2, pending = $3, expires_ms = $4, hash_state = NULL
			WHERE id = $1`, id, x.info.SHA256, encodeDevices(x.info.Pending), f.Expires.UnixMilli())
		info = x.info
		return err
	})
	return info, err
}

func (s *Store) Open(ctx context.Context, id string, offset int64) (io.ReadCloser, blob.Info, error) {
	if err := s.begin(); err != nil {
		return nil, blob.Info{}, err
	}
	defer s.ops.Done()
	x, err := s.get(ctx, nil, id, false)
	if err != nil {
		return nil, x.info, err
	}
	if !x.info.Complete {
		return nil, x.info, blob.ErrIncomplete
	}
	if offset < 0 || offset > x.info.Size {
		return nil, x.info, fmt.Errorf("%w: offset %d of %d bytes", blob.ErrInvalid, offset, x.info.Size)
	}
	var segs []segment
	for _, seg := range s.segments(x) {
		if seg.end > offset {
			segs = append(segs, seg)
		}
	}
	r := &reader{ctx: ctx, s: s, id: id, segs: segs, offset: offset}
	// Open the first object now: if the bucket fails, the caller can still
	// answer with an error status instead of a cut-off body.
	if err := r.next(); err != nil {
		return nil, x.info, err
	}
	return r, x.info, nil
}

// reader streams a blob's segments in order, opening each when the one
// before it ends.
type reader struct {
	ctx    context.Context
	s      *Store
	id     string
	segs   []segment
	offset int64 // where the next segment is read from
	cur    io.ReadCloser
}

// next opens the object of the next segment, if there is one.
func (r *reader) next() error {
	if len(r.segs) == 0 {
		return nil
	}
	seg := r.segs[0]
	rc, err := r.s.obj.Get(r.ctx, seg.key, r.offset-seg.start)
	if err != nil {
		return fmt.Errorf("s3store: reading blob %s at %d: %w", r.id, r.offset, err)
	}
	r.cur = rc
	return nil
}

func (r *reader) Read(p []byte) (int, error) {
	for {
		if r.cur == nil {
			if len(r.segs) == 0 {
				return 0, io.EOF
			}
			if err := r.next(); err != nil {
				return 0, err
			}
		}
		n, err := r.cur.Read(p)
		r.offset += int64(n)
		if err == io.EOF {
			r.cur.Close()
			r.cur = nil
			if end := r.segs[0].end; r.offset != end {
				return n, fmt.Errorf("s3store: blob %s: segment ended at %d, want %d", r.id, r.offset, end)
			}
			r.segs = r.segs[1:]
			err = nil
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
}

func (r *reader) Close() error {
	if r.cur != nil {
		return r.cur.Close()
	}
	return nil
}

func (s *Store) Claim(ctx context.Context, id string, d blob.Device) (bool, error) {
	if err := s.begin(); err != nil {
		return false, err
	}
	defer s.ops.Done()
	var gone []string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		x, err := s.get(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if !x.info.Complete {
			return blob.ErrIncomplete
		}
		if slices.Contains(x.info.Claimed, d) {
			return nil
		}
		i := slices.Index(x.info.Pending, d)
		if i < 0 {
			return blob.ErrNotRecipient
		}
		pending := slices.Delete(slices.Clone(x.info.Pending), i, i+1)
		if len(pending) == 0 {
			gone = s.keys(x.objects)
			_, err := tx.Exec(ctx, `DELETE FROM blobs WHERE id = $1`, id)
			return err
		}
		claimed := blob.SortDevices(append(x.info.Claimed, d))
		_, err = tx.Exec(ctx, `UPDATE blobs SET pending = $2, claimed = $3 WHERE id = $1`,
			id, encodeDevices(pending), encodeDevices(claimed))
		return err
	})
	if err != nil {
		return false, err
	}
	s.deleteObjects(gone...)
	return gone != nil, nil
}

func (s *Store) Delete(ctx context.Context, id string) error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.ops.Done()
	if !blob.ValidID(id) {
		return blob.ErrNotFound
	}
	var objects []string
	err := s.pool.QueryRow(ctx, `DELETE FROM blobs WHERE id = $1 RETURNING objects`, id).Scan(&objects)
	if errors.Is(err, pgx.ErrNoRows) {
		return blob.ErrNotFound
	}
	if err != nil {
		return err
	}
	s.deleteObjects(s.keys(objects)...)
	return nil
}

func (s *Store) Expired(ctx context.Context, now time.Time, limit int) ([]string, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.ops.Done()
	rows, err := s.pool.Query(ctx, `SELECT id FROM blobs WHERE expires_ms <= $1 ORDER BY expires_ms LIMIT $2`,
		now.UnixMilli(), limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func (s *Store) Usage(ctx context.Context, handle string) (int64, error) {
	if err := s.begin(); err != nil {
		return 0, err
	}
	defer s.ops.Done()
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT COALESCE(SUM(size), 0) FROM blobs WHERE owner_handle = $1`, handle).Scan(&n)
	return n, err
}
