// Package store is the storage contract of parleyd: accounts, device lists,
// prekeys, auth challenges and tokens, link sessions and the durable
// per-device queues. Each backend lives in its own package (sqlitestore,
// pgstore) and passes the one conformance suite in storetest.
//
// The store holds only what the server must know: public keys, signed
// device lists, and envelopes whose contents are end-to-end encrypted.
package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
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
	// ErrInvalidHandle is returned by NormaliseHandle and by CreateAccount
	// for a handle that is not 3 to 32 characters of a-z, 0-9 and '_'.
	ErrInvalidHandle = errors.New("store: invalid handle")
	// ErrInviteInvalid is CreateAccount's answer to an invite that is
	// unknown, expired, used up, or for another handle.
	ErrInviteInvalid = errors.New("store: invite unknown, expired, used up or for another handle")
)

// Handle lengths, in characters (every handle character is one byte).
const (
	MinHandleLen = 3
	MaxHandleLen = 32
)

// NormaliseHandle returns h in its stored form: lower case. A handle is 3
// to 32 characters of ASCII letters, digits and '_'; handles are unique
// case-insensitively. Anything else (including a leading '@', spaces and
// non-ASCII letters) is ErrInvalidHandle.
func NormaliseHandle(h string) (string, error) {
	if len(h) < MinHandleLen || len(h) > MaxHandleLen {
		return "", ErrInvalidHandle
	}
	b := []byte(h)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_':
		case c >= 'A' && c <= 'Z':
			b[i] = c + ('a' - 'A')
		default:
			return "", ErrInvalidHandle
		}
	}
	return string(b), nil
}

// ValidHandle reports whether h is a handle in its stored form: valid and
// already lower case.
func ValidHandle(h string) bool {
	n, err := NormaliseHandle(h)
	return err == nil && n == h
}

// Limits every backend applies. (A backend may offer an option to lower
// MaxQueue for tests; storetest takes the limit in its Options.)
const (
	DedupWindow = 7 * 24 * time.Hour // how long a message id is remembered
	MaxQueue    = 10000              // envelopes queued per device
)

// Account is a registered account. Handle is normalised (lower case).
type Account struct {
	Handle      string
	IdentityKey []byte // Ed25519 public key
	Created     time.Time
	// Invite is read by CreateAccount only: the Hash of an invite to use
	// for this account, or nil when none is needed. Lookups leave it nil.
	Invite []byte
}

// Invite lets accounts register on a server that asks for one
// (registration "invite"): operators make them, each good for Uses
// accounts until Expires, for any handle or for one. The code a person
// types is never stored, only its SHA-256.
type Invite struct {
	Hash    []byte    // SHA-256 of the code: 32 bytes, unique
	Handle  string    // "": any handle; else only this one (stored in normalised form)
	Uses    int       // accounts it may still create: at least 1
	Expires time.Time // zero: never
	Created time.Time
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
	Seq             int64 // assigned by the store, increasing per recipient device (see Enqueue)
	MessageID       string
	Sender          string
	SenderDevice    uint32
	Recipient       string
	RecipientDevice uint32
	Ciphertext      []byte
	ServerTime      time.Time
	// Expires, if not zero, is when Expire drops the envelope if it is
	// still queued (a vanishing message). All envelopes of one Enqueue
	// share it (like Sender and MessageID); Pending leaves it zero.
	Expires time.Time
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

// CheckInvite is what every backend's CreateInvite checks first: inv with
// its Handle normalised, or an error if Hash is not 32 bytes or Uses is
// below 1, or ErrInvalidHandle.
func CheckInvite(inv Invite) (Invite, error) {
	if len(inv.Hash) != sha256.Size {
		return inv, fmt.Errorf("store: an invite's hash has %d bytes, not %d", len(inv.Hash), sha256.Size)
	}
	if inv.Uses < 1 {
		return inv, fmt.Errorf("store: an invite with %d uses, not at least 1", inv.Uses)
	}
	if inv.Handle != "" {
		h, err := NormaliseHandle(inv.Handle)
		if err != nil {
			return inv, fmt.Errorf("store: an invite for %q: %w", inv.Handle, err)
		}
		inv.Handle = h
	}
	return inv, nil
}

// Store is the contract. Every method is safe for concurrent use. Methods
// that change state return only after the change is durable (committed).
//
// Handles given to any method are normalised (NormaliseHandle) by the
// store, so lookups are case-insensitive; every handle returned is in
// stored (lower-case) form. Times are kept to the microsecond at least and
// returned in UTC. A zero Created or ServerTime is set to the store's
// clock. Expiry checks at read time (TokenDevice, Link and the link
// methods) use the store's clock: a token or link is live while
// now < expires.
type Store interface {
	// CreateAccount stores a new account, its first device list and the
	// first device's prekeys, atomically. ErrHandleTaken if the handle exists.
	// The prekeys belong to l.Devices[0]; l must name at least one device
	// (an error otherwise), each id once (ErrDeviceExists otherwise).
	// ErrInvalidHandle if a.Handle is not a valid handle.
	//
	// With a.Invite set, the invite of that hash is used in the same
	// transaction: it must exist, be live (now < Expires, or no Expires)
	// and have no Handle or a.Handle's; its Uses drops by one, and at zero
	// it is deleted. ErrInviteInvalid otherwise. On any error nothing is
	// stored and the invite keeps its uses.
	CreateAccount(ctx context.Context, a Account, l DeviceList, p Prekeys) error
	// Account returns the account with handle, or ErrNotFound.
	Account(ctx context.Context, handle string) (Account, error)
	// DeleteAccount deletes an account and everything of it, atomically:
	// its device list and devices, their prekeys, tokens, auth challenges
	// and queued envelopes, and its link sessions; it returns the ids of
	// the devices it had (ErrNotFound for an unknown account). The handle
	// is free again at once. Message ids its devices sent stay remembered
	// (DedupWindow), as they would for any sender.
	DeleteAccount(ctx context.Context, handle string) (devices []uint32, err error)
	// DeviceList returns the account's current device list, or ErrNotFound.
	DeviceList(ctx context.Context, handle string) (DeviceList, error)
	// ReplaceDeviceList installs a newer list (ErrStaleVersion otherwise),
	// and deletes everything of the devices it drops: their prekeys,
	// tokens and queued envelopes. It returns the dropped device ids.
	// ErrNotFound for an unknown account. ErrDeviceExists if l names an id
	// twice, or names a current device id with a different SigningKey (an
	// id in use is never taken over). Devices that stay keep their Created;
	// DeviceList returns the devices in l's order.
	ReplaceDeviceList(ctx context.Context, handle string, l DeviceList) (removed []uint32, err error)

	// PutPrekeys stores a device's public prekeys. ErrNotFound if the
	// device is not in the account's current device list.
	PutPrekeys(ctx context.Context, handle string, device uint32, p Prekeys) error
	// PrekeyCounts returns how many one-time X25519 and PQ prekeys remain
	// (ErrNotFound for an unknown account or device).
	PrekeyCounts(ctx context.Context, handle string, device uint32) (oneTime, oneTimePQ int, err error)
	// TakeBundle returns a device's bundle, deleting the one-time keys it
	// hands out in the same transaction (a key is never handed out twice).
	// It takes the one-time X25519 and one-time PQ prekeys with the lowest
	// ids; with no one-time PQ prekey left, it gives the last-resort key
	// (PQLastResort). ErrNotFound for an unknown account or device;
	// ErrNoPrekeys (and nothing consumed) if the device has no signed
	// prekey, or neither a one-time PQ prekey nor a last-resort key.
	TakeBundle(ctx context.Context, handle string, device uint32) (Bundle, error)

	// PutToken stores the SHA-256 of a bearer token for a device (the same
	// hash again: replaced). ErrNotFound if the device is not current.
	PutToken(ctx context.Context, tokenHash []byte, handle string, device uint32, expires time.Time) error
	// TokenDevice resolves a token hash to its live device, or ErrNotFound
	// (unknown, expired, or the device was removed).
	TokenDevice(ctx context.Context, tokenHash []byte) (handle string, device uint32, err error)

	// PutChallenge stores an auth challenge issued to a device, so that the
	// token request that answers it may reach any node (the same challenge
	// again: replaced). ErrNotFound if the device is not current. A
	// challenge goes with its device when the device is removed.
	PutChallenge(ctx context.Context, challenge []byte, handle string, device uint32, expires time.Time) error
	// TakeChallenge deletes a challenge and returns what it was issued to:
	// a challenge is used once, whatever the caller then decides. It is
	// ErrNotFound if unknown, already taken or expired (now >= expires).
	// The caller checks that handle and device are the ones signing in.
	TakeChallenge(ctx context.Context, challenge []byte) (handle string, device uint32, expires time.Time, err error)

	// Enqueue stores one message's envelopes atomically (all or none); all
	// share Sender, SenderDevice and MessageID. If that triple was stored
	// before (remembered for at least DedupWindow, even after delivery),
	// nothing is stored and duplicate is true. ErrQueueFull if a recipient
	// device's queue holds MaxQueue envelopes already; ErrNotFound if a
	// recipient device is not current. On any error nothing is stored and
	// the message id is not remembered. Seq grows in the order of envs,
	// and in commit order per device: once Pending has shown a device seq
	// N, no envelope with a lower seq appears for it later (so "after N"
	// never skips one). An empty envs stores nothing.
	Enqueue(ctx context.Context, envs []Envelope) (duplicate bool, err error)
	// Pending returns up to limit envelopes for a device with Seq > after,
	// in Seq order. An unknown device has no envelopes; limit <= 0 returns
	// none.
	Pending(ctx context.Context, handle string, device uint32, after int64, limit int) ([]Envelope, error)
	// Ack deletes a device's envelopes by Seq (unknown seqs are ignored).
	Ack(ctx context.Context, handle string, device uint32, seqs []int64) error

	// CreateLink stores a new link session (Join, Sealed, DeviceList and
	// Fetched are ignored). ErrNotFound for an unknown account; ErrLinkUsed
	// if the id exists.
	CreateLink(ctx context.Context, l Link) error
	// Link returns a link session (ErrNotFound if unknown or expired). Join
	// and Sealed are empty until set.
	Link(ctx context.Context, id string) (Link, error)
	// JoinLink records the joining device's request once (ErrLinkUsed after).
	// Unknown or expired: ErrNotFound. join must not be empty.
	JoinLink(ctx context.Context, id string, join []byte) error
	// CompleteLink records the sealed transfer once (ErrLinkUsed after).
	// Unknown or expired: ErrNotFound. sealed must not be empty. (The store
	// does not check that the link was joined: the server does.)
	CompleteLink(ctx context.Context, id string, sealed, deviceList []byte) error
	// FetchLinkResult marks the result as handed out and returns it once
	// (ErrLinkUsed after). Before CompleteLink it returns the link as Link
	// does, with Sealed empty, and marks nothing. Unknown or expired:
	// ErrNotFound.
	FetchLinkResult(ctx context.Context, id string) (Link, error)

	// CreateInvite stores an invite. Its Handle is normalised
	// (ErrInvalidHandle if invalid); an error if Hash is not 32 bytes, Uses
	// is below 1, or an invite with that Hash exists. A zero Created is set
	// to the store's clock.
	CreateInvite(ctx context.Context, inv Invite) error
	// Invites returns every stored invite, oldest first.
	Invites(ctx context.Context) ([]Invite, error)
	// DeleteInvite deletes the invite with hash (ErrNotFound if none).
	DeleteInvite(ctx context.Context, hash []byte) error

	// Expire deletes tokens, challenges, link sessions and invites with
	// expires <= now, deletes queued envelopes whose Expires is set and
	// <= now (freeing their room in the queue), and forgets message ids
	// stored more than DedupWindow before now.
	Expire(ctx context.Context, now time.Time) error
	// Close releases the store.
	Close() error
}
