package toprf

import "testing"

func BenchmarkBlind(b *testing.B) {
	for b.Loop() {
		if _, _, err := Blind([]byte("access key")); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBlindEvaluate(b *testing.B) {
	shares, _ := GenerateKey().Split(2, 3)
	_, bl, _ := Blind([]byte("access key"))
	for b.Loop() {
		if _, err := shares[0].BlindEvaluate(bl); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	shares, _ := GenerateKey().Split(2, 3)
	_, bl, _ := Blind([]byte("access key"))
	ev, _ := shares[0].BlindEvaluate(bl)
	pub := shares[0].Public()
	for b.Loop() {
		if err := ev.Verify(pub, bl); err != nil {
			b.Fatal(err)
		}
	}
}
