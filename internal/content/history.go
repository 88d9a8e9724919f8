package content

import (
	"fmt"
	"math"

	"golang.org/x/crypto/cryptobyte"
)

// KindHistory carries a device's message history to a device just linked
// to the same account: Attachment is the archive (MarshalHistory's
// output, encrypted as a file), ForDevice the device it is for. Only the
// account's own devices send it; every other own device ignores it.
const KindHistory Kind = 8

// HistoryMediaType is the media type of a history archive's attachment.
const HistoryMediaType = "application/x-parley-history"

// HistoryMessage is one message of a history archive, as the sending
// device shows it in its conversation with Peer.
type HistoryMessage struct {
	ID         [16]byte
	Peer       string // the conversation
	Sender     string // who wrote it: Peer, or the account itself
	Device     uint32 // the sender's device
	SentAt     int64  // Unix ms
	ReceivedAt int64  // Unix ms
	Outgoing   bool
	Request    bool  // it came in as a message request
	Status     uint8 // the client's delivery state (sent, delivered, read, ...)
	Kind       Kind  // KindText or KindTimer
	Timer      uint32
	ExpiresAt  int64 // Unix ms when it vanishes; 0: it does not
	Text       string
}

// Bounds of an archive.
const (
	historyFormat      = 1
	MaxHistoryMessages = 1 << 20
	maxHistoryText     = 1 << 20
)

// MarshalHistory encodes an archive:
//
//	archive = u8 format (= 1) || u32 count || count × message
//	message = id (16) || u8-len peer || u8-len sender || u32 device
//	          || u64 sent_at_ms || u64 received_at_ms || u8 flags (bit 0 outgoing, bit 1 request)
//	          || u8 status || u8 kind (1 or 7) || u32 timer || u64 expires_at_ms
//	          || u32-len text
func MarshalHistory(ms []HistoryMessage) ([]byte, error) {
	if len(ms) > MaxHistoryMessages {
		return nil, fmt.Errorf("%w: %d messages in one history", ErrMalformed, len(ms))
	}
	var b cryptobyte.Builder
	b.AddUint8(historyFormat)
	b.AddUint32(uint32(len(ms)))
	for i := range ms {
		m := &ms[i]
		if err := m.check(); err != nil {
			return nil, err
		}
		var flags uint8
		if m.Outgoing {
			flags |= 1
		}
		if m.Request {
			flags |= 2
		}
		b.AddBytes(m.ID[:])
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(m.Peer)) })
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(m.Sender)) })
		b.AddUint32(m.Device)
		b.AddUint64(uint64(m.SentAt))
		b.AddUint64(uint64(m.ReceivedAt))
		b.AddUint8(flags)
		b.AddUint8(m.Status)
		b.AddUint8(uint8(m.Kind))
		b.AddUint32(m.Timer)
		b.AddUint64(uint64(m.ExpiresAt))
		b.AddUint32LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(m.Text)) })
	}
	return b.Bytes()
}

// check reports why m cannot be in an archive, or nil.
func (m *HistoryMessage) check() error {
	switch {
	case m.Peer == "" || len(m.Peer) > 0xff || m.Sender == "" || len(m.Sender) > 0xff:
		return fmt.Errorf("%w: history message with peer %q, sender %q", ErrMalformed, m.Peer, m.Sender)
	case m.Kind != KindText && m.Kind != KindTimer:
		return fmt.Errorf("%w: history message of kind %d", ErrMalformed, m.Kind)
	case m.SentAt < 0 || m.ReceivedAt < 0 || m.ExpiresAt < 0:
		return fmt.Errorf("%w: history message with a negative time", ErrMalformed)
	case len(m.Text) > maxHistoryText:
		return fmt.Errorf("%w: history message text of %d bytes", ErrMalformed, len(m.Text))
	}
	return nil
}

// UnmarshalHistory decodes MarshalHistory's output, strictly: what it
// accepts, MarshalHistory encodes to the same bytes.
func UnmarshalHistory(b []byte) ([]HistoryMessage, error) {
	s := cryptobyte.String(b)
	var format uint8
	var n uint32
	if !s.ReadUint8(&format) || format != historyFormat || !s.ReadUint32(&n) || n > MaxHistoryMessages {
		return nil, fmt.Errorf("%w: history header", ErrMalformed)
	}
	// Each message takes at least 61 bytes: a count the rest cannot hold
	// is refused before anything is allocated for it.
	if uint64(n)*61 > uint64(len(s)) {
		return nil, fmt.Errorf("%w: %d history messages in %d bytes", ErrMalformed, n, len(s))
	}
	ms := make([]HistoryMessage, n)
	for i := range ms {
		m := &ms[i]
		var peer, sender cryptobyte.String
		var text []byte
		var sent, received, expires uint64
		var flags, kind uint8
		var textLen uint32
		if !s.CopyBytes(m.ID[:]) || !s.ReadUint8LengthPrefixed(&peer) || !s.ReadUint8LengthPrefixed(&sender) ||
			!s.ReadUint32(&m.Device) || !s.ReadUint64(&sent) || !s.ReadUint64(&received) ||
			!s.ReadUint8(&flags) || !s.ReadUint8(&m.Status) || !s.ReadUint8(&kind) || !s.ReadUint32(&m.Timer) ||
			!s.ReadUint64(&expires) || !s.ReadUint32(&textLen) || uint64(textLen) > uint64(len(s)) ||
			!s.ReadBytes(&text, int(textLen)) {
			return nil, fmt.Errorf("%w: history message %d", ErrMalformed, i)
		}
		if flags&^3 != 0 || sent > math.MaxInt64 || received > math.MaxInt64 || expires > math.MaxInt64 {
			return nil, fmt.Errorf("%w: history message %d", ErrMalformed, i)
		}
		m.Peer, m.Sender, m.Text = string(peer), string(sender), string(text)
		m.SentAt, m.ReceivedAt, m.ExpiresAt = int64(sent), int64(received), int64(expires)
		m.Outgoing, m.Request, m.Kind = flags&1 != 0, flags&2 != 0, Kind(kind)
		if err := m.check(); err != nil {
			return nil, fmt.Errorf("history message %d: %w", i, err)
		}
	}
	if !s.Empty() {
		return nil, fmt.Errorf("%w: %d bytes after the history", ErrMalformed, len(s))
	}
	return ms, nil
}
