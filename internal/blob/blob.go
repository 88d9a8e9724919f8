// Package blob is the contract of parleyd's blob store: opaque,
// end-to-end encrypted file contents (age STREAM ciphertext, see
// internal/stream), uploaded in resumable appends, checked against a
// SHA-256 when finished, read at any offset, and deleted when every
// recipient device has claimed them or when they expire.
//
// The server never sees a key or a plaintext byte; to it a blob is bytes
// with an owner (the uploading device), a declared size, a SHA-256, a list
// of recipient devices and an expiry. The blob id, 32 random bytes, is the
// capability to download.
//
// Each backend is its own package, and all pass the one conformance suite
// in blobtest:
//
//   - diskstore: files on local disk plus a JSON sidecar per blob (the
//     default; one node).
//   - s3store: the bytes in an S3-compatible bucket, one object per
//     appended segment, and the metadata (owner, sizes, running SHA-256
//     state, recipients, expiry, an append's lease) in a table of the
//     PostgreSQL database a cluster shares, since object storage cannot
//     answer Usage or Expired, nor refuse a second append (a cluster).
//
// Methods take a context for backends that do I/O over a network; the
// disk backend checks it between buffers.
package blob

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"slices"
	"strings"
	"time"
)

// Errors every backend returns (wrapped or bare; test with errors.Is).
var (
	ErrNotFound = errors.New("blob: no such blob")
	ErrExists   = errors.New("blob: a blob with this id exists")
	ErrInvalid  = errors.New("blob: invalid argument")
	// ErrQuota: creating the blob would take the owner's account over its
	// quota of bytes held (uploading and finished).
	ErrQuota = errors.New("blob: the account's blob quota is used up")
	// ErrOffset: an append did not start at the current size. Append
	// returns the current size with it.
	ErrOffset = errors.New("blob: append offset is not the current size")
	// ErrBusy: another append or a finish of the same blob is in progress.
	ErrBusy = errors.New("blob: another operation on the blob is in progress")
	// ErrTooLong: an append brought more bytes than the declared size; the
	// bytes up to the declared size are kept.
	ErrTooLong = errors.New("blob: data beyond the declared size")
	// ErrIncomplete: the blob has fewer bytes than its declared size
	// (Finish), or is not finished (Open, Claim).
	ErrIncomplete = errors.New("blob: the upload is not complete")
	// ErrComplete: the blob is finished and cannot change (Append, or a
	// Finish with other values than the first).
	ErrComplete = errors.New("blob: the upload is already finished")
	// ErrHash: the data's SHA-256 is not the one given to Finish. The
	// upload stays open (a Finish with the right hash still works).
	ErrHash = errors.New("blob: SHA-256 of the data does not match")
	// ErrNotRecipient: Claim by a device the owner did not name.
	ErrNotRecipient = errors.New("blob: the device is not a recipient of the blob")
	ErrClosed       = errors.New("blob: store closed")
)

// IDSize is the number of random bytes in a blob id.
const IDSize = 32

// NewID returns a fresh blob id: IDSize random bytes in unpadded base64url
// (43 characters). It cannot be guessed, so knowing it is the capability to
// download the blob.
func NewID() string {
	b := make([]byte, IDSize)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ValidID reports whether id is the canonical encoding of IDSize bytes in
// unpadded base64url.
func ValidID(id string) bool {
	if len(id) != base64.RawURLEncoding.EncodedLen(IDSize) {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(id)
	return err == nil && len(b) == IDSize
}

// Device names one device of an account (a handle in its stored, lower-case
// form).
type Device struct {
	Handle string `json:"handle"`
	ID     uint32 `json:"device_id"`
}

func (d Device) compare(e Device) int {
	if c := strings.Compare(d.Handle, e.Handle); c != 0 {
		return c
	}
	switch {
	case d.ID < e.ID:
		return -1
	case d.ID > e.ID:
		return 1
	}
	return 0
}

// SortDevices returns ds sorted (handle, then id) without duplicates.
func SortDevices(ds []Device) []Device {
	out := slices.Clone(ds)
	slices.SortFunc(out, Device.compare)
	return slices.Compact(out)
}

// Meta is what the server gives Create.
type Meta struct {
	ID      string // from NewID
	Owner   Device // the uploading device: the only one that may Append and Finish
	Size    int64  // declared size in bytes, > 0
	Created time.Time
	// Expires is when an unfinished upload is dropped; Finish sets the
	// finished blob's expiry.
	Expires time.Time
	// Lifetime is kept for the server (how long the blob lives once
	// finished); the store does not interpret it.
	Lifetime time.Duration
}

// Info is the state of a blob.
type Info struct {
	Meta
	Offset   int64  // bytes received; the next Append starts here
	Complete bool   // Finish succeeded
	SHA256   []byte // set once Complete
	// Pending are the recipients that have not claimed the blob yet, and
	// Claimed those that have (both sorted). Set once Complete.
	Pending []Device
	Claimed []Device
}

// Finish is what the owner gives to finish an upload.
type Finish struct {
	SHA256 []byte // of all Size bytes
	// Recipients are the devices expected to fetch the blob; once every one
	// has claimed it, it is deleted. None: it lives until it expires.
	Recipients []Device
	Expires    time.Time // when the finished blob is dropped
}

// Store holds blobs. Implementations are safe for concurrent use.
type Store interface {
	// Create records a new, empty blob. It fails with ErrInvalid for a
	// malformed id or a size < 1, ErrExists if the id is taken, and
	// ErrQuota if the sizes of the owner account's blobs (every device,
	// unfinished and finished) plus m.Size would exceed quota.
	Create(ctx context.Context, m Meta, quota int64) error

	// Append writes what r yields, until io.EOF, at offset, which must be
	// the blob's current size (else ErrOffset, returned with the current
	// size). Bytes that arrived are kept even when r fails midway (a
	// dropped connection), so an interrupted upload resumes from the size
	// Append returns. At most the declared size is kept; more is
	// ErrTooLong. It returns the new size. ErrComplete once finished,
	// ErrBusy while another Append or Finish of the blob runs. Memory does
	// not grow with the size of the data.
	Append(ctx context.Context, id string, offset int64, r io.Reader) (int64, error)

	// Info returns a blob's state.
	Info(ctx context.Context, id string) (Info, error)

	// Finish checks that all Size bytes arrived (else ErrIncomplete) and
	// hash to f.SHA256 (else ErrHash, and the upload stays open), makes the
	// data durable, and records the recipients and the expiry. Finishing a
	// finished blob again with the same hash succeeds (a retry) and adds
	// the recipients not named before (a device that appeared meanwhile);
	// it never removes one, and keeps the expiry. With another hash it is
	// ErrComplete.
	Finish(ctx context.Context, id string, f Finish) (Info, error)

	// Open returns the data of a finished blob from offset (0 <= offset <=
	// Size, else ErrInvalid) to the end. ErrIncomplete if not finished.
	Open(ctx context.Context, id string, offset int64) (io.ReadCloser, Info, error)

	// Claim records that device d fetched the blob. When every recipient
	// has, the blob is deleted and deleted is true. A device that already
	// claimed may claim again (nothing changes); one that is not a
	// recipient gets ErrNotRecipient. ErrIncomplete if not finished.
	Claim(ctx context.Context, id string, d Device) (deleted bool, err error)

	// Delete removes a blob at once, finished or not; an Append in
	// progress fails.
	Delete(ctx context.Context, id string) error

	// Expired returns up to limit ids of blobs whose expiry is at or
	// before now. The caller deletes them.
	Expired(ctx context.Context, now time.Time, limit int) ([]string, error)

	// Usage returns the sum of the declared sizes of an account's blobs.
	Usage(ctx context.Context, handle string) (int64, error)

	// Close waits for operations in progress and releases the store.
	Close() error
}
