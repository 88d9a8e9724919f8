package client

import (
	"time"

	"github.com/parleychat/parley/internal/client/clientdb"
)

// Message statuses.
const (
	StatusSending   = "sending"   // outgoing, not yet accepted by the server
	StatusSent      = "sent"      // outgoing, committed by the server
	StatusDelivered = "delivered" // outgoing, a device of the peer has it
	StatusRead      = "read"      // outgoing: the peer read it; incoming: read here
	StatusReceived  = "received"  // incoming, not read yet
	StatusFailed    = "failed"    // outgoing, refused by the server for good
)

// Message is one message of a conversation.
type Message struct {
	ID         string    // 32 hex digits, the same on every device
	Peer       string    // the conversation: the other account's handle
	From       string    // the sender's handle (the own handle when Outgoing)
	Device     uint32    // the sender's device
	SentAt     time.Time // the sender's clock
	ReceivedAt time.Time // this device's clock, when stored
	Text       string
	Outgoing   bool
	Status     string // Status*
	Request    bool   // held as a message request (the sender is not a contact)
	// Kind is KindMessage, or KindTimer for a change of the conversation's
	// vanishing timer (Timer is then the new timer; 0 turned it off).
	Kind string
	// Timer is how long a vanishing message lives once read here (sent:
	// once sent); 0 for an ordinary message.
	Timer      time.Duration
	ExpiresAt  time.Time   // when it vanishes here; zero until it counts (vanish.go)
	Attachment *Attachment // a file, with Text as its caption (files.go)
	EditedAt   time.Time   // when its text was last edited; zero: never (edit.go)
	// ReplyTo is the id of the message this one answers ("": none), and
	// Quote that message as this device has it (nil if it has not; reply.go).
	ReplyTo string
	Quote   *Quote
	// Reactions are the accounts' reactions to it, oldest first
	// (reactions.go).
	Reactions []Reaction
}

func messageFromRow(m *clientdb.Message) Message {
	return Message{
		ID:         m.ID,
		Peer:       m.Peer,
		From:       m.Sender,
		Device:     m.Device,
		SentAt:     m.SentAt,
		ReceivedAt: m.ReceivedAt,
		Text:       m.Text,
		Outgoing:   m.Outgoing,
		Status:     statusString(m.Status, m.Outgoing),
		Request:    m.Request,
		Kind:       kindString(m.Kind),
		Timer:      time.Duration(m.Timer) * time.Second,
		ExpiresAt:  m.ExpiresAt,
		EditedAt:   m.EditedAt,
		ReplyTo:    m.ReplyTo,
	}
}

func statusString(s clientdb.Status, outgoing bool) string {
	if !outgoing {
		if s >= clientdb.StatusRead {
			return StatusRead
		}
		return StatusReceived
	}
	switch s {
	case clientdb.StatusFailed:
		return StatusFailed
	case clientdb.StatusSending:
		return StatusSending
	case clientdb.StatusSent:
		return StatusSent
	case clientdb.StatusDelivered:
		return StatusDelivered
	}
	return StatusRead
}

// Event types.
const (
	EventMessage      = "message"      // Message: a new message (incoming, or sent from another own device)
	EventDelivered    = "delivered"    // Peer's device received the outgoing messages Refs
	EventRead         = "read"         // Peer read Refs; or (Device is own) Refs from Peer were read on another own device
	EventTyping       = "typing"       // Peer started (Typing) or stopped typing
	EventContacts     = "contacts"     // the contact list changed (synced from another own device)
	EventHistory      = "history"      // Count messages of history from own device Device were imported (a device just linked)
	EventKeyChanged   = "key_changed"  // Peer's identity key changed: compare the safety number again
	EventDropped      = "dropped"      // an envelope could not be read and was discarded (Detail says why)
	EventReplay       = "replay"       // an envelope was a replay of one already received, discarded
	EventConnected    = "connected"    // the delivery stream is up (Run/Sync)
	EventDisconnected = "disconnected" // the delivery stream broke; Run reconnects (Detail says why)
)

// Event is something that happened while receiving.
type Event struct {
	Type    string
	Message *Message
	Peer    string
	Device  uint32
	Refs    []string // message ids, for delivered and read
	Typing  bool
	Detail  string
	Call    *CallSignal // EventCall (call.go)
	Count   int         // EventHistory: messages imported
}

// Conversation is one entry of the conversation list.
type Conversation struct {
	Peer    string
	Last    *Message
	Unread  int
	Request bool // the peer is not a contact and some of its messages are held as a request
}

// Contact is one entry of the contact list.
type Contact struct {
	Handle     string
	State      string // "contact", "blocked" or "rejected"
	Verified   bool   // the safety number was marked verified
	KeyChanged bool   // the identity key changed since it was pinned
}

// Request is a handle whose messages are held as a request.
type Request struct {
	Handle   string
	Messages int
	First    time.Time
}

// Device is a device of the own account.
type Device struct {
	ID      uint32
	Name    string
	Created time.Time
	Current bool // this device
}

// SafetyNumber is what two people compare to verify each other's keys.
type SafetyNumber struct {
	Peer       string
	Number     string // 60 digits
	QR         []byte // payload to show as a QR code
	Verified   bool
	KeyChanged bool // the number is for the peer's new key, which is not pinned yet
}

// maxPending bounds the events kept for the next Run/Sync loop.
const maxPending = 256

// emit hands an event found outside a receive loop (a key change seen
// while sending) to the running Run/Sync loop, or keeps it for the next
// one (the newest maxPending).
func (c *Client) emit(ev Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending = append(c.pending, ev)
	if len(c.pending) > maxPending {
		c.pending = c.pending[len(c.pending)-maxPending:]
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *Client) takePending() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pending
	c.pending = nil
	return p
}
