package diskstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/blob"
	"github.com/parleychat/parley/internal/blob/blobtest"
)

func TestConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blobtest.Opener {
		dir := filepath.Join(t.TempDir(), "blobs")
		return func() (blob.Store, error) { return Open(dir, nil) }
	})
}

var owner = blob.Device{Handle: "alice", ID: 1}

func testCtx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func newMeta(size int64) blob.Meta {
	now := time.Now()
	return blob.Meta{ID: blob.NewID(), Owner: owner, Size: size, Created: now, Expires: now.Add(time.Hour)}
}

func randData(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func mustOpen(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestFileModesAndLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "blobs")
	s := mustOpen(t, dir)
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("folder mode %v, %v", fi.Mode().Perm(), err)
	}
	b := randData(1000)
	m := newMeta(1000)
	ctx := testCtx(t)
	if err := s.Create(ctx, m, 1<<30); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, m.ID, 0, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	if _, err := s.Finish(ctx, m.ID, blob.Finish{SHA256: h[:]}); err != nil {
		t.Fatal(err)
	}
	des, _ := os.ReadDir(dir)
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
		fi, _ := de.Info()
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", de.Name(), fi.Mode().Perm())
		}
		if strings.Contains(de.Name(), m.ID) {
			t.Errorf("file %s carries the base64url id", de.Name())
		}
	}
	if len(names) != 2 || !strings.HasSuffix(names[0], blobExt) || !strings.HasSuffix(names[1], sidecarExt) {
		t.Fatalf("files %v, want one .blob and one .json", names)
	}
}

// TestRecovery simulates what a crash leaves behind and checks Open
// repairs it.
func TestRecovery(t *testing.T) {
	dir := t.TempDir()
	ctx := testCtx(t)
	s := mustOpen(t, dir)
	b := randData(500_000)

	// 1. Data beyond the recorded offset (written, not yet recorded).
	longer := newMeta(int64(len(b)))
	s.Create(ctx, longer, 1<<40)
	s.Append(ctx, longer.ID, 0, bytes.NewReader(b[:100_000]))
	// 2. Data shorter than recorded (lost in a power cut).
	shorter := newMeta(int64(len(b)))
	s.Create(ctx, shorter, 1<<40)
	s.Append(ctx, shorter.ID, 0, bytes.NewReader(b[:300_000]))
	// 3. Renamed to .blob, sidecar still unfinished.
	renamed := newMeta(int64(len(b)))
	s.Create(ctx, renamed, 1<<40)
	s.Append(ctx, renamed.ID, 0, bytes.NewReader(b))
	// 4. A finished blob whose data vanished.
	vanished := newMeta(int64(len(b)))
	s.Create(ctx, vanished, 1<<40)
	s.Append(ctx, vanished.ID, 0, bytes.NewReader(b))
	h := sha256.Sum256(b)
	if _, err := s.Finish(ctx, vanished.ID, blob.Finish{SHA256: h[:]}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	appendFile(t, s.base(longer.ID)+partExt, b[100_000:150_000])
	if err := os.Truncate(s.base(shorter.ID)+partExt, 200_000); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(s.base(renamed.ID)+partExt, s.base(renamed.ID)+blobExt); err != nil {
		t.Fatal(err)
	}
	os.Remove(s.base(vanished.ID) + blobExt)
	// Orphans and leftovers.
	orphan := filepath.Join(dir, strings.Repeat("ab", 32)+partExt)
	os.WriteFile(orphan, []byte("x"), 0o600)
	tmp := filepath.Join(dir, strings.Repeat("cd", 32)+sidecarExt+tmpExt)
	os.WriteFile(tmp, []byte("{"), 0o600)
	broken := filepath.Join(dir, strings.Repeat("ef", 32)+sidecarExt)
	os.WriteFile(broken, []byte("not json"), 0o600)

	s = mustOpen(t, dir)
	check := func(m blob.Meta, want int64) {
		t.Helper()
		info, err := s.Info(ctx, m.ID)
		if err != nil || info.Offset != want {
			t.Fatalf("after recovery: offset %d, %v; want %d", info.Offset, err, want)
		}
		fi, err := os.Stat(s.base(m.ID) + partExt)
		if err != nil || fi.Size() != want {
			t.Fatalf("data file: %v, %v", fi, err)
		}
		// The upload completes, with a hash over all of it.
		if _, err := s.Append(ctx, m.ID, want, bytes.NewReader(b[want:])); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Finish(ctx, m.ID, blob.Finish{SHA256: h[:]}); err != nil {
			t.Fatalf("finish after recovery: %v", err)
		}
	}
	check(longer, 100_000)
	check(shorter, 200_000)
	check(renamed, int64(len(b)))
	if _, err := s.Info(ctx, vanished.ID); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("finished blob without data: %v", err)
	}
	for _, p := range []string{orphan, tmp, broken} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived recovery", filepath.Base(p))
		}
	}
	if u, _ := s.Usage(ctx, "alice"); u != 3*int64(len(b)) {
		t.Fatalf("usage %d after recovery", u)
	}
}

func appendFile(t *testing.T, path string, b []byte) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(b)
	f.Close()
}

// TestCheckpoint: a long append records its progress while it runs, so a
// crash (here: reading the sidecar mid-append) loses at most
// checkpointBytes.
func TestCheckpoint(t *testing.T) {
	dir := t.TempDir()
	ctx := testCtx(t)
	s := mustOpen(t, dir)
	m := newMeta(3 * checkpointBytes)
	s.Create(ctx, m, 1<<40)
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, m.ID, 0, pr)
		done <- err
	}()
	chunk := make([]byte, 1<<20)
	for range checkpointBytes/len(chunk) + 1 {
		pw.Write(chunk)
	}
	// The writer has handed over more than one checkpoint's worth; the
	// append checkpoints after writing it.
	deadline := time.Now().Add(30 * time.Second)
	var rec record
	for {
		b, err := os.ReadFile(s.base(m.ID) + sidecarExt)
		if err != nil {
			t.Fatal(err)
		}
		rec, err = parseRecord(b)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Offset >= checkpointBytes || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if rec.Offset < checkpointBytes || len(rec.HashState) == 0 {
		t.Fatalf("sidecar offset %d mid-append, want at least %d", rec.Offset, checkpointBytes)
	}
	pw.CloseWithError(errors.New("client went away"))
	<-done
}

// TestAppendMemory appends 64 MiB and requires the allocations to stay far
// below that.
func TestAppendMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB")
	}
	s := mustOpen(t, t.TempDir())
	ctx := testCtx(t)
	const size = 64 << 20
	m := newMeta(size)
	s.Create(ctx, m, 1<<40)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	n, err := s.Append(ctx, m.ID, 0, io.LimitReader(zeros{}, size))
	runtime.ReadMemStats(&after)
	if err != nil || n != size {
		t.Fatalf("append: %d, %v", n, err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Fatalf("allocated %d bytes to append %d", alloc, size)
	}
	rc, _, err := s.Open(ctx, m.ID, 0)
	if !errors.Is(err, blob.ErrIncomplete) {
		t.Fatalf("open before finish: %v", err)
	}
	_ = rc
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// FuzzRecord parses arbitrary sidecars: whatever parses encodes to JSON
// that parses to the same record and encodes identically.
func FuzzRecord(f *testing.F) {
	f.Add([]byte(`{"v":1,"id":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","owner":{"handle":"alice","device_id":1},"size":10,"created":"2025-01-01T00:00:00Z","expires":"2025-02-01T00:00:00Z","lifetime":0,"offset":3}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseRecord(b)
		if err != nil {
			return
		}
		out, err := json.Marshal(&r)
		if err != nil {
			t.Fatalf("a parsed record does not encode: %v", err)
		}
		r2, err := parseRecord(out)
		if err != nil {
			t.Fatalf("an encoded record does not parse: %v\n%s", err, out)
		}
		out2, _ := json.Marshal(&r2)
		if !bytes.Equal(out, out2) {
			t.Fatalf("encoding is not stable:\n%s\n%s", out, out2)
		}
	})
}
