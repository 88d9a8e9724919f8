package safetynumber

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func keys() (a, b ed25519.PublicKey) {
	a = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)).Public().(ed25519.PublicKey)
	b = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32)).Public().(ed25519.PublicKey)
	return a, b
}

func TestSymmetry(t *testing.T) {
	a, b := keys()
	na, qa := Compute("alice", a, "bob", b)
	nb, qb := Compute("bob", b, "alice", a)
	if na != nb {
		t.Fatalf("numbers differ: %s %s", na, nb)
	}
	if len(na) != Digits || bytes.Equal(qa, qb) || len(qa) != QRSize {
		t.Fatalf("number %q, qr %x", na, qa)
	}
	for _, c := range na {
		if c < '0' || c > '9' {
			t.Fatalf("not digits: %s", na)
		}
	}
	if err := VerifyQR(qb, "alice", a, "bob", b); err != nil {
		t.Fatalf("Alice scans Bob's code: %v", err)
	}
	if err := VerifyQR(qa, "bob", b, "alice", a); err != nil {
		t.Fatalf("Bob scans Alice's code: %v", err)
	}
}

func TestMismatch(t *testing.T) {
	a, b := keys()
	c := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32)).Public().(ed25519.PublicKey)
	n, _ := Compute("alice", a, "bob", b)
	if n2, _ := Compute("alice", a, "bob", c); n2 == n {
		t.Fatal("another key gives the same number")
	}
	if n2, _ := Compute("alice", a, "bobby", b); n2 == n {
		t.Fatal("another handle gives the same number")
	}
	_, qb := Compute("bob", b, "alice", a)
	// Alice's own code is not Bob's.
	_, qa := Compute("alice", a, "bob", b)
	if err := VerifyQR(qa, "alice", a, "bob", b); !errors.Is(err, ErrMismatch) {
		t.Fatalf("own code accepted: %v", err)
	}
	// Mallory substituted Bob's key (Alice sees c).
	if err := VerifyQR(qb, "alice", a, "bob", c); !errors.Is(err, ErrMismatch) {
		t.Fatalf("substituted key accepted: %v", err)
	}
	for i := range qb {
		bad := bytes.Clone(qb)
		bad[i] ^= 1
		if err := VerifyQR(bad, "alice", a, "bob", b); !errors.Is(err, ErrMismatch) {
			t.Fatalf("flipped byte %d accepted", i)
		}
	}
	for _, bad := range [][]byte{nil, qb[:len(qb)-1], append(bytes.Clone(qb), 0)} {
		if err := VerifyQR(bad, "alice", a, "bob", b); !errors.Is(err, ErrMismatch) {
			t.Fatalf("payload of %d bytes accepted", len(bad))
		}
	}
}

// TestGolden pins the number and the QR payload. Regenerate with
// go test ./internal/safetynumber -run TestGolden -update
func TestGolden(t *testing.T) {
	a, b := keys()
	n, qr := Compute("alice", a, "bob", b)
	la := fingerprint("alice", a)
	got := map[string]string{
		"alice_key": hex.EncodeToString(a), "bob_key": hex.EncodeToString(b),
		"alice_fingerprint": hex.EncodeToString(la[:]),
		"number":            n, "qr_alice": hex.EncodeToString(qr),
	}
	const path = "testdata/golden.json"
	if *update {
		j, _ := json.MarshalIndent(got, "", "  ")
		if err := os.WriteFile(path, append(j, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	j, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]string
	if err := json.Unmarshal(j, &want); err != nil {
		t.Fatal(err)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %s, want %s", k, got[k], v)
		}
	}
}

func BenchmarkCompute(b *testing.B) {
	ka, kb := keys()
	for b.Loop() {
		Compute("alice", ka, "bob", kb)
	}
}
