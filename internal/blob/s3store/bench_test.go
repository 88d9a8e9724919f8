package s3store

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/blob"
	"github.com/parleychat/parley/internal/pgtest"
	"github.com/parleychat/parley/internal/s3/s3test"
)

// BenchmarkThroughput moves 32 MiB blobs through the store (Create, Append
// in one call, Finish; Open and read all) next to its baseline in the same
// run: the bare S3 client putting and getting the same bytes as 8 MiB
// objects, the store's segment size. What the store adds is its
// PostgreSQL row per segment, the hashing, and the lease.
//
//	go test -run '^$' -bench Throughput -benchtime 10x ./internal/blob/s3store
func BenchmarkThroughput(b *testing.B) {
	st := newStorage(b, pgtest.Database(b), s3test.Start(b))
	const size = 32 << 20
	data := make([]byte, size)
	rand.Read(data)
	sum := sha256.Sum256(data)
	s := Open(st.pool, st.objects, nil, Options{Prefix: "bench/"})
	b.Cleanup(func() { s.Close() })
	ctx := testCtx(b)
	owner := blob.Device{Handle: "alice", ID: 1}

	b.Run("baseline-put", func(b *testing.B) {
		b.SetBytes(size)
		for i := range b.N {
			for off := 0; off < size; off += SegmentSize {
				if err := st.objects.Put(ctx, fmt.Sprintf("raw/%d/%d", i%4, off), data[off:off+SegmentSize]); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("baseline-get", func(b *testing.B) {
		b.SetBytes(size)
		for range b.N {
			for off := 0; off < size; off += SegmentSize {
				rc, err := st.objects.Get(ctx, fmt.Sprintf("raw/0/%d", off), 0)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, rc)
				rc.Close()
			}
		}
	})
	var ids []string
	b.Run("store-upload", func(b *testing.B) {
		b.SetBytes(size)
		for range b.N {
			now := time.Now()
			m := blob.Meta{ID: blob.NewID(), Owner: owner, Size: size, Created: now, Expires: now.Add(time.Hour)}
			if err := s.Create(ctx, m, 1<<50); err != nil {
				b.Fatal(err)
			}
			if _, err := s.Append(ctx, m.ID, 0, bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
			if _, err := s.Finish(ctx, m.ID, blob.Finish{SHA256: sum[:], Expires: now.Add(time.Hour)}); err != nil {
				b.Fatal(err)
			}
			ids = append(ids, m.ID)
		}
	})
	b.Run("store-download", func(b *testing.B) {
		b.SetBytes(size)
		for i := range b.N {
			rc, _, err := s.Open(ctx, ids[i%len(ids)], 0)
			if err != nil {
				b.Fatal(err)
			}
			if n, err := io.Copy(io.Discard, rc); err != nil || n != size {
				b.Fatalf("read %d bytes: %v", n, err)
			}
			rc.Close()
		}
	})
}
