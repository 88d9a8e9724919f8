package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/client/clientdb"
	"github.com/parleychat/parley/internal/content"
)

// Delete for everyone.
//
// A person may take back a message they sent, as in Signal and WhatsApp:
// within unsendWindow of sending it, DeleteForEveryone turns it into a
// tombstone on this device (its text and file gone, "deleted" left in its
// place) and sends a KindDelete naming it into the conversation, which
// every device of both accounts applies to its copy. A device applies it
// only to a message the deleting account itself sent in that conversation
// and only within the window, so nobody can delete another person's
// messages. It relies on the recipients' clients: a modified one can keep
// the message (docs/SECURITY.md). A file a recipient saved to its
// downloads folder stays there; a view-once file not yet opened goes.

// unsendWindow is how long after sending a message can be deleted for
// everyone. A device accepts a deletion that reached the server within it
// (plus unsendSlack for the clocks of the two sides).
const (
	unsendWindow = 24 * time.Hour
	unsendSlack  = time.Hour
)

// KindDeleted is the Message.Kind of a message deleted for everyone.
const KindDeleted = "deleted"

// EventDeleted: messages Refs of the conversation with Peer were deleted
// for everyone (by Peer, or by this account on another device).
const EventDeleted = "deleted"

// kindDeleted is a tombstone's kind in the database (content.KindDelete).
const kindDeleted = uint8(content.KindDelete)

// ErrNotDeletable is DeleteForEveryone's answer for a message that is not
// this account's, not a message, or older than the window.
var ErrNotDeletable = errors.New("client: only your own messages of the last 24 hours can be deleted for everyone")

// ErrUnknownMessage is returned for a message id this device does not
// have.
var ErrUnknownMessage = errors.New("client: no message here has that id")

// DeleteForEveryone deletes this account's message id, sent at most 24
// hours ago, on every device of both sides. It returns once the deletion
// is on its way: an error after the message was turned into a tombstone
// here means the deletion waits in the outbox for the next sync.
func (c *Client) DeleteForEveryone(ctx context.Context, id string) error {
	me, err := c.self()
	if err != nil {
		return err
	}
	rid, ok := parseID(id)
	if !ok {
		return ErrUnknownMessage
	}
	var files []string
	err = c.db.Update(ctx, func(tx *clientdb.Tx) error {
		m, err := targetMessage(tx, id)
		if err != nil {
			return err
		}
		if !m.Outgoing || m.Sender != me.handle || !deletable(m) || c.now().Sub(m.SentAt) > unsendWindow {
			return ErrNotDeletable
		}
		if files, err = tombstone(tx, m); err != nil {
			return err
		}
		return queueControl(tx, m.Peer, &content.Content{Kind: content.KindDelete, To: m.Peer, Refs: [][16]byte{rid}})
	})
	if err != nil {
		if errors.Is(err, ErrNotDeletable) || errors.Is(err, ErrUnknownMessage) {
			return err
		}
		return fmt.Errorf("client: %w", err)
	}
	c.removeFiles(files)
	c.sweepQuietly(ctx) // purges the write-ahead log of the old text
	return c.flushOutbox(ctx)
}

// deletable reports whether m is a message (text or file) and not already
// deleted.
func deletable(m *clientdb.Message) bool {
	return m.Kind == 0 || content.Kind(m.Kind) == content.KindText
}

// tombstone empties message m in tx (text, timer, attachment row) and
// marks it deleted; it returns the files parley wrote for it that should
// go (a partial download, a view-once file). A file saved to the
// downloads folder is the user's and stays.
func tombstone(tx *clientdb.Tx, m *clientdb.Message) ([]string, error) {
	var files []string
	a, err := tx.AttachmentOf(m.Seq)
	switch {
	case err == nil:
		files = append(files, a.Partial)
		if a.ViewOnce {
			files = append(files, a.Path)
		}
	case !errors.Is(err, clientdb.ErrNotFound):
		return nil, err
	}
	if err := tx.Tombstone(m.Seq, m.ID, kindDeleted); err != nil {
		return nil, err
	}
	return files, tx.PutSetting(settingPurgeWAL, "1")
}

// onDelete applies a KindDelete from account `from` (a peer, or this
// account from another own device) to the conversation conv.
func (c *Client) onDelete(tx *clientdb.Tx, from, conv string, outgoing bool, env *api.Envelope, ct *content.Content) ([]Event, error) {
	at := time.UnixMilli(env.ServerTime)
	var gone, files []string
	for _, id := range refIDs(ct.Refs) {
		m, err := tx.MessageByID(id)
		if errors.Is(err, clientdb.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if m.Peer != conv || m.Sender != from || m.Outgoing != outgoing || !deletable(m) ||
			at.Sub(m.SentAt) > unsendWindow+unsendSlack {
			continue
		}
		fs, err := tombstone(tx, m)
		if err != nil {
			return nil, err
		}
		files = append(files, fs...)
		gone = append(gone, id)
	}
	if len(gone) == 0 {
		return nil, nil
	}
	c.removeFiles(files)
	return []Event{{Type: EventDeleted, Peer: conv, Device: env.SenderDevice, Refs: gone}}, nil
}

// removeFiles removes files parley wrote for messages that are gone.
func (c *Client) removeFiles(files []string) {
	for _, f := range files {
		if f == "" {
			continue
		}
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			c.log.Warn("removing the file of a deleted message", "err", err)
		}
	}
}

// targetMessage is message id for an action on it (delete, edit, react):
// ErrUnknownMessage if this device does not have it.
func targetMessage(tx *clientdb.Tx, id string) (*clientdb.Message, error) {
	m, err := tx.MessageByID(id)
	if errors.Is(err, clientdb.ErrNotFound) {
		return nil, ErrUnknownMessage
	}
	return m, err
}

// referredMessage is the message a received edit or reaction names (its
// one ref): nil if this device does not have it.
func referredMessage(tx *clientdb.Tx, ct *content.Content) (string, *clientdb.Message, error) {
	id := refIDs(ct.Refs)[0]
	m, err := tx.MessageByID(id)
	if errors.Is(err, clientdb.ErrNotFound) {
		return id, nil, nil
	}
	return id, m, err
}
