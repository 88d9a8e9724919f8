package s3store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/blob"
	"github.com/parleychat/parley/internal/s3"
)

// listKeys returns every key under prefix, sorted.
func listKeys(t *testing.T, st storage, prefix string) []string {
	t.Helper()
	var keys []string
	token := ""
	for {
		p, err := st.objects.List(testCtx(t), s3.ListOptions{Prefix: prefix, ContinuationToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range p.Objects {
			keys = append(keys, o.Key)
		}
		if p.NextToken == "" {
			break
		}
		token = p.NextToken
	}
	slices.Sort(keys)
	return keys
}

func exists(t *testing.T, st storage, key string) bool {
	t.Helper()
	rc, err := st.objects.Get(testCtx(t), key, 0)
	if errors.Is(err, s3.ErrNotFound) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	return true
}

func put(t *testing.T, st storage, key string, data []byte) {
	t.Helper()
	if err := st.objects.Put(testCtx(t), key, data); err != nil {
		t.Fatal(err)
	}
}

// finish finishes blob id, which must hold data.
func finish(t *testing.T, s *Store, id string, data []byte) {
	t.Helper()
	sum := sha256.Sum256(data)
	if _, err := s.Finish(testCtx(t), id, blob.Finish{SHA256: sum[:], Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
}

// TestSweep: with a finished blob, an unfinished one with recorded
// segments, an object under an id that has no row and an object of the
// unfinished blob that its row does not record (another append's tag at
// the same offset, as a lost lease leaves), a sweep deletes exactly the
// two orphans, listing two keys a page; both blobs still read back, the
// unfinished one after it resumes and finishes; a second sweep deletes
// nothing. Keys under the prefix that are not named like segments, and
// objects outside the prefix, are left alone.
func TestSweep(t *testing.T) {
	s, st, o := oneStore(t, nil)
	s.listKeys = 2
	ctx := testCtx(t)

	done := bytes.Repeat([]byte("finished "), 20_000) // 180 000 bytes, three segments
	fin := create(t, s, int64(len(done)))
	if _, err := s.Append(ctx, fin.ID, 0, bytes.NewReader(done)); err != nil {
		t.Fatal(err)
	}
	finish(t, s, fin.ID, done)

	half := bytes.Repeat([]byte("unfinished "), 10_000) // 110 000 bytes
	const kept = 70_000                                 // two segments now, the rest later
	unf := create(t, s, int64(len(half)))
	if _, err := s.Append(ctx, unf.ID, 0, bytes.NewReader(half[:kept])); err != nil {
		t.Fatal(err)
	}
	if n := len(objectsOf(t, st, unf.ID)); n != 2 {
		t.Fatalf("unfinished blob has %d objects", n)
	}

	noRow := o.Prefix + objectName(blob.NewID(), 0, blob.NewID())
	put(t, st, noRow, []byte("orphan without a row"))
	stray := o.Prefix + objectName(unf.ID, 0, blob.NewID())
	put(t, st, stray, half[:100])
	foreign := o.Prefix + "notes/readme.txt"
	put(t, st, foreign, []byte("not a segment"))
	outside := "elsewhere/" + objectName(blob.NewID(), 0, blob.NewID())
	put(t, st, outside, []byte("another prefix"))

	before := listKeys(t, st, o.Prefix)
	if len(before) != 3+2+3 {
		t.Fatalf("%d keys under the prefix before the sweep: %q", len(before), before)
	}
	n, err := s.Sweep(ctx, time.Now().Add(time.Minute))
	if err != nil || n != 2 {
		t.Fatalf("Sweep deleted %d, %v; want 2", n, err)
	}
	var want []string
	for _, k := range before {
		if k != noRow && k != stray {
			want = append(want, k)
		}
	}
	if got := listKeys(t, st, o.Prefix); !slices.Equal(got, want) {
		t.Fatalf("after the sweep: %q, want %q", got, want)
	}
	if !exists(t, st, outside) {
		t.Fatal("the sweep deleted an object outside its prefix")
	}

	if got := readAll(t, s, fin.ID, 0); !bytes.Equal(got, done) {
		t.Fatalf("finished blob reads back %d bytes, not what was stored", len(got))
	}
	if n, err := s.Append(ctx, unf.ID, kept, bytes.NewReader(half[kept:])); err != nil || n != int64(len(half)) {
		t.Fatalf("resuming the unfinished blob: %d, %v", n, err)
	}
	finish(t, s, unf.ID, half)

	n, err = s.Sweep(ctx, time.Now().Add(time.Minute))
	if err != nil || n != 0 {
		t.Fatalf("second Sweep deleted %d, %v; want 0", n, err)
	}
	if got := readAll(t, s, fin.ID, 0); !bytes.Equal(got, done) {
		t.Fatalf("finished blob after the second sweep: %d bytes, not what was stored", len(got))
	}
	if got := readAll(t, s, unf.ID, 0); !bytes.Equal(got, half) {
		t.Fatalf("resumed blob reads back %d bytes, not what was stored", len(got))
	}
	if !exists(t, st, foreign) {
		t.Fatal("the sweep deleted a key not named as a segment")
	}
}

// TestSweepGrace: objects modified at or after the cutoff are not
// candidates, orphans or not: a cutoff in the past deletes nothing.
func TestSweepGrace(t *testing.T) {
	s, st, o := oneStore(t, nil)
	ctx := testCtx(t)
	data := []byte("a segment in flight")
	m := create(t, s, int64(len(data)))
	if _, err := s.Append(ctx, m.ID, 0, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	noRow := o.Prefix + objectName(blob.NewID(), 0, blob.NewID())
	put(t, st, noRow, data)
	stray := o.Prefix + objectName(m.ID, 0, blob.NewID())
	put(t, st, stray, data)
	before := listKeys(t, st, o.Prefix)

	n, err := s.Sweep(ctx, time.Now().Add(-time.Hour))
	if err != nil || n != 0 {
		t.Fatalf("Sweep with a cutoff an hour ago deleted %d, %v; want 0", n, err)
	}
	if got := listKeys(t, st, o.Prefix); !slices.Equal(got, before) || len(got) != 3 {
		t.Fatalf("after the sweep: %q, want %q", got, before)
	}
	finish(t, s, m.ID, data)
	if got := readAll(t, s, m.ID, 0); !bytes.Equal(got, data) {
		t.Fatalf("blob reads back %q", got)
	}
}

// TestSweepAfterClose: a closed store does not sweep.
func TestSweepAfterClose(t *testing.T) {
	s, _, _ := oneStore(t, nil)
	s.Close()
	if _, err := s.Sweep(testCtx(t), time.Now()); !errors.Is(err, blob.ErrClosed) {
		t.Fatalf("Sweep after Close: %v", err)
	}
}

func TestParseObjectName(t *testing.T) {
	id, token := blob.NewID(), blob.NewID()
	for _, start := range []int64{0, 1, 8 << 20, 1<<63 - 1} {
		name := objectName(id, start, token)
		if got, ok := parseObjectName(name); !ok || got != id {
			t.Errorf("parseObjectName(%q) = %q, %v", name, got, ok)
		}
	}
	good := objectName(id, 0x1234, token)
	tag := token[:tagLen]
	for _, name := range []string{
		"",
		id,
		id + "/",
		strings.Replace(good, "/", "_", 1),
		good + "x",
		good[:len(good)-1],
		good + "/more",
		id[1:] + good[len(id):],             // an id one letter short
		id + "/0000000000001234.abc$efgh",   // not a token's letters
		id + "/0000000000001234." + tag[1:], // short tag
		id + "/00000000000012340." + tag,    // 17 digits
		id + "/000000000000ABCD." + tag,     // upper-case hex
		id + "/+00000000000abcd." + tag,     // sign
		id + "/-000000000000001." + tag,     // negative
		id + "/8000000000000000." + tag,     // beyond int64
		id + "/000000000000000g." + tag,     // not hex
		"notes/0000000000000000." + tag,     // not an id
	} {
		if got, ok := parseObjectName(name); ok {
			t.Errorf("parseObjectName(%q) accepted it as blob %q", name, got)
		}
	}
}
