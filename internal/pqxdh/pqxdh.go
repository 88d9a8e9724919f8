// Package pqxdh implements Signal's PQXDH key agreement (revision 3) with
// X25519, SHA-256 and ML-KEM-768, and Ed25519 signatures from the device
// signing key in place of XEdDSA.
package pqxdh

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/mlkem"
	"errors"

	"github.com/parleychat/parley/internal/identity"
)

// Errors.
var (
	ErrBadSignature  = errors.New("pqxdh: bad prekey signature")
	ErrUnknownPrekey = errors.New("pqxdh: unknown prekey")
	ErrMalformed     = errors.New("pqxdh: malformed message")
)

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

// Result is the shared secret and associated data of a completed agreement.
type Result struct {
	SK []byte // 32 bytes
	AD []byte // Encode(IK_A) || Encode(IK_B)
}

// Initiate runs Alice's side (spec §3.3): it verifies the bundle's
// signatures, then derives SK.
func Initiate(self *identity.DeviceKey, b *Bundle) (*Result, *InitMessage, error) {
	panic("unimplemented")
}

// Prekeys looks up Bob's private prekeys by id.
type Prekeys interface {
	SignedPrekey(id uint32) (*ecdh.PrivateKey, error)
	OneTimePrekey(id uint32) (*ecdh.PrivateKey, error)
	PQPrekey(id uint32) (*mlkem.DecapsulationKey768, error)
}

// Respond runs Bob's side (spec §3.4).
func Respond(self *identity.DeviceKey, keys Prekeys, m *InitMessage) (*Result, error) {
	panic("unimplemented")
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
	panic("unimplemented")
}
