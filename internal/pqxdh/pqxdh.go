// Package pqxdh implements Signal's PQXDH key agreement (revision 3) with
// X25519, SHA-256 and ML-KEM-768, and Ed25519 signatures from the device
// signing key in place of XEdDSA.
//
// Parameters (spec §2.1): curve X25519, hash SHA-256, info
// "Parley_PQXDH_X25519_SHA-256_ML-KEM-768", pqkem ML-KEM-768; EncodeEC is
// the raw 32-byte u-coordinate and EncodeKEM the 1184-byte FIPS 203
// encapsulation key. The byte layouts are in docs/PROTOCOL-crypto.md.
package pqxdh

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/mlkem"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"

	"github.com/parleychat/parley/internal/identity"
)

// Errors.
var (
	ErrBadSignature  = errors.New("pqxdh: bad prekey signature")
	ErrUnknownPrekey = errors.New("pqxdh: unknown prekey")
	ErrMalformed     = errors.New("pqxdh: malformed message")
)

// Sizes of the encoded keys.
const (
	KeySize          = 32                            // X25519 public key, EncodeEC
	KEMPublicSize    = mlkem.EncapsulationKeySize768 // 1184, EncodeKEM
	KEMCiphertextLen = mlkem.CiphertextSize768       // 1088
	SKSize           = 32
	ADSize           = 2 * KeySize
	InitMessageSize  = 2*KeySize + 3*4 + 1 + KEMCiphertextLen
)

// info is the PQXDH info string (spec §2.1).
const info = "Parley_PQXDH_X25519_SHA-256_ML-KEM-768"

// Bundle is what Alice learns about Bob's device before the first message.
// IdentityDH and SigningKey come from Bob's verified device list.
type Bundle struct {
	IdentityDH      []byte
	SigningKey      ed25519.PublicKey
	SignedPrekeyID  uint32
	SignedPrekey    []byte
	SignedPrekeySig []byte
	OneTimeID       uint32 // 0 with OneTime nil
	OneTime         []byte // optional
	PQPrekeyID      uint32
	PQPrekey        []byte // ML-KEM-768 encapsulation key
	PQPrekeySig     []byte
	PQLastResort    bool
}

// InitMessage is PQXDH's initial message header (spec §3.3).
type InitMessage struct {
	IdentityDH     []byte // Alice's X25519 identity key
	Ephemeral      []byte // EK_A
	SignedPrekeyID uint32
	OneTimeID      uint32 // 0 = none used
	PQPrekeyID     uint32
	PQLastResort   bool
	KEMCiphertext  []byte // 1088 bytes
}

// Marshal encodes m (InitMessageSize bytes): IK_A (32) || EK_A (32) ||
// u32 signed prekey id || u32 one-time prekey id (0 = none) || u32 PQ
// prekey id || u8 last resort (0 or 1) || KEM ciphertext (1088).
func (m *InitMessage) Marshal() ([]byte, error) {
	if len(m.IdentityDH) != KeySize || len(m.Ephemeral) != KeySize || len(m.KEMCiphertext) != KEMCiphertextLen {
		return nil, fmt.Errorf("%w: bad field size", ErrMalformed)
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, InitMessageSize))
	b.AddBytes(m.IdentityDH)
	b.AddBytes(m.Ephemeral)
	b.AddUint32(m.SignedPrekeyID)
	b.AddUint32(m.OneTimeID)
	b.AddUint32(m.PQPrekeyID)
	b.AddUint8(boolByte(m.PQLastResort))
	b.AddBytes(m.KEMCiphertext)
	return b.Bytes()
}

// ParseInitMessage decodes Marshal's output.
func ParseInitMessage(b []byte) (*InitMessage, error) {
	s := cryptobyte.String(b)
	m := new(InitMessage)
	if !readInitMessage(&s, m) || !s.Empty() {
		return nil, ErrMalformed
	}
	return m, nil
}

// readInitMessage reads Marshal's encoding from the front of s, for
// formats that embed it. The slices of m are copies.
func readInitMessage(s *cryptobyte.String, m *InitMessage) bool {
	var ik, ek, ct []byte
	var last uint8
	if !s.ReadBytes(&ik, KeySize) || !s.ReadBytes(&ek, KeySize) ||
		!s.ReadUint32(&m.SignedPrekeyID) || !s.ReadUint32(&m.OneTimeID) || !s.ReadUint32(&m.PQPrekeyID) ||
		!s.ReadUint8(&last) || last > 1 || !s.ReadBytes(&ct, KEMCiphertextLen) {
		return false
	}
	m.IdentityDH = bytes.Clone(ik)
	m.Ephemeral = bytes.Clone(ek)
	m.PQLastResort = last == 1
	m.KEMCiphertext = bytes.Clone(ct)
	return true
}

// Result is the shared secret and associated data of a completed agreement.
type Result struct {
	SK []byte // 32 bytes
	AD []byte // Encode(IK_A) || Encode(IK_B)
}

// pqKind is the PrekeyMessage kind of the bundle's PQ prekey.
func pqKind(lastResort bool) byte {
	if lastResort {
		return identity.PrekeyPQLastResort
	}
	return identity.PrekeyPQOneTime
}

// verifyBundle is spec §3.3's "Alice verifies the prekey signatures".
func verifyBundle(b *Bundle) error {
	if len(b.IdentityDH) != KeySize || len(b.SignedPrekey) != KeySize || len(b.PQPrekey) != KEMPublicSize ||
		(b.OneTimeID == 0) != (len(b.OneTime) == 0) || (len(b.OneTime) != 0 && len(b.OneTime) != KeySize) {
		return fmt.Errorf("%w: bundle has a bad field size", ErrMalformed)
	}
	if len(b.SigningKey) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: bundle signing key is %d bytes", ErrBadSignature, len(b.SigningKey))
	}
	if !ed25519.Verify(b.SigningKey, identity.PrekeyMessage(identity.PrekeySigned, b.SignedPrekeyID, b.SignedPrekey), b.SignedPrekeySig) {
		return fmt.Errorf("%w: signed prekey %d", ErrBadSignature, b.SignedPrekeyID)
	}
	if !ed25519.Verify(b.SigningKey, identity.PrekeyMessage(pqKind(b.PQLastResort), b.PQPrekeyID, b.PQPrekey), b.PQPrekeySig) {
		return fmt.Errorf("%w: PQ prekey %d", ErrBadSignature, b.PQPrekeyID)
	}
	return nil
}

// dh computes one X25519 agreement and rejects the all-zero output of a
// low-order point.
func dh(priv *ecdh.PrivateKey, pub []byte) ([]byte, error) {
	p, err := ecdh.X25519().NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	out, err := priv.ECDH(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if subtle.ConstantTimeCompare(out, make([]byte, len(out))) == 1 {
		return nil, fmt.Errorf("%w: all-zero X25519 output", ErrMalformed)
	}
	return out, nil
}

// kdf is spec §2.2's KDF: HKDF-SHA256 with a zero salt over F || KM, where
// F is 32 0xFF bytes for X25519.
func kdf(km []byte) ([]byte, error) {
	ikm := make([]byte, 0, 32+len(km))
	ikm = append(ikm, bytes.Repeat([]byte{0xff}, 32)...)
	ikm = append(ikm, km...)
	return hkdf.Key(sha256.New, ikm, make([]byte, sha256.Size), info, SKSize)
}

// Initiate runs Alice's side (spec §3.3): it verifies the bundle's
// signatures, then derives SK.
func Initiate(self *identity.DeviceKey, b *Bundle) (*Result, *InitMessage, error) {
	if err := verifyBundle(b); err != nil {
		return nil, nil, err
	}
	ek, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pqxdh: generating EK_A: %w", err)
	}
	// DH1 = DH(IK_A, SPK_B), DH2 = DH(EK_A, IK_B), DH3 = DH(EK_A, SPK_B),
	// DH4 = DH(EK_A, OPK_B).
	km := make([]byte, 0, 4*KeySize+mlkem.SharedKeySize)
	for _, step := range []struct {
		priv *ecdh.PrivateKey
		pub  []byte
	}{{self.DH(), b.SignedPrekey}, {ek, b.IdentityDH}, {ek, b.SignedPrekey}, {ek, b.OneTime}} {
		if len(step.pub) == 0 {
			continue
		}
		out, err := dh(step.priv, step.pub)
		if err != nil {
			return nil, nil, err
		}
		km = append(km, out...)
	}
	// (CT, SS) = PQKEM-ENC(PQPK_B)
	encKey, err := mlkem.NewEncapsulationKey768(b.PQPrekey)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: PQ prekey: %w", ErrMalformed, err)
	}
	ss, ct := encKey.Encapsulate()
	km = append(km, ss...)
	sk, err := kdf(km)
	if err != nil {
		return nil, nil, fmt.Errorf("pqxdh: %w", err)
	}
	ikA := self.DHPublic()
	m := &InitMessage{
		IdentityDH:     ikA,
		Ephemeral:      ek.PublicKey().Bytes(),
		SignedPrekeyID: b.SignedPrekeyID,
		OneTimeID:      b.OneTimeID,
		PQPrekeyID:     b.PQPrekeyID,
		PQLastResort:   b.PQLastResort,
		KEMCiphertext:  ct,
	}
	return &Result{SK: sk, AD: associatedData(ikA, b.IdentityDH)}, m, nil
}

// associatedData is AD = Encode(IK_A) || Encode(IK_B).
func associatedData(ikA, ikB []byte) []byte {
	ad := make([]byte, 0, ADSize)
	ad = append(ad, ikA...)
	return append(ad, ikB...)
}

// Prekeys looks up Bob's private prekeys by id.
type Prekeys interface {
	SignedPrekey(id uint32) (*ecdh.PrivateKey, error)
	OneTimePrekey(id uint32) (*ecdh.PrivateKey, error)
	PQPrekey(id uint32) (*mlkem.DecapsulationKey768, error)
}

// Respond runs Bob's side (spec §3.4).
func Respond(self *identity.DeviceKey, keys Prekeys, m *InitMessage) (*Result, error) {
	if len(m.IdentityDH) != KeySize || len(m.Ephemeral) != KeySize || len(m.KEMCiphertext) != KEMCiphertextLen {
		return nil, fmt.Errorf("%w: bad field size", ErrMalformed)
	}
	spk, err := keys.SignedPrekey(m.SignedPrekeyID)
	if err != nil || spk == nil {
		return nil, unknown("signed prekey", m.SignedPrekeyID, err)
	}
	var opk *ecdh.PrivateKey
	if m.OneTimeID != 0 {
		if opk, err = keys.OneTimePrekey(m.OneTimeID); err != nil || opk == nil {
			return nil, unknown("one-time prekey", m.OneTimeID, err)
		}
	}
	pq, err := keys.PQPrekey(m.PQPrekeyID)
	if err != nil || pq == nil {
		return nil, unknown("PQ prekey", m.PQPrekeyID, err)
	}
	km := make([]byte, 0, 4*KeySize+mlkem.SharedKeySize)
	steps := []struct {
		priv *ecdh.PrivateKey
		pub  []byte
	}{{spk, m.IdentityDH}, {self.DH(), m.Ephemeral}, {spk, m.Ephemeral}}
	if opk != nil {
		steps = append(steps, struct {
			priv *ecdh.PrivateKey
			pub  []byte
		}{opk, m.Ephemeral})
	}
	for _, step := range steps {
		out, err := dh(step.priv, step.pub)
		if err != nil {
			return nil, err
		}
		km = append(km, out...)
	}
	ss, err := pq.Decapsulate(m.KEMCiphertext)
	if err != nil {
		return nil, fmt.Errorf("%w: KEM ciphertext: %w", ErrMalformed, err)
	}
	km = append(km, ss...)
	sk, err := kdf(km)
	if err != nil {
		return nil, fmt.Errorf("pqxdh: %w", err)
	}
	return &Result{SK: sk, AD: associatedData(m.IdentityDH, self.DHPublic())}, nil
}

// unknown wraps a Prekeys lookup failure in ErrUnknownPrekey.
func unknown(what string, id uint32, err error) error {
	if err == nil {
		return fmt.Errorf("%w: %s %d", ErrUnknownPrekey, what, id)
	}
	return fmt.Errorf("%w: %s %d: %w", ErrUnknownPrekey, what, id, err)
}

// Prekey is a private prekey as a device keeps it, with the public half and
// signature it publishes.
type Prekey struct {
	Kind      byte   // identity.PrekeySigned, PrekeyOneTime, PrekeyPQOneTime, PrekeyPQLastResort
	ID        uint32 // non-zero
	Private   []byte // X25519 scalar (32) or ML-KEM-768 seed (64)
	Public    []byte
	Signature []byte // nil for PrekeyOneTime
}

// GeneratePrekey makes a prekey of the given kind, signed by the device
// (except one-time X25519 prekeys, which PQXDH leaves unsigned).
func GeneratePrekey(self *identity.DeviceKey, kind byte, id uint32) (*Prekey, error) {
	if id == 0 {
		return nil, fmt.Errorf("pqxdh: prekey id 0")
	}
	p := &Prekey{Kind: kind, ID: id}
	switch kind {
	case identity.PrekeySigned, identity.PrekeyOneTime:
		k, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("pqxdh: generating prekey: %w", err)
		}
		p.Private, p.Public = k.Bytes(), k.PublicKey().Bytes()
	case identity.PrekeyPQOneTime, identity.PrekeyPQLastResort:
		k, err := mlkem.GenerateKey768()
		if err != nil {
			return nil, fmt.Errorf("pqxdh: generating PQ prekey: %w", err)
		}
		p.Private, p.Public = k.Bytes(), k.EncapsulationKey().Bytes()
	default:
		return nil, fmt.Errorf("pqxdh: unknown prekey kind %d", kind)
	}
	if kind != identity.PrekeyOneTime {
		p.Signature = self.Sign(identity.PrekeyMessage(kind, id, p.Public))
	}
	return p, nil
}

// X25519 returns the private key of an X25519 prekey (PrekeySigned or
// PrekeyOneTime), for Prekeys implementations.
func (p *Prekey) X25519() (*ecdh.PrivateKey, error) {
	if p.Kind != identity.PrekeySigned && p.Kind != identity.PrekeyOneTime {
		return nil, fmt.Errorf("pqxdh: prekey %d of kind %d is not X25519", p.ID, p.Kind)
	}
	k, err := ecdh.X25519().NewPrivateKey(p.Private)
	if err != nil {
		return nil, fmt.Errorf("pqxdh: prekey %d: %w", p.ID, err)
	}
	return k, nil
}

// MLKEM returns the decapsulation key of an ML-KEM-768 prekey
// (PrekeyPQOneTime or PrekeyPQLastResort), for Prekeys implementations.
func (p *Prekey) MLKEM() (*mlkem.DecapsulationKey768, error) {
	if p.Kind != identity.PrekeyPQOneTime && p.Kind != identity.PrekeyPQLastResort {
		return nil, fmt.Errorf("pqxdh: prekey %d of kind %d is not ML-KEM-768", p.ID, p.Kind)
	}
	k, err := mlkem.NewDecapsulationKey768(p.Private)
	if err != nil {
		return nil, fmt.Errorf("pqxdh: prekey %d: %w", p.ID, err)
	}
	return k, nil
}

// String returns a redacted form that omits the private key.
func (p *Prekey) String() string {
	pub := p.Public
	if len(pub) > 16 {
		pub = pub[:16]
	}
	return fmt.Sprintf("pqxdh.Prekey{Kind:%d, ID:%d, Public:%s…, Private:REDACTED}", p.Kind, p.ID, hex.EncodeToString(pub))
}

// GoString is String, for %#v.
func (p *Prekey) GoString() string { return p.String() }

func boolByte(v bool) uint8 {
	if v {
		return 1
	}
	return 0
}
