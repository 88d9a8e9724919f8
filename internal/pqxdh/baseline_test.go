package pqxdh

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/mlkem"
	"crypto/rand"
	"testing"
)

// BenchmarkBaselinePrimitives is the floor BenchmarkPQXDH is compared with
// in docs/PERFORMANCE.md: the public-key operations one agreement is made of
// (Alice: 2 Ed25519 verifies, 1 X25519 key generation, 4 X25519, 1 ML-KEM
// encapsulation; Bob: 4 X25519, 1 ML-KEM decapsulation), without encoding,
// KDF or checks.
func BenchmarkBaselinePrimitives(b *testing.B) {
	x := ecdh.X25519()
	ik, _ := x.GenerateKey(rand.Reader)
	spk, _ := x.GenerateKey(rand.Reader)
	opk, _ := x.GenerateKey(rand.Reader)
	dk, _ := mlkem.GenerateKey768()
	ek := dk.EncapsulationKey()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	sig := ed25519.Sign(priv, []byte("prekey"))
	b.ReportAllocs()
	for b.Loop() {
		ed25519.Verify(pub, []byte("prekey"), sig)
		ed25519.Verify(pub, []byte("prekey"), sig)
		eph, _ := x.GenerateKey(rand.Reader)
		ik.ECDH(spk.PublicKey())
		eph.ECDH(ik.PublicKey())
		eph.ECDH(spk.PublicKey())
		eph.ECDH(opk.PublicKey())
		_, ct := ek.Encapsulate()
		spk.ECDH(ik.PublicKey())
		ik.ECDH(eph.PublicKey())
		spk.ECDH(eph.PublicKey())
		opk.ECDH(eph.PublicKey())
		if _, err := dk.Decapsulate(ct); err != nil {
			b.Fatal(err)
		}
	}
}
