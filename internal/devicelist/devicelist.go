// Package devicelist encodes, signs and verifies an account's device list.
// The list is signed by the account identity key, so a client can reject a
// list the server made up; its version only grows, so a client can reject a
// list the server rolled back.
package devicelist

import (
	"crypto/ed25519"
	"errors"

	"github.com/parleychat/parley/internal/identity"
)

// Errors returned by Verify and Parse.
var (
	ErrMalformed    = errors.New("devicelist: malformed list")
	ErrBadSignature = errors.New("devicelist: bad signature")
)

// MaxDevices bounds a list.
const MaxDevices = 16

// Device is one entry of the list.
type Device struct {
	ID         uint32            // non-zero, chosen at random by the device
	SigningKey ed25519.PublicKey // 32 bytes
	DHKey      []byte            // 32 bytes, X25519 identity key
	Name       string            // at most 64 bytes of UTF-8
	Created    int64             // Unix ms
}

// List is an account's device list.
type List struct {
	Handle  string
	Version uint64 // strictly increasing
	Devices []Device
}

// Sign encodes l and signs it with the account key.
func (l *List) Sign(k *identity.AccountKey) ([]byte, error) { panic("unimplemented") }

// Verify decodes a signed list and checks its signature against accountKey.
func Verify(signed []byte, accountKey ed25519.PublicKey) (*List, error) { panic("unimplemented") }

// Device returns the device with the given id.
func (l *List) Device(id uint32) (Device, bool) { panic("unimplemented") }

// IDs returns the device ids in list order.
func (l *List) IDs() []uint32 { panic("unimplemented") }
