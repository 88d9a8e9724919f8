package ratchet

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"testing"
)

var testAD = []byte("associated data of the session")

func pair(t testing.TB) (alice, bob *State) {
	t.Helper()
	sk := make([]byte, 32)
	rand.Read(sk)
	spk, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	alice, err = InitAlice(sk, spk.PublicKey().Bytes())
	if err != nil {
		t.Fatal(err)
	}
	bob, err = InitBob(sk, spk)
	if err != nil {
		t.Fatal(err)
	}
	return alice, bob
}

func enc(t testing.TB, s *State, text string) []byte {
	t.Helper()
	m, err := s.Encrypt([]byte(text), testAD)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func dec(t testing.TB, s *State, m []byte, want string) {
	t.Helper()
	pt, err := s.Decrypt(m, testAD)
	if err != nil {
		t.Fatalf("decrypting %q: %v", want, err)
	}
	if string(pt) != want {
		t.Fatalf("got %q, want %q", pt, want)
	}
}

func snapshot(t testing.TB, s *State) []byte {
	t.Helper()
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decFails checks that Decrypt fails with want and changes nothing.
func decFails(t testing.TB, s *State, m []byte, ad []byte, want error) {
	t.Helper()
	before := snapshot(t, s)
	if _, err := s.Decrypt(m, ad); !errors.Is(err, want) {
		t.Fatalf("Decrypt = %v, want %v", err, want)
	}
	if !bytes.Equal(before, snapshot(t, s)) {
		t.Fatal("failed Decrypt changed the state")
	}
}

func TestConversation(t *testing.T) {
	alice, bob := pair(t)
	if bob.CanEncrypt() {
		t.Fatal("Bob can encrypt before his first message")
	}
	if _, err := bob.Encrypt([]byte("x"), testAD); !errors.Is(err, ErrNoSendingChain) {
		t.Fatalf("Bob Encrypt = %v", err)
	}
	for round := range 5 {
		for i := range round + 1 {
			text := fmt.Sprintf("a%d-%d", round, i)
			dec(t, bob, enc(t, alice, text), text)
		}
		for i := range 2 {
			text := fmt.Sprintf("b%d-%d", round, i)
			dec(t, alice, enc(t, bob, text), text)
		}
	}
	if alice.SkippedKeys() != 0 || bob.SkippedKeys() != 0 {
		t.Fatal("in-order delivery left skipped keys")
	}
}

func TestHeader(t *testing.T) {
	alice, _ := pair(t)
	m := enc(t, alice, "hi")
	h, err := ParseHeader(m[:HeaderSize])
	if err != nil {
		t.Fatal(err)
	}
	if h.N != 0 || h.PN != 0 || !bytes.Equal(h.DH[:], alice.dhsPub[:]) {
		t.Fatalf("header %+v", h)
	}
	if len(m) != Overhead+2 {
		t.Fatalf("message is %d bytes", len(m))
	}
	m2 := enc(t, alice, "hi")
	h2, _ := ParseHeader(m2[:HeaderSize])
	if h2.N != 1 {
		t.Fatalf("second header %+v", h2)
	}
	if _, err := ParseHeader(m[:HeaderSize-1]); !errors.Is(err, ErrMalformed) {
		t.Fatal(err)
	}
}

func TestOutOfOrderWithinChain(t *testing.T) {
	alice, bob := pair(t)
	var msgs [][]byte
	for i := range 50 {
		msgs = append(msgs, enc(t, alice, fmt.Sprint(i)))
	}
	order := mrand.Perm(len(msgs))
	for _, i := range order {
		dec(t, bob, msgs[i], fmt.Sprint(i))
	}
	if bob.SkippedKeys() != 0 {
		t.Fatalf("%d skipped keys left", bob.SkippedKeys())
	}
	for _, i := range order[:5] {
		decFails(t, bob, msgs[i], testAD, ErrReplay)
	}
}

func TestOutOfOrderAcrossChains(t *testing.T) {
	alice, bob := pair(t)
	old := [][]byte{enc(t, alice, "o0"), enc(t, alice, "o1"), enc(t, alice, "o2")}
	dec(t, bob, old[0], "o0")
	dec(t, alice, enc(t, bob, "reply"), "reply")
	newer := enc(t, alice, "n0") // new chain, PN = 3
	h, _ := ParseHeader(newer[:HeaderSize])
	if h.PN != 3 || h.N != 0 {
		t.Fatalf("header %+v", h)
	}
	dec(t, bob, newer, "n0")
	if bob.SkippedKeys() != 2 {
		t.Fatalf("skipped = %d, want 2", bob.SkippedKeys())
	}
	dec(t, bob, old[2], "o2")
	dec(t, bob, old[1], "o1")
	decFails(t, bob, old[1], testAD, ErrReplay)
	decFails(t, bob, old[0], testAD, ErrReplay) // an earlier chain
	decFails(t, bob, newer, testAD, ErrReplay)
	// A skipped key is only deleted when its message authenticates.
	a2 := [][]byte{enc(t, alice, "n1"), enc(t, alice, "n2")}
	dec(t, bob, a2[1], "n2")
	bad := bytes.Clone(a2[0])
	bad[len(bad)-1] ^= 1
	decFails(t, bob, bad, testAD, ErrDecrypt)
	dec(t, bob, a2[0], "n1")
}

func TestSkipBounds(t *testing.T) {
	alice, bob := pair(t)
	var msgs [][]byte
	for i := range MaxSkip + 2 {
		msgs = append(msgs, enc(t, alice, fmt.Sprint(i)))
	}
	// N = MaxSkip+1 would skip MaxSkip+1 keys.
	decFails(t, bob, msgs[MaxSkip+1], testAD, ErrTooManySkipped)
	// N = MaxSkip skips exactly MaxSkip keys.
	dec(t, bob, msgs[MaxSkip], fmt.Sprint(MaxSkip))
	if bob.SkippedKeys() != MaxSkip {
		t.Fatalf("skipped = %d", bob.SkippedKeys())
	}
	dec(t, bob, msgs[MaxSkip+1], fmt.Sprint(MaxSkip+1))
	dec(t, bob, msgs[17], "17")

	// Within the current receiving chain, beyond bounds.
	for range MaxSkip + 1 {
		enc(t, alice, "lost")
	}
	decFails(t, bob, enc(t, alice, "far"), testAD, ErrTooManySkipped)

	// Across a ratchet step: PN - Nr beyond bounds.
	alice, bob = pair(t)
	dec(t, bob, enc(t, alice, "first"), "first")
	for range MaxSkip + 1 {
		enc(t, alice, "lost")
	}
	dec(t, alice, enc(t, bob, "reply"), "reply")
	decFails(t, bob, enc(t, alice, "next chain"), testAD, ErrTooManySkipped)
}

func TestSkippedEviction(t *testing.T) {
	alice, bob := pair(t)
	var first [][]byte
	// Three chains of Alice's: 1000 + 1000 + 1 skipped keys at Bob.
	for chain := range 3 {
		n := MaxSkip + 1
		if chain == 2 {
			n = 2
		}
		var msgs [][]byte
		for i := range n {
			msgs = append(msgs, enc(t, alice, fmt.Sprint(chain, i)))
		}
		if chain == 0 {
			first = msgs
		}
		dec(t, bob, msgs[n-1], fmt.Sprint(chain, n-1))
		dec(t, alice, enc(t, bob, "turn"), "turn")
	}
	if bob.SkippedKeys() != MaxSkippedKeys {
		t.Fatalf("skipped = %d, want %d", bob.SkippedKeys(), MaxSkippedKeys)
	}
	decFails(t, bob, first[0], testAD, ErrReplay) // evicted, the oldest
	dec(t, bob, first[1], fmt.Sprint(0, 1))
}

func TestTamperLeavesStateUnchanged(t *testing.T) {
	alice, bob := pair(t)
	m := enc(t, alice, "hello")
	for i := range m {
		bad := bytes.Clone(m)
		bad[i] ^= 0x10
		before := snapshot(t, bob)
		if _, err := bob.Decrypt(bad, testAD); err == nil {
			t.Fatalf("flipping byte %d still decrypts", i)
		}
		if !bytes.Equal(before, snapshot(t, bob)) {
			t.Fatalf("flipping byte %d changed the state", i)
		}
	}
	decFails(t, bob, m, []byte("other AD"), ErrDecrypt)
	decFails(t, bob, m[:Overhead-1], testAD, ErrMalformed)
	dec(t, bob, m, "hello")
	// Same on the current chain and on a skipped key.
	m1, m2 := enc(t, alice, "m1"), enc(t, alice, "m2")
	bad := bytes.Clone(m2)
	bad[HeaderSize] ^= 1
	decFails(t, bob, bad, testAD, ErrDecrypt)
	dec(t, bob, m2, "m2")
	bad = bytes.Clone(m1)
	bad[HeaderSize] ^= 1
	decFails(t, bob, bad, testAD, ErrDecrypt)
	dec(t, bob, m1, "m1")
	decFails(t, bob, m1, testAD, ErrReplay)
	// A low-order ratchet key.
	lo := bytes.Clone(m1)
	clear(lo[:KeySize])
	decFails(t, bob, lo, testAD, ErrMalformed)
}

func TestMarshalMidConversation(t *testing.T) {
	alice, bob := pair(t)
	var held [][]byte
	for i := range 4 {
		held = append(held, enc(t, alice, fmt.Sprint("held", i)))
	}
	dec(t, bob, held[3], "held3") // 3 skipped keys at Bob
	dec(t, alice, enc(t, bob, "r"), "r")
	pending := enc(t, alice, "pending")

	roundTrip := func(s *State) *State {
		b := snapshot(t, s)
		s2, err := Unmarshal(b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, snapshot(t, s2)) {
			t.Fatal("state round trip changed the encoding")
		}
		return s2
	}
	alice, bob = roundTrip(alice), roundTrip(bob)
	dec(t, bob, pending, "pending")
	dec(t, bob, held[0], "held0")
	dec(t, bob, held[2], "held2")
	bob = roundTrip(bob)
	dec(t, bob, held[1], "held1")
	decFails(t, bob, held[1], testAD, ErrReplay)
	for i := range 3 {
		dec(t, alice, enc(t, bob, fmt.Sprint("b", i)), fmt.Sprint("b", i))
		alice = roundTrip(alice)
		dec(t, bob, enc(t, alice, fmt.Sprint("a", i)), fmt.Sprint("a", i))
		bob = roundTrip(bob)
	}
	// A fresh Bob (no chains yet) round-trips too.
	_, b0 := pair(t)
	roundTrip(b0)
}

func TestUnmarshalRejects(t *testing.T) {
	alice, bob := pair(t)
	dec(t, bob, enc(t, alice, "x"), "x")
	b := snapshot(t, bob)
	for name, bad := range map[string][]byte{
		"empty":    nil,
		"version":  append([]byte{2}, b[1:]...),
		"trailing": append(bytes.Clone(b), 0),
		"short":    b[:len(b)-1],
		"flag":     func() []byte { c := bytes.Clone(b); c[33] = 2; return c }(),
	} {
		if _, err := Unmarshal(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestRedacted(t *testing.T) {
	alice, _ := pair(t)
	s := fmt.Sprintf("%v %+v %#v", alice, alice, alice)
	if bytes.Contains([]byte(s), fmt.Appendf(nil, "%x", alice.rk[:8])) {
		t.Fatalf("printed state leaks its root key: %s", s)
	}
}

func FuzzParseHeader(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			return
		}
		again, _ := h.AppendBinary(nil)
		if !bytes.Equal(again, b) {
			t.Fatal("round trip changed the bytes")
		}
	})
}

func FuzzUnmarshal(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Unmarshal(b)
		if err != nil {
			return
		}
		again, err := s.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, b) {
			t.Fatal("round trip changed the bytes")
		}
	})
}

// BenchmarkEncryptDecrypt100 measures one 100-byte message encrypted by
// Alice and decrypted by Bob on the same chain: two symmetric ratchet
// steps, one seal and one open.
func BenchmarkEncryptDecrypt100(b *testing.B) {
	alice, bob := pair(b)
	dec(b, bob, enc(b, alice, "first"), "first")
	pt := make([]byte, 100)
	ad := make([]byte, 160) // about the size of a session's AD
	b.ReportAllocs()
	b.SetBytes(int64(len(pt)))
	for b.Loop() {
		m, err := alice.Encrypt(pt, ad)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := bob.Decrypt(m, ad); err != nil {
			b.Fatal(err)
		}
	}
}
