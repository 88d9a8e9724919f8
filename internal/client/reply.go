package client

import (
	"errors"
	"strings"

	"github.com/parleychat/parley/internal/client/clientdb"
	"github.com/parleychat/parley/internal/content"
)

// Replies.
//
// A message may answer an earlier one of its conversation: the content
// names it by id (content.Content.ReplyTo), and every device shows the
// answer with a quote of the message as that device has it (its text as
// edited, "deleted" once deleted for everyone, nothing if the device never
// had it: a device linked later, or a vanished message).

// Quote is the message a reply answers, as this device has it.
type Quote struct {
	From    string // its sender's handle
	Text    string // its text now ("" if deleted or a file without caption)
	Deleted bool   // deleted for everyone
	File    string // the name of its file, if it has one
}

// Snippet is the quoted message in at most n characters, for a reply's
// line: its text on one line, "(deleted)", or its file's name.
func (q *Quote) Snippet(n int) string {
	text := strings.ReplaceAll(q.Text, "\n", " ")
	switch {
	case q.Deleted:
		text = "(deleted)"
	case text == "" && q.File != "":
		text = "[file " + q.File + "]"
	}
	if r := []rune(text); len(r) > n {
		text = string(r[:n-1]) + "…"
	}
	return text
}

// replyTarget checks that message id ("" for none) is in the conversation
// with h here and returns it as a content id.
func replyTarget(tx *clientdb.Tx, h, id string) ([16]byte, error) {
	if id == "" {
		return [16]byte{}, nil
	}
	rid, ok := parseID(id)
	if !ok {
		return rid, ErrUnknownMessage
	}
	m, err := tx.MessageByID(id)
	if errors.Is(err, clientdb.ErrNotFound) || (err == nil && m.Peer != h) {
		return rid, ErrUnknownMessage
	}
	return rid, err
}

// replyID is the stored form of ct's ReplyTo.
func replyID(ct *content.Content) string {
	if ct.ReplyTo == ([16]byte{}) {
		return ""
	}
	return idString(ct.ReplyTo)
}

// addQuotes fills the Quote of the messages that are replies, from tx.
func addQuotes(tx *clientdb.Tx, ms []Message) error {
	for i := range ms {
		if ms[i].ReplyTo == "" {
			continue
		}
		q, err := tx.MessageByID(ms[i].ReplyTo)
		if errors.Is(err, clientdb.ErrNotFound) || (err == nil && q.Peer != ms[i].Peer) {
			continue
		}
		if err != nil {
			return err
		}
		quote := &Quote{From: q.Sender, Text: q.Text, Deleted: q.Kind == kindDeleted}
		if a, err := tx.AttachmentOf(q.Seq); err == nil {
			quote.File = a.Name
		} else if !errors.Is(err, clientdb.ErrNotFound) {
			return err
		}
		ms[i].Quote = quote
	}
	return nil
}
