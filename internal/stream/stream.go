// Package stream is the age STREAM payload encryption, byte for byte
// (age-encryption.org/v1, "Payload"; the STREAM construction of Hoang,
// Reyhanitabar, Rogaway and Vizár): the plaintext is cut into chunks of
// ChunkSize bytes, each sealed with ChaCha20-Poly1305 under one key, with
// the 12-byte nonce
//
//	nonce = counter (11 bytes, big-endian, from 0) || flag (1 byte)
//
// where flag is 0x01 on the final chunk and 0x00 on every other one. A
// non-final chunk is always full; the final chunk holds the rest, and is
// full only when the plaintext length is a non-zero multiple of ChunkSize;
// it is empty only when the whole plaintext is (an empty file is one empty
// final chunk, Overhead bytes).
//
// Parley encrypts each file under a fresh random key with this package; the
// key travels inside the end-to-end encrypted message. Writer encrypts and
// Reader decrypts as streams, in memory that does not grow with the size;
// NewReaderAt resumes decryption at any chunk (for a download resumed with
// an HTTP Range request), NewWriterAt resumes encryption at any chunk (for
// an upload resumed at an offset), and EncryptedSize / PlaintextSize /
// ChunkOffset map sizes and offsets between plaintext and ciphertext.
//
// A Reader releases a chunk's plaintext only after that chunk
// authenticated, but a stream can still turn out bad later (a tampered or
// missing later chunk): a caller that must not act on partial data (the
// client writing a received file) writes to a temporary place and keeps the
// result only when Read returned io.EOF.
package stream

import (
	"crypto/cipher"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
)

// Sizes of the construction.
const (
	ChunkSize          = 64 << 10                       // plaintext bytes in a full chunk
	Overhead           = chacha20poly1305.Overhead      // Poly1305 tag per chunk
	EncryptedChunkSize = ChunkSize + Overhead           // ciphertext bytes of a full chunk
	KeySize            = chacha20poly1305.KeySize       // 32
	NonceSize          = chacha20poly1305.NonceSize     // 12
	counterSize        = NonceSize - 1                  // 11-byte big-endian chunk counter
	lastChunkFlag      = 0x01                           // last nonce byte of the final chunk
	maxChunks          = int64(1) << 40                 // bound on chunk counts (64 PiB of plaintext)
	maxPlaintextSize   = maxChunks * ChunkSize          // bound on plaintext sizes
	maxEncryptedSize   = maxChunks * EncryptedChunkSize // bound on ciphertext sizes
)

// Errors. Read and Write wrap them with the chunk index.
var (
	ErrKeySize = errors.New("stream: the key is not 32 bytes")
	// ErrAuth: a chunk did not authenticate: a tampered, reordered or
	// substituted chunk, or the wrong key.
	ErrAuth = errors.New("stream: chunk failed to authenticate (tampered, cut short or wrong key)")
	// ErrTruncated: the ciphertext ends without its final chunk.
	ErrTruncated = errors.New("stream: the ciphertext is truncated (no final chunk)")
	// ErrTrailingData: bytes follow the final chunk.
	ErrTrailingData = errors.New("stream: data after the final chunk")
	// ErrEmptyFinalChunk: a final chunk is empty although it is not the
	// first chunk (only an empty plaintext ends with an empty chunk).
	ErrEmptyFinalChunk = errors.New("stream: empty final chunk after data")
	// ErrSize: a size or chunk index is negative, too large, or not the
	// size of any ciphertext.
	ErrSize = errors.New("stream: invalid size or chunk index")
	// ErrClosed: Write after Close.
	ErrClosed = errors.New("stream: write after Close")
)

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, ErrKeySize
	}
	a, err := chacha20poly1305.New(key)
	if err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	return a, nil
}

// setNonce writes the STREAM nonce of one chunk into n.
func setNonce(n *[NonceSize]byte, chunk int64, last bool) {
	*n = [NonceSize]byte{}
	c := uint64(chunk)
	for i := counterSize - 1; i >= 0 && c > 0; i-- {
		n[i] = byte(c)
		c >>= 8
	}
	if last {
		n[NonceSize-1] = lastChunkFlag
	}
}

// EncryptedSize returns the ciphertext size of a plaintext of n bytes:
// n plus Overhead per chunk, with at least one chunk. It returns -1 for a
// negative n or one beyond 2^40 chunks (64 PiB).
func EncryptedSize(n int64) int64 {
	if n < 0 || n > maxPlaintextSize {
		return -1
	}
	chunks := (n + ChunkSize - 1) / ChunkSize
	if chunks == 0 {
		chunks = 1
	}
	return n + chunks*Overhead
}

// PlaintextSize returns the plaintext size of a ciphertext of n bytes, or
// ErrSize if no valid ciphertext has that size (less than Overhead, or a
// last chunk of 1 to Overhead bytes, or an empty last chunk after full
// ones).
func PlaintextSize(n int64) (int64, error) {
	if n < Overhead || n > maxEncryptedSize {
		return 0, fmt.Errorf("%w: %d is not the size of a ciphertext", ErrSize, n)
	}
	full, rest := n/EncryptedChunkSize, n%EncryptedChunkSize
	switch {
	case rest == 0:
		return full * ChunkSize, nil
	case rest == Overhead && full == 0:
		return 0, nil
	case rest <= Overhead:
		return 0, fmt.Errorf("%w: %d is not the size of a ciphertext", ErrSize, n)
	default:
		return full*ChunkSize + rest - Overhead, nil
	}
}

// ChunkOffset returns where chunk i starts: in the ciphertext
// (i*EncryptedChunkSize) and in the plaintext (i*ChunkSize). A resumed
// download that holds p plaintext bytes restarts at chunk p/ChunkSize.
func ChunkOffset(i int64) (ciphertext, plaintext int64) {
	return i * EncryptedChunkSize, i * ChunkSize
}

// Writer encrypts what is written to it and writes the ciphertext to the
// underlying writer, one chunk at a time. It holds back up to one chunk of
// plaintext, because a chunk is sealed only once it is known whether it is
// the final one; Close seals and writes the final chunk. Its memory is
// one chunk whatever the size of the stream.
type Writer struct {
	aead   cipher.AEAD
	dst    io.Writer
	buf    []byte // plaintext of the current chunk; capacity EncryptedChunkSize
	chunk  int64  // index of the current chunk
	start  int64  // index of the first chunk (NewWriterAt)
	nonce  [NonceSize]byte
	peek   [1]byte
	err    error // sticky
	closed bool
}

// NewWriter returns a Writer that encrypts to dst under key (KeySize
// bytes). The caller must call Close to write the final chunk; Close does
// not close dst.
func NewWriter(key []byte, dst io.Writer) (*Writer, error) {
	a, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	return &Writer{aead: a, dst: dst, buf: make([]byte, 0, EncryptedChunkSize)}, nil
}

// NewWriterAt returns a Writer that starts at chunk i: given the plaintext
// from i*ChunkSize on, it writes the ciphertext from ChunkOffset(i) on.
// STREAM is deterministic under one key, so an upload resumed at
// ciphertext offset o needs no copy of the ciphertext: re-encrypt from
// chunk i = o/EncryptedChunkSize and skip the first o%EncryptedChunkSize
// bytes of the output. Closing it with nothing written is an error for
// i > 0 (the stream has no chunk i).
func NewWriterAt(key []byte, dst io.Writer, i int64) (*Writer, error) {
	if i < 0 || i >= maxChunks {
		return nil, fmt.Errorf("%w: chunk %d", ErrSize, i)
	}
	w, err := NewWriter(key, dst)
	if err != nil {
		return nil, err
	}
	w.chunk = i
	w.start = i
	return w, nil
}

// Write encrypts p. It returns len(p) unless writing a full chunk to the
// underlying writer failed; after an error every call fails.
func (w *Writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, ErrClosed
	}
	if w.err != nil {
		return 0, w.err
	}
	n := 0
	for len(p) > 0 {
		if len(w.buf) == ChunkSize {
			// More plaintext follows, so the full chunk is not the last.
			if err := w.flush(false); err != nil {
				return n, err
			}
		}
		c := copy(w.buf[len(w.buf):ChunkSize], p)
		w.buf = w.buf[:len(w.buf)+c]
		p = p[c:]
		n += c
	}
	return n, nil
}

// ReadFrom encrypts everything r yields until io.EOF, reading straight
// into the chunk buffer (io.Copy uses it). It does not Close.
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	if w.closed {
		return 0, ErrClosed
	}
	if w.err != nil {
		return 0, w.err
	}
	var total int64
	for {
		if len(w.buf) == ChunkSize {
			// Only seal once it is certain more plaintext follows: peek
			// one byte into the spare capacity.
			n, err := io.ReadFull(r, w.peek[:])
			if n == 0 {
				if err == io.EOF || err == io.ErrUnexpectedEOF {
					return total, nil
				}
				return total, err
			}
			if err := w.flush(false); err != nil {
				return total, err
			}
			w.buf = append(w.buf, w.peek[0])
			total++
		}
		n, err := r.Read(w.buf[len(w.buf):ChunkSize])
		w.buf = w.buf[:len(w.buf)+n]
		total += int64(n)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// Close seals and writes the final chunk (empty if nothing was written).
// It does not close the underlying writer. Calling it again does nothing.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err != nil {
		return w.err
	}
	if len(w.buf) == 0 && w.chunk > 0 && w.chunk == w.start {
		w.err = fmt.Errorf("%w: nothing to encrypt at chunk %d", ErrEmptyFinalChunk, w.chunk)
		return w.err
	}
	return w.flush(true)
}

// flush seals the buffered plaintext as chunk w.chunk and writes it.
func (w *Writer) flush(last bool) error {
	if w.chunk >= maxChunks {
		w.err = fmt.Errorf("%w: more than 2^40 chunks", ErrSize)
		return w.err
	}
	setNonce(&w.nonce, w.chunk, last)
	ct := w.aead.Seal(w.buf[:0], w.nonce[:], w.buf, nil)
	if _, err := w.dst.Write(ct); err != nil {
		w.err = fmt.Errorf("stream: writing chunk %d: %w", w.chunk, err)
		return w.err
	}
	w.buf = w.buf[:0]
	w.chunk++
	return nil
}

// Reader decrypts a STREAM ciphertext read from an underlying reader. Each
// chunk's plaintext is released only after it authenticated; Read returns
// io.EOF only after the final chunk authenticated with nothing after it.
// Its memory is two chunks whatever the size of the stream.
type Reader struct {
	aead   cipher.AEAD
	src    io.Reader
	in     []byte // EncryptedChunkSize+1: a chunk and one byte of lookahead
	have   int    // bytes of in already read (the lookahead carried over)
	out    []byte // decrypted chunk; capacity ChunkSize
	unread []byte // the part of out not yet returned
	chunk  int64  // index of the next chunk to decrypt
	nonce  [NonceSize]byte
	done   bool  // the final chunk was decrypted
	err    error // sticky; returned once unread is drained
}

// NewReader returns a Reader of the whole ciphertext src under key.
func NewReader(key []byte, src io.Reader) (*Reader, error) {
	return NewReaderAt(key, src, 0)
}

// NewReaderAt returns a Reader that starts at chunk i: src must yield the
// ciphertext from ChunkOffset(i) on, and the Reader yields the plaintext
// from i*ChunkSize on. A download resumed after p plaintext bytes were
// kept restarts at i = p/ChunkSize (dropping the partial chunk beyond
// i*ChunkSize) and fetches the ciphertext from ChunkOffset(i). Chunk
// indices are authenticated (they are in the nonce), so a src that starts
// elsewhere fails with ErrAuth.
func NewReaderAt(key []byte, src io.Reader, i int64) (*Reader, error) {
	if i < 0 || i >= maxChunks {
		return nil, fmt.Errorf("%w: chunk %d", ErrSize, i)
	}
	a, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	return &Reader{
		aead:  a,
		src:   src,
		in:    make([]byte, EncryptedChunkSize+1),
		out:   make([]byte, 0, ChunkSize),
		chunk: i,
	}, nil
}

// Read returns decrypted plaintext. Errors wrap ErrAuth, ErrTruncated,
// ErrTrailingData, ErrEmptyFinalChunk, or the underlying reader's error;
// plaintext that authenticated before the error is returned first.
func (r *Reader) Read(p []byte) (int, error) {
	for len(r.unread) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.done {
			return 0, io.EOF
		}
		r.err = r.next()
	}
	n := copy(p, r.unread)
	r.unread = r.unread[n:]
	return n, nil
}

// next reads and decrypts one chunk into r.unread, or returns why not.
// An error returned together with plaintext (a final chunk followed by
// trailing data) leaves the plaintext in r.unread.
func (r *Reader) next() error {
	// Fill the chunk plus one byte of lookahead, which tells whether more
	// follows.
	n, err := io.ReadFull(r.src, r.in[r.have:])
	n += r.have
	r.have = 0
	switch err {
	case nil:
	case io.EOF, io.ErrUnexpectedEOF:
		return r.final(r.in[:n])
	default:
		return fmt.Errorf("stream: reading chunk %d: %w", r.chunk, err)
	}

	// A full chunk with more after it: normally a non-final chunk. If it
	// authenticates only as a final chunk, the stream ended here and the
	// rest is trailing data (its plaintext is still released: it
	// authenticated).
	ct := r.in[:EncryptedChunkSize]
	if r.open(ct, false) {
		r.in[0] = r.in[EncryptedChunkSize]
		r.have = 1
		r.chunk++
		return nil
	}
	if r.open(ct, true) {
		r.done = true
		return fmt.Errorf("%w (after chunk %d)", ErrTrailingData, r.chunk)
	}
	return fmt.Errorf("%w (chunk %d)", ErrAuth, r.chunk)
}

// final decrypts ct, the last bytes of the stream, as the final chunk.
func (r *Reader) final(ct []byte) error {
	if len(ct) == 0 {
		return fmt.Errorf("%w (chunk %d is missing)", ErrTruncated, r.chunk)
	}
	if r.open(ct, true) {
		if len(r.unread) == 0 && r.chunk != 0 {
			return fmt.Errorf("%w (chunk %d)", ErrEmptyFinalChunk, r.chunk)
		}
		r.done = true
		return nil
	}
	// A full chunk that authenticates as non-final: the stream was cut at
	// a chunk boundary. The chunk's plaintext is released (it is
	// authentic), then the error.
	if len(ct) == EncryptedChunkSize && r.open(ct, false) {
		return fmt.Errorf("%w (ends after chunk %d)", ErrTruncated, r.chunk)
	}
	return fmt.Errorf("%w (chunk %d)", ErrAuth, r.chunk)
}

// open decrypts ct as chunk r.chunk into r.unread and reports success.
func (r *Reader) open(ct []byte, last bool) bool {
	if len(ct) < Overhead {
		return false
	}
	setNonce(&r.nonce, r.chunk, last)
	pt, err := r.aead.Open(r.out[:0], r.nonce[:], ct, nil)
	if err != nil {
		return false
	}
	r.unread = pt
	return true
}
