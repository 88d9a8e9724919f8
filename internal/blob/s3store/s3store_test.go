package s3store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/internal/blob"
	"github.com/parleychat/parley/internal/blob/blobtest"
	"github.com/parleychat/parley/internal/pgtest"
	"github.com/parleychat/parley/internal/s3"
	"github.com/parleychat/parley/internal/s3/s3test"
	"github.com/parleychat/parley/internal/store/pgstore/pgstoretest"
)

// The store runs against a real PostgreSQL (a fresh schema per test, with
// pgstore's migrations) and a real S3-compatible server (Versity Gateway,
// started by s3test), as in a cluster.

func testCtx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// storage is one test's database schema and bucket.
type storage struct {
	pool    *pgxpool.Pool
	objects *s3.Client
	cfg     s3.Config
}

func newStorage(t testing.TB, dsn string, cfg s3.Config) storage {
	t.Helper()
	pool := pgstoretest.Pool(t, pgtest.Schema(t, dsn))
	c, err := s3.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return storage{pool: pool, objects: c, cfg: cfg}
}

// readAll reads a finished blob from off.
func readAll(t *testing.T, s *Store, id string, off int64) []byte {
	t.Helper()
	rc, _, err := s.Open(testCtx(t), id, off)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// opts gives each test its own key prefix in the shared bucket, and small
// segments, so that the suite's blobs span several objects.
func opts(t *testing.T) Options {
	return Options{Prefix: "t-" + blob.NewID()[:12] + "/", SegmentSize: 64 << 10}
}

// oneStore opens a store over a fresh database and bucket, with opts(t)
// changed by mod.
func oneStore(t *testing.T, mod func(*Options)) (*Store, storage, Options) {
	st := newStorage(t, pgtest.Database(t), s3test.Start(t))
	o := opts(t)
	if mod != nil {
		mod(&o)
	}
	s := Open(st.pool, st.objects, nil, o)
	t.Cleanup(func() { s.Close() })
	return s, st, o
}

// create records a blob of size bytes for alice's device 1.
func create(t *testing.T, s *Store, size int64) blob.Meta {
	t.Helper()
	now := time.Now()
	m := blob.Meta{ID: blob.NewID(), Owner: blob.Device{Handle: "alice", ID: 1}, Size: size, Created: now, Expires: now.Add(time.Hour)}
	if err := s.Create(testCtx(t), m, 1<<30); err != nil {
		t.Fatal(err)
	}
	return m
}

// objectsOf returns the names of a blob's objects, as its row lists them.
func objectsOf(t *testing.T, st storage, id string) []string {
	t.Helper()
	var objects []string
	if err := st.pool.QueryRow(testCtx(t), `SELECT objects FROM blobs WHERE id = $1`, id).Scan(&objects); err != nil {
		t.Fatal(err)
	}
	return objects
}

func TestConformance(t *testing.T) {
	dsn := pgtest.Database(t)
	cfg := s3test.Start(t)
	blobtest.Run(t, func(t *testing.T) blobtest.Opener {
		st := newStorage(t, dsn, cfg)
		o := opts(t)
		return func() (blob.Store, error) { return Open(st.pool, st.objects, nil, o), nil }
	})
}

// TestTwoNodes: two stores over one database and bucket, as two parleyd
// nodes are: an upload begun on one resumes on the other, is busy on both
// while an append runs, and is read, claimed and deleted from either.
func TestTwoNodes(t *testing.T) {
	dsn := pgtest.Database(t)
	st := newStorage(t, dsn, s3test.Start(t))
	o := opts(t)
	a := Open(st.pool, st.objects, nil, o)
	b := Open(st.pool, st.objects, nil, o)
	t.Cleanup(func() { a.Close(); b.Close() })
	ctx := testCtx(t)

	data := bytes.Repeat([]byte("parley "), 50_000) // 350 000 bytes, six segments
	sum := sha256.Sum256(data)
	owner := blob.Device{Handle: "alice", ID: 1}
	bob := blob.Device{Handle: "bob", ID: 2}
	now := time.Now().Truncate(time.Millisecond)
	m := blob.Meta{ID: blob.NewID(), Owner: owner, Size: int64(len(data)), Created: now, Expires: now.Add(time.Hour)}
	if err := a.Create(ctx, m, 1<<30); err != nil {
		t.Fatal(err)
	}
	// The quota is the account's on both nodes.
	if err := b.Create(ctx, blob.Meta{ID: blob.NewID(), Owner: owner, Size: 1 << 30, Created: now, Expires: now.Add(time.Hour)}, 1<<30); !errors.Is(err, blob.ErrQuota) {
		t.Fatalf("create over quota on the other node: %v", err)
	}

	// An append on a holds the blob; b refuses another append and a finish.
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := a.Append(ctx, m.ID, 0, pr)
		done <- err
	}()
	if _, err := pw.Write(data[:100_000]); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Append(ctx, m.ID, 0, bytes.NewReader(data)); !errors.Is(err, blob.ErrBusy) {
		t.Fatalf("append on the other node during an append: %v", err)
	}
	if _, err := b.Finish(ctx, m.ID, blob.Finish{SHA256: sum[:]}); !errors.Is(err, blob.ErrBusy) {
		t.Fatalf("finish on the other node during an append: %v", err)
	}
	pw.CloseWithError(errors.New("connection reset"))
	if err := <-done; err == nil || !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("interrupted append: %v", err)
	}

	// b sees what a kept, and the upload resumes there.
	info, err := b.Info(ctx, m.ID)
	if err != nil || info.Offset != 100_000 {
		t.Fatalf("info on the other node: %+v, %v", info, err)
	}
	if n, err := b.Append(ctx, m.ID, 100_000, bytes.NewReader(data[100_000:])); err != nil || n != int64(len(data)) {
		t.Fatalf("resumed append: %d, %v", n, err)
	}
	if _, err := b.Finish(ctx, m.ID, blob.Finish{SHA256: sum[:], Recipients: []blob.Device{bob}, Expires: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, a, m.ID, 12_345); !bytes.Equal(got, data[12_345:]) {
		t.Fatalf("read on the first node: %d bytes", len(got))
	}
	objects := objectsOf(t, st, m.ID)
	if len(objects) != 6 {
		t.Fatalf("objects of the blob: %q", objects)
	}
	if deleted, err := a.Claim(ctx, m.ID, bob); err != nil || !deleted {
		t.Fatalf("claim: %v, %v", deleted, err)
	}
	// Its objects went with it.
	for _, name := range objects {
		if _, err := st.objects.Get(ctx, o.Prefix+name, 0); !errors.Is(err, s3.ErrNotFound) {
			t.Fatalf("object %s after the last claim: %v", name, err)
		}
	}
}

// TestLeaseOfADeadNode: a node that dies mid-append leaves its lease
// behind; the blob is busy until the lease runs out, then resumes
// elsewhere from what was stored.
func TestLeaseOfADeadNode(t *testing.T) {
	live, st, _ := oneStore(t, func(o *Options) { o.Lease = 2 * time.Second })
	ctx := testCtx(t)
	m := create(t, live, 10)
	// What a node that died holding the lease leaves in the row.
	if _, err := st.pool.Exec(ctx, `UPDATE blobs SET busy_until = now() + interval '2 seconds', busy_token = 'dead' WHERE id = $1`, m.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := live.Append(ctx, m.ID, 0, bytes.NewReader([]byte("0123456789"))); !errors.Is(err, blob.ErrBusy) {
		t.Fatalf("append while a dead node's lease holds: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := live.Append(ctx, m.ID, 0, bytes.NewReader([]byte("0123456789")))
		if err == nil {
			break
		}
		if !errors.Is(err, blob.ErrBusy) || time.Now().After(deadline) {
			t.Fatalf("append after the lease ran out: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestLostLease: an append whose lease ran out (its node stalled) while
// another append took the blob over writes its object under its own name,
// is told it lost the blob, and deletes only its own object: the bytes of
// the append that took over stay, and the blob finishes with them.
func TestLostLease(t *testing.T) {
	s, st, _ := oneStore(t, func(o *Options) { o.Lease = time.Minute })
	ctx := testCtx(t)
	now := time.Now()
	m := create(t, s, 10)
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, m.ID, 0, pr)
		done <- err
	}()
	if _, err := pw.Write([]byte("stale")); err != nil {
		t.Fatal(err)
	}
	// The stalled append's lease runs out; another takes the blob.
	if _, err := st.pool.Exec(ctx, `UPDATE blobs SET busy_until = now() - interval '1 second' WHERE id = $1`, m.ID); err != nil {
		t.Fatal(err)
	}
	fresh := []byte("0123456789")
	if n, err := s.Append(ctx, m.ID, 0, bytes.NewReader(fresh)); err != nil || n != 10 {
		t.Fatalf("append after the lease ran out: %d, %v", n, err)
	}
	pw.Close()
	if err := <-done; !errors.Is(err, blob.ErrBusy) {
		t.Fatalf("the stalled append returned %v, want ErrBusy", err)
	}
	sum := sha256.Sum256(fresh)
	if _, err := s.Finish(ctx, m.ID, blob.Finish{SHA256: sum[:], Expires: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, s, m.ID, 0); !bytes.Equal(got, fresh) {
		t.Fatalf("blob holds %q, want %q", got, fresh)
	}
}

// TestOpenFailsEarly: when the bucket cannot give the first object, Open
// fails, so the server answers with an error status rather than a 200
// whose body breaks off.
func TestOpenFailsEarly(t *testing.T) {
	s, st, o := oneStore(t, nil)
	ctx := testCtx(t)
	now := time.Now()
	data := []byte("ciphertext")
	sum := sha256.Sum256(data)
	m := create(t, s, int64(len(data)))
	if _, err := s.Append(ctx, m.ID, 0, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Finish(ctx, m.ID, blob.Finish{SHA256: sum[:], Expires: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	objects := objectsOf(t, st, m.ID)
	if len(objects) != 1 {
		t.Fatalf("objects %q", objects)
	}
	if err := st.objects.Delete(ctx, o.Prefix+objects[0]); err != nil {
		t.Fatal(err)
	}
	if rc, _, err := s.Open(ctx, m.ID, 3); !errors.Is(err, s3.ErrNotFound) {
		if rc != nil {
			rc.Close()
		}
		t.Fatalf("Open of a blob whose object is gone: %v", err)
	}
}
