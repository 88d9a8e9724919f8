// Package linking is the cryptography of adding a device to an account.
//
// The existing device shows a code: the server's link id and a 128-bit
// secret the server never sees. The new device sends a Join (its public
// keys and an ephemeral X25519 key) authenticated with the secret; the
// existing device checks it, then seals a Transfer (the account key and
// contact list) to the new device with a key from X25519 and the secret.
package linking

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/cryptobyte"

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

// Labels and sizes.
const (
	macInfo      = "parley-link-mac"
	sealInfo     = "parley-link-seal"
	checksumSize = 2
	codeBytes    = 16 + 16 + checksumSize
	// CodeLen is the number of base32 characters of a code (without dashes).
	CodeLen    = (codeBytes*8 + 4) / 5
	codeGroup  = 4
	keySize    = 32
	macSize    = sha256.Size
	maxNameLen = 64
)

// crockford is Crockford's base32 alphabet (no I, L, O, U).
var crockford = base32.NewEncoding("0123456789ABCDEFGHJKMNPQRSTVWXYZ").WithPadding(base32.NoPadding)

// Code is the one-time link code.
type Code struct {
	LinkID [16]byte
	Secret [16]byte
}

// NewCode makes a code for linkID with a fresh secret.
func NewCode(linkID [16]byte) (Code, error) {
	c := Code{LinkID: linkID}
	if _, err := rand.Read(c.Secret[:]); err != nil {
		return Code{}, fmt.Errorf("linking: %w", err)
	}
	return c, nil
}

func (c Code) raw() []byte {
	b := make([]byte, 0, codeBytes)
	b = append(b, c.LinkID[:]...)
	b = append(b, c.Secret[:]...)
	sum := sha256.Sum256(b)
	return append(b, sum[:checksumSize]...)
}

// String encodes the code for display and typing (unambiguous, checksummed):
// Crockford base32 of LinkID || Secret || SHA-256(LinkID || Secret)[:2],
// in groups of four characters joined by dashes.
func (c Code) String() string {
	s := crockford.EncodeToString(c.raw())
	var sb strings.Builder
	for i := 0; i < len(s); i += codeGroup {
		if i > 0 {
			sb.WriteByte('-')
		}
		sb.WriteString(s[i:min(i+codeGroup, len(s))])
	}
	return sb.String()
}

// ParseCode parses String's output, tolerating spaces, dashes and case.
// It reads I and L as 1 and O as 0.
func ParseCode(s string) (Code, error) {
	norm := normalize(s)
	if len(norm) != CodeLen {
		return Code{}, fmt.Errorf("%w: %d characters, want %d", ErrBadCode, len(norm), CodeLen)
	}
	raw, err := crockford.DecodeString(norm)
	if err != nil || len(raw) != codeBytes || crockford.EncodeToString(raw) != norm {
		return Code{}, ErrBadCode
	}
	var c Code
	copy(c.LinkID[:], raw)
	copy(c.Secret[:], raw[16:])
	if !hmac.Equal(c.raw(), raw) {
		return Code{}, fmt.Errorf("%w: checksum", ErrBadCode)
	}
	return c, nil
}

// normalize drops dashes and white space, upper-cases, and reads I and L as
// 1 and O as 0.
func normalize(s string) string {
	var sb strings.Builder
	for _, r := range s {
		switch {
		case r == '-' || unicode.IsSpace(r):
			continue
		case r == 'I' || r == 'i' || r == 'L' || r == 'l':
			r = '1'
		case r == 'O' || r == 'o':
			r = '0'
		}
		sb.WriteRune(unicode.ToUpper(r))
	}
	return sb.String()
}

// macKey is HKDF-SHA256(ikm = Secret, salt = LinkID, info = "parley-link-mac").
func (c Code) macKey() []byte {
	k, err := hkdf.Key(sha256.New, c.Secret[:], c.LinkID[:], macInfo, sha256.Size)
	if err != nil {
		return nil
	}
	return k
}

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
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("linking: %w", err)
	}
	j := &Join{
		DeviceID:   deviceID,
		SigningKey: dev.SigningPublic(),
		DHKey:      dev.DHPublic(),
		Name:       name,
		Ephemeral:  eph.PublicKey().Bytes(),
	}
	body, err := j.body()
	if err != nil {
		return nil, nil, err
	}
	j.MAC = computeMAC(c, body)
	return j, eph, nil
}

func computeMAC(c Code, body []byte) []byte {
	m := hmac.New(sha256.New, c.macKey())
	m.Write(body)
	return m.Sum(nil)
}

// body is the Join encoding without the MAC: u32 device id || signing key
// (32) || DH key (32) || u8-len name || ephemeral (32).
func (j *Join) body() ([]byte, error) {
	if j.DeviceID == 0 || len(j.SigningKey) != ed25519.PublicKeySize || len(j.DHKey) != keySize ||
		len(j.Ephemeral) != keySize || len(j.Name) > maxNameLen || !utf8.ValidString(j.Name) {
		return nil, fmt.Errorf("%w: invalid join", ErrMalformed)
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, 4+3*keySize+1+len(j.Name)+macSize))
	b.AddUint32(j.DeviceID)
	b.AddBytes(j.SigningKey)
	b.AddBytes(j.DHKey)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(j.Name)) })
	b.AddBytes(j.Ephemeral)
	return b.Bytes()
}

// Marshal encodes j: its body then the 32-byte MAC. It returns nil for a
// Join with missing or oversized fields.
func (j *Join) Marshal() []byte {
	body, err := j.body()
	if err != nil || len(j.MAC) != macSize {
		return nil
	}
	return append(body, j.MAC...)
}

// ParseJoin decodes Marshal's output.
func ParseJoin(b []byte) (*Join, error) {
	s := cryptobyte.String(b)
	j := new(Join)
	var signing, dh, eph, mac []byte
	var name cryptobyte.String
	if !s.ReadUint32(&j.DeviceID) || !s.ReadBytes(&signing, ed25519.PublicKeySize) ||
		!s.ReadBytes(&dh, keySize) || !s.ReadUint8LengthPrefixed(&name) ||
		!s.ReadBytes(&eph, keySize) || !s.ReadBytes(&mac, macSize) || !s.Empty() {
		return nil, ErrMalformed
	}
	j.SigningKey, j.DHKey, j.Name = bytes.Clone(signing), bytes.Clone(dh), string(name)
	j.Ephemeral, j.MAC = bytes.Clone(eph), bytes.Clone(mac)
	if _, err := j.body(); err != nil {
		return nil, err
	}
	return j, nil
}

// Verify checks j's MAC under c.
func (j *Join) Verify(c Code) error {
	body, err := j.body()
	if err != nil {
		return err
	}
	if !hmac.Equal(computeMAC(c, body), j.MAC) {
		return ErrBadMAC
	}
	return nil
}

// Transfer is what the new device receives.
type Transfer struct {
	Handle       string
	AccountSeed  []byte // 32 bytes
	Contacts     []content.Contact
	ReadReceipts bool
}

// marshal encodes t: u8-len handle || account seed (32) || contacts (as in
// content) || u8 read receipts.
func (t *Transfer) marshal() ([]byte, error) {
	if !identity.ValidHandle(t.Handle) || len(t.AccountSeed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: invalid transfer", ErrMalformed)
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(t.Handle)) })
	b.AddBytes(t.AccountSeed)
	if err := content.AddContacts(b, t.Contacts); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if t.ReadReceipts {
		b.AddUint8(1)
	} else {
		b.AddUint8(0)
	}
	return b.Bytes()
}

func parseTransfer(b []byte) (*Transfer, error) {
	s := cryptobyte.String(b)
	t := new(Transfer)
	var handle cryptobyte.String
	var seed []byte
	var rr uint8
	if !s.ReadUint8LengthPrefixed(&handle) || !s.ReadBytes(&seed, ed25519.SeedSize) {
		return nil, ErrMalformed
	}
	t.Handle, t.AccountSeed = string(handle), bytes.Clone(seed)
	var ok bool
	if t.Contacts, ok = content.ReadContacts(&s); !ok || !s.ReadUint8(&rr) || rr > 1 || !s.Empty() {
		return nil, ErrMalformed
	}
	t.ReadReceipts = rr == 1
	if !identity.ValidHandle(t.Handle) {
		return nil, fmt.Errorf("%w: invalid handle", ErrMalformed)
	}
	return t, nil
}

// sealKey is HKDF-SHA256(ikm = X25519 || Secret, salt = LinkID, info =
// "parley-link-seal").
func sealKey(c Code, priv *ecdh.PrivateKey, pub []byte) ([]byte, error) {
	p, err := ecdh.X25519().NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	shared, err := priv.ECDH(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	k, err := hkdf.Key(sha256.New, append(shared, c.Secret[:]...), c.LinkID[:], sealInfo, chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("linking: %w", err)
	}
	return k, nil
}

var zeroNonce [chacha20poly1305.NonceSize]byte

// Seal encrypts t to the joining device. It checks j's MAC first.
func Seal(c Code, j *Join, t *Transfer) ([]byte, error) {
	if err := j.Verify(c); err != nil {
		return nil, err
	}
	pt, err := t.marshal()
	if err != nil {
		return nil, err
	}
	e2, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("linking: %w", err)
	}
	key, err := sealKey(c, e2, j.Ephemeral)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.New(key)
	if err != nil {
		return nil, fmt.Errorf("linking: %w", err)
	}
	out := e2.PublicKey().Bytes()
	return aead.Seal(out, zeroNonce[:], pt, j.Marshal()), nil
}

// Open decrypts a sealed Transfer with the new device's ephemeral key.
func Open(c Code, j *Join, ephemeral *ecdh.PrivateKey, sealed []byte) (*Transfer, error) {
	if len(sealed) < keySize+chacha20poly1305.Overhead {
		return nil, fmt.Errorf("%w: sealed transfer of %d bytes", ErrMalformed, len(sealed))
	}
	ad := j.Marshal()
	if ad == nil {
		return nil, fmt.Errorf("%w: invalid join", ErrMalformed)
	}
	key, err := sealKey(c, ephemeral, sealed[:keySize])
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.New(key)
	if err != nil {
		return nil, fmt.Errorf("linking: %w", err)
	}
	pt, err := aead.Open(nil, zeroNonce[:], sealed[keySize:], ad)
	if err != nil {
		return nil, ErrOpen
	}
	return parseTransfer(pt)
}
