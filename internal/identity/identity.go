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
)

// AccountKey is an account's Ed25519 identity key.
type AccountKey struct {
	_    [0]func() // not comparable
	priv ed25519.PrivateKey
}

// NewAccountKey generates an account key from rand.
func NewAccountKey() (*AccountKey, error) { panic("unimplemented") }

// AccountKeyFromSeed rebuilds an account key from its 32-byte seed.
func AccountKeyFromSeed(seed []byte) (*AccountKey, error) { panic("unimplemented") }

// Seed returns the 32-byte private seed, for storage and device linking only.
func (k *AccountKey) Seed() []byte { panic("unimplemented") }

// Public returns the public key.
func (k *AccountKey) Public() ed25519.PublicKey { panic("unimplemented") }

// Sign signs msg.
func (k *AccountKey) Sign(msg []byte) []byte { panic("unimplemented") }

// String returns a redacted form that names only the public key.
func (k *AccountKey) String() string { panic("unimplemented") }

// DeviceKey is a device's own long-term keys.
type DeviceKey struct {
	_       [0]func()
	signing ed25519.PrivateKey
	dh      *ecdh.PrivateKey
}

// NewDeviceKey generates device keys from rand.
func NewDeviceKey() (*DeviceKey, error) { panic("unimplemented") }

// MarshalBinary encodes the private keys (64 bytes) for the client's store.
func (k *DeviceKey) MarshalBinary() ([]byte, error) { panic("unimplemented") }

// UnmarshalDeviceKey decodes MarshalBinary's output.
func UnmarshalDeviceKey(b []byte) (*DeviceKey, error) { panic("unimplemented") }

// SigningPublic returns the Ed25519 public key.
func (k *DeviceKey) SigningPublic() ed25519.PublicKey { panic("unimplemented") }

// DHPublic returns the 32-byte X25519 identity public key.
func (k *DeviceKey) DHPublic() []byte { panic("unimplemented") }

// DH returns the X25519 identity private key, for PQXDH.
func (k *DeviceKey) DH() *ecdh.PrivateKey { panic("unimplemented") }

// Sign signs msg with the device signing key.
func (k *DeviceKey) Sign(msg []byte) []byte { panic("unimplemented") }

// String returns a redacted form.
func (k *DeviceKey) String() string { panic("unimplemented") }

// AuthMessage is what a device signs to answer a server challenge:
// "parley-auth-v1" || len-prefixed handle || device id (u32 BE) || challenge.
func AuthMessage(handle string, deviceID uint32, challenge []byte) []byte { panic("unimplemented") }

// Prekey kinds, for PrekeyMessage.
const (
	PrekeySigned       byte = 1 // X25519 signed prekey
	PrekeyPQOneTime    byte = 2 // ML-KEM-768 one-time prekey
	PrekeyPQLastResort byte = 3 // ML-KEM-768 last-resort prekey
	PrekeyOneTime      byte = 4 // X25519 one-time prekey (unsigned)
)

// PrekeyMessage is what a device signs to publish a prekey:
// "parley-prekey-v1" || kind || id (u32 BE) || public key.
func PrekeyMessage(kind byte, id uint32, public []byte) []byte { panic("unimplemented") }
