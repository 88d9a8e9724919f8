package session

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func encrypt(t testing.TB, s *Session, text string) []byte {
	t.Helper()
	f, err := s.Encrypt([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func decrypt(t testing.TB, s *Session, f []byte, want string) {
	t.Helper()
	pt, err := s.Decrypt(f)
	if err != nil {
		t.Fatalf("decrypting %q: %v", want, err)
	}
	if string(pt) != want {
		t.Fatalf("got %q, want %q", pt, want)
	}
}

func state(t testing.TB, s *Session) []byte {
	t.Helper()
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decryptFails(t testing.TB, s *Session, f []byte, want error) {
	t.Helper()
	before := state(t, s)
	if _, err := s.Decrypt(f); !errors.Is(err, want) {
		t.Fatalf("Decrypt = %v, want %v", err, want)
	}
	if !bytes.Equal(before, state(t, s)) {
		t.Fatal("failed Decrypt changed the session")
	}
}

func start(t testing.TB) (alice, bob *party, as *Session) {
	t.Helper()
	alice, bob = newParty(t, "alice", 1), newParty(t, "bob", 2)
	as, err := Initiate(alice.local(), bob.remote(), bob.bundle())
	if err != nil {
		t.Fatal(err)
	}
	return alice, bob, as
}

func TestConversation(t *testing.T) {
	alice, bob, as := start(t)
	f0, f1, f2 := encrypt(t, as, "a0"), encrypt(t, as, "a1"), encrypt(t, as, "a2")
	for _, f := range [][]byte{f0, f1, f2} {
		info, err := Inspect(f)
		if err != nil {
			t.Fatal(err)
		}
		if !info.Prekey || !bytes.Equal(info.BaseKey, as.BaseKey()) || !bytes.Equal(info.IdentityDH, alice.device.DHPublic()) ||
			info.OneTimeID != otkID || info.PQPrekeyID != pqID || info.PQLastResort {
			t.Fatalf("Inspect = %+v", info)
		}
	}
	if as.Confirmed() || !as.Initiator() {
		t.Fatal("initiator state")
	}
	// Out of order: the second frame creates the session.
	bs, pt, err := Accept(bob.local(), alice.remote(), bob.keys, f1)
	if err != nil {
		t.Fatal(err)
	}
	if string(pt) != "a1" || !bytes.Equal(bs.BaseKey(), as.BaseKey()) || bs.Initiator() || !bs.Confirmed() {
		t.Fatalf("Accept: %q", pt)
	}
	decrypt(t, bs, f2, "a2")
	decrypt(t, bs, f0, "a0")
	decryptFails(t, bs, f0, ErrReplay)
	decryptFails(t, bs, f1, ErrReplay)

	r0 := encrypt(t, bs, "b0")
	if info, err := Inspect(r0); err != nil || info.Prekey {
		t.Fatalf("responder frame: %+v %v", info, err)
	}
	// Until it hears back, Alice keeps sending prekey frames.
	f3 := encrypt(t, as, "a3")
	if info, _ := Inspect(f3); !info.Prekey {
		t.Fatal("initiator stopped sending prekey frames before a reply")
	}
	decrypt(t, as, r0, "b0")
	if !as.Confirmed() {
		t.Fatal("not confirmed after a reply")
	}
	f4 := encrypt(t, as, "a4")
	if info, _ := Inspect(f4); info.Prekey {
		t.Fatal("initiator still sends prekey frames after a reply")
	}
	decrypt(t, bs, f4, "a4")
	decrypt(t, bs, f3, "a3")
	for i := range 5 {
		decrypt(t, as, encrypt(t, bs, fmt.Sprint("b", i)), fmt.Sprint("b", i))
		decrypt(t, bs, encrypt(t, as, fmt.Sprint("a", i)), fmt.Sprint("a", i))
	}
	if !bytes.Equal(as.Remote().IdentityDH, bob.device.DHPublic()) || as.LocalAddress().Handle != "alice" {
		t.Fatal("accessors")
	}
}

func TestTamper(t *testing.T) {
	alice, bob, as := start(t)
	f := encrypt(t, as, "hello")
	bs, _, err := Accept(bob.local(), alice.remote(), bob.keys, f)
	if err != nil {
		t.Fatal(err)
	}
	g := encrypt(t, as, "second")
	for i := range g {
		bad := bytes.Clone(g)
		bad[i] ^= 0x04
		before := state(t, bs)
		if _, err := bs.Decrypt(bad); err == nil {
			t.Fatalf("flipping byte %d still decrypts", i)
		}
		if !bytes.Equal(before, state(t, bs)) {
			t.Fatalf("flipping byte %d changed the session", i)
		}
	}
	decrypt(t, bs, g, "second")
	r := encrypt(t, bs, "reply")
	bad := bytes.Clone(r)
	bad[len(bad)-1] ^= 1
	decryptFails(t, as, bad, ErrDecrypt)
	decryptFails(t, as, r[:len(r)-1], ErrMalformed)
	decryptFails(t, as, append(bytes.Clone(r), 0), ErrMalformed)
	decrypt(t, as, r, "reply")
	decryptFails(t, as, r, ErrReplay)
}

func TestAcceptErrors(t *testing.T) {
	alice, bob, as := start(t)
	f := encrypt(t, as, "hello")
	mallory := newParty(t, "mallory", 3)

	// The sender's identity key is not the one in its device list.
	if _, _, err := Accept(bob.local(), mallory.remote(), bob.keys, f); !errors.Is(err, ErrIdentityChanged) {
		t.Fatalf("other identity: %v", err)
	}
	// The addresses are bound: Bob believing the frame comes from another
	// device or account of Alice's fails authentication.
	other := alice.remote()
	other.DeviceID = 7
	if _, _, err := Accept(bob.local(), other, bob.keys, f); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("other device id: %v", err)
	}
	other = alice.remote()
	other.IdentityKey = mallory.account.Public()
	if _, _, err := Accept(bob.local(), other, bob.keys, f); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("other account key: %v", err)
	}
	// Without the prekeys.
	if _, _, err := Accept(bob.local(), alice.remote(), keyStore{}, f); err == nil {
		t.Fatal("accepted without prekeys")
	}
	bs, _, err := Accept(bob.local(), alice.remote(), bob.keys, f)
	if err != nil {
		t.Fatal(err)
	}
	r := encrypt(t, bs, "reply")
	if _, _, err := Accept(alice.local(), bob.remote(), alice.keys, r); !errors.Is(err, ErrNotPrekeyFrame) {
		t.Fatalf("Accept of a ratchet frame: %v", err)
	}
	// A prekey frame of a new session from the same device.
	as2, _ := Initiate(alice.local(), bob.remote(), bob.bundle())
	decryptFails(t, bs, encrypt(t, as2, "new"), ErrOtherSession)
	decryptFails(t, as, encrypt(t, as2, "new"), ErrOtherSession)
}

func TestInitiateErrors(t *testing.T) {
	alice, bob := newParty(t, "alice", 1), newParty(t, "bob", 2)
	mallory := newParty(t, "mallory", 3)
	b := bob.bundle()
	b.IdentityDH = mallory.device.DHPublic()
	if _, err := Initiate(alice.local(), bob.remote(), b); !errors.Is(err, ErrIdentityChanged) {
		t.Fatalf("bundle of another identity: %v", err)
	}
	b = bob.bundle()
	b.SignedPrekeySig = mallory.device.Sign([]byte("x"))
	if _, err := Initiate(alice.local(), bob.remote(), b); err == nil {
		t.Fatal("bad signature accepted")
	}
	bad := bob.remote()
	bad.IdentityKey = nil
	if _, err := Initiate(alice.local(), bad, bob.bundle()); err == nil {
		t.Fatal("address without identity key accepted")
	}
}

func TestMarshalMidConversation(t *testing.T) {
	alice, bob, as := start(t)
	rt := func(s *Session) *Session {
		t.Helper()
		b := state(t, s)
		s2, err := Unmarshal(b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, state(t, s2)) {
			t.Fatal("round trip changed the encoding")
		}
		return s2
	}
	as = rt(as)
	f0, f1 := encrypt(t, as, "a0"), encrypt(t, as, "a1")
	as = rt(as)
	bs, _, err := Accept(bob.local(), alice.remote(), bob.keys, f1)
	if err != nil {
		t.Fatal(err)
	}
	bs = rt(bs)
	decrypt(t, bs, f0, "a0")
	if info, _ := Inspect(encrypt(t, as, "a2")); !info.Prekey {
		t.Fatal("pending InitMessage lost in the round trip")
	}
	decrypt(t, as, encrypt(t, bs, "b0"), "b0")
	as = rt(as)
	if !as.Confirmed() {
		t.Fatal("confirmation lost in the round trip")
	}
	held := encrypt(t, as, "held")
	decrypt(t, bs, encrypt(t, as, "a3"), "a3")
	bs = rt(bs)
	decrypt(t, bs, held, "held")
	decryptFails(t, bs, held, ErrReplay)
}

func TestUnmarshalRejects(t *testing.T) {
	_, _, as := start(t)
	b := state(t, as)
	for name, bad := range map[string][]byte{
		"empty":    nil,
		"version":  append([]byte{9}, b[1:]...),
		"role":     func() []byte { c := bytes.Clone(b); c[1] = 2; return c }(),
		"trailing": append(bytes.Clone(b), 0),
		"short":    b[:len(b)-1],
	} {
		if _, err := Unmarshal(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzInspect(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := Inspect(b)
		if err != nil {
			return
		}
		fr, err := parseFrame(b)
		if err != nil || info.Prekey != (fr.init != nil) {
			t.Fatalf("Inspect and parseFrame disagree: %v", err)
		}
		again, err := fr.encode()
		if err != nil {
			t.Fatal(err)
		}
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

func TestTooManySkipped(t *testing.T) {
	alice, bob, as := start(t)
	bs, _, err := Accept(bob.local(), alice.remote(), bob.keys, encrypt(t, as, "hi"))
	if err != nil {
		t.Fatal(err)
	}
	var last []byte
	for i := range 1002 {
		last = encrypt(t, as, fmt.Sprint(i))
	}
	decryptFails(t, bs, last, ErrTooManySkipped)
}
