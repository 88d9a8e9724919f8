// Package content defines the plaintext that travels inside a session frame:
// text messages and the end-to-end-encrypted control messages (receipts,
// typing, contact sync). Encodings are padded so the ciphertext length
// reveals only a size bucket.
package content

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// ErrMalformed is returned for bytes that are not a valid encoding.
var ErrMalformed = errors.New("content: malformed")

// Kind says what a Content is.
type Kind uint8

const (
	KindText        Kind = 1
	KindDelivered   Kind = 2 // delivery receipt for Refs
	KindRead        Kind = 3 // read receipt for Refs
	KindTyping      Kind = 4 // Typing: started or stopped
	KindContactSync Kind = 5 // the sender's whole contact list, to its own devices
	KindCall        Kind = 6 // call signalling: Call (offer, answer, ICE, ringing, hang-up, ...)
	// KindDelete deletes for everyone the sender's own messages Refs in
	// the conversation To (kinds 7 and 8 are in attachment.go and history.go).
	KindDelete Kind = 9
	// KindEdit replaces the text of the sender's own message Refs[0] in
	// the conversation To with Text.
	KindEdit Kind = 10
	// KindReaction sets the sender's reaction to message Refs[0] of the
	// conversation To: Text is the emoji, "" takes the reaction back.
	KindReaction Kind = 11
)

func (k Kind) valid() bool {
	return k >= KindText && k <= KindContactSync || k == KindCall || k == KindTimer || k == KindHistory || k == KindDelete || k == KindEdit || k == KindReaction // KindTimer: attachment.go; KindHistory: history.go
}

// ContactState is the state of a contact entry.
type ContactState uint8

const (
	ContactAccepted ContactState = 1
	ContactBlocked  ContactState = 2
	ContactRejected ContactState = 3
)

func (s ContactState) valid() bool { return s >= ContactAccepted && s <= ContactRejected }

// Contact is one entry of a synced contact list.
type Contact struct {
	Handle      string
	State       ContactState
	IdentityKey []byte // the key the user has seen for this contact (32 bytes or empty)
	Verified    bool
}

// Content is one end-to-end-encrypted payload.
type Content struct {
	Kind     Kind
	ID       [16]byte // message id; equals the SendRequest message id
	SentAt   int64    // Unix ms, sender's clock
	To       string   // the conversation's peer as the sender names it (recipient's handle)
	Text     string
	Refs     [][16]byte // receipts: ids of the messages they acknowledge
	Typing   bool
	Contacts []Contact // KindContactSync
	Call     *Call     // KindCall (required there, nil otherwise)
	// Timer: on KindText, the seconds the message lives once read (0: it
	// does not vanish); on KindTimer, the conversation's new timer (0: off).
	Timer      uint32
	Attachment *Attachment // KindText: a file (attachment.go); Text is its caption. KindHistory: the archive (history.go)
	// ForDevice, on KindHistory, is the own device the history is for.
	ForDevice uint32
	// ReplyTo, on KindText, is the id of the message it answers (zero:
	// none).
	ReplyTo [16]byte
}

// formatVersion is the first byte of every encoding.
const formatVersion = 1

// PadBlock is the padding bucket: every encoding is a multiple of it.
const PadBlock = 160

// padMarker starts the padding (ISO/IEC 7816-4 style: 0x80 then zeros).
const padMarker = 0x80

// Marshal encodes and pads c.
func (c *Content) Marshal() ([]byte, error) {
	if !c.Kind.valid() {
		return nil, fmt.Errorf("%w: unknown kind %d", ErrMalformed, c.Kind)
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, PadBlock))
	b.AddUint8(formatVersion)
	b.AddUint8(uint8(c.Kind))
	b.AddBytes(c.ID[:])
	b.AddUint64(uint64(c.SentAt))
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(c.To)) })
	b.AddUint32LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(c.Text)) })
	if len(c.Refs) > 0xffff {
		return nil, fmt.Errorf("%w: %d refs", ErrMalformed, len(c.Refs))
	}
	b.AddUint16(uint16(len(c.Refs)))
	for _, r := range c.Refs {
		b.AddBytes(r[:])
	}
	b.AddUint8(boolByte(c.Typing))
	if err := AddContacts(b, c.Contacts); err != nil {
		return nil, err
	}
	if err := addCall(b, c.Kind, c.Call); err != nil {
		return nil, err
	}
	if err := addExtensions(b, c); err != nil { // attachment.go
		return nil, err
	}
	out, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return pad(out), nil
}

// AddContacts appends the encoding of a contact list to b: u16 count, then
// per contact u8-len handle, u8 state, u8-len identity key, u8 verified.
// It is shared with the linking transfer.
func AddContacts(b *cryptobyte.Builder, cs []Contact) error {
	if len(cs) > 0xffff {
		return fmt.Errorf("%w: %d contacts", ErrMalformed, len(cs))
	}
	b.AddUint16(uint16(len(cs)))
	for _, ct := range cs {
		if !ct.State.valid() {
			return fmt.Errorf("%w: unknown contact state %d", ErrMalformed, ct.State)
		}
		if len(ct.IdentityKey) != 0 && len(ct.IdentityKey) != 32 {
			return fmt.Errorf("%w: contact identity key of %d bytes", ErrMalformed, len(ct.IdentityKey))
		}
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(ct.Handle)) })
		b.AddUint8(uint8(ct.State))
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(ct.IdentityKey) })
		b.AddUint8(boolByte(ct.Verified))
	}
	return nil
}

// ReadContacts reads AddContacts's encoding from s. It reports false for a
// malformed list (unknown state, key neither empty nor 32 bytes, a boolean
// byte other than 0 or 1, or truncation).
func ReadContacts(s *cryptobyte.String) ([]Contact, bool) {
	var n uint16
	if !s.ReadUint16(&n) {
		return nil, false
	}
	var cs []Contact
	for range n {
		var handle, key cryptobyte.String
		var state, verified uint8
		if !s.ReadUint8LengthPrefixed(&handle) || !s.ReadUint8(&state) ||
			!s.ReadUint8LengthPrefixed(&key) || !s.ReadUint8(&verified) {
			return nil, false
		}
		ct := Contact{Handle: string(handle), State: ContactState(state)}
		if !ct.State.valid() || (len(key) != 0 && len(key) != 32) || verified > 1 {
			return nil, false
		}
		if len(key) > 0 {
			ct.IdentityKey = append([]byte(nil), key...)
		}
		ct.Verified = verified == 1
		cs = append(cs, ct)
	}
	return cs, true
}

// Unmarshal decodes Marshal's output.
func Unmarshal(b []byte) (*Content, error) {
	inner, err := unpad(b)
	if err != nil {
		return nil, err
	}
	s := cryptobyte.String(inner)
	c := new(Content)
	var version, kind, typing uint8
	var to cryptobyte.String
	var sentAt uint64
	var nrefs uint16
	if !s.ReadUint8(&version) || version != formatVersion || !s.ReadUint8(&kind) ||
		!s.CopyBytes(c.ID[:]) || !s.ReadUint64(&sentAt) || !s.ReadUint8LengthPrefixed(&to) {
		return nil, ErrMalformed
	}
	c.Kind, c.SentAt, c.To = Kind(kind), int64(sentAt), string(to)
	if !c.Kind.valid() {
		return nil, fmt.Errorf("%w: unknown kind %d", ErrMalformed, kind)
	}
	var textLen uint32
	var text []byte
	if !s.ReadUint32(&textLen) || uint64(textLen) > uint64(len(s)) || !s.ReadBytes(&text, int(textLen)) {
		return nil, ErrMalformed
	}
	c.Text = string(text)
	if !s.ReadUint16(&nrefs) {
		return nil, ErrMalformed
	}
	if nrefs > 0 {
		c.Refs = make([][16]byte, nrefs)
		for i := range c.Refs {
			if !s.CopyBytes(c.Refs[i][:]) {
				return nil, ErrMalformed
			}
		}
	}
	if !s.ReadUint8(&typing) || typing > 1 {
		return nil, ErrMalformed
	}
	c.Typing = typing == 1
	var ok bool
	if c.Contacts, ok = ReadContacts(&s); !ok {
		return nil, ErrMalformed
	}
	if c.Call, ok = readCall(&s, c.Kind); !ok || !readExtensions(&s, c) {
		return nil, ErrMalformed
	}
	return c, nil
}

func boolByte(v bool) uint8 {
	if v {
		return 1
	}
	return 0
}

// pad appends 0x80 and as many zero bytes as take the length to the next
// multiple of PadBlock (at least one byte is always added).
func pad(b []byte) []byte {
	n := (len(b)/PadBlock + 1) * PadBlock
	b = append(b, padMarker)
	for len(b) < n {
		b = append(b, 0)
	}
	return b
}

// unpad strips pad's padding, strictly: the length must be a non-zero
// multiple of PadBlock, and the last bytes 0x80 followed by at most
// PadBlock-1 zero bytes.
func unpad(b []byte) ([]byte, error) {
	if len(b) == 0 || len(b)%PadBlock != 0 {
		return nil, fmt.Errorf("%w: length %d is not a multiple of %d", ErrMalformed, len(b), PadBlock)
	}
	for i := len(b) - 1; i >= len(b)-PadBlock; i-- {
		switch b[i] {
		case 0:
			continue
		case padMarker:
			return b[:i], nil
		}
		break
	}
	return nil, fmt.Errorf("%w: bad padding", ErrMalformed)
}
