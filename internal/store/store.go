// Package store is the storage contract of parleyd: accounts, device lists,
// prekeys, auth tokens, link sessions and the durable per-device queues.
// Each backend lives in its own package (sqlitestore; pgstore later) and
// passes the one conformance suite in storetest.
//
// The store holds only what the server must know: public keys, signed
// device lists, and envelopes whose contents are end-to-end encrypted.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors every backend returns (wrapped or bare; test with errors.Is).
var (
	ErrNotFound     = errors.New("store: not found")
	ErrHandleTaken  = errors.New("store: handle taken")
	ErrStaleVersion = errors.New("store: device list version is not newer")
	ErrDeviceExists = errors.New("store: device id already in use")
	ErrLinkUsed     = errors.New("store: link already used")
	ErrQueueFull    = errors.New("store: recipient queue is full")
	ErrNoPrekeys    = errors.New("store: device has no signed prekey")
)

// Limits every backend applies.
const (
	DedupWindow = 7 * 24 * time.Hour // how long a message id is remembered
	MaxQueue    = 10000              // envelopes queued per device
)

// Account is a registered account. Handle is normalised (lower case).
type Account struct {
	Handle      string
	IdentityKey []byte // Ed25519 public key
	Created     time.Time
}

// Device is a current device of an account, as the server needs it: the
// keys come from the verified device list.
type Device struct {
	Handle     string
	ID         uint32
	SigningKey []byte // Ed25519 public key, checks auth challenges
	Created    time.Time
}

// DeviceList is an account's current signed device list and the devices it
// names.
type DeviceList struct {
	Signed  []byte
	Version uint64
	Devices []Device
}

// Prekey is a public prekey as stored.
type Prekey struct {
	ID        uint32
	Public    []byte
	Signature []byte // empty for one-time X25519 prekeys
}

// Prekeys is an upload for one device; zero fields are left unchanged.
// A new signed prekey or last-resort key replaces the old one; one-time
// keys are added (same id again: replaced).
type Prekeys struct {
	Signed     *Prekey
	LastResort *Prekey
	OneTime    []Prekey
	OneTimePQ  []Prekey
}

// Bundle is one device's bundle, with its one-time keys already consumed.
type Bundle struct {
	DeviceID     uint32
	Signed       Prekey
	OneTime      *Prekey // nil when none left
	PQ           Prekey  // a one-time PQ prekey, or the last-resort one
	PQLastResort bool
}

// Envelope is one device's copy of a message, as queued.
type Envelope struct {
	Seq             int64 // assigned by the store, increasing per recipient device
	MessageID       string
	Sender          string
	SenderDevice    uint32
	Recipient       string
	RecipientDevice uint32
	Ciphertext      []byte
	ServerTime      time.Time
}

// Link is a device-linking session.
type Link struct {
	ID         string
	Handle     string // the account that created it
	Expires    time.Time
	Join       []byte // set once by the joining device
	Sealed     []byte // set once by the creator when completing
	DeviceList []byte
	Fetched    bool // the result was handed to the new device
}

// Store is the contract. Every method is safe for concurrent use. Methods
// that change state return only after the change is durable (committed).
type Store interface {
	// CreateAccount stores a new account, its first device list and the
	// first device's prekeys, atomically. ErrHandleTaken if the handle exists.
	CreateAccount(ctx context.Context, a Account, l DeviceList, p Prekeys) error
	// Account returns the account with handle, or ErrNotFound.
	Account(ctx context.Context, handle string) (Account, error)
	// DeviceList returns the account's current device list, or ErrNotFound.
	DeviceList(ctx context.Context, handle string) (DeviceList, error)
	// ReplaceDeviceList installs a newer list (ErrStaleVersion otherwise),
	// and deletes everything of the devices it drops: their prekeys,
	// tokens and queued envelopes. It returns the dropped device ids.
	ReplaceDeviceList(ctx context.Context, handle string, l DeviceList) (removed []uint32, err error)

	// PutPrekeys stores a device's public prekeys.
	PutPrekeys(ctx context.Context, handle string, device uint32, p Prekeys) error
	// PrekeyCounts returns how many one-time X25519 and PQ prekeys remain.
	PrekeyCounts(ctx context.Context, handle string, device uint32) (oneTime, oneTimePQ int, err error)
	// TakeBundle returns a device's bundle, deleting the one-time keys it
	// hands out in the same transaction (a key is never handed out twice).
	TakeBundle(ctx context.Context, handle string, device uint32) (Bundle, error)

	// PutToken stores the SHA-256 of a bearer token for a device.
	PutToken(ctx context.Context, tokenHash []byte, handle string, device uint32, expires time.Time) error
	// TokenDevice resolves a token hash to its live device, or ErrNotFound
	// (unknown, expired, or the device was removed).
	TokenDevice(ctx context.Context, tokenHash []byte) (handle string, device uint32, err error)

	// Enqueue stores one message's envelopes atomically (all or none); all
	// share Sender, SenderDevice and MessageID. If that triple was stored
	// before (remembered for at least DedupWindow, even after delivery),
	// nothing is stored and duplicate is true. ErrQueueFull if a recipient
	// device's queue holds MaxQueue envelopes already.
	Enqueue(ctx context.Context, envs []Envelope) (duplicate bool, err error)
	// Pending returns up to limit envelopes for a device with Seq > after,
	// in Seq order.
	Pending(ctx context.Context, handle string, device uint32, after int64, limit int) ([]Envelope, error)
	// Ack deletes a device's envelopes by Seq (unknown seqs are ignored).
	Ack(ctx context.Context, handle string, device uint32, seqs []int64) error

	// CreateLink stores a new link session.
	CreateLink(ctx context.Context, l Link) error
	// Link returns a link session (ErrNotFound if unknown or expired).
	Link(ctx context.Context, id string) (Link, error)
	// JoinLink records the joining device's request once (ErrLinkUsed after).
	JoinLink(ctx context.Context, id string, join []byte) error
	// CompleteLink records the sealed transfer once (ErrLinkUsed after).
	CompleteLink(ctx context.Context, id string, sealed, deviceList []byte) error
	// FetchLinkResult marks the result as handed out and returns it once
	// (ErrLinkUsed after).
	FetchLinkResult(ctx context.Context, id string) (Link, error)

	// Expire deletes expired tokens and link sessions.
	Expire(ctx context.Context, now time.Time) error
	// Close releases the store.
	Close() error
}
