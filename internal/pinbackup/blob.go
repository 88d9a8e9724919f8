package pinbackup

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// Blob format.
const (
	blobFormat = 1
	// BlobOverhead is what SealBlob adds to the plaintext.
	BlobOverhead = 1 + chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead
	// MaxBlobSize bounds a blob (64 MiB).
	MaxBlobSize = 64 << 20
)

// SealBlob encrypts what the client backs up under the backup key:
//
//	blob = u8 format (1) || nonce (24) || XChaCha20-Poly1305(key, nonce, plaintext, ad)
//	key  = HKDF-SHA256(ikm = backup key, salt = "", info = "parley-pin-blob-v1", 32)
//	ad   = "parley-pin-blob-v1" || u8-len handle
func SealBlob(backupKey []byte, handle string, plaintext []byte) ([]byte, error) {
	aead, ad, err := blobAEAD(backupKey, handle)
	if err != nil {
		return nil, err
	}
	if len(plaintext) > MaxBlobSize-BlobOverhead {
		return nil, fmt.Errorf("%w: blob of %d bytes is too large", ErrParams, len(plaintext))
	}
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	rand.Read(nonce)
	out := append([]byte{blobFormat}, nonce...)
	return aead.Seal(out, nonce, plaintext, ad), nil
}

// OpenBlob decrypts SealBlob's output.
func OpenBlob(backupKey []byte, handle string, blob []byte) ([]byte, error) {
	nonce, ct, err := parseBlob(blob)
	if err != nil {
		return nil, err
	}
	aead, ad, err := blobAEAD(backupKey, handle)
	if err != nil {
		return nil, err
	}
	pt, err := aead.Open(nil, nonce, ct, ad)
	if err != nil {
		return nil, ErrBlob
	}
	return pt, nil
}

// parseBlob splits a blob into nonce and ciphertext (with its tag).
func parseBlob(b []byte) (nonce, ct []byte, err error) {
	if len(b) < BlobOverhead || len(b) > MaxBlobSize || b[0] != blobFormat {
		return nil, nil, fmt.Errorf("%w: backup blob", ErrMalformed)
	}
	return b[1 : 1+chacha20poly1305.NonceSizeX], b[1+chacha20poly1305.NonceSizeX:], nil
}

func blobAEAD(backupKey []byte, handle string) (cipher.AEAD, []byte, error) {
	if len(backupKey) != BackupKeySize {
		return nil, nil, fmt.Errorf("%w: the backup key must be %d bytes", ErrParams, BackupKeySize)
	}
	if len(handle) > 255 {
		return nil, nil, fmt.Errorf("%w: handle", ErrMalformed)
	}
	k, err := hkdf.Key(sha256.New, backupKey, nil, "parley-pin-blob-v1", chacha20poly1305.KeySize)
	if err != nil {
		return nil, nil, fmt.Errorf("pinbackup: %w", err)
	}
	aead, err := chacha20poly1305.NewX(k)
	if err != nil {
		return nil, nil, fmt.Errorf("pinbackup: %w", err)
	}
	return aead, append([]byte("parley-pin-blob-v1"), u8len([]byte(handle))...), nil
}
