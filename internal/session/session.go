// Package session joins PQXDH and the Double Ratchet into a session between
// this device and one remote device, and defines the frames that travel in
// an envelope's ciphertext.
//
// A frame is either a prekey frame (PQXDH initial message + ratchet message),
// sent until the initiator has received a reply, or a plain ratchet frame.
// The associated data of every message binds both accounts' identity keys,
// handles and device ids (see docs/PROTOCOL-crypto.md).
package session

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"

	"github.com/parleychat/parley/internal/identity"
	"github.com/parleychat/parley/internal/pqxdh"
	"github.com/parleychat/parley/internal/ratchet"
)

// Errors. Decrypt leaves the session unchanged when it returns an error.
var (
	ErrMalformed       = errors.New("session: malformed frame")
	ErrDecrypt         = errors.New("session: message failed authentication")
	ErrReplay          = errors.New("session: message already received (replay)")
	ErrTooManySkipped  = errors.New("session: too many skipped messages")
	ErrNotPrekeyFrame  = errors.New("session: not a prekey frame")
	ErrIdentityChanged = errors.New("session: sender identity key does not match its device list")
	// ErrOtherSession is returned by Decrypt for a prekey frame whose base
	// key names another session (the remote started a new one): Accept it.
	ErrOtherSession = errors.New("session: prekey frame of another session")
)

// Frame and state format constants.
const (
	frameVersion = 1
	framePrekey  = 1
	frameRatchet = 2
	stateVersion = 1
	adLabel      = "parley-session-v1"
)

// Address names one device of one account, with the account identity key.
type Address struct {
	Handle      string
	DeviceID    uint32
	IdentityKey ed25519.PublicKey // the account's identity key
}

func (a Address) validate() error {
	if len(a.Handle) == 0 || len(a.Handle) > 255 || len(a.IdentityKey) != ed25519.PublicKeySize {
		return fmt.Errorf("session: invalid address %q/%d", a.Handle, a.DeviceID)
	}
	return nil
}

func addAddress(b *cryptobyte.Builder, a Address) {
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(a.Handle)) })
	b.AddUint32(a.DeviceID)
	b.AddBytes(a.IdentityKey)
}

func readAddress(s *cryptobyte.String, a *Address) bool {
	var handle cryptobyte.String
	var key []byte
	if !s.ReadUint8LengthPrefixed(&handle) || len(handle) == 0 || !s.ReadUint32(&a.DeviceID) ||
		!s.ReadBytes(&key, ed25519.PublicKeySize) {
		return false
	}
	a.Handle = string(handle)
	a.IdentityKey = bytes.Clone(key)
	return true
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

	local     Address
	remote    Remote
	initiator bool
	ad        []byte
	baseKey   []byte
	pending   []byte            // initiator: encoded pqxdh.InitMessage, until the first reply
	initHash  [sha256.Size]byte // responder: SHA-256 of the accepted InitMessage
	r         *ratchet.State
}

// associatedData is the session AD: "parley-session-v1" || IK_A || IK_B
// || initiator address || responder address.
func associatedData(pqAD []byte, initiator, responder Address) ([]byte, error) {
	b := cryptobyte.NewBuilder(make([]byte, 0, 256))
	b.AddBytes([]byte(adLabel))
	b.AddBytes(pqAD)
	addAddress(b, initiator)
	addAddress(b, responder)
	return b.Bytes()
}

// Initiate starts a session to remote from its prekey bundle. The first
// frames Encrypt returns are prekey frames.
func Initiate(local Local, remote Remote, b *pqxdh.Bundle) (*Session, error) {
	if err := local.validate(); err != nil {
		return nil, err
	}
	if err := remote.validate(); err != nil {
		return nil, err
	}
	if local.Device == nil || len(remote.IdentityDH) != pqxdh.KeySize {
		return nil, fmt.Errorf("session: missing device key or remote identity key")
	}
	if !bytes.Equal(b.IdentityDH, remote.IdentityDH) {
		return nil, fmt.Errorf("%w: bundle identity key differs", ErrIdentityChanged)
	}
	res, m, err := pqxdh.Initiate(local.Device, b)
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	r, err := ratchet.InitAlice(res.SK, b.SignedPrekey)
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	ad, err := associatedData(res.AD, local.Address, remote.Address)
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	pending, err := m.Marshal()
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	return &Session{
		local:     cloneAddress(local.Address),
		remote:    Remote{cloneAddress(remote.Address), bytes.Clone(remote.IdentityDH)},
		initiator: true,
		ad:        ad,
		baseKey:   bytes.Clone(m.Ephemeral),
		pending:   pending,
		r:         r,
	}, nil
}

func cloneAddress(a Address) Address {
	a.IdentityKey = bytes.Clone(a.IdentityKey)
	return a
}

// frame is a decoded frame.
type frame struct {
	init    *pqxdh.InitMessage // prekey frames only
	rawInit []byte
	msg     []byte // ratchet message: header || ciphertext
}

// parseFrame decodes a frame, strictly.
func parseFrame(b []byte) (*frame, error) {
	s := cryptobyte.String(b)
	var version, typ uint8
	if !s.ReadUint8(&version) || version != frameVersion || !s.ReadUint8(&typ) {
		return nil, ErrMalformed
	}
	f := new(frame)
	switch typ {
	case framePrekey:
		var raw cryptobyte.String
		if !s.ReadUint16LengthPrefixed(&raw) {
			return nil, ErrMalformed
		}
		m, err := pqxdh.ParseInitMessage(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		f.init, f.rawInit = m, raw
	case frameRatchet:
	default:
		return nil, fmt.Errorf("%w: frame type %d", ErrMalformed, typ)
	}
	var n uint32
	if !s.ReadUint32(&n) || uint64(n) != uint64(len(s)) || n < ratchet.Overhead {
		return nil, ErrMalformed
	}
	f.msg = s
	return f, nil
}

// appendFrameHeader appends a frame's bytes up to the ratchet message,
// whose length is msgLen.
func appendFrameHeader(b []byte, rawInit []byte, msgLen int) ([]byte, error) {
	c := cryptobyte.NewBuilder(b)
	c.AddUint8(frameVersion)
	if rawInit != nil {
		c.AddUint8(framePrekey)
		c.AddUint16LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes(rawInit) })
	} else {
		c.AddUint8(frameRatchet)
	}
	c.AddUint32(uint32(msgLen))
	return c.Bytes()
}

// encode re-encodes a parsed frame.
func (f *frame) encode() ([]byte, error) {
	b, err := appendFrameHeader(nil, f.rawInit, len(f.msg))
	return append(b, f.msg...), err
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
func Inspect(frame []byte) (*FrameInfo, error) {
	f, err := parseFrame(frame)
	if err != nil {
		return nil, err
	}
	if f.init == nil {
		return &FrameInfo{}, nil
	}
	return &FrameInfo{
		Prekey:       true,
		BaseKey:      f.init.Ephemeral,
		IdentityDH:   f.init.IdentityDH,
		OneTimeID:    f.init.OneTimeID,
		PQPrekeyID:   f.init.PQPrekeyID,
		PQLastResort: f.init.PQLastResort,
	}, nil
}

// Accept answers a prekey frame: it runs PQXDH's responder side, creates the
// session and decrypts the first message.
func Accept(local Local, remote Remote, keys pqxdh.Prekeys, frame []byte) (*Session, []byte, error) {
	if err := local.validate(); err != nil {
		return nil, nil, err
	}
	if err := remote.validate(); err != nil {
		return nil, nil, err
	}
	if local.Device == nil {
		return nil, nil, fmt.Errorf("session: missing device key")
	}
	f, err := parseFrame(frame)
	if err != nil {
		return nil, nil, err
	}
	if f.init == nil {
		return nil, nil, ErrNotPrekeyFrame
	}
	if !bytes.Equal(f.init.IdentityDH, remote.IdentityDH) {
		return nil, nil, ErrIdentityChanged
	}
	res, err := pqxdh.Respond(local.Device, keys, f.init)
	if err != nil {
		return nil, nil, fmt.Errorf("session: %w", err)
	}
	spk, err := keys.SignedPrekey(f.init.SignedPrekeyID)
	if err != nil {
		return nil, nil, fmt.Errorf("session: %w: %w", pqxdh.ErrUnknownPrekey, err)
	}
	r, err := ratchet.InitBob(res.SK, spk)
	if err != nil {
		return nil, nil, fmt.Errorf("session: %w", err)
	}
	ad, err := associatedData(res.AD, remote.Address, local.Address)
	if err != nil {
		return nil, nil, fmt.Errorf("session: %w", err)
	}
	pt, err := r.Decrypt(f.msg, ad)
	if err != nil {
		return nil, nil, mapError(err)
	}
	return &Session{
		local:    cloneAddress(local.Address),
		remote:   Remote{cloneAddress(remote.Address), bytes.Clone(remote.IdentityDH)},
		ad:       ad,
		baseKey:  bytes.Clone(f.init.Ephemeral),
		initHash: sha256.Sum256(f.rawInit),
		r:        r,
	}, pt, nil
}

// mapError turns a ratchet error into this package's.
func mapError(err error) error {
	switch {
	case errors.Is(err, ratchet.ErrReplay):
		return ErrReplay
	case errors.Is(err, ratchet.ErrTooManySkipped):
		return ErrTooManySkipped
	case errors.Is(err, ratchet.ErrDecrypt):
		return ErrDecrypt
	case errors.Is(err, ratchet.ErrMalformed):
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return fmt.Errorf("session: %w", err)
}

// BaseKey is the initiator's ephemeral key that created the session, so a
// later prekey frame with the same base key goes to this session.
func (s *Session) BaseKey() []byte { return bytes.Clone(s.baseKey) }

// Initiator reports whether this device started the session.
func (s *Session) Initiator() bool { return s.initiator }

// Confirmed reports whether the remote has answered: the responder always,
// the initiator once it has decrypted a message from the remote (until
// then Encrypt returns prekey frames).
func (s *Session) Confirmed() bool { return s.pending == nil }

// LocalAddress returns this device's address in the session.
func (s *Session) LocalAddress() Address { return cloneAddress(s.local) }

// Remote returns the remote device of the session.
func (s *Session) Remote() Remote {
	return Remote{cloneAddress(s.remote.Address), bytes.Clone(s.remote.IdentityDH)}
}

// Encrypt encrypts plaintext as the next frame.
func (s *Session) Encrypt(plaintext []byte) ([]byte, error) {
	msgLen := ratchet.Overhead + len(plaintext)
	b := make([]byte, 0, 2+2+len(s.pending)+4+msgLen)
	b, err := appendFrameHeader(b, s.pending, msgLen)
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	b, err = s.r.AppendEncrypt(b, plaintext, s.ad)
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	return b, nil
}

// Decrypt decrypts a frame of this session (a prekey frame whose base key
// matches, or a ratchet frame). On error the session is unchanged.
func (s *Session) Decrypt(frame []byte) ([]byte, error) {
	f, err := parseFrame(frame)
	if err != nil {
		return nil, err
	}
	if f.init != nil {
		if s.initiator || !bytes.Equal(f.init.Ephemeral, s.baseKey) {
			return nil, ErrOtherSession
		}
		if !bytes.Equal(f.init.IdentityDH, s.remote.IdentityDH) {
			return nil, ErrIdentityChanged
		}
		// The same base key with another initial message: tampered.
		if sha256.Sum256(f.rawInit) != s.initHash {
			return nil, fmt.Errorf("%w: initial message differs from the accepted one", ErrDecrypt)
		}
	}
	pt, err := s.r.Decrypt(f.msg, s.ad)
	if err != nil {
		return nil, mapError(err)
	}
	s.pending = nil
	return pt, nil
}

// MarshalBinary encodes the whole session state for storage.
func (s *Session) MarshalBinary() ([]byte, error) {
	rs, err := s.r.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, 512+len(s.pending)+len(rs)))
	b.AddUint8(stateVersion)
	b.AddUint8(boolByte(s.initiator))
	addAddress(b, s.local)
	addAddress(b, s.remote.Address)
	b.AddBytes(s.remote.IdentityDH)
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(s.ad) })
	b.AddBytes(s.baseKey)
	switch {
	case !s.initiator:
		b.AddBytes(s.initHash[:])
	case s.pending == nil:
		b.AddUint8(0)
	default:
		b.AddUint8(1)
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(s.pending) })
	}
	b.AddUint32LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(rs) })
	out, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	return out, nil
}

// Unmarshal decodes MarshalBinary's output.
func Unmarshal(b []byte) (*Session, error) {
	in := cryptobyte.String(b)
	s := new(Session)
	var version, initiator, hasPending uint8
	var dhKey, baseKey []byte
	var ad cryptobyte.String
	if !in.ReadUint8(&version) || version != stateVersion ||
		!in.ReadUint8(&initiator) || initiator > 1 ||
		!readAddress(&in, &s.local) || !readAddress(&in, &s.remote.Address) ||
		!in.ReadBytes(&dhKey, pqxdh.KeySize) || !in.ReadUint16LengthPrefixed(&ad) ||
		!in.ReadBytes(&baseKey, pqxdh.KeySize) {
		return nil, fmt.Errorf("%w: session state", ErrMalformed)
	}
	s.initiator = initiator == 1
	s.remote.IdentityDH = bytes.Clone(dhKey)
	s.ad = bytes.Clone(ad)
	s.baseKey = bytes.Clone(baseKey)
	if !s.initiator {
		if !in.CopyBytes(s.initHash[:]) {
			return nil, fmt.Errorf("%w: session state", ErrMalformed)
		}
	} else if !in.ReadUint8(&hasPending) || hasPending > 1 {
		return nil, fmt.Errorf("%w: session state", ErrMalformed)
	}
	if hasPending == 1 {
		var pending cryptobyte.String
		if !in.ReadUint16LengthPrefixed(&pending) {
			return nil, fmt.Errorf("%w: session state", ErrMalformed)
		}
		if _, err := pqxdh.ParseInitMessage(pending); err != nil {
			return nil, fmt.Errorf("%w: session state: %w", ErrMalformed, err)
		}
		s.pending = bytes.Clone(pending)
	}
	var n uint32
	if !in.ReadUint32(&n) || uint64(n) != uint64(len(in)) {
		return nil, fmt.Errorf("%w: session state", ErrMalformed)
	}
	r, err := ratchet.Unmarshal(in)
	if err != nil {
		return nil, fmt.Errorf("%w: session state: %w", ErrMalformed, err)
	}
	s.r = r
	return s, nil
}

func boolByte(v bool) uint8 {
	if v {
		return 1
	}
	return 0
}
