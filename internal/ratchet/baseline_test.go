package ratchet

import (
	"crypto/hmac"
	"crypto/sha256"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// BenchmarkBaselineStepSealOpen100 is the floor BenchmarkEncryptDecrypt100 is
// compared with in docs/PERFORMANCE.md: the bare primitives of one message,
// with no state handling: on each side one chain step (two HMAC-SHA256),
// then a ChaCha20-Poly1305 seal and open of 100 bytes.
func BenchmarkBaselineStepSealOpen100(b *testing.B) {
	ck := make([]byte, 32)
	msg := make([]byte, 100)
	ad := make([]byte, 64+HeaderSize)
	step := func(ck []byte) (mk, next []byte) {
		m := hmac.New(sha256.New, ck)
		m.Write([]byte{1})
		mk = m.Sum(nil)
		m = hmac.New(sha256.New, ck)
		m.Write([]byte{2})
		return mk, m.Sum(nil)
	}
	nonce := make([]byte, chacha20poly1305.NonceSize)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		mk, next := step(ck)
		aead, _ := chacha20poly1305.New(mk)
		sealed := aead.Seal(nil, nonce, msg, ad)
		mk2, _ := step(ck)
		aead2, _ := chacha20poly1305.New(mk2)
		if _, err := aead2.Open(nil, nonce, sealed, ad); err != nil {
			b.Fatal(err)
		}
		ck = next
	}
}
