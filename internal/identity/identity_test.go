package identity

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"testing/cryptotest"
)

func TestAccountKey(t *testing.T) {
	k, err := NewAccountKey()
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("hello")
	sig := k.Sign(msg)
	if !ed25519.Verify(k.Public(), msg, sig) {
		t.Fatal("signature does not verify")
	}
	k2, err := AccountKeyFromSeed(k.Seed())
	if err != nil {
		t.Fatal(err)
	}
	if !k2.Public().Equal(k.Public()) {
		t.Fatal("seed round trip changed the key")
	}
	if _, err := AccountKeyFromSeed(make([]byte, 31)); err == nil {
		t.Fatal("short seed accepted")
	}
	// Seed and Public return copies.
	k.Seed()[0] ^= 1
	k.Public()[0] ^= 1
	if !ed25519.Verify(k.Public(), msg, sig) {
		t.Fatal("caller could modify the key through a returned slice")
	}
}

func TestDeviceKeyRoundTrip(t *testing.T) {
	k, err := NewDeviceKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := k.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 64 {
		t.Fatalf("MarshalBinary is %d bytes", len(b))
	}
	k2, err := UnmarshalDeviceKey(b)
	if err != nil {
		t.Fatal(err)
	}
	if !k2.SigningPublic().Equal(k.SigningPublic()) || !bytes.Equal(k2.DHPublic(), k.DHPublic()) {
		t.Fatal("round trip changed the keys")
	}
	if !bytes.Equal(k2.DH().Bytes(), b[32:]) {
		t.Fatal("DH scalar is not the second half")
	}
	sig := k2.Sign([]byte("m"))
	if !ed25519.Verify(k.SigningPublic(), []byte("m"), sig) {
		t.Fatal("signature from the decoded key does not verify")
	}
	for _, n := range []int{0, 63, 65} {
		if _, err := UnmarshalDeviceKey(make([]byte, n)); err == nil {
			t.Fatalf("%d-byte key accepted", n)
		}
	}
}

func TestRedacted(t *testing.T) {
	ak, _ := NewAccountKey()
	dk, _ := NewDeviceKey()
	seed := hex.EncodeToString(ak.Seed())
	db, _ := dk.MarshalBinary()
	secrets := []string{seed, hex.EncodeToString(db[:32]), hex.EncodeToString(db[32:])}
	for _, s := range []string{
		fmt.Sprint(ak), fmt.Sprintf("%v %+v %#v %s", ak, ak, ak, ak),
		fmt.Sprintf("%v %+v %#v", *ak, *ak, *ak),
		fmt.Sprint(dk), fmt.Sprintf("%v %+v %#v %s", dk, dk, dk, dk),
		fmt.Sprintf("%v %+v %#v", *dk, *dk, *dk),
	} {
		for _, sec := range secrets {
			if strings.Contains(s, sec) {
				t.Fatalf("printed form leaks a private key: %s", s)
			}
		}
		if strings.Contains(s, fmt.Sprint([]byte(ak.Seed()))) {
			t.Fatalf("printed form leaks the seed bytes: %s", s)
		}
	}
	if !strings.Contains(ak.String(), hex.EncodeToString(ak.Public())) {
		t.Fatal("String does not name the public key")
	}
}

func TestValidHandle(t *testing.T) {
	for h, want := range map[string]bool{
		"abc": true, "a_1": true, strings.Repeat("z", 32): true,
		"ab": false, strings.Repeat("z", 33): false, "Abc": false, "a-b": false, "héé": false, "": false,
	} {
		if got := ValidHandle(h); got != want {
			t.Errorf("ValidHandle(%q) = %v", h, got)
		}
	}
}

func TestMessages(t *testing.T) {
	got := AuthMessage("alice", 0x01020304, []byte{0xaa, 0xbb})
	want := append([]byte("parley-auth-v1"), 5, 'a', 'l', 'i', 'c', 'e', 1, 2, 3, 4, 0, 2, 0xaa, 0xbb)
	if !bytes.Equal(got, want) {
		t.Fatalf("AuthMessage = %x, want %x", got, want)
	}
	got = PrekeyMessage(PrekeyPQLastResort, 7, []byte{9, 8})
	want = append([]byte("parley-prekey-v1"), 3, 0, 0, 0, 7, 0, 2, 9, 8)
	if !bytes.Equal(got, want) {
		t.Fatalf("PrekeyMessage = %x, want %x", got, want)
	}
	if AuthMessage(strings.Repeat("a", 256), 1, nil) != nil {
		t.Fatal("over-long handle encoded")
	}
	if PrekeyMessage(1, 1, make([]byte, 65536)) != nil {
		t.Fatal("over-long key encoded")
	}
	// Length prefixes keep the fields apart.
	if bytes.Equal(AuthMessage("ab", 1, []byte("c")), AuthMessage("abc", 1, nil)) {
		t.Fatal("ambiguous encoding")
	}
}

func TestDeterministic(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 1)
	a1, _ := NewAccountKey()
	d1, _ := NewDeviceKey()
	cryptotest.SetGlobalRandom(t, 1)
	a2, _ := NewAccountKey()
	d2, _ := NewDeviceKey()
	if !bytes.Equal(a1.Seed(), a2.Seed()) || !bytes.Equal(d1.DHPublic(), d2.DHPublic()) {
		t.Fatal("key generation does not follow the global test random source")
	}
}
