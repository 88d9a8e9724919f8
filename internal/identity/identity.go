// Package identity holds the long-term keys of an account and of a device,
// in types that cannot be compared with == or printed by accident.
//
// An account has one Ed25519 identity key (AccountKey), shared by all its
// devices (it travels end-to-end encrypted when a device is linked); it
// signs the account's device list. Each device has its own DeviceKey: an
// Ed25519 signing key (challenge authentication, prekey signatures) and an
// X25519 identity key (the IK of PQXDH).
package identity

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// ErrMalformed is returned for bytes that are not a valid key encoding.
var ErrMalformed = errors.New("identity: malformed key")

// Handle bounds (see ValidHandle).
const (
	MinHandleLen = 3
	MaxHandleLen = 32
)

// ValidHandle reports whether h is a well-formed handle: 3 to 32 bytes of
// [a-z0-9_]. Handles are compared and signed in this normalised form.
func ValidHandle(h string) bool {
	if len(h) < MinHandleLen || len(h) > MaxHandleLen {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// secretEd25519 keeps an Ed25519 private key behind a pointer, so that
// printing a key struct by value with %v shows an address, not key bytes.
type secretEd25519 struct{ priv ed25519.PrivateKey }

// AccountKey is an account's Ed25519 identity key.
type AccountKey struct {
	_    [0]func() // not comparable
	priv *secretEd25519
}

// NewAccountKey generates an account key from rand.
func NewAccountKey() (*AccountKey, error) {
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, fmt.Errorf("identity: generating account key: %w", err)
	}
	return &AccountKey{priv: &secretEd25519{priv}}, nil
}

// AccountKeyFromSeed rebuilds an account key from its 32-byte seed.
func AccountKeyFromSeed(seed []byte) (*AccountKey, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: account seed is %d bytes, want %d", ErrMalformed, len(seed), ed25519.SeedSize)
	}
	return &AccountKey{priv: &secretEd25519{ed25519.NewKeyFromSeed(seed)}}, nil
}

// Seed returns the 32-byte private seed, for storage and device linking only.
func (k *AccountKey) Seed() []byte { return append([]byte(nil), k.priv.priv.Seed()...) }

// Public returns the public key.
func (k *AccountKey) Public() ed25519.PublicKey {
	return append(ed25519.PublicKey(nil), k.priv.priv[ed25519.SeedSize:]...)
}

// Sign signs msg.
func (k *AccountKey) Sign(msg []byte) []byte { return ed25519.Sign(k.priv.priv, msg) }

// String returns a redacted form that names only the public key.
func (k *AccountKey) String() string {
	return "identity.AccountKey{public:" + hex.EncodeToString(k.priv.priv[ed25519.SeedSize:]) + ", private:REDACTED}"
}

// GoString returns the same redacted form as String, for %#v.
func (k *AccountKey) GoString() string { return k.String() }

// secretDevice keeps a device's private keys behind a pointer (see
// secretEd25519).
type secretDevice struct {
	signing ed25519.PrivateKey
	dh      *ecdh.PrivateKey
}

// DeviceKey is a device's own long-term keys.
type DeviceKey struct {
	_ [0]func()
	k *secretDevice
}

// DeviceKeySize is the length of DeviceKey.MarshalBinary's output.
const DeviceKeySize = ed25519.SeedSize + 32

// NewDeviceKey generates device keys from rand.
func NewDeviceKey() (*DeviceKey, error) {
	_, signing, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, fmt.Errorf("identity: generating device signing key: %w", err)
	}
	dh, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("identity: generating device DH key: %w", err)
	}
	return &DeviceKey{k: &secretDevice{signing: signing, dh: dh}}, nil
}

// MarshalBinary encodes the private keys (64 bytes) for the client's store:
// the Ed25519 seed (32) || the X25519 scalar (32).
func (k *DeviceKey) MarshalBinary() ([]byte, error) {
	out := make([]byte, 0, DeviceKeySize)
	out = append(out, k.k.signing.Seed()...)
	out = append(out, k.k.dh.Bytes()...)
	return out, nil
}

// UnmarshalDeviceKey decodes MarshalBinary's output.
func UnmarshalDeviceKey(b []byte) (*DeviceKey, error) {
	if len(b) != DeviceKeySize {
		return nil, fmt.Errorf("%w: device key is %d bytes, want %d", ErrMalformed, len(b), DeviceKeySize)
	}
	dh, err := ecdh.X25519().NewPrivateKey(b[ed25519.SeedSize:])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	signing := ed25519.NewKeyFromSeed(b[:ed25519.SeedSize])
	return &DeviceKey{k: &secretDevice{signing: signing, dh: dh}}, nil
}

// SigningPublic returns the Ed25519 public key.
func (k *DeviceKey) SigningPublic() ed25519.PublicKey {
	return append(ed25519.PublicKey(nil), k.k.signing[ed25519.SeedSize:]...)
}

// DHPublic returns the 32-byte X25519 identity public key.
func (k *DeviceKey) DHPublic() []byte { return k.k.dh.PublicKey().Bytes() }

// DH returns the X25519 identity private key, for PQXDH.
func (k *DeviceKey) DH() *ecdh.PrivateKey { return k.k.dh }

// Sign signs msg with the device signing key.
func (k *DeviceKey) Sign(msg []byte) []byte { return ed25519.Sign(k.k.signing, msg) }

// String returns a redacted form.
func (k *DeviceKey) String() string {
	return "identity.DeviceKey{signing:" + hex.EncodeToString(k.k.signing[ed25519.SeedSize:]) +
		", dh:" + hex.EncodeToString(k.k.dh.PublicKey().Bytes()) + ", private:REDACTED}"
}

// GoString returns the same redacted form as String, for %#v.
func (k *DeviceKey) GoString() string { return k.String() }

// Domain separation labels of the signed messages.
const (
	authLabel   = "parley-auth-v1"
	prekeyLabel = "parley-prekey-v1"
)

// AuthMessage is what a device signs to answer a server challenge:
// "parley-auth-v1" || len-prefixed handle || device id (u32 BE) || challenge.
//
// The handle has a u8 length prefix and the challenge a u16 length prefix.
// AuthMessage returns nil if the handle is longer than 255 bytes or the
// challenge longer than 65535 bytes; callers validate both first.
func AuthMessage(handle string, deviceID uint32, challenge []byte) []byte {
	b := cryptobyte.NewBuilder(make([]byte, 0, len(authLabel)+1+len(handle)+4+2+len(challenge)))
	b.AddBytes([]byte(authLabel))
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(handle)) })
	b.AddUint32(deviceID)
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(challenge) })
	out, err := b.Bytes()
	if err != nil {
		return nil
	}
	return out
}

// Prekey kinds, for PrekeyMessage.
const (
	PrekeySigned       byte = 1 // X25519 signed prekey
	PrekeyPQOneTime    byte = 2 // ML-KEM-768 one-time prekey
	PrekeyPQLastResort byte = 3 // ML-KEM-768 last-resort prekey
	PrekeyOneTime      byte = 4 // X25519 one-time prekey (unsigned)
)

// PrekeyMessage is what a device signs to publish a prekey:
// "parley-prekey-v1" || kind || id (u32 BE) || public key.
//
// The public key has a u16 length prefix. PrekeyMessage returns nil if the
// public key is longer than 65535 bytes.
func PrekeyMessage(kind byte, id uint32, public []byte) []byte {
	b := cryptobyte.NewBuilder(make([]byte, 0, len(prekeyLabel)+1+4+2+len(public)))
	b.AddBytes([]byte(prekeyLabel))
	b.AddUint8(kind)
	b.AddUint32(id)
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(public) })
	out, err := b.Bytes()
	if err != nil {
		return nil
	}
	return out
}
