// Package content defines the plaintext that travels inside a session frame:
// text messages and the end-to-end-encrypted control messages (receipts,
// typing, contact sync). Encodings are padded so the ciphertext length
// reveals only a size bucket.
package content

import "errors"

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
)

// ContactState is the state of a contact entry.
type ContactState uint8

const (
	ContactAccepted ContactState = 1
	ContactBlocked  ContactState = 2
	ContactRejected ContactState = 3
)

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
}

// Marshal encodes and pads c.
func (c *Content) Marshal() ([]byte, error) { panic("unimplemented") }

// Unmarshal decodes Marshal's output.
func Unmarshal(b []byte) (*Content, error) { panic("unimplemented") }
