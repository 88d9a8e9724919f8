// Package blobtest is the conformance suite of blob.Store: every backend's
// tests call Run with a way to open a fresh store, and must pass it
// unchanged.
package blobtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/blob"
)

// Opener opens the store under test. Each call after the first reopens the
// same storage (the suite closes the previous store first), so the suite
// can check what survives a restart.
type Opener func() (blob.Store, error)

// NewStorage returns an Opener over fresh, empty storage for one test.
type NewStorage func(t *testing.T) Opener

// Run runs the suite.
func Run(t *testing.T, newStorage NewStorage) {
	tests := []struct {
		name string
		f    func(*testing.T, Opener)
	}{
		{"CreateAndInfo", testCreateAndInfo},
		{"CreateInvalid", testCreateInvalid},
		{"Quota", testQuota},
		{"Append", testAppend},
		{"AppendTooLong", testAppendTooLong},
		{"AppendInterrupted", testAppendInterrupted},
		{"AppendBusy", testAppendBusy},
		{"Finish", testFinish},
		{"Open", testOpen},
		{"Claim", testClaim},
		{"Delete", testDelete},
		{"DeleteWhileAppending", testDeleteWhileAppending},
		{"Expired", testExpired},
		{"Reopen", testReopen},
		{"Concurrent", testConcurrent},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.f(t, newStorage(t))
		})
	}
}

// ctx bounds every call of a test.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func open(t *testing.T, o Opener) blob.Store {
	t.Helper()
	s, err := o()
	if err != nil {
		t.Fatalf("opening the store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var (
	alice  = blob.Device{Handle: "alice", ID: 1}
	alice2 = blob.Device{Handle: "alice", ID: 2}
	bob    = blob.Device{Handle: "bob", ID: 7}
	bob2   = blob.Device{Handle: "bob", ID: 9}
	carol  = blob.Device{Handle: "carol", ID: 3}
)

const quota = 1 << 40

func meta(owner blob.Device, size int64) blob.Meta {
	now := time.Now().Truncate(time.Millisecond)
	return blob.Meta{
		ID: blob.NewID(), Owner: owner, Size: size, Created: now,
		Expires: now.Add(time.Hour), Lifetime: 24 * time.Hour,
	}
}

func data(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func sum(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}

func create(t *testing.T, s blob.Store, owner blob.Device, size int64) blob.Meta {
	t.Helper()
	m := meta(owner, size)
	if err := s.Create(ctx(t), m, quota); err != nil {
		t.Fatalf("Create: %v", err)
	}
	return m
}

func appendAll(t *testing.T, s blob.Store, id string, off int64, b []byte) int64 {
	t.Helper()
	n, err := s.Append(ctx(t), id, off, bytes.NewReader(b))
	if err != nil {
		t.Fatalf("Append at %d: %v", off, err)
	}
	if n != off+int64(len(b)) {
		t.Fatalf("Append at %d of %d bytes returned %d", off, len(b), n)
	}
	return n
}

func finish(t *testing.T, s blob.Store, id string, b []byte, rcpts ...blob.Device) blob.Info {
	t.Helper()
	info, err := s.Finish(ctx(t), id, blob.Finish{SHA256: sum(b), Recipients: rcpts, Expires: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatalf("Finish: %v", err)
	}
	return info
}

// upload creates, fills and finishes a blob.
func upload(t *testing.T, s blob.Store, owner blob.Device, b []byte, rcpts ...blob.Device) blob.Meta {
	t.Helper()
	m := create(t, s, owner, int64(len(b)))
	appendAll(t, s, m.ID, 0, b)
	finish(t, s, m.ID, b, rcpts...)
	return m
}

func readAll(t *testing.T, s blob.Store, id string, off int64) []byte {
	t.Helper()
	rc, _, err := s.Open(ctx(t), id, off)
	if err != nil {
		t.Fatalf("Open at %d: %v", off, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: error %v, want %v", what, err, want)
	}
}

func testCreateAndInfo(t *testing.T, o Opener) {
	s := open(t, o)
	m := create(t, s, alice, 1000)
	info, err := s.Info(ctx(t), m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != m.ID || info.Owner != alice || info.Size != 1000 || !info.Created.Equal(m.Created) ||
		!info.Expires.Equal(m.Expires) || info.Lifetime != m.Lifetime || info.Offset != 0 || info.Complete ||
		info.SHA256 != nil || info.Pending != nil {
		t.Fatalf("Info = %+v, want %+v at offset 0", info, m)
	}
	_, err = s.Info(ctx(t), blob.NewID())
	wantErr(t, "Info of an unknown id", err, blob.ErrNotFound)
	_, err = s.Info(ctx(t), "../../etc/passwd")
	wantErr(t, "Info of a malformed id", err, blob.ErrNotFound)
	if u, err := s.Usage(ctx(t), "alice"); err != nil || u != 1000 {
		t.Fatalf("Usage = %d, %v", u, err)
	}
	if u, err := s.Usage(ctx(t), "nobody"); err != nil || u != 0 {
		t.Fatalf("Usage of nobody = %d, %v", u, err)
	}
}

func testCreateInvalid(t *testing.T, o Opener) {
	s := open(t, o)
	m := meta(alice, 10)
	if err := s.Create(ctx(t), m, quota); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "duplicate id", s.Create(ctx(t), m, quota), blob.ErrExists)
	for name, mod := range map[string]func(*blob.Meta){
		"size 0":      func(m *blob.Meta) { m.Size = 0 },
		"size -1":     func(m *blob.Meta) { m.Size = -1 },
		"short id":    func(m *blob.Meta) { m.ID = m.ID[:42] },
		"padded id":   func(m *blob.Meta) { m.ID = m.ID[:42] + "=" },
		"slash in id": func(m *blob.Meta) { m.ID = "/" + m.ID[1:] },
		"dots":        func(m *blob.Meta) { m.ID = "..%2F" + m.ID[5:] },
		"no owner":    func(m *blob.Meta) { m.Owner = blob.Device{} },
	} {
		m := meta(alice, 10)
		mod(&m)
		wantErr(t, name, s.Create(ctx(t), m, quota), blob.ErrInvalid)
	}
}

func testQuota(t *testing.T, o Opener) {
	s := open(t, o)
	const q = 1000
	a := meta(alice, 600)
	if err := s.Create(ctx(t), a, q); err != nil {
		t.Fatal(err)
	}
	// Another device of the same account shares the quota.
	wantErr(t, "over quota", s.Create(ctx(t), meta(alice2, 401), q), blob.ErrQuota)
	b := meta(alice2, 400)
	if err := s.Create(ctx(t), b, q); err != nil {
		t.Fatalf("exactly at quota: %v", err)
	}
	wantErr(t, "full quota", s.Create(ctx(t), meta(alice, 1), q), blob.ErrQuota)
	// Another account has its own.
	if err := s.Create(ctx(t), meta(bob, 1000), q); err != nil {
		t.Fatal(err)
	}
	// Finished blobs count too; deleting frees the space.
	data := data(400)
	appendAll(t, s, b.ID, 0, data)
	finish(t, s, b.ID, data)
	wantErr(t, "finished blobs count", s.Create(ctx(t), meta(alice, 1), q), blob.ErrQuota)
	if err := s.Delete(ctx(t), a.ID); err != nil {
		t.Fatal(err)
	}
	if u, _ := s.Usage(ctx(t), "alice"); u != 400 {
		t.Fatalf("usage after delete = %d", u)
	}
	if err := s.Create(ctx(t), meta(alice, 600), q); err != nil {
		t.Fatalf("after delete: %v", err)
	}
	// A single blob above the quota.
	wantErr(t, "larger than the quota", s.Create(ctx(t), meta(carol, q+1), q), blob.ErrQuota)
}

func testAppend(t *testing.T, o Opener) {
	s := open(t, o)
	b := data(300_000)
	m := create(t, s, alice, int64(len(b)))
	off := appendAll(t, s, m.ID, 0, b[:1])
	off = appendAll(t, s, m.ID, off, b[1:100_000])
	// Wrong offsets are refused with the current one.
	for _, bad := range []int64{0, off - 1, off + 1, -5} {
		cur, err := s.Append(ctx(t), m.ID, bad, bytes.NewReader(b[off:]))
		wantErr(t, fmt.Sprintf("append at %d", bad), err, blob.ErrOffset)
		if cur != off {
			t.Fatalf("ErrOffset with %d, want the current %d", cur, off)
		}
	}
	// An empty append changes nothing.
	off = appendAll(t, s, m.ID, off, nil)
	off = appendAll(t, s, m.ID, off, b[100_000:])
	info, _ := s.Info(ctx(t), m.ID)
	if info.Offset != int64(len(b)) || info.Complete {
		t.Fatalf("info after appends %+v", info)
	}
	_, err := s.Append(ctx(t), blob.NewID(), 0, bytes.NewReader(b))
	wantErr(t, "append to an unknown blob", err, blob.ErrNotFound)
	finish(t, s, m.ID, b)
	if got := readAll(t, s, m.ID, 0); !bytes.Equal(got, b) {
		t.Fatal("data differs")
	}
	_, err = s.Append(ctx(t), m.ID, off, bytes.NewReader(nil))
	wantErr(t, "append after finish", err, blob.ErrComplete)
}

func testAppendTooLong(t *testing.T, o Opener) {
	s := open(t, o)
	b := data(1000)
	m := create(t, s, alice, 800)
	n, err := s.Append(ctx(t), m.ID, 0, bytes.NewReader(b))
	wantErr(t, "append beyond the size", err, blob.ErrTooLong)
	if n != 800 {
		t.Fatalf("kept %d bytes, want the declared 800", n)
	}
	n, err = s.Append(ctx(t), m.ID, 800, bytes.NewReader(b[:1]))
	wantErr(t, "append to a full blob", err, blob.ErrTooLong)
	if n != 800 {
		t.Fatalf("size %d after refused append", n)
	}
	finish(t, s, m.ID, b[:800])
	if got := readAll(t, s, m.ID, 0); !bytes.Equal(got, b[:800]) {
		t.Fatal("data differs")
	}
}

// failingReader yields b, then fails like a dropped connection.
type failingReader struct {
	b   []byte
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.b) == 0 {
		return 0, f.err
	}
	n := copy(p, f.b)
	f.b = f.b[n:]
	return n, nil
}

func testAppendInterrupted(t *testing.T, o Opener) {
	s := open(t, o)
	b := data(1 << 20)
	m := create(t, s, alice, int64(len(b)))
	boom := errors.New("connection reset")
	n, err := s.Append(ctx(t), m.ID, 0, &failingReader{b: b[:300_001], err: boom})
	wantErr(t, "interrupted append", err, boom)
	if n != 300_001 {
		t.Fatalf("interrupted append kept %d bytes, want 300001", n)
	}
	info, _ := s.Info(ctx(t), m.ID)
	if info.Offset != 300_001 {
		t.Fatalf("offset %d after interruption", info.Offset)
	}
	_, err = s.Finish(ctx(t), m.ID, blob.Finish{SHA256: sum(b)})
	wantErr(t, "finish of a partial upload", err, blob.ErrIncomplete)
	appendAll(t, s, m.ID, n, b[n:])
	finish(t, s, m.ID, b)
	if got := readAll(t, s, m.ID, 0); !bytes.Equal(got, b) {
		t.Fatal("resumed data differs")
	}
	// A cancelled context stops an append.
	m2 := create(t, s, alice, 10)
	c, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Append(c, m2.ID, 0, bytes.NewReader(data(10))); !errors.Is(err, context.Canceled) {
		t.Fatalf("append with a cancelled context: %v", err)
	}
}

func testAppendBusy(t *testing.T, o Opener) {
	s := open(t, o)
	m := create(t, s, alice, 100)
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx(t), m.ID, 0, pr)
		done <- err
	}()
	// Once the first append holds the blob (it has consumed a byte), a
	// second one is refused.
	if _, err := pw.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Append(ctx(t), m.ID, 0, bytes.NewReader([]byte{2}))
	wantErr(t, "concurrent append", err, blob.ErrBusy)
	_, err = s.Finish(ctx(t), m.ID, blob.Finish{SHA256: sum(nil)})
	wantErr(t, "finish during an append", err, blob.ErrBusy)
	pw.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("append did not return")
	}
	appendAll(t, s, m.ID, 1, data(99))
}

func testFinish(t *testing.T, o Opener) {
	s := open(t, o)
	b := data(5000)
	m := create(t, s, alice, int64(len(b)))
	_, err := s.Finish(ctx(t), m.ID, blob.Finish{SHA256: sum(b)})
	wantErr(t, "finish of an empty upload", err, blob.ErrIncomplete)
	appendAll(t, s, m.ID, 0, b)

	bad := sum(b)
	bad[0] ^= 1
	_, err = s.Finish(ctx(t), m.ID, blob.Finish{SHA256: bad})
	wantErr(t, "wrong hash", err, blob.ErrHash)
	_, err = s.Finish(ctx(t), m.ID, blob.Finish{SHA256: nil})
	wantErr(t, "no hash", err, blob.ErrHash)
	if info, _ := s.Info(ctx(t), m.ID); info.Complete {
		t.Fatal("complete after a hash mismatch")
	}
	_, _, err = s.Open(ctx(t), m.ID, 0)
	wantErr(t, "open before finish", err, blob.ErrIncomplete)

	exp := time.Now().Add(48 * time.Hour).Truncate(time.Millisecond)
	rcpts := []blob.Device{bob2, bob, alice2, bob}
	info, err := s.Finish(ctx(t), m.ID, blob.Finish{SHA256: sum(b), Recipients: rcpts, Expires: exp})
	if err != nil {
		t.Fatal(err)
	}
	want := []blob.Device{alice2, bob, bob2}
	if !info.Complete || !bytes.Equal(info.SHA256, sum(b)) || !slices.Equal(info.Pending, want) ||
		!info.Expires.Equal(exp) || info.Offset != int64(len(b)) {
		t.Fatalf("finished info %+v", info)
	}
	// A retry with the same values succeeds and changes nothing.
	if info, err := s.Finish(ctx(t), m.ID, blob.Finish{SHA256: sum(b), Recipients: []blob.Device{bob, bob2, alice2}, Expires: exp.Add(time.Hour)}); err != nil ||
		!slices.Equal(info.Pending, want) || !info.Expires.Equal(exp) {
		t.Fatalf("repeated finish: %+v, %v", info, err)
	}
	// A retry naming fewer removes nobody; one naming more adds them.
	if info, err := s.Finish(ctx(t), m.ID, blob.Finish{SHA256: sum(b), Recipients: []blob.Device{bob}}); err != nil || !slices.Equal(info.Pending, want) {
		t.Fatalf("finish naming fewer: %+v, %v", info, err)
	}
	if _, err := s.Claim(ctx(t), m.ID, bob); err != nil {
		t.Fatal(err)
	}
	info, err = s.Finish(ctx(t), m.ID, blob.Finish{SHA256: sum(b), Recipients: []blob.Device{carol, bob}})
	if err != nil || !slices.Equal(info.Pending, []blob.Device{alice2, bob2, carol}) || !slices.Equal(info.Claimed, []blob.Device{bob}) {
		t.Fatalf("finish adding carol: %+v, %v", info, err)
	}
	_, err = s.Finish(ctx(t), m.ID, blob.Finish{SHA256: bad, Recipients: rcpts, Expires: exp})
	wantErr(t, "finish with another hash", err, blob.ErrComplete)
	_, err = s.Finish(ctx(t), blob.NewID(), blob.Finish{SHA256: sum(b)})
	wantErr(t, "finish of an unknown blob", err, blob.ErrNotFound)
}

func testOpen(t *testing.T, o Opener) {
	s := open(t, o)
	b := data(70_000)
	m := upload(t, s, alice, b)
	for _, off := range []int64{0, 1, 65_536, 69_999, 70_000} {
		if got := readAll(t, s, m.ID, off); !bytes.Equal(got, b[off:]) {
			t.Fatalf("Open at %d: %d bytes", off, len(got))
		}
	}
	for _, off := range []int64{-1, 70_001} {
		_, _, err := s.Open(ctx(t), m.ID, off)
		wantErr(t, fmt.Sprintf("Open at %d", off), err, blob.ErrInvalid)
	}
	_, _, err := s.Open(ctx(t), blob.NewID(), 0)
	wantErr(t, "Open of an unknown blob", err, blob.ErrNotFound)
	rc, info, err := s.Open(ctx(t), m.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if info.Size != 70_000 || !info.Complete {
		t.Fatalf("Open info %+v", info)
	}
}

func testClaim(t *testing.T, o Opener) {
	s := open(t, o)
	b := data(100)
	m := create(t, s, alice, 100)
	appendAll(t, s, m.ID, 0, b)
	_, err := s.Claim(ctx(t), m.ID, bob)
	wantErr(t, "claim before finish", err, blob.ErrIncomplete)
	finish(t, s, m.ID, b, bob, bob2, alice2)

	_, err = s.Claim(ctx(t), m.ID, carol)
	wantErr(t, "claim by a stranger", err, blob.ErrNotRecipient)
	_, err = s.Claim(ctx(t), m.ID, alice)
	wantErr(t, "claim by the uploader, not named", err, blob.ErrNotRecipient)

	for i, d := range []blob.Device{bob, bob, alice2} {
		deleted, err := s.Claim(ctx(t), m.ID, d)
		if err != nil || deleted {
			t.Fatalf("claim %d by %v: %v, %v", i, d, deleted, err)
		}
	}
	info, _ := s.Info(ctx(t), m.ID)
	if !slices.Equal(info.Pending, []blob.Device{bob2}) || !slices.Equal(info.Claimed, []blob.Device{alice2, bob}) {
		t.Fatalf("pending %v claimed %v", info.Pending, info.Claimed)
	}
	// Still readable until the last one claims.
	if got := readAll(t, s, m.ID, 0); !bytes.Equal(got, b) {
		t.Fatal("data differs")
	}
	deleted, err := s.Claim(ctx(t), m.ID, bob2)
	if err != nil || !deleted {
		t.Fatalf("last claim: %v, %v", deleted, err)
	}
	_, err = s.Info(ctx(t), m.ID)
	wantErr(t, "Info after the last claim", err, blob.ErrNotFound)
	_, err = s.Claim(ctx(t), m.ID, bob2)
	wantErr(t, "claim after deletion", err, blob.ErrNotFound)
	if u, _ := s.Usage(ctx(t), "alice"); u != 0 {
		t.Fatalf("usage %d after deletion", u)
	}

	// No recipients: nobody can claim; the blob stays.
	m2 := upload(t, s, alice, b)
	_, err = s.Claim(ctx(t), m2.ID, bob)
	wantErr(t, "claim of a blob without recipients", err, blob.ErrNotRecipient)
}

func testDelete(t *testing.T, o Opener) {
	s := open(t, o)
	b := data(100)
	done := upload(t, s, alice, b)
	partial := create(t, s, alice, 100)
	appendAll(t, s, partial.ID, 0, b[:50])
	for _, id := range []string{done.ID, partial.ID} {
		if err := s.Delete(ctx(t), id); err != nil {
			t.Fatal(err)
		}
		_, err := s.Info(ctx(t), id)
		wantErr(t, "Info after Delete", err, blob.ErrNotFound)
		wantErr(t, "second Delete", s.Delete(ctx(t), id), blob.ErrNotFound)
	}
	wantErr(t, "Delete of a malformed id", s.Delete(ctx(t), "x"), blob.ErrNotFound)
	if u, _ := s.Usage(ctx(t), "alice"); u != 0 {
		t.Fatalf("usage %d", u)
	}
}

func testDeleteWhileAppending(t *testing.T, o Opener) {
	s := open(t, o)
	m := create(t, s, alice, 100)
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx(t), m.ID, 0, pr)
		done <- err
	}()
	pw.Write([]byte{1})
	if err := s.Delete(ctx(t), m.ID); err != nil {
		t.Fatal(err)
	}
	pw.Write([]byte{2})
	pw.Close()
	select {
	case err := <-done:
		wantErr(t, "append to a deleted blob", err, blob.ErrNotFound)
	case <-time.After(30 * time.Second):
		t.Fatal("append did not return")
	}
	_, err := s.Info(ctx(t), m.ID)
	wantErr(t, "Info after delete", err, blob.ErrNotFound)
	// Nothing comes back after a restart either.
	s.Close()
	s = open(t, o)
	_, err = s.Info(ctx(t), m.ID)
	wantErr(t, "Info after delete and reopen", err, blob.ErrNotFound)
}

func testExpired(t *testing.T, o Opener) {
	s := open(t, o)
	now := time.Now()
	old := meta(alice, 10)
	old.Expires = now.Add(-time.Second)
	soon := meta(bob, 10)
	soon.Expires = now.Add(time.Minute)
	for _, m := range []blob.Meta{old, soon} {
		if err := s.Create(ctx(t), m, quota); err != nil {
			t.Fatal(err)
		}
	}
	b := data(10)
	fin := create(t, s, carol, 10)
	appendAll(t, s, fin.ID, 0, b)
	if _, err := s.Finish(ctx(t), fin.ID, blob.Finish{SHA256: sum(b), Expires: now.Add(2 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	ids, err := s.Expired(ctx(t), now, 100)
	if err != nil || !slices.Equal(ids, []string{old.ID}) {
		t.Fatalf("Expired(now) = %v, %v", ids, err)
	}
	ids, _ = s.Expired(ctx(t), now.Add(time.Minute), 100)
	slices.Sort(ids)
	want := []string{old.ID, soon.ID}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("Expired(now+1m) = %v, want %v", ids, want)
	}
	ids, _ = s.Expired(ctx(t), now.Add(time.Hour), 2)
	if len(ids) != 2 {
		t.Fatalf("Expired with limit 2 = %d ids", len(ids))
	}
	ids, _ = s.Expired(ctx(t), now.Add(time.Hour), 100)
	if len(ids) != 3 {
		t.Fatalf("Expired(now+1h) = %d ids, want 3", len(ids))
	}
	s.Delete(ctx(t), old.ID)
	ids, _ = s.Expired(ctx(t), now, 100)
	if len(ids) != 0 {
		t.Fatalf("deleted blob still listed: %v", ids)
	}
}

func testReopen(t *testing.T, o Opener) {
	s := open(t, o)
	b := data(200_000)
	partial := create(t, s, alice, int64(len(b)))
	appendAll(t, s, partial.ID, 0, b[:123_457])
	done := upload(t, s, bob, b, carol, alice)
	if _, err := s.Claim(ctx(t), done.ID, carol); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, o)
	info, err := s.Info(ctx(t), partial.ID)
	if err != nil || info.Offset != 123_457 || info.Complete || info.Owner != alice || !info.Created.Equal(partial.Created) {
		t.Fatalf("partial after reopen: %+v, %v", info, err)
	}
	if u, _ := s.Usage(ctx(t), "alice"); u != int64(len(b)) {
		t.Fatalf("usage after reopen %d", u)
	}
	// The upload resumes, and its hash covers the bytes from before.
	appendAll(t, s, partial.ID, 123_457, b[123_457:])
	finish(t, s, partial.ID, b)
	if got := readAll(t, s, partial.ID, 0); !bytes.Equal(got, b) {
		t.Fatal("resumed blob differs")
	}
	info, err = s.Info(ctx(t), done.ID)
	if err != nil || !info.Complete || !slices.Equal(info.Pending, []blob.Device{alice}) || !slices.Equal(info.Claimed, []blob.Device{carol}) {
		t.Fatalf("finished blob after reopen: %+v, %v", info, err)
	}
	if got := readAll(t, s, done.ID, 100); !bytes.Equal(got, b[100:]) {
		t.Fatal("finished blob differs after reopen")
	}
	if deleted, err := s.Claim(ctx(t), done.ID, alice); err != nil || !deleted {
		t.Fatalf("last claim after reopen: %v, %v", deleted, err)
	}
}

func testConcurrent(t *testing.T, o Opener) {
	s := open(t, o)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := blob.Device{Handle: fmt.Sprintf("user%d", i%3), ID: uint32(i)}
			for range 5 {
				b := data(10_000 + i)
				m := meta(owner, int64(len(b)))
				if err := s.Create(ctx(t), m, quota); err != nil {
					errs <- err
					return
				}
				if _, err := s.Append(ctx(t), m.ID, 0, bytes.NewReader(b[:5000])); err != nil {
					errs <- err
					return
				}
				if _, err := s.Append(ctx(t), m.ID, 5000, bytes.NewReader(b[5000:])); err != nil {
					errs <- err
					return
				}
				if _, err := s.Finish(ctx(t), m.ID, blob.Finish{SHA256: sum(b), Recipients: []blob.Device{bob}}); err != nil {
					errs <- err
					return
				}
				if _, err := s.Claim(ctx(t), m.ID, bob); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := range 3 {
		if u, _ := s.Usage(ctx(t), fmt.Sprintf("user%d", i)); u != 0 {
			t.Fatalf("usage of user%d = %d after every blob was claimed", i, u)
		}
	}
}

func testClosed(t *testing.T, o Opener) {
	s := open(t, o)
	m := create(t, s, alice, 10)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "Create after Close", s.Create(ctx(t), meta(alice, 1), quota), blob.ErrClosed)
	_, err := s.Append(ctx(t), m.ID, 0, bytes.NewReader(nil))
	wantErr(t, "Append after Close", err, blob.ErrClosed)
	_, err = s.Info(ctx(t), m.ID)
	wantErr(t, "Info after Close", err, blob.ErrClosed)
}
