package client

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/client/clientdb"
	"github.com/parleychat/parley/internal/content"
)

// Reactions.
//
// Anyone in a conversation may react to any of its messages with an emoji,
// one reaction per account and message, as in Signal and WhatsApp: React
// stores it here and sends a KindReaction naming the message into the
// conversation; every device of both accounts keeps the newest reaction
// of each account (a late older one does not undo it), and "" takes it
// back. A device applies a reaction only to a message of the conversation
// it comes from, and not to a deleted one; deleting a message drops its
// reactions.

// EventReaction: Message (Refs[0]) of the conversation with Peer has new
// reactions (Message.Reactions).
const EventReaction = "reaction"

// maxEmojiBytes bounds a reaction.
const maxEmojiBytes = 64

// Reaction is one account's reaction to a message.
type Reaction struct {
	From  string // the reacting account
	Emoji string
}

// ErrBadReaction is React's answer to a reaction that is not short text.
var ErrBadReaction = errors.New("client: a reaction is an emoji (at most 64 bytes of text)")

// React sets this account's reaction to message id ("" takes it back)
// on every device of both sides, and returns the message with its
// reactions.
func (c *Client) React(ctx context.Context, id, emoji string) (Message, error) {
	me, err := c.self()
	if err != nil {
		return Message{}, err
	}
	if len(emoji) > maxEmojiBytes || !utf8.ValidString(emoji) {
		return Message{}, ErrBadReaction
	}
	rid, ok := parseID(id)
	if !ok {
		return Message{}, ErrUnknownMessage
	}
	var out []Message
	err = c.db.Update(ctx, func(tx *clientdb.Tx) error {
		m, err := targetMessage(tx, id)
		if err != nil {
			return err
		}
		if !deletable(m) {
			return ErrUnknownMessage // a timer change, or deleted
		}
		ct := &content.Content{Kind: content.KindReaction, To: m.Peer, Refs: [][16]byte{rid}, Text: emoji}
		if err := queueControl(tx, m.Peer, ct); err != nil { // stamps ct.SentAt
			return err
		}
		if _, err := tx.SetReaction(m.Peer, id, me.handle, emoji, time.UnixMilli(ct.SentAt)); err != nil {
			return err
		}
		out = []Message{messageFromRow(m)}
		return addReactions(tx, out)
	})
	if err != nil {
		if errors.Is(err, ErrUnknownMessage) {
			return Message{}, err
		}
		return Message{}, fmt.Errorf("client: %w", err)
	}
	return out[0], c.flushOutbox(ctx)
}

// onReaction applies a KindReaction from account `from` (a peer, or this
// account from another own device) to the conversation conv.
func (c *Client) onReaction(tx *clientdb.Tx, from, conv string, env *api.Envelope, ct *content.Content) ([]Event, error) {
	if len(ct.Refs) != 1 || len(ct.Text) > maxEmojiBytes || !utf8.ValidString(ct.Text) {
		return nil, drop("a reaction names no message, or is not short text")
	}
	id, m, err := referredMessage(tx, ct)
	if m == nil || err != nil {
		return nil, err
	}
	if m.Peer != conv || !deletable(m) {
		return nil, nil
	}
	changed, err := tx.SetReaction(conv, id, from, ct.Text, time.UnixMilli(ct.SentAt))
	if err != nil || !changed {
		return nil, err
	}
	msgs := []Message{messageFromRow(m)}
	if err := addReactions(tx, msgs); err != nil {
		return nil, err
	}
	return []Event{{Type: EventReaction, Peer: conv, Device: env.SenderDevice, Refs: []string{id}, Message: &msgs[0]}}, nil
}

// addReactions fills the Reactions of ms from tx, with one query per
// conversation among them.
func addReactions(tx *clientdb.Tx, ms []Message) error {
	byPeer := map[string]map[string][]clientdb.Reaction{}
	for i := range ms {
		rs, ok := byPeer[ms[i].Peer]
		if !ok {
			var err error
			if rs, err = tx.Reactions(ms[i].Peer); err != nil {
				return err
			}
			byPeer[ms[i].Peer] = rs
		}
		for _, r := range rs[ms[i].ID] {
			ms[i].Reactions = append(ms[i].Reactions, Reaction{From: r.Reactor, Emoji: r.Emoji})
		}
	}
	return nil
}
