package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/client/clientdb"
	"github.com/parleychat/parley/internal/content"
)

// Editing a sent message.
//
// As in Signal, a person may correct the text of a message they sent
// within editWindow (unsendWindow: the same 24 hours as deleting it):
// EditMessage replaces it on this device and sends a KindEdit naming it,
// which every device of both accounts applies under the same rules as a
// deletion (unsend.go): only to a message the editing account sent in
// that conversation, within the window, and not to one deleted already.
// Edits apply in the order they were sent (an older edit arriving late
// does not undo a newer one); the message shows as edited.

// EventEdited: message Refs[0] of the conversation with Peer has a new
// text (Message is the message as it is now).
const EventEdited = "edited"

// EditMessage replaces the text of this account's message id, sent at
// most 24 hours ago (ErrNotEditable otherwise), on every device of both
// sides, and returns the message as it is now.
func (c *Client) EditMessage(ctx context.Context, id, text string) (Message, error) {
	me, err := c.self()
	if err != nil {
		return Message{}, err
	}
	if text == "" {
		return Message{}, errors.New("client: the new text is empty (to take a message back, delete it for everyone)")
	}
	if len(text) > MaxTextBytes {
		return Message{}, fmt.Errorf("%w (%d bytes; at most %d)", ErrTooLong, len(text), MaxTextBytes)
	}
	rid, ok := parseID(id)
	if !ok {
		return Message{}, ErrUnknownMessage
	}
	now := c.now()
	var m *clientdb.Message
	err = c.db.Update(ctx, func(tx *clientdb.Tx) error {
		var err error
		if m, err = targetMessage(tx, id); err != nil {
			return err
		}
		if !m.Outgoing || m.Sender != me.handle || !deletable(m) || now.Sub(m.SentAt) > unsendWindow {
			return ErrNotEditable
		}
		ct := &content.Content{Kind: content.KindEdit, To: m.Peer, Refs: [][16]byte{rid}, Text: text}
		if err := queueControl(tx, m.Peer, ct); err != nil { // stamps ct.SentAt: the edit's time everywhere
			return err
		}
		m.Text, m.EditedAt = text, time.UnixMilli(ct.SentAt)
		return tx.EditMessage(m.Seq, text, m.EditedAt)
	})
	if err != nil {
		if errors.Is(err, ErrNotEditable) || errors.Is(err, ErrUnknownMessage) {
			return Message{}, err
		}
		return Message{}, fmt.Errorf("client: %w", err)
	}
	return messageFromRow(m), c.flushOutbox(ctx)
}

// ErrNotEditable is EditMessage's answer for a message that is not this
// account's, not a message, deleted, or older than the window.
var ErrNotEditable = errors.New("client: only your own messages of the last 24 hours can be edited")

// onEdit applies a KindEdit from account `from` (a peer, or this account
// from another own device) to the conversation conv.
func (c *Client) onEdit(tx *clientdb.Tx, from, conv string, outgoing bool, env *api.Envelope, ct *content.Content) ([]Event, error) {
	if len(ct.Refs) != 1 || ct.Text == "" || len(ct.Text) > MaxTextBytes {
		return nil, drop("an edit names no message or no text")
	}
	id, m, err := referredMessage(tx, ct)
	if m == nil || err != nil {
		return nil, err
	}
	at := time.UnixMilli(env.ServerTime)
	editedAt := time.UnixMilli(ct.SentAt)
	if m.Peer != conv || m.Sender != from || m.Outgoing != outgoing || !deletable(m) ||
		at.Sub(m.SentAt) > unsendWindow+unsendSlack || !editedAt.After(m.EditedAt) {
		return nil, nil
	}
	if err := tx.EditMessage(m.Seq, ct.Text, editedAt); err != nil {
		return nil, err
	}
	m.Text, m.EditedAt = ct.Text, editedAt
	msg := messageFromRow(m)
	return []Event{{Type: EventEdited, Peer: conv, Device: env.SenderDevice, Refs: []string{id}, Message: &msg}}, nil
}
