// Package session joins PQXDH and the Double Ratchet into a session between
// this device and one remote device, and defines the frames that travel in
// an envelope's ciphertext.
//
// A frame is either a prekey frame (PQXDH initial message + ratchet message),
// sent until the initiator has received a reply, or a plain ratchet frame.
// The associated data of every message binds both accounts' identity keys,
// handles and device ids (see docs/PROTOCOL.md).
package session

import (
	"crypto/ed25519"
	"errors"

	"github.com/parleychat/parley/internal/identity"
	"github.com/parleychat/parley/internal/pqxdh"
)

// Errors. Decrypt leaves the session unchanged when it returns an error.
var (
	ErrMalformed       = errors.New("session: malformed frame")
	ErrDecrypt         = errors.New("session: message failed authentication")
	ErrReplay          = errors.New("session: message already received (replay)")
	ErrTooManySkipped  = errors.New("session: too many skipped messages")
	ErrNotPrekeyFrame  = errors.New("session: not a prekey frame")
	ErrIdentityChanged = errors.New("session: sender identity key does not match its device list")
)

// Address names one device of one account, with the account identity key.
type Address struct {
	Handle      string
	DeviceID    uint32
	IdentityKey ed25519.PublicKey // the account's identity key
}

// Local is this device: its address and keys.
type Local struct {
	Address
	Device *identity.DeviceKey
}

// Remote is the other device: its address and its X25519 identity key
// (from its account's verified device list).
type Remote struct {
	Address
	IdentityDH []byte
}

// Session is a Double Ratchet session with one remote device.
type Session struct {
	_ [0]func()
}

// Initiate starts a session to remote from its prekey bundle. The first
// frames Encrypt returns are prekey frames.
func Initiate(local Local, remote Remote, b *pqxdh.Bundle) (*Session, error) {
	panic("unimplemented")
}

// FrameInfo is what can be read from a frame without keys.
type FrameInfo struct {
	Prekey       bool
	BaseKey      []byte // with Prekey: the initiator's ephemeral key; it names the session
	IdentityDH   []byte // with Prekey: the initiator's X25519 identity key
	OneTimeID    uint32 // with Prekey: the one-time prekey used, to delete after Accept
	PQPrekeyID   uint32
	PQLastResort bool
}

// Inspect parses a frame's header.
func Inspect(frame []byte) (*FrameInfo, error) { panic("unimplemented") }

// Accept answers a prekey frame: it runs PQXDH's responder side, creates the
// session and decrypts the first message.
func Accept(local Local, remote Remote, keys pqxdh.Prekeys, frame []byte) (*Session, []byte, error) {
	panic("unimplemented")
}

// BaseKey is the initiator's ephemeral key that created the session, so a
// later prekey frame with the same base key goes to this session.
func (s *Session) BaseKey() []byte { panic("unimplemented") }

// Encrypt encrypts plaintext as the next frame.
func (s *Session) Encrypt(plaintext []byte) ([]byte, error) { panic("unimplemented") }

// Decrypt decrypts a frame of this session (a prekey frame whose base key
// matches, or a ratchet frame). On error the session is unchanged.
func (s *Session) Decrypt(frame []byte) ([]byte, error) { panic("unimplemented") }

// MarshalBinary encodes the whole session state for storage.
func (s *Session) MarshalBinary() ([]byte, error) { panic("unimplemented") }

// Unmarshal decodes MarshalBinary's output.
func Unmarshal(b []byte) (*Session, error) { panic("unimplemented") }
