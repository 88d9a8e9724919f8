// Package ratchet implements the Double Ratchet (Signal specification,
// revision 4) with X25519, HKDF-SHA256, HMAC-SHA256 chain keys and
// ChaCha20-Poly1305, with bounded skipped message keys.
//
// The names follow the specification: RatchetInitAlice and RatchetInitBob
// (§3.3) are InitAlice and InitBob, RatchetEncrypt (§3.4) is Encrypt,
// RatchetDecrypt (§3.5) is Decrypt, and the state variables of §3.2 are the
// fields of State. The byte layouts are in docs/PROTOCOL-crypto.md.
//
// A State is not safe for concurrent use.
package ratchet

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/cryptobyte"
)

// Errors. Decrypt leaves the state unchanged when it returns an error.
var (
	ErrMalformed      = errors.New("ratchet: malformed message")
	ErrDecrypt        = errors.New("ratchet: message failed authentication")
	ErrReplay         = errors.New("ratchet: message already received (replay)")
	ErrTooManySkipped = errors.New("ratchet: too many skipped messages")
	ErrNoSendingChain = errors.New("ratchet: no sending chain yet")
	ErrExhausted      = errors.New("ratchet: message counter exhausted")
)

// Parameters.
const (
	// MaxSkip is MAX_SKIP (§3.5): the most message keys one chain step may
	// skip (the old chain up to PN, or the new chain up to N).
	MaxSkip = 1000
	// MaxSkippedKeys bounds the stored skipped message keys; the oldest
	// are evicted first.
	MaxSkippedKeys = 2000
	// MaxPreviousKeys bounds the remembered earlier remote ratchet keys,
	// which let Decrypt tell a replay on an old chain from a new chain.
	MaxPreviousKeys = 32

	KeySize    = 32
	HeaderSize = KeySize + 4 + 4
	// Overhead is what Encrypt adds to a plaintext: header and tag.
	Overhead = HeaderSize + chacha20poly1305.Overhead

	rkInfo        = "Parley_Ratchet_RK"
	stateVersion  = 1
	maxCounterVal = math.MaxUint32 - 1 // N of the last message a chain may send
)

// nonce is ENCRYPT's constant nonce: every message key encrypts exactly
// one message (§5.2).
var nonce [chacha20poly1305.NonceSize]byte

// The KDF_CK inputs (§5.2).
var (
	mkConst = [1]byte{0x01}
	ckConst = [1]byte{0x02}
)

// Header is a message header (§3.4 HEADER): the sender's ratchet public
// key, the length of its previous sending chain, and the message number.
type Header struct {
	DH [KeySize]byte
	PN uint32
	N  uint32
}

// AppendBinary appends the 40-byte encoding DH || PN (u32 BE) || N (u32 BE).
func (h Header) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, h.DH[:]...)
	b = binary.BigEndian.AppendUint32(b, h.PN)
	return binary.BigEndian.AppendUint32(b, h.N), nil
}

// ParseHeader decodes a 40-byte header.
func ParseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) != HeaderSize {
		return h, fmt.Errorf("%w: header is %d bytes", ErrMalformed, len(b))
	}
	copy(h.DH[:], b)
	h.PN = binary.BigEndian.Uint32(b[KeySize:])
	h.N = binary.BigEndian.Uint32(b[KeySize+4:])
	return h, nil
}

type skippedID struct {
	dh [KeySize]byte
	n  uint32
}

type skippedKey struct {
	id skippedID
	mk [KeySize]byte
}

// State is one party's Double Ratchet state (§3.2).
type State struct {
	_ [0]func()

	dhs    *ecdh.PrivateKey // DHs
	dhsPub [KeySize]byte
	dhr    [KeySize]byte // DHr
	hasDHr bool
	rk     [KeySize]byte // RK
	cks    [KeySize]byte // CKs
	hasCKs bool
	ckr    [KeySize]byte // CKr
	hasCKr bool
	ns     uint32 // Ns
	nr     uint32 // Nr
	pn     uint32 // PN

	// previous holds earlier values of DHr, oldest first.
	previous [][KeySize]byte
	// skipped is MKSKIPPED; skippedOrder is its insertion order.
	skipped      map[skippedID][KeySize]byte
	skippedOrder []skippedID

	// Scratch space, not state.
	adBuf []byte
	sum   []byte
	key   [KeySize]byte
}

// String returns a redacted form.
func (s *State) String() string {
	return fmt.Sprintf("ratchet.State{DHs:%x…, Ns:%d, Nr:%d, PN:%d, skipped:%d, keys:REDACTED}",
		s.dhsPub[:4], s.ns, s.nr, s.pn, len(s.skipped))
}

// GoString is String, for %#v.
func (s *State) GoString() string { return s.String() }

func newState(dhs *ecdh.PrivateKey) *State {
	s := &State{dhs: dhs, skipped: map[skippedID][KeySize]byte{}}
	copy(s.dhsPub[:], dhs.PublicKey().Bytes())
	return s
}

// InitAlice is RatchetInitAlice (§3.3): sk is the PQXDH secret and
// bobRatchetKey Bob's signed prekey, his first ratchet public key.
func InitAlice(sk, bobRatchetKey []byte) (*State, error) {
	if len(sk) != KeySize {
		return nil, fmt.Errorf("ratchet: SK is %d bytes", len(sk))
	}
	if len(bobRatchetKey) != KeySize {
		return nil, fmt.Errorf("%w: ratchet key is %d bytes", ErrMalformed, len(bobRatchetKey))
	}
	dhs, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ratchet: %w", err)
	}
	s := newState(dhs)
	copy(s.dhr[:], bobRatchetKey)
	s.hasDHr = true
	out, err := dh(dhs, s.dhr[:])
	if err != nil {
		return nil, err
	}
	var rk [KeySize]byte
	copy(rk[:], sk)
	if s.rk, s.cks, err = kdfRK(&rk, out); err != nil {
		return nil, err
	}
	s.hasCKs = true
	return s, nil
}

// InitBob is RatchetInitBob (§3.3): bobRatchetKey is Bob's signed prekey
// pair, whose public half Alice used.
func InitBob(sk []byte, bobRatchetKey *ecdh.PrivateKey) (*State, error) {
	if len(sk) != KeySize {
		return nil, fmt.Errorf("ratchet: SK is %d bytes", len(sk))
	}
	if bobRatchetKey == nil || bobRatchetKey.Curve() != ecdh.X25519() {
		return nil, fmt.Errorf("ratchet: ratchet key is not an X25519 key")
	}
	s := newState(bobRatchetKey)
	copy(s.rk[:], sk)
	return s, nil
}

// dh is DH (§3.1): X25519, rejecting low-order points.
func dh(priv *ecdh.PrivateKey, pub []byte) ([]byte, error) {
	p, err := ecdh.X25519().NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	out, err := priv.ECDH(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return out, nil
}

// kdfRK is KDF_RK (§5.2): HKDF-SHA256 with salt RK over the DH output,
// 64 bytes split into the new root key and a chain key.
func kdfRK(rk *[KeySize]byte, dhOut []byte) (newRK, ck [KeySize]byte, err error) {
	out, err := hkdf.Key(sha256.New, dhOut, rk[:], rkInfo, 2*KeySize)
	if err != nil {
		return newRK, ck, fmt.Errorf("ratchet: KDF_RK: %w", err)
	}
	copy(newRK[:], out)
	copy(ck[:], out[KeySize:])
	return newRK, ck, nil
}

// kdfCK is KDF_CK (§5.2): mk = HMAC-SHA256(ck, 0x01), ck' =
// HMAC-SHA256(ck, 0x02). One HMAC object keyed with ck computes both; the
// key is copied into s's scratch space so that no array escapes per call.
func (s *State) kdfCK(ck *[KeySize]byte) (mk, next [KeySize]byte) {
	s.key = *ck
	mac := hmac.New(sha256.New, s.key[:])
	mac.Write(mkConst[:])
	s.sum = mac.Sum(s.sum[:0])
	copy(mk[:], s.sum)
	mac.Reset()
	mac.Write(ckConst[:])
	s.sum = mac.Sum(s.sum[:0])
	copy(next[:], s.sum)
	return mk, next
}

// associated returns AD || header in s's scratch buffer.
func (s *State) associated(ad, header []byte) []byte {
	s.adBuf = append(append(s.adBuf[:0], ad...), header...)
	return s.adBuf
}

// Encrypt is RatchetEncrypt (§3.4): it returns header || ciphertext, with
// ad || header as the associated data.
func (s *State) Encrypt(plaintext, ad []byte) ([]byte, error) {
	return s.AppendEncrypt(make([]byte, 0, Overhead+len(plaintext)), plaintext, ad)
}

// AppendEncrypt is Encrypt appending the message to dst.
func (s *State) AppendEncrypt(dst, plaintext, ad []byte) ([]byte, error) {
	if !s.hasCKs {
		return nil, ErrNoSendingChain
	}
	if s.ns > maxCounterVal {
		return nil, ErrExhausted
	}
	mk, next := s.kdfCK(&s.cks)
	off := len(dst)
	dst, _ = Header{DH: s.dhsPub, PN: s.pn, N: s.ns}.AppendBinary(dst)
	aead, err := chacha20poly1305.New(mk[:])
	if err != nil {
		return nil, fmt.Errorf("ratchet: %w", err)
	}
	dst = aead.Seal(dst, nonce[:], plaintext, s.associated(ad, dst[off:off+HeaderSize]))
	s.cks = next
	s.ns++
	return dst, nil
}

// open decrypts ct under mk.
func (s *State) open(mk *[KeySize]byte, ad, header, ct []byte) ([]byte, error) {
	aead, err := chacha20poly1305.New(mk[:])
	if err != nil {
		return nil, fmt.Errorf("ratchet: %w", err)
	}
	pt, err := aead.Open(nil, nonce[:], ct, s.associated(ad, header))
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// skipMessageKeys is SkipMessageKeys (§3.5) on a copy: it returns the
// keys of messages [from, until) of the chain ck belongs to and the chain
// key that follows them.
func (s *State) skipMessageKeys(dhr [KeySize]byte, ck [KeySize]byte, from, until uint32, keys []skippedKey) ([]skippedKey, [KeySize]byte, error) {
	if until <= from {
		return keys, ck, nil
	}
	if until-from > MaxSkip {
		return nil, ck, fmt.Errorf("%w: %d in one chain", ErrTooManySkipped, until-from)
	}
	for n := from; n < until; n++ {
		var mk [KeySize]byte
		mk, ck = s.kdfCK(&ck)
		keys = append(keys, skippedKey{skippedID{dhr, n}, mk})
	}
	return keys, ck, nil
}

// Decrypt is RatchetDecrypt (§3.5). msg is header || ciphertext. On any
// error the state is unchanged: every step works on copies, committed
// only once the message has authenticated.
//
// A message whose key was already used (or evicted) returns ErrReplay:
// one of the current receiving chain below Nr, or of an earlier chain.
func (s *State) Decrypt(msg, ad []byte) ([]byte, error) {
	if len(msg) < Overhead {
		return nil, fmt.Errorf("%w: message of %d bytes", ErrMalformed, len(msg))
	}
	header, ct := msg[:HeaderSize], msg[HeaderSize:]
	h, _ := ParseHeader(header)
	if h.N > maxCounterVal {
		return nil, fmt.Errorf("%w: message number %d", ErrMalformed, h.N)
	}

	// The current receiving chain, at or beyond Nr.
	if s.hasCKr && h.DH == s.dhr && h.N >= s.nr {
		skipped, ck, err := s.skipMessageKeys(s.dhr, s.ckr, s.nr, h.N, nil)
		if err != nil {
			return nil, err
		}
		mk, next := s.kdfCK(&ck)
		pt, err := s.open(&mk, ad, header, ct)
		if err != nil {
			return nil, err
		}
		s.ckr, s.nr = next, h.N+1
		s.storeSkipped(skipped)
		return pt, nil
	}

	// TrySkippedMessageKeys.
	id := skippedID{h.DH, h.N}
	if mk, ok := s.skipped[id]; ok {
		pt, err := s.open(&mk, ad, header, ct)
		if err != nil {
			return nil, err
		}
		s.deleteSkipped(id)
		return pt, nil
	}
	if s.hasDHr && h.DH == s.dhr || slices.Contains(s.previous, h.DH) {
		return nil, ErrReplay
	}

	// DHRatchet, on copies.
	var skipped []skippedKey
	var err error
	if s.hasCKr {
		if skipped, _, err = s.skipMessageKeys(s.dhr, s.ckr, s.nr, h.PN, nil); err != nil {
			return nil, err
		}
	}
	out, err := dh(s.dhs, h.DH[:])
	if err != nil {
		return nil, err
	}
	rk, ckr, err := kdfRK(&s.rk, out)
	if err != nil {
		return nil, err
	}
	skipped, ckr, err = s.skipMessageKeys(h.DH, ckr, 0, h.N, skipped)
	if err != nil {
		return nil, err
	}
	mk, nextCKr := s.kdfCK(&ckr)
	pt, err := s.open(&mk, ad, header, ct)
	if err != nil {
		return nil, err
	}
	// Authenticated: the second half of DHRatchet, then commit.
	dhs, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ratchet: %w", err)
	}
	out, err = dh(dhs, h.DH[:])
	if err != nil {
		return nil, err
	}
	rk2, cks, err := kdfRK(&rk, out)
	if err != nil {
		return nil, err
	}

	s.storeSkipped(skipped)
	if s.hasDHr {
		s.previous = append(s.previous, s.dhr)
		if len(s.previous) > MaxPreviousKeys {
			s.previous = slices.Delete(s.previous, 0, len(s.previous)-MaxPreviousKeys)
		}
	}
	s.pn, s.ns, s.nr = s.ns, 0, h.N+1
	s.dhr, s.hasDHr = h.DH, true
	s.ckr, s.hasCKr = nextCKr, true
	s.dhs = dhs
	copy(s.dhsPub[:], dhs.PublicKey().Bytes())
	s.rk = rk2
	s.cks, s.hasCKs = cks, true
	return pt, nil
}

// storeSkipped adds keys to MKSKIPPED, evicting the oldest beyond
// MaxSkippedKeys.
func (s *State) storeSkipped(keys []skippedKey) {
	for _, k := range keys {
		if _, dup := s.skipped[k.id]; dup {
			continue
		}
		s.skipped[k.id] = k.mk
		s.skippedOrder = append(s.skippedOrder, k.id)
	}
	if over := len(s.skippedOrder) - MaxSkippedKeys; over > 0 {
		for _, id := range s.skippedOrder[:over] {
			delete(s.skipped, id)
		}
		s.skippedOrder = slices.Delete(s.skippedOrder, 0, over)
	}
}

func (s *State) deleteSkipped(id skippedID) {
	delete(s.skipped, id)
	if i := slices.Index(s.skippedOrder, id); i >= 0 {
		s.skippedOrder = slices.Delete(s.skippedOrder, i, i+1)
	}
}

// SkippedKeys returns how many skipped message keys are stored.
func (s *State) SkippedKeys() int { return len(s.skipped) }

// CanEncrypt reports whether the state has a sending chain (Bob has none
// until his first message from Alice).
func (s *State) CanEncrypt() bool { return s.hasCKs }

// MarshalBinary encodes the whole state (see docs/PROTOCOL-crypto.md).
func (s *State) MarshalBinary() ([]byte, error) {
	b := cryptobyte.NewBuilder(make([]byte, 0, 256+len(s.skippedOrder)*(2*KeySize+4)))
	b.AddUint8(stateVersion)
	b.AddBytes(s.dhs.Bytes())
	addOptional(b, s.hasDHr, &s.dhr)
	b.AddBytes(s.rk[:])
	addOptional(b, s.hasCKs, &s.cks)
	addOptional(b, s.hasCKr, &s.ckr)
	b.AddUint32(s.ns)
	b.AddUint32(s.nr)
	b.AddUint32(s.pn)
	b.AddUint8(uint8(len(s.previous)))
	for _, p := range s.previous {
		b.AddBytes(p[:])
	}
	b.AddUint16(uint16(len(s.skippedOrder)))
	for _, id := range s.skippedOrder {
		mk := s.skipped[id]
		b.AddBytes(id.dh[:])
		b.AddUint32(id.n)
		b.AddBytes(mk[:])
	}
	return b.Bytes()
}

func addOptional(b *cryptobyte.Builder, present bool, v *[KeySize]byte) {
	if !present {
		b.AddUint8(0)
		return
	}
	b.AddUint8(1)
	b.AddBytes(v[:])
}

func readOptional(s *cryptobyte.String, present *bool, v *[KeySize]byte) bool {
	var flag uint8
	if !s.ReadUint8(&flag) || flag > 1 {
		return false
	}
	*present = flag == 1
	return !*present || s.CopyBytes(v[:])
}

// Unmarshal decodes MarshalBinary's output.
func Unmarshal(b []byte) (*State, error) {
	in := cryptobyte.String(b)
	var version uint8
	var dhsPriv [KeySize]byte
	if !in.ReadUint8(&version) || version != stateVersion || !in.CopyBytes(dhsPriv[:]) {
		return nil, fmt.Errorf("%w: state", ErrMalformed)
	}
	dhs, err := ecdh.X25519().NewPrivateKey(dhsPriv[:])
	if err != nil {
		return nil, fmt.Errorf("%w: state: %w", ErrMalformed, err)
	}
	s := newState(dhs)
	var nprev uint8
	var nskipped uint16
	if !readOptional(&in, &s.hasDHr, &s.dhr) || !in.CopyBytes(s.rk[:]) ||
		!readOptional(&in, &s.hasCKs, &s.cks) || !readOptional(&in, &s.hasCKr, &s.ckr) ||
		!in.ReadUint32(&s.ns) || !in.ReadUint32(&s.nr) || !in.ReadUint32(&s.pn) ||
		!in.ReadUint8(&nprev) || nprev > MaxPreviousKeys {
		return nil, fmt.Errorf("%w: state", ErrMalformed)
	}
	if s.hasCKr && !s.hasDHr {
		return nil, fmt.Errorf("%w: state has a receiving chain without a ratchet key", ErrMalformed)
	}
	for range nprev {
		var p [KeySize]byte
		if !in.CopyBytes(p[:]) {
			return nil, fmt.Errorf("%w: state", ErrMalformed)
		}
		s.previous = append(s.previous, p)
	}
	if !in.ReadUint16(&nskipped) || nskipped > MaxSkippedKeys {
		return nil, fmt.Errorf("%w: state", ErrMalformed)
	}
	for range nskipped {
		var k skippedKey
		if !in.CopyBytes(k.id.dh[:]) || !in.ReadUint32(&k.id.n) || !in.CopyBytes(k.mk[:]) {
			return nil, fmt.Errorf("%w: state", ErrMalformed)
		}
		if _, dup := s.skipped[k.id]; dup {
			return nil, fmt.Errorf("%w: state has a duplicate skipped key", ErrMalformed)
		}
		s.skipped[k.id] = k.mk
		s.skippedOrder = append(s.skippedOrder, k.id)
	}
	if !in.Empty() {
		return nil, fmt.Errorf("%w: state has trailing bytes", ErrMalformed)
	}
	return s, nil
}
