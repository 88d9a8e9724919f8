// Package pinbackup is the client side of Parley's PIN backup: the
// computations of the Juicebox protocol (Juicebox whitepaper, revision 7)
// over n realms with threshold t, as pure functions. It sends nothing: the
// caller carries the requests it returns to the realms and hands their
// answers back (internal/realm/realmclient does that over HTTP).
//
// What is protected is a 32-byte backup key; SealBlob encrypts whatever the
// client backs up (account identity key, contacts, settings) under it.
// docs/PROTOCOL-pin.md specifies every step and byte.
//
// In short: Argon2id stretches the PIN with a per-registration salt into an
// access key and an encryption seed; a threshold OPRF (internal/toprf) whose
// key is Shamir-shared among the realms turns the access key into an unlock
// key, from which come one unlock tag per realm; each realm releases its
// share of a random encryption scalar only to the holder of its tag, and
// the backup key is sealed under a key derived from that scalar and the
// encryption seed. Fewer than t realms, even pooling everything they store,
// hold nothing a PIN guess can be checked against: the unlock key depends on
// the whole OPRF key, which they do not have.
package pinbackup

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"unicode"
	"unicode/utf8"

	"github.com/cloudflare/circl/group"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/parleychat/parley/internal/identity"
	"github.com/parleychat/parley/internal/toprf"
)

// Sizes and bounds.
const (
	VersionSize       = 16 // random id of a registration; salts Argon2id
	RealmIDSize       = 16
	TagSize           = 32 // unlock tag
	CommitmentSize    = 32 // secret commitment
	BackupKeySize     = 32
	SealedSecretSize  = BackupKeySize + chacha20poly1305.Overhead // 48
	ShareSize         = toprf.KeyShareSize                        // u8 index || scalar
	SignatureSize     = ed25519.SignatureSize
	MinPINLength      = 4   // characters
	MaxPINLength      = 128 // bytes
	MinThreshold      = 2
	MaxRealms         = 16
	DefaultThreshold  = 2
	DefaultRealmCount = 3

	// DefaultAllowedGuesses is how many recoveries a registration allows
	// without a correct PIN before the realms delete it.
	DefaultAllowedGuesses = 10
	// MaxAllowedGuesses bounds what a client may ask for.
	MaxAllowedGuesses = 100

	stretchSize = 64
)

// Errors.
var (
	ErrPIN          = errors.New("pinbackup: a PIN has at least 4 characters (digits, or a longer passphrase) and at most 128 bytes")
	ErrParams       = errors.New("pinbackup: invalid parameters")
	ErrMalformed    = errors.New("pinbackup: malformed value")
	ErrTooFewRealms = errors.New("pinbackup: too few realms answered")
	ErrNotFound     = errors.New("pinbackup: no PIN backup is registered for this account")
	ErrDestroyed    = errors.New("pinbackup: the PIN backup was destroyed after too many wrong PINs")
	ErrMisbehaving  = errors.New("pinbackup: a realm answered with values that do not verify")
	ErrWrongPIN     = errors.New("pinbackup: wrong PIN")
	ErrBlob         = errors.New("pinbackup: the backup blob does not open with this key")
)

// Params are the Argon2id parameters of a registration (RFC 9106).
type Params struct {
	Time      uint32 `json:"time"`       // passes
	MemoryKiB uint32 `json:"memory_kib"` // memory in KiB
	Threads   uint8  `json:"threads"`    // lanes
}

// DefaultParams: RFC 9106 §4's second recommended option (t=3, 64 MiB)
// with one lane, because the browser client runs single-threaded
// WebAssembly. docs/PROTOCOL-pin.md has the measurements.
var DefaultParams = Params{Time: 3, MemoryKiB: 64 << 10, Threads: 1}

// Validate checks that p is in the range a client accepts from a realm:
// enough to run on every client, bounded so that a realm cannot make a
// client allocate without limit.
func (p Params) Validate() error {
	if p.Time < 1 || p.Time > 64 || p.Threads < 1 || p.Threads > 16 ||
		p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > 1<<20 {
		return fmt.Errorf("%w: Argon2id time %d, memory %d KiB, threads %d", ErrParams, p.Time, p.MemoryKiB, p.Threads)
	}
	return nil
}

// AtLeast reports whether p costs at least as much as min on every axis
// but threads. A client restoring a backup may require AtLeast(DefaultParams).
func (p Params) AtLeast(min Params) bool {
	return p.Time >= min.Time && p.MemoryKiB >= min.MemoryKiB
}

// RealmID names a realm: the first 16 bytes of
// SHA-256("parley-realm-id-v1" || its Ed25519 public key).
type RealmID [RealmIDSize]byte

// RealmIDFromKey derives a realm's id from its public key.
func RealmIDFromKey(pub ed25519.PublicKey) RealmID {
	h := sha256.Sum256(append([]byte("parley-realm-id-v1"), pub...))
	return RealmID(h[:RealmIDSize])
}

// ValidPIN checks a PIN: valid UTF-8 without control characters, at least
// MinPINLength characters and at most MaxPINLength bytes. The bytes are
// used as given; clients pass digits as ASCII.
func ValidPIN(pin []byte) error {
	if len(pin) > MaxPINLength || !utf8.Valid(pin) || utf8.RuneCount(pin) < MinPINLength {
		return ErrPIN
	}
	for _, r := range string(pin) {
		if unicode.IsControl(r) {
			return ErrPIN
		}
	}
	return nil
}

// Stretch is Argon2id over the PIN: 64 bytes, of which the first 32 are the
// access key (the OPRF input) and the last 32 the encryption seed. The salt
// is SHA-256("parley-pin-salt-v1" || u8-len handle || version).
func Stretch(pin []byte, handle string, version []byte, p Params) (accessKey, encSeed []byte, err error) {
	if err := ValidPIN(pin); err != nil {
		return nil, nil, err
	}
	if !identity.ValidHandle(handle) {
		return nil, nil, fmt.Errorf("%w: handle %q", ErrMalformed, handle)
	}
	if len(version) != VersionSize {
		return nil, nil, fmt.Errorf("%w: version", ErrMalformed)
	}
	if err := p.Validate(); err != nil {
		return nil, nil, err
	}
	salt := sha256.New()
	salt.Write([]byte("parley-pin-salt-v1"))
	salt.Write(u8len([]byte(handle)))
	salt.Write(version)
	out := argon2.IDKey(pin, salt.Sum(nil), p.Time, p.MemoryKiB, p.Threads, stretchSize)
	return out[:32], out[32:], nil
}

// unlockKey = HKDF-SHA256(ikm = OPRF output, salt = version,
// info = "parley-pin-unlock-key-v1" || u8-len handle, 32).
func unlockKey(oprfOut []byte, handle string, version []byte) []byte {
	info := append([]byte("parley-pin-unlock-key-v1"), u8len([]byte(handle))...)
	k, err := hkdf.Key(sha256.New, oprfOut, version, string(info), 32)
	if err != nil {
		panic("pinbackup: hkdf: " + err.Error()) // 32 bytes never exceed HKDF's limit
	}
	return k
}

// UnlockTag = HMAC-SHA256(unlock key, "parley-pin-unlock-tag-v1" || realm id).
func unlockTag(unlock []byte, realm RealmID) []byte {
	m := hmac.New(sha256.New, unlock)
	m.Write([]byte("parley-pin-unlock-tag-v1"))
	m.Write(realm[:])
	return m.Sum(nil)
}

// secretCommitment = HMAC-SHA256(unlock key, "parley-pin-secret-commitment-v1"
// || realm id || secret share (33) || sealed secret (48)).
func secretCommitment(unlock []byte, realm RealmID, share, sealed []byte) []byte {
	m := hmac.New(sha256.New, unlock)
	m.Write([]byte("parley-pin-secret-commitment-v1"))
	m.Write(realm[:])
	m.Write(share)
	m.Write(sealed)
	return m.Sum(nil)
}

// encryptionKey = HMAC-SHA256(encryption seed, "parley-pin-encryption-key-v1"
// || scalar (32)).
func encryptionKey(encSeed []byte, scalar group.Scalar) []byte {
	b, err := scalar.MarshalBinary()
	if err != nil {
		panic("pinbackup: scalar does not encode: " + err.Error())
	}
	m := hmac.New(sha256.New, encSeed)
	m.Write([]byte("parley-pin-encryption-key-v1"))
	m.Write(b)
	return m.Sum(nil)
}

// secretAD = "parley-pin-secret-v1" || u8-len handle || version.
func secretAD(handle string, version []byte) []byte {
	ad := append([]byte("parley-pin-secret-v1"), u8len([]byte(handle))...)
	return append(ad, version...)
}

// PublicShareMessage is what the registration key signs for realm i:
// "parley-pin-public-share-v1" || realm id || u8 index || K_i (32).
func PublicShareMessage(realm RealmID, index int, publicShare []byte) []byte {
	m := append([]byte("parley-pin-public-share-v1"), realm[:]...)
	m = append(m, byte(index))
	return append(m, publicShare...)
}

// Registration is what one realm stores for an account: the body of its
// register request. Binary fields travel as base64 in JSON.
type Registration struct {
	Version   []byte `json:"version"`   // 16 random bytes, the same at every realm
	Params    Params `json:"params"`    // Argon2id parameters
	Threshold int    `json:"threshold"` // t
	// KeyShare is the realm's OPRF key share k_i: u8 index || scalar.
	KeyShare []byte `json:"key_share"`
	// RegistrationKey is a one-time Ed25519 public key, the same at every
	// realm; its private key signed every realm's public share and was
	// then discarded.
	RegistrationKey []byte `json:"registration_key"`
	// PublicShareSignature signs PublicShareMessage(realm, i, k_i·G).
	PublicShareSignature []byte `json:"public_share_signature"`
	UnlockTag            []byte `json:"unlock_tag"`        // 32
	SecretShare          []byte `json:"secret_share"`      // u8 index || s_i
	SealedSecret         []byte `json:"sealed_secret"`     // 48, the same at every realm
	SecretCommitment     []byte `json:"secret_commitment"` // 32
	AllowedGuesses       int    `json:"allowed_guesses"`
}

// Check is the realm's validation of a registration it receives: sizes,
// encodings, matching share indices, the public-share signature, and
// bounds. It cannot check anything that depends on the PIN.
func (r *Registration) Check(realm RealmID) error {
	bad := func(what string) error { return fmt.Errorf("%w: registration %s", ErrMalformed, what) }
	if len(r.Version) != VersionSize {
		return bad("version")
	}
	if err := r.Params.Validate(); err != nil {
		return err
	}
	if r.Threshold < MinThreshold || r.Threshold > MaxRealms {
		return bad("threshold")
	}
	ks, err := toprf.ParseKeyShare(r.KeyShare)
	if err != nil {
		return bad("key share")
	}
	if ks.Index() > MaxRealms {
		return bad("key share index")
	}
	if _, err := toprf.ParseKeyShare(r.SecretShare); err != nil || r.SecretShare[0] != r.KeyShare[0] {
		return bad("secret share")
	}
	if len(r.RegistrationKey) != ed25519.PublicKeySize || len(r.PublicShareSignature) != SignatureSize {
		return bad("registration key")
	}
	msg := PublicShareMessage(realm, ks.Index(), ks.Public().Bytes())
	if !ed25519.Verify(r.RegistrationKey, msg, r.PublicShareSignature) {
		return bad("public share signature")
	}
	if len(r.UnlockTag) != TagSize || len(r.SealedSecret) != SealedSecretSize || len(r.SecretCommitment) != CommitmentSize {
		return bad("tag or secret")
	}
	if r.AllowedGuesses < 1 || r.AllowedGuesses > MaxAllowedGuesses {
		return bad("allowed guesses")
	}
	return nil
}

// Setup is a deployment's realm set as the client pins it.
type Setup struct {
	Realms    []RealmID // in order: realm i gets share index i+1
	Threshold int
}

// Validate checks MinThreshold <= t <= n <= MaxRealms and distinct realms.
func (s Setup) Validate() error {
	n := len(s.Realms)
	if s.Threshold < MinThreshold || n < s.Threshold || n > MaxRealms {
		return fmt.Errorf("%w: threshold %d of %d realms (want %d <= t <= n <= %d)", ErrParams, s.Threshold, n, MinThreshold, MaxRealms)
	}
	for i := range s.Realms {
		if slices.Contains(s.Realms[:i], s.Realms[i]) {
			return fmt.Errorf("%w: realm %x is listed twice", ErrParams, s.Realms[i])
		}
	}
	return nil
}

// Register prepares a registration of backupKey under pin for handle: one
// Registration per realm of s, in order (Juicebox §Registration phase 2).
// Call it with a fresh random backup key for a new backup, or the current
// one to change the PIN. allowedGuesses 0 means DefaultAllowedGuesses.
func Register(s Setup, handle string, pin, backupKey []byte, p Params, allowedGuesses int) ([]Registration, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if len(backupKey) != BackupKeySize {
		return nil, fmt.Errorf("%w: the backup key must be %d bytes", ErrParams, BackupKeySize)
	}
	if allowedGuesses == 0 {
		allowedGuesses = DefaultAllowedGuesses
	}
	if allowedGuesses < 1 || allowedGuesses > MaxAllowedGuesses {
		return nil, fmt.Errorf("%w: allowed guesses %d (1..%d)", ErrParams, allowedGuesses, MaxAllowedGuesses)
	}
	n, t := len(s.Realms), s.Threshold
	version := make([]byte, VersionSize)
	rand.Read(version)
	accessKey, encSeed, err := Stretch(pin, handle, version, p)
	if err != nil {
		return nil, err
	}

	// The OPRF key, split among the realms, and the unlock key it gives.
	oprfKey := toprf.GenerateKey()
	keyShares, err := oprfKey.Split(t, n)
	if err != nil {
		return nil, err
	}
	out, err := oprfKey.Evaluate(accessKey)
	if err != nil {
		return nil, err
	}
	unlock := unlockKey(out, handle, version)

	// A one-time key signs every realm's public share, then is dropped.
	regPub, regPriv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, fmt.Errorf("pinbackup: %w", err)
	}

	// The encryption scalar, split among the realms, and the sealed key.
	scalar := group.Ristretto255.RandomScalar(rand.Reader)
	scalarShares, err := toprf.SplitScalar(scalar, t, n)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.New(encryptionKey(encSeed, scalar))
	if err != nil {
		return nil, fmt.Errorf("pinbackup: %w", err)
	}
	// A zero nonce is safe: the key is new with every registration.
	sealed := aead.Seal(nil, make([]byte, chacha20poly1305.NonceSize), backupKey, secretAD(handle, version))

	regs := make([]Registration, n)
	for i, realm := range s.Realms {
		ks := keyShares[i]
		sb, err := scalarShares[i].MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("pinbackup: %w", err)
		}
		share := append([]byte{byte(ks.Index())}, sb...)
		regs[i] = Registration{
			Version:              version,
			Params:               p,
			Threshold:            t,
			KeyShare:             ks.Bytes(),
			RegistrationKey:      regPub,
			PublicShareSignature: ed25519.Sign(regPriv, PublicShareMessage(realm, ks.Index(), ks.Public().Bytes())),
			UnlockTag:            unlockTag(unlock, realm),
			SecretShare:          share,
			SealedSecret:         sealed,
			SecretCommitment:     secretCommitment(unlock, realm, share, sealed),
			AllowedGuesses:       allowedGuesses,
		}
	}
	return regs, nil
}

// NewBackupKey returns a random backup key.
func NewBackupKey() []byte {
	k := make([]byte, BackupKeySize)
	rand.Read(k)
	return k
}

func u8len(b []byte) []byte {
	if len(b) > 255 {
		panic("pinbackup: field longer than 255 bytes")
	}
	return append([]byte{byte(len(b))}, b...)
}

// ctEqual compares secrets in constant time.
func ctEqual(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
