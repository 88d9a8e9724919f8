// Package devicelist encodes, signs and verifies an account's device list.
// The list is signed by the account identity key, so a client can reject a
// list the server made up; its version only grows, so a client can reject a
// list the server rolled back.
package devicelist

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"

	"github.com/parleychat/parley/internal/identity"
)

// Errors returned by Verify and Parse.
var (
	ErrMalformed    = errors.New("devicelist: malformed list")
	ErrBadSignature = errors.New("devicelist: bad signature")
)

// MaxDevices bounds a list.
const MaxDevices = 16

// MaxNameLen bounds a device name, in bytes of UTF-8.
const MaxNameLen = 64

// formatVersion is the first byte of a signed list.
const formatVersion = 1

// signatureLabel prefixes the body in the signed message.
const signatureLabel = "parley-devicelist-v1"

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

// Validate checks the rules every signed list obeys: a valid handle,
// Version >= 1, 1 to MaxDevices devices with distinct non-zero ids, 32-byte
// keys, names of at most MaxNameLen bytes of valid UTF-8.
func (l *List) Validate() error {
	if !identity.ValidHandle(l.Handle) {
		return fmt.Errorf("%w: invalid handle %q", ErrMalformed, l.Handle)
	}
	if l.Version < 1 {
		return fmt.Errorf("%w: version 0", ErrMalformed)
	}
	if len(l.Devices) < 1 || len(l.Devices) > MaxDevices {
		return fmt.Errorf("%w: %d devices, want 1 to %d", ErrMalformed, len(l.Devices), MaxDevices)
	}
	for i, d := range l.Devices {
		if d.ID == 0 {
			return fmt.Errorf("%w: device id 0", ErrMalformed)
		}
		for _, e := range l.Devices[:i] {
			if e.ID == d.ID {
				return fmt.Errorf("%w: duplicate device id %d", ErrMalformed, d.ID)
			}
		}
		if len(d.SigningKey) != ed25519.PublicKeySize || len(d.DHKey) != 32 {
			return fmt.Errorf("%w: device %d: bad key size", ErrMalformed, d.ID)
		}
		if len(d.Name) > MaxNameLen || !utf8.ValidString(d.Name) {
			return fmt.Errorf("%w: device %d: name is not at most %d bytes of UTF-8", ErrMalformed, d.ID, MaxNameLen)
		}
	}
	return nil
}

// body encodes the signed part of l. l must be valid.
func (l *List) body() ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(l.Handle)) })
	b.AddUint64(l.Version)
	b.AddUint8(uint8(len(l.Devices)))
	for _, d := range l.Devices {
		b.AddUint32(d.ID)
		b.AddBytes(d.SigningKey)
		b.AddBytes(d.DHKey)
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(d.Name)) })
		b.AddUint64(uint64(d.Created))
	}
	out, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return out, nil
}

// signedMessage is what the account key signs.
func signedMessage(body []byte) []byte {
	return append([]byte(signatureLabel), body...)
}

// encode assembles a signed list from its body and signature.
func encode(body, sig []byte) ([]byte, error) {
	b := cryptobyte.NewBuilder(make([]byte, 0, 1+4+len(body)+len(sig)))
	b.AddUint8(formatVersion)
	b.AddUint32LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(body) })
	b.AddBytes(sig)
	out, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return out, nil
}

// Sign encodes l and signs it with the account key.
func (l *List) Sign(k *identity.AccountKey) ([]byte, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	body, err := l.body()
	if err != nil {
		return nil, err
	}
	return encode(body, k.Sign(signedMessage(body)))
}

// Verify decodes a signed list and checks its signature against accountKey.
func Verify(signed []byte, accountKey ed25519.PublicKey) (*List, error) {
	l, body, sig, err := parse(signed)
	if err != nil {
		return nil, err
	}
	if len(accountKey) != ed25519.PublicKeySize || !ed25519.Verify(accountKey, signedMessage(body), sig) {
		return nil, ErrBadSignature
	}
	return l, nil
}

// Parse decodes and validates a signed list WITHOUT checking its
// signature. It is for inspection (and for the server's size checks) only:
// trust a list only after Verify.
func Parse(signed []byte) (*List, error) {
	l, _, _, err := parse(signed)
	return l, err
}

// readUint32LengthPrefixed reads a u32 length and that many bytes.
func readUint32LengthPrefixed(s *cryptobyte.String, out *cryptobyte.String) bool {
	var n uint32
	var v []byte
	if !s.ReadUint32(&n) || uint64(n) > uint64(len(*s)) || !s.ReadBytes(&v, int(n)) {
		return false
	}
	*out = v
	return true
}

// encodeWithSignature re-encodes a list returned by parse with its
// signature, so that parsing then re-encoding gives the same bytes. It does
// not sign.
func (l *List) encodeWithSignature(sig []byte) ([]byte, error) {
	body, err := l.body()
	if err != nil {
		return nil, err
	}
	return encode(body, sig)
}

func parse(signed []byte) (l *List, body, sig []byte, err error) {
	s := cryptobyte.String(signed)
	var version uint8
	var bodyS cryptobyte.String
	if !s.ReadUint8(&version) || version != formatVersion ||
		!readUint32LengthPrefixed(&s, &bodyS) ||
		!s.ReadBytes(&sig, ed25519.SignatureSize) || !s.Empty() {
		return nil, nil, nil, ErrMalformed
	}
	body = []byte(bodyS)
	l = new(List)
	var handle cryptobyte.String
	var count uint8
	if !bodyS.ReadUint8LengthPrefixed(&handle) || !bodyS.ReadUint64(&l.Version) || !bodyS.ReadUint8(&count) {
		return nil, nil, nil, ErrMalformed
	}
	l.Handle = string(handle)
	if count > MaxDevices {
		return nil, nil, nil, fmt.Errorf("%w: %d devices", ErrMalformed, count)
	}
	l.Devices = make([]Device, count)
	for i := range l.Devices {
		d := &l.Devices[i]
		var signing, dh []byte
		var name cryptobyte.String
		var created uint64
		if !bodyS.ReadUint32(&d.ID) || !bodyS.ReadBytes(&signing, ed25519.PublicKeySize) ||
			!bodyS.ReadBytes(&dh, 32) || !bodyS.ReadUint8LengthPrefixed(&name) || !bodyS.ReadUint64(&created) {
			return nil, nil, nil, ErrMalformed
		}
		d.SigningKey = append(ed25519.PublicKey(nil), signing...)
		d.DHKey = append([]byte(nil), dh...)
		d.Name = string(name)
		d.Created = int64(created)
	}
	if !bodyS.Empty() {
		return nil, nil, nil, fmt.Errorf("%w: trailing bytes", ErrMalformed)
	}
	if err := l.Validate(); err != nil {
		return nil, nil, nil, err
	}
	return l, body, append([]byte(nil), sig...), nil
}

// Device returns the device with the given id.
func (l *List) Device(id uint32) (Device, bool) {
	for _, d := range l.Devices {
		if d.ID == id {
			return d, true
		}
	}
	return Device{}, false
}

// IDs returns the device ids in list order.
func (l *List) IDs() []uint32 {
	ids := make([]uint32, len(l.Devices))
	for i, d := range l.Devices {
		ids[i] = d.ID
	}
	return ids
}
