package stream_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"runtime"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/parleychat/parley/internal/stream"
)

const (
	cs  = stream.ChunkSize
	ecs = stream.EncryptedChunkSize
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, stream.KeySize) }

func randBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// encrypt encrypts pt writing it in pieces of step bytes (all at once if 0).
func encrypt(t testing.TB, key, pt []byte, step int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := stream.NewWriter(key, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if step <= 0 {
		step = len(pt) + 1
	}
	for p := pt; len(p) > 0; {
		n := min(step, len(p))
		if m, err := w.Write(p[:n]); err != nil || m != n {
			t.Fatalf("Write = %d, %v", m, err)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decrypt(t testing.TB, key, ct []byte) ([]byte, error) {
	t.Helper()
	r, err := stream.NewReader(key, bytes.NewReader(ct))
	if err != nil {
		t.Fatal(err)
	}
	return decryptAll(r)
}

// TestChunkLayout seals chunks directly with ChaCha20-Poly1305 and the
// nonces the age spec gives, and requires the Writer's exact bytes.
func TestChunkLayout(t *testing.T) {
	key := testKey(7)
	aead, err := chacha20poly1305.New(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{0, 1, cs - 1, cs, cs + 1, 2 * cs, 2*cs + 17, 3 * cs} {
		pt := randBytes(t, size)
		var want []byte
		for i := 0; ; i++ {
			start := i * cs
			end := min(start+cs, size)
			last := end == size
			nonce := make([]byte, 12)
			nonce[10] = byte(i) // counter < 256 here; bytes 0..10 big-endian
			if last {
				nonce[11] = 1
			}
			want = aead.Seal(want, nonce, pt[start:end], nil)
			if last {
				break
			}
		}
		got := encrypt(t, key, pt, 0)
		if !bytes.Equal(got, want) {
			t.Fatalf("size %d: Writer output differs from a hand-built STREAM", size)
		}
		if int64(len(got)) != stream.EncryptedSize(int64(size)) {
			t.Fatalf("size %d: %d bytes, EncryptedSize says %d", size, len(got), stream.EncryptedSize(int64(size)))
		}
	}
}

// TestCounterBytes checks the counter is big-endian over 11 bytes by
// decrypting chunk 0x0102 resumed in isolation.
func TestCounterBytes(t *testing.T) {
	key := testKey(3)
	aead, _ := chacha20poly1305.New(key)
	nonce := []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 1}
	ct := aead.Seal(nil, nonce, []byte("tail"), nil)
	r, err := stream.NewReaderAt(key, bytes.NewReader(ct), 0x0102)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decryptAll(r)
	if err != nil || string(got) != "tail" {
		t.Fatalf("chunk 0x0102: %q, %v", got, err)
	}
}

func TestRoundTrip(t *testing.T) {
	key := testKey(1)
	sizes := []int{0, 1, 100, cs - 1, cs, cs + 1, 2*cs - 1, 2 * cs, 2*cs + 1, 5*cs + 12345}
	steps := []int{0, 1000, cs, cs + 1, 7}
	for _, size := range sizes {
		pt := randBytes(t, size)
		want := encrypt(t, key, pt, 0)
		for _, step := range steps {
			if step == 1000 || step == 7 {
				if size > 3*cs {
					continue
				}
			}
			if ct := encrypt(t, key, pt, step); !bytes.Equal(ct, want) {
				t.Fatalf("size %d: writing in pieces of %d changes the ciphertext", size, step)
			}
		}
		// io.Copy uses ReadFrom; a reader that returns little at a time too.
		for _, src := range []io.Reader{bytes.NewReader(pt), io.LimitReader(&slowReader{bytes.NewReader(pt), 999}, int64(size))} {
			var buf bytes.Buffer
			w, _ := stream.NewWriter(key, &buf)
			if n, err := io.Copy(w, src); err != nil || n != int64(size) {
				t.Fatalf("size %d: io.Copy = %d, %v", size, n, err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Fatalf("size %d: ReadFrom changes the ciphertext", size)
			}
		}
		got, err := decrypt(t, key, want)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("size %d: decrypt: %d bytes, %v", size, len(got), err)
		}
		// Small reads.
		r, _ := stream.NewReader(key, &slowReader{bytes.NewReader(want), 333})
		var out bytes.Buffer
		buf := make([]byte, 77)
		for {
			n, err := r.Read(buf)
			out.Write(buf[:n])
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(out.Bytes(), pt) {
			t.Fatalf("size %d: small reads differ", size)
		}
		if n, err := stream.PlaintextSize(int64(len(want))); err != nil || n != int64(size) {
			t.Fatalf("PlaintextSize(%d) = %d, %v", len(want), n, err)
		}
	}
}

type slowReader struct {
	r io.Reader
	n int
}

func (s *slowReader) Read(p []byte) (int, error) {
	if len(p) > s.n {
		p = p[:s.n]
	}
	return s.r.Read(p)
}

func TestWriterClose(t *testing.T) {
	var buf bytes.Buffer
	w, _ := stream.NewWriter(testKey(1), &buf)
	w.Write([]byte("x"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	n := buf.Len()
	if err := w.Close(); err != nil || buf.Len() != n {
		t.Fatalf("second Close: %v, wrote %d more bytes", err, buf.Len()-n)
	}
	if _, err := w.Write([]byte("y")); !errors.Is(err, stream.ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	if _, err := stream.NewWriter(make([]byte, 31), &buf); !errors.Is(err, stream.ErrKeySize) {
		t.Fatalf("short key: %v", err)
	}
	if _, err := stream.NewReader(make([]byte, 33), &buf); !errors.Is(err, stream.ErrKeySize) {
		t.Fatalf("long key: %v", err)
	}
	if _, err := stream.NewReaderAt(testKey(1), &buf, -1); !errors.Is(err, stream.ErrSize) {
		t.Fatalf("negative chunk: %v", err)
	}
}

type failWriter struct{ after int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("disk full")
	}
	f.after--
	return len(p), nil
}

func TestWriterError(t *testing.T) {
	w, _ := stream.NewWriter(testKey(1), &failWriter{after: 1})
	if _, err := w.Write(make([]byte, 3*cs)); err == nil {
		t.Fatal("write error not reported")
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("error not sticky")
	}
	if err := w.Close(); err == nil {
		t.Fatal("Close after an error succeeded")
	}
}

func TestSizes(t *testing.T) {
	cases := []struct{ pt, ct int64 }{
		{0, 16}, {1, 17}, {cs - 1, ecs - 1}, {cs, ecs}, {cs + 1, ecs + 17},
		{2 * cs, 2 * ecs}, {4 << 30, 4<<30 + 65536*16}, {4<<30 + 1, 4<<30 + 65537*16 + 1},
	}
	for _, c := range cases {
		if got := stream.EncryptedSize(c.pt); got != c.ct {
			t.Errorf("EncryptedSize(%d) = %d, want %d", c.pt, got, c.ct)
		}
		if got, err := stream.PlaintextSize(c.ct); err != nil || got != c.pt {
			t.Errorf("PlaintextSize(%d) = %d, %v, want %d", c.ct, got, err, c.pt)
		}
	}
	for _, bad := range []int64{-1, 0, 15, ecs + 1, ecs + 16, 2*ecs + 5, 1 << 62} {
		if _, err := stream.PlaintextSize(bad); !errors.Is(err, stream.ErrSize) {
			t.Errorf("PlaintextSize(%d): %v, want ErrSize", bad, err)
		}
	}
	if stream.EncryptedSize(-1) != -1 || stream.EncryptedSize(1<<62) != -1 {
		t.Error("EncryptedSize accepts nonsense")
	}
	// Every size up to a few chunks maps back and forth.
	for n := int64(0); n < 3*cs+40; n += 7 {
		c := stream.EncryptedSize(n)
		if p, err := stream.PlaintextSize(c); err != nil || p != n {
			t.Fatalf("round trip of %d: %d, %v", n, p, err)
		}
	}
	if c, p := stream.ChunkOffset(3); c != 3*ecs || p != 3*cs {
		t.Errorf("ChunkOffset(3) = %d, %d", c, p)
	}
}

func TestResume(t *testing.T) {
	key := testKey(2)
	pt := randBytes(t, 4*cs+1000)
	ct := encrypt(t, key, pt, 0)
	for i := int64(0); i <= 4; i++ {
		co, po := stream.ChunkOffset(i)
		r, err := stream.NewReaderAt(key, bytes.NewReader(ct[co:]), i)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decryptAll(r)
		if err != nil || !bytes.Equal(got, pt[po:]) {
			t.Fatalf("resume at %d: %d bytes, %v", i, len(got), err)
		}
	}
	// Starting at the wrong chunk index, or mid-chunk, fails.
	co, _ := stream.ChunkOffset(2)
	r, _ := stream.NewReaderAt(key, bytes.NewReader(ct[co:]), 1)
	if _, err := decryptAll(r); !errors.Is(err, stream.ErrAuth) {
		t.Fatalf("wrong index: %v", err)
	}
	r, _ = stream.NewReaderAt(key, bytes.NewReader(ct[co+1:]), 2)
	if _, err := decryptAll(r); !errors.Is(err, stream.ErrAuth) {
		t.Fatalf("mid-chunk start: %v", err)
	}
	// The last chunk of an empty-tailed stream resumed alone: an empty
	// final chunk is only valid as chunk 0.
	empty := encrypt(t, key, nil, 0)
	r, _ = stream.NewReaderAt(key, bytes.NewReader(empty), 0)
	if got, err := decryptAll(r); err != nil || len(got) != 0 {
		t.Fatalf("empty: %v", err)
	}
}

func TestWriterAt(t *testing.T) {
	key := testKey(6)
	for _, size := range []int{1, cs, cs + 1, 3*cs - 1, 3 * cs, 3*cs + 9} {
		pt := randBytes(t, size)
		ct := encrypt(t, key, pt, 0)
		for i := int64(0); ; i++ {
			co, po := stream.ChunkOffset(i)
			if co >= int64(len(ct)) {
				break
			}
			var buf bytes.Buffer
			w, err := stream.NewWriterAt(key, &buf, i)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(pt[po:])
			if err := w.Close(); err != nil {
				t.Fatalf("size %d, chunk %d: %v", size, i, err)
			}
			if !bytes.Equal(buf.Bytes(), ct[co:]) {
				t.Fatalf("size %d: encryption resumed at chunk %d differs", size, i)
			}
		}
	}
	// Past the end there is no chunk to write.
	w, _ := stream.NewWriterAt(key, io.Discard, 3)
	if err := w.Close(); !errors.Is(err, stream.ErrEmptyFinalChunk) {
		t.Fatalf("empty resumed writer: %v", err)
	}
	if _, err := stream.NewWriterAt(key, io.Discard, -1); !errors.Is(err, stream.ErrSize) {
		t.Fatalf("negative chunk: %v", err)
	}
}

func TestTampering(t *testing.T) {
	key := testKey(4)
	pt := randBytes(t, 3*cs+500)
	ct := encrypt(t, key, pt, 0)
	mod := func(f func([]byte) []byte) []byte { return f(bytes.Clone(ct)) }

	cases := []struct {
		name     string
		ct       []byte
		want     error
		released int // plaintext bytes released before the error
	}{
		{"flip in chunk 0", mod(func(b []byte) []byte { b[10] ^= 1; return b }), stream.ErrAuth, 0},
		{"flip in chunk 2", mod(func(b []byte) []byte { b[2*ecs+5] ^= 0x80; return b }), stream.ErrAuth, 2 * cs},
		{"flip in last tag", mod(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), stream.ErrAuth, 3 * cs},
		{"cut mid-chunk", ct[:2*ecs+100], stream.ErrAuth, 2 * cs},
		{"cut at a chunk boundary", ct[:2*ecs], stream.ErrTruncated, 2 * cs},
		{"cut to nothing", nil, stream.ErrTruncated, 0},
		{"trailing byte", append(bytes.Clone(ct), 0), stream.ErrAuth, 3 * cs},
		{"chunks swapped", mod(func(b []byte) []byte {
			tmp := bytes.Clone(b[:ecs])
			copy(b[:ecs], b[ecs:2*ecs])
			copy(b[ecs:2*ecs], tmp)
			return b
		}), stream.ErrAuth, 0},
		{"chunk dropped", append(bytes.Clone(ct[:ecs]), ct[2*ecs:]...), stream.ErrAuth, cs},
		{"chunk repeated", append(bytes.Clone(ct[:2*ecs]), ct[ecs:]...), stream.ErrAuth, 2 * cs},
	}
	for _, c := range cases {
		got, err := decrypt(t, key, c.ct)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if !bytes.Equal(got, pt[:c.released]) {
			t.Errorf("%s: released %d bytes, want the first %d", c.name, len(got), c.released)
		}
	}
	// The wrong key.
	if _, err := decrypt(t, testKey(5), ct); !errors.Is(err, stream.ErrAuth) {
		t.Errorf("wrong key: %v", err)
	}
	// A full final chunk followed by bytes: the chunk is released, then
	// ErrTrailingData.
	full := randBytes(t, 2*cs)
	fct := encrypt(t, key, full, 0)
	got, err := decrypt(t, key, append(fct, 1, 2, 3))
	if !errors.Is(err, stream.ErrTrailingData) || !bytes.Equal(got, full) {
		t.Errorf("trailing data after a full final chunk: %d bytes, %v", len(got), err)
	}
	// An empty final chunk after data.
	aead, _ := chacha20poly1305.New(key)
	bad := append(bytes.Clone(fct[:ecs]), aead.Seal(nil, []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1}, nil, nil)...)
	if _, err := decrypt(t, key, bad); !errors.Is(err, stream.ErrEmptyFinalChunk) {
		t.Errorf("empty final chunk: %v", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestReaderSourceError(t *testing.T) {
	key := testKey(1)
	ct := encrypt(t, key, randBytes(t, 2*cs), 0)
	boom := errors.New("connection reset")
	r, _ := stream.NewReader(key, io.MultiReader(bytes.NewReader(ct[:ecs+1]), errReader{boom}))
	got, err := decryptAll(r)
	if !errors.Is(err, boom) || len(got) != cs {
		t.Fatalf("source error: %d bytes, %v", len(got), err)
	}
}

// TestFlatMemory encrypts and decrypts 64 MiB through pipes and requires
// the allocations to stay well below the data size.
func TestFlatMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB")
	}
	key := testKey(9)
	const size = 64 << 20
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	pr, pw := io.Pipe()
	go func() {
		w, _ := stream.NewWriter(key, pw)
		_, err := io.Copy(w, io.LimitReader(zeroReader{}, size))
		if err == nil {
			err = w.Close()
		}
		pw.CloseWithError(err)
	}()
	r, _ := stream.NewReader(key, pr)
	n, err := io.Copy(io.Discard, r)
	if err != nil || n != size {
		t.Fatalf("%d bytes, %v", n, err)
	}
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Fatalf("allocated %d bytes for a %d-byte stream", alloc, size)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func benchmarkSize() int64 { return 64 << 20 }

func BenchmarkEncrypt64MiB(b *testing.B) {
	key := testKey(1)
	size := benchmarkSize()
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		w, _ := stream.NewWriter(key, io.Discard)
		if _, err := io.Copy(w, io.LimitReader(zeroReader{}, size)); err != nil {
			b.Fatal(err)
		}
		w.Close()
	}
}

func BenchmarkDecrypt64MiB(b *testing.B) {
	key := testKey(1)
	size := benchmarkSize()
	var buf bytes.Buffer
	buf.Grow(int(stream.EncryptedSize(size)))
	w, _ := stream.NewWriter(key, &buf)
	io.Copy(w, io.LimitReader(zeroReader{}, size))
	w.Close()
	ct := buf.Bytes()
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		r, _ := stream.NewReader(key, bytes.NewReader(ct))
		if n, err := io.Copy(io.Discard, r); err != nil || n != size {
			b.Fatal(n, err)
		}
	}
}
