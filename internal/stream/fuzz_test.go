package stream_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/parleychat/parley/internal/stream"
)

// fuzzKey is the key of every fuzz target; the seeds in
// testdata/fuzz/FuzzDecrypt are encrypted under it.
var fuzzKey = testKey(0x42)

// FuzzDecrypt decrypts arbitrary bytes, starting at an arbitrary chunk
// index. Whatever decrypts in full re-encrypts to exactly the input, and
// its size agrees with PlaintextSize; whatever fails released only
// authenticated chunks, which re-encrypt to a prefix of the input.
func FuzzDecrypt(f *testing.F) {
	f.Add([]byte{}, uint16(0))
	f.Add(encrypt(f, fuzzKey, nil, 0), uint16(0))
	f.Add(encrypt(f, fuzzKey, []byte("hello, world"), 0), uint16(0))
	f.Fuzz(func(t *testing.T, ct []byte, start uint16) {
		r, err := stream.NewReaderAt(fuzzKey, bytes.NewReader(ct), int64(start))
		if err != nil {
			t.Fatal(err)
		}
		pt, err := decryptAll(r)
		if err != nil {
			if !errors.Is(err, stream.ErrAuth) && !errors.Is(err, stream.ErrTruncated) &&
				!errors.Is(err, stream.ErrTrailingData) && !errors.Is(err, stream.ErrEmptyFinalChunk) {
				t.Fatalf("unexpected error %v", err)
			}
			if len(pt)%stream.ChunkSize != 0 && !errors.Is(err, stream.ErrTrailingData) {
				t.Fatalf("released %d bytes, not whole chunks, before %v", len(pt), err)
			}
			return
		}
		if start == 0 {
			if got := encrypt(t, fuzzKey, pt, 0); !bytes.Equal(got, ct) {
				t.Fatalf("decrypted %d bytes that re-encrypt differently", len(pt))
			}
			if n, err := stream.PlaintextSize(int64(len(ct))); err != nil || n != int64(len(pt)) {
				t.Fatalf("PlaintextSize(%d) = %d, %v; decrypted %d", len(ct), n, err, len(pt))
			}
		}
	})
}

// FuzzModify encrypts a plaintext (repeated to span several chunks), then
// flips, cuts or extends the ciphertext: decryption succeeds if and only
// if nothing changed, and never releases plaintext that was not sent.
func FuzzModify(f *testing.F) {
	f.Add([]byte("abc"), uint16(0), uint32(0), byte(0), uint32(0), []byte{})
	f.Add([]byte("abc"), uint16(30000), uint32(70000), byte(1), uint32(0), []byte{})
	f.Add([]byte("0123456789"), uint16(20000), uint32(0), byte(0), uint32(65552), []byte{})
	f.Add([]byte("x"), uint16(65535), uint32(0), byte(0), uint32(0), []byte{0})
	f.Fuzz(func(t *testing.T, unit []byte, repeat uint16, pos uint32, xor byte, cut uint32, extra []byte) {
		pt := bytes.Repeat(unit, int(repeat)%8+1)
		if len(unit) > 0 && int(repeat) > 8 {
			pt = bytes.Repeat(unit, min(int(repeat), (4*stream.ChunkSize)/len(unit)+1))
		}
		ct := encrypt(t, fuzzKey, pt, 0)
		mod := bytes.Clone(ct)
		if len(mod) > 0 {
			mod[int(pos)%len(mod)] ^= xor
		}
		if cut > 0 {
			mod = mod[:int(cut)%(len(mod)+1)]
		}
		mod = append(mod, extra...)
		got, err := decrypt(t, fuzzKey, mod)
		same := bytes.Equal(mod, ct)
		if same != (err == nil) {
			t.Fatalf("modified=%v but err=%v", !same, err)
		}
		if !bytes.HasPrefix(pt, got) {
			t.Fatalf("released %d bytes that are not a prefix of the plaintext", len(got))
		}
		if same && !bytes.Equal(got, pt) {
			t.Fatal("round trip differs")
		}
	})
}

// FuzzWriteRead encrypts with writes of one size and decrypts with reads
// of another: the ciphertext never depends on how it was written, the
// plaintext comes back whole, and encryption resumed at a chunk
// (NewWriterAt) gives the rest of the same ciphertext.
func FuzzWriteRead(f *testing.F) {
	f.Add([]byte("hello"), uint16(1), uint16(3), uint32(1))
	f.Add([]byte("0123456789abcdef"), uint16(4096), uint16(65535), uint32(8193))
	f.Add([]byte{0xff}, uint16(65535), uint16(1), uint32(2))
	f.Fuzz(func(t *testing.T, unit []byte, repeat, wstep uint16, rstep uint32) {
		pt := bytes.Repeat(unit, int(repeat)%(3*stream.ChunkSize/max(1, len(unit))+2))
		want := encrypt(t, fuzzKey, pt, 0)
		if got := encrypt(t, fuzzKey, pt, int(wstep)+1); !bytes.Equal(got, want) {
			t.Fatalf("writes of %d bytes change the ciphertext", int(wstep)+1)
		}
		r, _ := stream.NewReader(fuzzKey, &slowReader{bytes.NewReader(want), int(rstep%100000) + 1})
		buf := make([]byte, int(rstep%70000)+1)
		var out bytes.Buffer
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
			t.Fatal("plaintext differs")
		}
		// Encryption resumed at any chunk gives the rest of the ciphertext.
		chunks := int64(len(want)+stream.EncryptedChunkSize-1) / stream.EncryptedChunkSize
		i := int64(wstep) % chunks
		co, po := stream.ChunkOffset(i)
		var rest bytes.Buffer
		w, err := stream.NewWriterAt(fuzzKey, &rest, i)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(pt[po:])
		if err := w.Close(); err != nil || !bytes.Equal(rest.Bytes(), want[co:]) {
			t.Fatalf("encryption resumed at chunk %d differs (%v)", i, err)
		}
	})
}
