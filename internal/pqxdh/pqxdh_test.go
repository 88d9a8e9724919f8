package pqxdh

import (
	"bytes"
	"crypto/ecdh"
	"crypto/mlkem"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/parleychat/parley/internal/identity"
)

// keyStore is a Prekeys over generated prekeys.
type keyStore map[uint32]*Prekey

func (s keyStore) get(id uint32, kinds ...byte) (*Prekey, error) {
	p, ok := s[id]
	if !ok {
		return nil, fmt.Errorf("no prekey %d", id)
	}
	for _, k := range kinds {
		if p.Kind == k {
			return p, nil
		}
	}
	return nil, fmt.Errorf("prekey %d has kind %d", id, p.Kind)
}

func (s keyStore) SignedPrekey(id uint32) (*ecdh.PrivateKey, error) {
	p, err := s.get(id, identity.PrekeySigned)
	if err != nil {
		return nil, err
	}
	return p.X25519()
}

func (s keyStore) OneTimePrekey(id uint32) (*ecdh.PrivateKey, error) {
	p, err := s.get(id, identity.PrekeyOneTime)
	if err != nil {
		return nil, err
	}
	return p.X25519()
}

func (s keyStore) PQPrekey(id uint32) (*mlkem.DecapsulationKey768, error) {
	p, err := s.get(id, identity.PrekeyPQOneTime, identity.PrekeyPQLastResort)
	if err != nil {
		return nil, err
	}
	return p.MLKEM()
}

type bob struct {
	dev  *identity.DeviceKey
	keys keyStore
}

func newBob(t testing.TB) *bob {
	t.Helper()
	dev, err := identity.NewDeviceKey()
	if err != nil {
		t.Fatal(err)
	}
	b := &bob{dev: dev, keys: keyStore{}}
	for id, kind := range map[uint32]byte{
		1: identity.PrekeySigned, 2: identity.PrekeyOneTime,
		3: identity.PrekeyPQOneTime, 4: identity.PrekeyPQLastResort,
	} {
		p, err := GeneratePrekey(dev, kind, id)
		if err != nil {
			t.Fatal(err)
		}
		b.keys[id] = p
	}
	return b
}

func (b *bob) bundle(oneTime, lastResort bool) *Bundle {
	bu := &Bundle{
		IdentityDH: b.dev.DHPublic(), SigningKey: b.dev.SigningPublic(),
		SignedPrekeyID: 1, SignedPrekey: b.keys[1].Public, SignedPrekeySig: b.keys[1].Signature,
		PQPrekeyID: 3, PQPrekey: b.keys[3].Public, PQPrekeySig: b.keys[3].Signature,
	}
	if oneTime {
		bu.OneTimeID, bu.OneTime = 2, b.keys[2].Public
	}
	if lastResort {
		bu.PQPrekeyID, bu.PQPrekey, bu.PQPrekeySig, bu.PQLastResort = 4, b.keys[4].Public, b.keys[4].Signature, true
	}
	return bu
}

func TestAgreement(t *testing.T) {
	alice, _ := identity.NewDeviceKey()
	b := newBob(t)
	for _, tc := range []struct{ oneTime, lastResort bool }{{true, false}, {false, false}, {true, true}, {false, true}} {
		t.Run(fmt.Sprintf("onetime=%v,lastresort=%v", tc.oneTime, tc.lastResort), func(t *testing.T) {
			ra, m, err := Initiate(alice, b.bundle(tc.oneTime, tc.lastResort))
			if err != nil {
				t.Fatal(err)
			}
			enc, err := m.Marshal()
			if err != nil || len(enc) != InitMessageSize {
				t.Fatalf("Marshal: %d bytes, %v", len(enc), err)
			}
			m2, err := ParseInitMessage(enc)
			if err != nil {
				t.Fatal(err)
			}
			if (m2.OneTimeID != 0) != tc.oneTime || m2.PQLastResort != tc.lastResort {
				t.Fatalf("init message %+v", m2)
			}
			rb, err := Respond(b.dev, b.keys, m2)
			if err != nil {
				t.Fatal(err)
			}
			if len(ra.SK) != 32 || !bytes.Equal(ra.SK, rb.SK) {
				t.Fatal("SK differs")
			}
			wantAD := append(alice.DHPublic(), b.dev.DHPublic()...)
			if !bytes.Equal(ra.AD, wantAD) || !bytes.Equal(rb.AD, wantAD) {
				t.Fatal("AD is not IK_A || IK_B")
			}
		})
	}
}

func TestFreshSecrets(t *testing.T) {
	alice, _ := identity.NewDeviceKey()
	b := newBob(t)
	r1, _, _ := Initiate(alice, b.bundle(true, false))
	r2, _, _ := Initiate(alice, b.bundle(true, false))
	if bytes.Equal(r1.SK, r2.SK) {
		t.Fatal("two initiations gave the same SK")
	}
}

func TestBadSignatures(t *testing.T) {
	alice, _ := identity.NewDeviceKey()
	b := newBob(t)
	mallory, _ := identity.NewDeviceKey()
	for name, mut := range map[string]func(*Bundle){
		"spk-sig":        func(bu *Bundle) { bu.SignedPrekeySig = bytes.Clone(bu.SignedPrekeySig); bu.SignedPrekeySig[0] ^= 1 },
		"spk-replaced":   func(bu *Bundle) { bu.SignedPrekey = mallory.DHPublic() },
		"spk-id":         func(bu *Bundle) { bu.SignedPrekeyID = 9 },
		"pq-sig":         func(bu *Bundle) { bu.PQPrekeySig = bytes.Clone(bu.PQPrekeySig); bu.PQPrekeySig[5] ^= 1 },
		"pq-kind":        func(bu *Bundle) { bu.PQLastResort = true }, // a one-time key passed off as last resort
		"pq-id":          func(bu *Bundle) { bu.PQPrekeyID = 4 },
		"signing-key":    func(bu *Bundle) { bu.SigningKey = mallory.SigningPublic() },
		"no-signing-key": func(bu *Bundle) { bu.SigningKey = nil },
		"spk-sig-missing": func(bu *Bundle) {
			bu.SignedPrekeySig = nil
		},
	} {
		bu := b.bundle(true, false)
		mut(bu)
		if _, _, err := Initiate(alice, bu); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// The last-resort key signed as last resort cannot pass as one-time.
	bu := b.bundle(true, true)
	bu.PQLastResort = false
	if _, _, err := Initiate(alice, bu); !errors.Is(err, ErrBadSignature) {
		t.Errorf("last resort as one-time: %v", err)
	}
}

func TestMalformedBundle(t *testing.T) {
	alice, _ := identity.NewDeviceKey()
	b := newBob(t)
	for name, mut := range map[string]func(*Bundle){
		"ik-short":       func(bu *Bundle) { bu.IdentityDH = bu.IdentityDH[:31] },
		"spk-short":      func(bu *Bundle) { bu.SignedPrekey = bu.SignedPrekey[:31] },
		"pq-short":       func(bu *Bundle) { bu.PQPrekey = bu.PQPrekey[:100] },
		"otk-without-id": func(bu *Bundle) { bu.OneTimeID = 0 },
		"id-without-otk": func(bu *Bundle) { bu.OneTime = nil },
	} {
		bu := b.bundle(true, false)
		mut(bu)
		if _, _, err := Initiate(alice, bu); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestLowOrderPoint(t *testing.T) {
	alice, _ := identity.NewDeviceKey()
	b := newBob(t)
	zero := make([]byte, 32)
	bu := b.bundle(false, false)
	bu.SignedPrekey = zero
	bu.SignedPrekeySig = b.dev.Sign(identity.PrekeyMessage(identity.PrekeySigned, 1, zero))
	if _, _, err := Initiate(alice, bu); !errors.Is(err, ErrMalformed) {
		t.Fatalf("low-order signed prekey: %v", err)
	}
	bu = b.bundle(false, false)
	bu.IdentityDH = zero
	if _, _, err := Initiate(alice, bu); !errors.Is(err, ErrMalformed) {
		t.Fatalf("low-order identity key: %v", err)
	}
	_, m, err := Initiate(alice, b.bundle(true, false))
	if err != nil {
		t.Fatal(err)
	}
	m.Ephemeral = zero
	if _, err := Respond(b.dev, b.keys, m); !errors.Is(err, ErrMalformed) {
		t.Fatalf("low-order ephemeral: %v", err)
	}
}

func TestRespondErrors(t *testing.T) {
	alice, _ := identity.NewDeviceKey()
	b := newBob(t)
	ra, m, err := Initiate(alice, b.bundle(true, false))
	if err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*InitMessage){
		"spk": func(m *InitMessage) { m.SignedPrekeyID = 77 },
		"otk": func(m *InitMessage) { m.OneTimeID = 78 },
		"pq":  func(m *InitMessage) { m.PQPrekeyID = 79 },
		"otk-is-spk": func(m *InitMessage) {
			m.OneTimeID = 1
		},
	} {
		m2 := *m
		mut(&m2)
		if _, err := Respond(b.dev, b.keys, &m2); !errors.Is(err, ErrUnknownPrekey) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Wrong identity, ephemeral or ciphertext: a different SK, never an equal one.
	for name, mut := range map[string]func(*InitMessage){
		"identity":   func(m *InitMessage) { other, _ := identity.NewDeviceKey(); m.IdentityDH = other.DHPublic() },
		"ciphertext": func(m *InitMessage) { m.KEMCiphertext = bytes.Clone(m.KEMCiphertext); m.KEMCiphertext[0] ^= 1 },
		"no-otk":     func(m *InitMessage) { m.OneTimeID = 0 },
	} {
		m2 := *m
		mut(&m2)
		rb, err := Respond(b.dev, b.keys, &m2)
		if err == nil && bytes.Equal(rb.SK, ra.SK) {
			t.Errorf("%s: tampered message gave the same SK", name)
		}
	}
	m2 := *m
	m2.KEMCiphertext = m2.KEMCiphertext[:10]
	if _, err := Respond(b.dev, b.keys, &m2); !errors.Is(err, ErrMalformed) {
		t.Errorf("short ciphertext: %v", err)
	}
}

func TestGeneratePrekey(t *testing.T) {
	dev, _ := identity.NewDeviceKey()
	for _, kind := range []byte{identity.PrekeySigned, identity.PrekeyOneTime, identity.PrekeyPQOneTime, identity.PrekeyPQLastResort} {
		p, err := GeneratePrekey(dev, kind, 5)
		if err != nil {
			t.Fatal(err)
		}
		switch kind {
		case identity.PrekeySigned, identity.PrekeyOneTime:
			k, err := p.X25519()
			if err != nil || len(p.Private) != 32 || !bytes.Equal(k.PublicKey().Bytes(), p.Public) {
				t.Fatalf("kind %d: %v", kind, err)
			}
			if _, err := p.MLKEM(); err == nil {
				t.Fatal("X25519 prekey gave an ML-KEM key")
			}
		default:
			k, err := p.MLKEM()
			if err != nil || len(p.Private) != 64 || !bytes.Equal(k.EncapsulationKey().Bytes(), p.Public) {
				t.Fatalf("kind %d: %v", kind, err)
			}
			if _, err := p.X25519(); err == nil {
				t.Fatal("ML-KEM prekey gave an X25519 key")
			}
		}
		if (p.Signature == nil) != (kind == identity.PrekeyOneTime) {
			t.Fatalf("kind %d: signature %x", kind, p.Signature)
		}
		if s := fmt.Sprintf("%v %+v %#v", p, p, p); strings.Contains(s, fmt.Sprintf("%x", p.Private)) ||
			strings.Contains(s, fmt.Sprint(p.Private)) {
			t.Fatalf("printed prekey leaks its private key: %s", s)
		}
	}
	if _, err := GeneratePrekey(dev, 9, 1); err == nil {
		t.Fatal("unknown kind accepted")
	}
	if _, err := GeneratePrekey(dev, identity.PrekeySigned, 0); err == nil {
		t.Fatal("id 0 accepted")
	}
}

func TestParseInitMessage(t *testing.T) {
	alice, _ := identity.NewDeviceKey()
	b := newBob(t)
	_, m, _ := Initiate(alice, b.bundle(true, true))
	enc, _ := m.Marshal()
	for name, bad := range map[string][]byte{
		"empty":     nil,
		"short":     enc[:len(enc)-1],
		"long":      append(bytes.Clone(enc), 0),
		"last-flag": func() []byte { c := bytes.Clone(enc); c[76] = 2; return c }(),
	} {
		if _, err := ParseInitMessage(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	m.Ephemeral = nil
	if _, err := m.Marshal(); !errors.Is(err, ErrMalformed) {
		t.Errorf("Marshal without ephemeral: %v", err)
	}
}

func FuzzParseInitMessage(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseInitMessage(b)
		if err != nil {
			return
		}
		again, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("round trip changed the bytes")
		}
	})
}

// BenchmarkPQXDH measures one whole agreement: Initiate (with signature
// checks) and Respond, with a one-time prekey.
func BenchmarkPQXDH(b *testing.B) {
	alice, _ := identity.NewDeviceKey()
	bo := newBob(b)
	bu := bo.bundle(true, false)
	b.ReportAllocs()
	for b.Loop() {
		_, m, err := Initiate(alice, bu)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Respond(bo.dev, bo.keys, m); err != nil {
			b.Fatal(err)
		}
	}
}
