// Package linking is the cryptography of adding a device to an account.
//
// The existing device shows a code: the server's link id and a 128-bit
// secret the server never sees. The new device sends a Join (its public
// keys and an ephemeral X25519 key) authenticated with the secret; the
// existing device checks it, then seals a Transfer (the account key and
// contact list) to the new device with a key from X25519 and the secret.
package linking

import (
	"crypto/ecdh"
	"errors"

	"github.com/parleychat/parley/internal/content"
	"github.com/parleychat/parley/internal/identity"
)

// Errors.
var (
	ErrBadCode   = errors.New("linking: not a valid link code")
	ErrMalformed = errors.New("linking: malformed message")
	ErrBadMAC    = errors.New("linking: join is not authenticated by this code")
	ErrOpen      = errors.New("linking: sealed account failed authentication")
)

// Code is the one-time link code.
type Code struct {
	LinkID [16]byte
	Secret [16]byte
}

// NewCode makes a code for linkID with a fresh secret.
func NewCode(linkID [16]byte) (Code, error) { panic("unimplemented") }

// String encodes the code for display and typing (unambiguous, checksummed).
func (c Code) String() string { panic("unimplemented") }

// ParseCode parses String's output, tolerating spaces, dashes and case.
func ParseCode(s string) (Code, error) { panic("unimplemented") }

// Join is the new device's request.
type Join struct {
	DeviceID   uint32
	SigningKey []byte // Ed25519
	DHKey      []byte // X25519 identity
	Name       string
	Ephemeral  []byte // X25519
	MAC        []byte // HMAC-SHA256 under a key derived from the secret
}

// NewJoin builds an authenticated Join and returns the ephemeral private key
// the new device keeps to open the Transfer.
func NewJoin(c Code, dev *identity.DeviceKey, deviceID uint32, name string) (*Join, *ecdh.PrivateKey, error) {
	panic("unimplemented")
}

// Marshal encodes j.
func (j *Join) Marshal() []byte { panic("unimplemented") }

// ParseJoin decodes Marshal's output.
func ParseJoin(b []byte) (*Join, error) { panic("unimplemented") }

// Verify checks j's MAC under c.
func (j *Join) Verify(c Code) error { panic("unimplemented") }

// Transfer is what the new device receives.
type Transfer struct {
	Handle       string
	AccountSeed  []byte // 32 bytes
	Contacts     []content.Contact
	ReadReceipts bool
}

// Seal encrypts t to the joining device.
func Seal(c Code, j *Join, t *Transfer) ([]byte, error) { panic("unimplemented") }

// Open decrypts a sealed Transfer with the new device's ephemeral key.
func Open(c Code, j *Join, ephemeral *ecdh.PrivateKey, sealed []byte) (*Transfer, error) {
	panic("unimplemented")
}
