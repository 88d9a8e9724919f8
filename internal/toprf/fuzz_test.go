package toprf

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// roundTrip fuzzes a decoder: if it accepts b, the value must re-encode to b.
func roundTrip[T any](f *testing.F, parse func([]byte) (T, error), enc func(T) []byte) {
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := parse(b)
		if err != nil {
			return
		}
		if got := enc(v); !bytes.Equal(got, b) {
			t.Fatalf("re-encoded %x, parsed %x", got, b)
		}
	})
}

func FuzzParseBlindedElement(f *testing.F) {
	roundTrip(f, ParseBlindedElement, (*BlindedElement).Bytes)
}

func FuzzParsePublicShare(f *testing.F) {
	roundTrip(f, ParsePublicShare, (*PublicShare).Bytes)
}

func FuzzParseEvaluation(f *testing.F) {
	roundTrip(f, ParseEvaluation, (*Evaluation).Bytes)
}

func FuzzParseKeyShare(f *testing.F) {
	roundTrip(f, ParseKeyShare, (*KeyShare).Bytes)
}

func FuzzParsePrivateKey(f *testing.F) {
	roundTrip(f, ParsePrivateKey, (*PrivateKey).Bytes)
}

// TestWriteFuzzSeeds regenerates testdata/fuzz when PARLEY_WRITE_SEEDS=1.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("PARLEY_WRITE_SEEDS") != "1" {
		t.Skip("set PARLEY_WRITE_SEEDS=1 to rewrite testdata/fuzz")
	}
	sk := GenerateKey()
	shares, _ := sk.Split(2, 3)
	_, b, _ := Blind([]byte("1234"))
	ev, _ := shares[0].BlindEvaluate(b)
	bad := bytes.Repeat([]byte{0xff}, 32)
	seeds := map[string][][]byte{
		"FuzzParseBlindedElement": {b.Bytes(), bad, make([]byte, 32), b.Bytes()[:31]},
		"FuzzParsePublicShare":    {shares[1].Public().Bytes(), make([]byte, 32), bad},
		"FuzzParseEvaluation":     {ev.Bytes(), append(ev.Bytes(), 0), append(b.Bytes(), bad...)},
		"FuzzParseKeyShare":       {shares[2].Bytes(), append([]byte{0}, shares[2].Bytes()[1:]...), append([]byte{1}, bad...)},
		"FuzzParsePrivateKey":     {sk.Bytes(), make([]byte, 32), bad},
	}
	for name, list := range seeds {
		dir := filepath.Join("testdata", "fuzz", name)
		os.RemoveAll(dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, s := range list {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%d", i)), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
