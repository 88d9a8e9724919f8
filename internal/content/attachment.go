package content

import (
	"fmt"
	"math"

	"golang.org/x/crypto/cryptobyte"
)

// KindTimer is a control message that sets the conversation's vanishing
// timer (Content.Timer seconds; 0 turns it off). Both sides show it, and
// either side may send it.
const KindTimer Kind = 7

// Sizes of the attachment fields.
const (
	BlobIDSize  = 43 // unpadded base64url of 32 random bytes (docs/PROTOCOL-files.md §3.1)
	FileKeySize = 32
	HashSize    = 32
)

// Attachment flags (a bit set).
const (
	flagViewOnce = 1 << 0
	flagsAll     = flagViewOnce
)

// Attachment is a file sent with a KindText message (whose Text is the
// caption). The file itself is the age STREAM ciphertext of the plaintext
// under Key, stored on the server as blob BlobID (docs/PROTOCOL-files.md).
type Attachment struct {
	BlobID         string // 43 characters of base64url: the capability to download
	Key            []byte // FileKeySize bytes: the file key, fresh per file
	SHA256         []byte // HashSize bytes: SHA-256 of the whole ciphertext
	CiphertextSize int64  // bytes of ciphertext (the blob's size)
	PlaintextSize  int64  // bytes of the file
	MediaType      string // e.g. "image/jpeg", chosen by the sender (not trusted for rendering)
	FileName       string // the base name the sender gave; receivers sanitise it before use
	ViewOnce       bool   // the recipient may open it once, then only a placeholder remains
}

// String describes the attachment without its key.
func (a *Attachment) String() string {
	return fmt.Sprintf("attachment %q (%s, %d bytes, blob %s)", a.FileName, a.MediaType, a.PlaintextSize, a.BlobID)
}

// Tags of the extension fields that follow the call section. Each appears
// at most once, in increasing order, and only when it has a non-zero value,
// so an encoding without any is byte-identical to one made before they
// existed.
const (
	tagTimer      = 1
	tagAttachment = 2
	tagForDevice  = 3
	tagReplyTo    = 4
)

func validBlobID(id string) bool {
	if len(id) != BlobIDSize {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// check reports why a is not a valid attachment, or nil.
func (a *Attachment) check() error {
	switch {
	case !validBlobID(a.BlobID):
		return fmt.Errorf("%w: attachment blob id %q", ErrMalformed, a.BlobID)
	case len(a.Key) != FileKeySize:
		return fmt.Errorf("%w: attachment key of %d bytes", ErrMalformed, len(a.Key))
	case len(a.SHA256) != HashSize:
		return fmt.Errorf("%w: attachment hash of %d bytes", ErrMalformed, len(a.SHA256))
	case a.CiphertextSize < 1 || a.PlaintextSize < 0 || a.PlaintextSize > a.CiphertextSize:
		return fmt.Errorf("%w: attachment sizes %d (plaintext) and %d (ciphertext)", ErrMalformed, a.PlaintextSize, a.CiphertextSize)
	case len(a.MediaType) > 0xff || len(a.FileName) > 0xffff:
		return fmt.Errorf("%w: attachment media type or file name too long", ErrMalformed)
	}
	return nil
}

// addExtensions appends the extension fields of c:
//
//	field      = u8 tag || u16-len value
//	timer      (tag 1) = u32 seconds                               (KindText, KindTimer; > 0)
//	attachment (tag 2) = u8-len blob_id || key (32) || sha256 (32)
//	                     || u64 ciphertext_size || u64 plaintext_size
//	                     || u8-len media_type || u16-len file_name || u8 flags   (KindText, KindHistory)
//	for_device (tag 3) = u32 device id                             (KindHistory; > 0)
//	reply_to   (tag 4) = id (16) of the message replied to         (KindText; not all zero)
//
// flags: bit 0 view-once; the other bits are zero.
func addExtensions(b *cryptobyte.Builder, c *Content) error {
	if c.Timer != 0 {
		if c.Kind != KindText && c.Kind != KindTimer {
			return fmt.Errorf("%w: a timer on kind %d", ErrMalformed, c.Kind)
		}
		b.AddUint8(tagTimer)
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddUint32(c.Timer) })
	}
	if a := c.Attachment; a != nil {
		if c.Kind != KindText && c.Kind != KindHistory {
			return fmt.Errorf("%w: an attachment on kind %d", ErrMalformed, c.Kind)
		}
		if err := a.check(); err != nil {
			return err
		}
		var flags uint8
		if a.ViewOnce {
			flags |= flagViewOnce
		}
		b.AddUint8(tagAttachment)
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(a.BlobID)) })
			b.AddBytes(a.Key)
			b.AddBytes(a.SHA256)
			b.AddUint64(uint64(a.CiphertextSize))
			b.AddUint64(uint64(a.PlaintextSize))
			b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(a.MediaType)) })
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(a.FileName)) })
			b.AddUint8(flags)
		})
	}
	if c.ForDevice != 0 {
		if c.Kind != KindHistory {
			return fmt.Errorf("%w: a device on kind %d", ErrMalformed, c.Kind)
		}
		b.AddUint8(tagForDevice)
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddUint32(c.ForDevice) })
	}
	if c.ReplyTo != ([16]byte{}) {
		if c.Kind != KindText {
			return fmt.Errorf("%w: a reply on kind %d", ErrMalformed, c.Kind)
		}
		b.AddUint8(tagReplyTo)
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(c.ReplyTo[:]) })
	}
	return nil
}

// readExtensions reads addExtensions's fields from s (all that is left of
// it) into c, strictly: tags in increasing order, each value whole and
// canonical, and only on the kinds that may carry it.
func readExtensions(s *cryptobyte.String, c *Content) bool {
	last := 0
	for !s.Empty() {
		var tag uint8
		var v cryptobyte.String
		if !s.ReadUint8(&tag) || int(tag) <= last || !s.ReadUint16LengthPrefixed(&v) {
			return false
		}
		last = int(tag)
		switch tag {
		case tagTimer:
			if (c.Kind != KindText && c.Kind != KindTimer) || !v.ReadUint32(&c.Timer) || c.Timer == 0 {
				return false
			}
		case tagAttachment:
			if c.Kind != KindText && c.Kind != KindHistory {
				return false
			}
			a, ok := readAttachment(&v)
			if !ok {
				return false
			}
			c.Attachment = a
		case tagForDevice:
			if c.Kind != KindHistory || !v.ReadUint32(&c.ForDevice) || c.ForDevice == 0 {
				return false
			}
		case tagReplyTo:
			if c.Kind != KindText || !v.CopyBytes(c.ReplyTo[:]) || c.ReplyTo == ([16]byte{}) {
				return false
			}
		default:
			return false
		}
		if !v.Empty() {
			return false
		}
	}
	return true
}

func readAttachment(v *cryptobyte.String) (*Attachment, bool) {
	var id, media cryptobyte.String
	var name cryptobyte.String
	var ctSize, ptSize uint64
	var flags uint8
	a := &Attachment{Key: make([]byte, FileKeySize), SHA256: make([]byte, HashSize)}
	if !v.ReadUint8LengthPrefixed(&id) || !v.CopyBytes(a.Key) || !v.CopyBytes(a.SHA256) ||
		!v.ReadUint64(&ctSize) || !v.ReadUint64(&ptSize) || !v.ReadUint8LengthPrefixed(&media) ||
		!v.ReadUint16LengthPrefixed(&name) || !v.ReadUint8(&flags) {
		return nil, false
	}
	if ctSize > math.MaxInt64 || ptSize > math.MaxInt64 || flags&^flagsAll != 0 {
		return nil, false
	}
	a.BlobID, a.MediaType, a.FileName = string(id), string(media), string(name)
	a.CiphertextSize, a.PlaintextSize = int64(ctSize), int64(ptSize)
	a.ViewOnce = flags&flagViewOnce != 0
	if a.check() != nil {
		return nil, false
	}
	return a, true
}
