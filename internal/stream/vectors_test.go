package stream_test

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"testing"

	agetest "c2sp.org/CCTV/age"

	"github.com/parleychat/parley/internal/stream"
)

// cctvVector is one file of the C2SP CCTV age test vectors
// (c2sp.org/CCTV/age, README "Test file format"): a textual header of
// "key: value" lines, an empty line, then an age file.
type cctvVector struct {
	name    string
	expect  string // success, payload failure, header failure, ...
	payload []byte // SHA-256 of the plaintext released before success or failure
	fileKey []byte
	armored bool
	age     []byte // the age file, decompressed
}

func readVector(name string, b []byte) (*cctvVector, error) {
	v := &cctvVector{name: name}
	head, body, ok := bytes.Cut(b, []byte("\n\n"))
	if !ok {
		return nil, errors.New("no empty line after the header")
	}
	compressed := false
	for line := range strings.SplitSeq(string(head), "\n") {
		k, val, ok := strings.Cut(line, ": ")
		if !ok {
			return nil, fmt.Errorf("header line %q", line)
		}
		switch k {
		case "expect":
			v.expect = val
		case "payload":
			h, err := hex.DecodeString(val)
			if err != nil {
				return nil, err
			}
			v.payload = h
		case "file key":
			h, err := hex.DecodeString(val)
			if err != nil {
				return nil, err
			}
			v.fileKey = h
		case "armored":
			v.armored = val == "yes"
		case "compressed":
			if val != "zlib" {
				return nil, fmt.Errorf("compression %q", val)
			}
			compressed = true
		}
	}
	v.age = body
	if compressed {
		zr, err := zlib.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		if v.age, err = io.ReadAll(zr); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// agePayload parses just enough of an age v1 file (age-encryption.org/v1,
// "Header" and "Payload") to find the STREAM payload: the header is lines
// ending with the MAC line "--- <base64>", then a 16-byte nonce, then the
// payload. It checks the header MAC (HMAC-SHA256 under HKDF(file key,
// salt empty, "header") over the header up to and including "---") and
// returns the payload key HKDF-SHA256(file key, salt nonce, "payload").
func agePayload(age, fileKey []byte) (key, payload []byte, err error) {
	const intro = "age-encryption.org/v1\n"
	if !bytes.HasPrefix(age, []byte(intro)) {
		return nil, nil, errors.New("not an age v1 file")
	}
	br := bufio.NewReader(bytes.NewReader(age))
	var header []byte
	var mac []byte
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			return nil, nil, errors.New("header ends without a MAC line")
		}
		if rest, ok := bytes.CutPrefix(line, []byte("--- ")); ok {
			header = append(header, "---"...)
			mac, err = base64.RawStdEncoding.Strict().DecodeString(strings.TrimSuffix(string(rest), "\n"))
			if err != nil {
				return nil, nil, fmt.Errorf("header MAC: %v", err)
			}
			break
		}
		header = append(header, line...)
	}
	hk, err := hkdf.Key(sha256.New, fileKey, nil, "header", 32)
	if err != nil {
		return nil, nil, err
	}
	h := hmac.New(sha256.New, hk)
	h.Write(header)
	if !hmac.Equal(h.Sum(nil), mac) {
		return nil, nil, errors.New("header MAC does not match")
	}
	rest, _ := io.ReadAll(br)
	if len(rest) < 16 {
		return nil, nil, errors.New("payload nonce is short")
	}
	key, err = hkdf.Key(sha256.New, fileKey, rest[:16], "payload", stream.KeySize)
	if err != nil {
		return nil, nil, err
	}
	return key, rest[16:], nil
}

// decryptAll reads r to the end or the first error and returns what it
// released.
func decryptAll(r io.Reader) ([]byte, error) {
	var out bytes.Buffer
	_, err := io.Copy(&out, r)
	return out.Bytes(), err
}

// TestCCTVVectors runs every stream_* vector of c2sp.org/CCTV/age, and the
// payload of every other non-armored success vector: a success vector
// decrypts in full to its payload hash and re-encrypts to the identical
// payload (the README's STREAM round trip); a payload failure releases
// exactly the hashed plaintext and then fails; a header failure of the
// stream group has no usable nonce.
func TestCCTVVectors(t *testing.T) {
	entries, err := fs.ReadDir(agetest.Vectors, ".")
	if err != nil {
		t.Fatalf("reading the CCTV age vectors: %v", err)
	}
	streamVectors, others := 0, 0
	for _, e := range entries {
		name := e.Name()
		isStream := strings.HasPrefix(name, "stream_")
		b, err := fs.ReadFile(agetest.Vectors, name)
		if err != nil {
			t.Fatal(err)
		}
		v, err := readVector(name, b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !isStream && (v.expect != "success" || v.armored) {
			continue
		}
		if isStream {
			streamVectors++
		} else {
			others++
		}
		t.Run(name, func(t *testing.T) { runVector(t, v) })
	}
	// The pinned module version has 28 stream_* vectors; fail, never skip,
	// if they are not there.
	if streamVectors < 28 {
		t.Fatalf("found %d stream_* vectors in c2sp.org/CCTV/age, want at least 28", streamVectors)
	}
	t.Logf("%d stream_* vectors and %d other success payloads", streamVectors, others)
}

func runVector(t *testing.T, v *cctvVector) {
	if v.armored {
		t.Fatalf("armored stream vector: not handled")
	}
	key, payload, err := agePayload(v.age, v.fileKey)
	if v.expect == "header failure" {
		if err == nil {
			t.Fatalf("header failure vector parsed")
		}
		return
	}
	if err != nil {
		t.Fatalf("age header: %v", err)
	}
	r, err := stream.NewReader(key, bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	pt, err := decryptAll(r)
	if got := sha256.Sum256(pt); !bytes.Equal(got[:], v.payload) {
		t.Errorf("released plaintext (%d bytes) hashes to %x, want %x", len(pt), got, v.payload)
	}
	switch v.expect {
	case "success":
		if err != nil {
			t.Fatalf("decrypting: %v", err)
		}
		// Re-encrypting gives the same payload.
		var ct bytes.Buffer
		w, err := stream.NewWriter(key, &ct)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(pt)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ct.Bytes(), payload) {
			t.Fatalf("re-encryption differs from the vector's payload")
		}
		if n, err := stream.PlaintextSize(int64(len(payload))); err != nil || n != int64(len(pt)) {
			t.Fatalf("PlaintextSize(%d) = %d, %v; want %d", len(payload), n, err, len(pt))
		}
		if n := stream.EncryptedSize(int64(len(pt))); n != int64(len(payload)) {
			t.Fatalf("EncryptedSize(%d) = %d, want %d", len(pt), n, len(payload))
		}
		// Resuming at the first, second, middle and last two chunks yields
		// the rest of the plaintext.
		chunks := (int64(len(payload)) + stream.EncryptedChunkSize - 1) / stream.EncryptedChunkSize
		for _, i := range []int64{0, 1, chunks / 2, chunks - 2, chunks - 1} {
			co, po := stream.ChunkOffset(i)
			if i < 0 || co >= int64(len(payload)) {
				continue
			}
			r, err := stream.NewReaderAt(key, bytes.NewReader(payload[co:]), i)
			if err != nil {
				t.Fatal(err)
			}
			rest, err := decryptAll(r)
			if err != nil || !bytes.Equal(rest, pt[po:]) {
				t.Fatalf("resuming at chunk %d: %d bytes, %v", i, len(rest), err)
			}
		}
	case "payload failure":
		if err == nil {
			t.Fatalf("payload failure vector decrypted without error")
		}
		if !errors.Is(err, stream.ErrAuth) && !errors.Is(err, stream.ErrTruncated) &&
			!errors.Is(err, stream.ErrTrailingData) && !errors.Is(err, stream.ErrEmptyFinalChunk) {
			t.Fatalf("error %v is none of the package's errors", err)
		}
		t.Logf("%v", err)
	default:
		t.Fatalf("unexpected expect %q", v.expect)
	}
}
