package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/parleychat/parley/internal/client/clientdb"
	"github.com/parleychat/parley/internal/content"
	"github.com/parleychat/parley/internal/safetynumber"
)

func (c *Client) contactState(ctx context.Context, h string) (string, error) {
	var st string
	err := c.db.View(ctx, func(tx *clientdb.Tx) error {
		var err error
		st, err = tx.ContactState(h)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("client: %w", err)
	}
	return st, nil
}

// History returns the last limit messages with peer (all when limit <= 0),
// oldest first.
func (c *Client) History(ctx context.Context, peer string, limit int) ([]Message, error) {
	h, err := normHandle(peer)
	if err != nil {
		return nil, err
	}
	var rows []*clientdb.Message
	var out []Message
	if err := c.db.View(ctx, func(tx *clientdb.Tx) error {
		if rows, err = tx.History(h, limit); err != nil {
			return err
		}
		out = make([]Message, len(rows))
		for i, r := range rows {
			out[i] = messageFromRow(r)
		}
		if err := addQuotes(tx, out); err != nil { // reply.go
			return err
		}
		return addReactions(tx, out) // reactions.go
	}); err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if err := c.addAttachments(ctx, rows, out); err != nil { // files.go
		return nil, err
	}
	return out, nil
}

// Conversations returns every conversation, the latest activity first.
func (c *Client) Conversations(ctx context.Context) ([]Conversation, error) {
	var out []Conversation
	err := c.db.View(ctx, func(tx *clientdb.Tx) error {
		cs, err := tx.Conversations()
		if err != nil {
			return err
		}
		for _, s := range cs {
			st, err := tx.ContactState(s.Peer)
			if err != nil {
				return err
			}
			m := messageFromRow(s.Last)
			out = append(out, Conversation{Peer: s.Peer, Last: &m, Unread: s.Unread, Request: s.Request && st == ""})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return out, nil
}

// MarkRead marks peer's received messages read here, tells this account's
// other devices, and, with read receipts on and peer a contact, tells the
// peer. Sending happens now if possible, else on the next Sync/Run.
func (c *Client) MarkRead(ctx context.Context, peer string) error {
	me, err := c.self()
	if err != nil {
		return err
	}
	h, err := normHandle(peer)
	if err != nil {
		return err
	}
	receipts := c.ReadReceipts()
	var queued []string
	err = c.db.Update(ctx, func(tx *clientdb.Tx) error {
		ids, err := tx.UnreadIDs(h)
		if err != nil || len(ids) == 0 {
			return err
		}
		if _, err := tx.RaiseStatus(h, false, ids, clientdb.StatusRead); err != nil {
			return err
		}
		if err := startExpiry(tx, h, ids); err != nil { // vanish.go
			return err
		}
		st, err := tx.ContactState(h)
		if err != nil {
			return err
		}
		to := me.handle // only the own devices
		if receipts && st == clientdb.StateContact {
			to = h
		}
		for len(ids) > 0 {
			n := min(len(ids), maxRefs)
			ct := &content.Content{Kind: content.KindRead, To: h}
			for _, id := range ids[:n] {
				ref, ok := parseID(id)
				if ok {
					ct.Refs = append(ct.Refs, ref)
				}
			}
			ids = ids[n:]
			if err := queueControl(tx, to, ct); err != nil {
				return err
			}
			queued = append(queued, hex.EncodeToString(ct.ID[:]))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	for _, id := range queued {
		if err := c.deliverOpt(ctx, id, false); err != nil && !errors.Is(err, errInflight) {
			c.log.Info("read receipt queued for later", "err", err)
		}
	}
	return nil
}

// parseID parses a 32-hex-digit message id.
func parseID(s string) ([16]byte, bool) {
	var id [16]byte
	if len(s) != 32 {
		return id, false
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, false
	}
	return id, true
}

// Contacts returns the contact list (contacts, blocked and rejected
// handles).
func (c *Client) Contacts(ctx context.Context) ([]Contact, error) {
	var out []Contact
	err := c.db.View(ctx, func(tx *clientdb.Tx) error {
		cs, err := tx.Contacts()
		if err != nil {
			return err
		}
		for _, ct := range cs {
			e := Contact{Handle: ct.Handle, State: ct.State}
			p, err := tx.Peer(ct.Handle)
			if err == nil {
				e.Verified, e.KeyChanged = p.Verified, p.KeyChanged
			} else if !errors.Is(err, clientdb.ErrNotFound) {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return out, nil
}

// AddContact makes handle a contact (it must exist on the server); its
// held request messages become ordinary history.
func (c *Client) AddContact(ctx context.Context, handle string) error {
	me, err := c.self()
	if err != nil {
		return err
	}
	h, err := normHandle(handle)
	if err != nil {
		return err
	}
	if h == me.handle {
		return ErrSelf
	}
	if _, err := c.peer(ctx, h); err != nil {
		return err
	}
	return c.setState(ctx, h, clientdb.StateContact, func(tx *clientdb.Tx) error { return tx.SetRequest(h, false) })
}

// RemoveContact forgets handle's contact entry (whatever its state); its
// next messages arrive as a request.
func (c *Client) RemoveContact(ctx context.Context, handle string) error {
	h, err := normHandle(handle)
	if err != nil {
		return err
	}
	return c.setState(ctx, h, "", nil)
}

// Requests returns the handles whose messages are held as requests.
func (c *Client) Requests(ctx context.Context) ([]Request, error) {
	var out []Request
	err := c.db.View(ctx, func(tx *clientdb.Tx) error {
		rs, err := tx.Requests()
		if err != nil {
			return err
		}
		for _, r := range rs {
			st, err := tx.ContactState(r.Handle)
			if err != nil {
				return err
			}
			if st == "" {
				out = append(out, Request{Handle: r.Handle, Messages: r.Messages, First: r.First})
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return out, nil
}

// AcceptRequest makes handle a contact; its held messages become ordinary
// history.
func (c *Client) AcceptRequest(ctx context.Context, handle string) error {
	h, err := normHandle(handle)
	if err != nil {
		return err
	}
	return c.setState(ctx, h, clientdb.StateContact, func(tx *clientdb.Tx) error { return tx.SetRequest(h, false) })
}

// RejectRequest deletes handle's held messages and drops its later ones.
func (c *Client) RejectRequest(ctx context.Context, handle string) error {
	h, err := normHandle(handle)
	if err != nil {
		return err
	}
	return c.setState(ctx, h, clientdb.StateRejected, func(tx *clientdb.Tx) error { return tx.DeleteRequestMessages(h) })
}

// Block drops every later message from handle (history is kept).
func (c *Client) Block(ctx context.Context, handle string) error {
	h, err := normHandle(handle)
	if err != nil {
		return err
	}
	return c.setState(ctx, h, clientdb.StateBlocked, nil)
}

// Unblock lifts a block: handle is a contact again if this account ever
// talked with it, else its next messages arrive as a request.
func (c *Client) Unblock(ctx context.Context, handle string) error {
	h, err := normHandle(handle)
	if err != nil {
		return err
	}
	var state string
	err = c.db.View(ctx, func(tx *clientdb.Tx) error {
		hist, err := tx.History(h, 0)
		for _, m := range hist {
			if !m.Request {
				state = clientdb.StateContact
			}
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	return c.setState(ctx, h, state, nil)
}

// setState changes a contact entry (with extra changes in the same
// transaction) and syncs the contact list to the other own devices.
func (c *Client) setState(ctx context.Context, h, state string, extra func(tx *clientdb.Tx) error) error {
	if _, err := c.self(); err != nil {
		return err
	}
	err := c.db.Update(ctx, func(tx *clientdb.Tx) error {
		if err := tx.SetContact(h, state); err != nil {
			return err
		}
		if extra != nil {
			return extra(tx)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	c.syncContacts(ctx)
	return nil
}

// contactList builds the contact list as it travels to other own devices.
func contactList(tx *clientdb.Tx) ([]content.Contact, error) {
	cs, err := tx.Contacts()
	if err != nil {
		return nil, err
	}
	out := make([]content.Contact, 0, len(cs))
	for _, ct := range cs {
		e := content.Contact{Handle: ct.Handle}
		switch ct.State {
		case clientdb.StateContact:
			e.State = content.ContactAccepted
		case clientdb.StateBlocked:
			e.State = content.ContactBlocked
		default:
			e.State = content.ContactRejected
		}
		p, err := tx.Peer(ct.Handle)
		if err == nil {
			e.IdentityKey, e.Verified = p.PinnedKey, p.Verified && !p.KeyChanged
		} else if !errors.Is(err, clientdb.ErrNotFound) {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// syncContacts sends the whole contact list to the own other devices (if
// there are any), now or on the next Sync/Run. Failures are logged: the
// list stays queued.
func (c *Client) syncContacts(ctx context.Context) {
	defer c.refreshBackupQuietly(ctx) // the PIN backup holds the contacts too (pin.go)
	me, err := c.self()
	if err != nil {
		return
	}
	own, err := c.storedPeer(ctx, me.handle)
	if err != nil || own == nil || own.list == nil || len(own.list.Devices) < 2 {
		return
	}
	var id [16]byte
	err = c.db.Update(ctx, func(tx *clientdb.Tx) error {
		cs, err := contactList(tx)
		if err != nil {
			return err
		}
		ct := &content.Content{Kind: content.KindContactSync, To: me.handle, Contacts: cs}
		if err := queueControl(tx, me.handle, ct); err != nil {
			return err
		}
		id = ct.ID
		return nil
	})
	if err != nil {
		c.log.Warn("queueing the contact list for the other devices", "err", err)
		return
	}
	if err := c.deliverOpt(ctx, hex.EncodeToString(id[:]), false); err != nil && !errors.Is(err, errInflight) {
		c.log.Info("contact list queued for the other devices", "err", err)
	}
}

// importContacts replaces the contact list with one from another own
// device (sync or linking). Keys it carries are pinned for handles not
// seen yet; a verified mark is taken when the keys agree.
func importContacts(tx *clientdb.Tx, own string, cs []content.Contact) error {
	if err := tx.ClearContacts(); err != nil {
		return err
	}
	for _, ct := range cs {
		h, err := normHandle(ct.Handle)
		if err != nil || h == own {
			continue
		}
		var state string
		switch ct.State {
		case content.ContactAccepted:
			state = clientdb.StateContact
		case content.ContactBlocked:
			state = clientdb.StateBlocked
		case content.ContactRejected:
			state = clientdb.StateRejected
		default:
			continue
		}
		if err := tx.SetContact(h, state); err != nil {
			return err
		}
		if state == clientdb.StateContact {
			if err := tx.SetRequest(h, false); err != nil {
				return err
			}
		}
		if len(ct.IdentityKey) != ed25519.PublicKeySize {
			continue
		}
		p, err := tx.Peer(h)
		switch {
		case errors.Is(err, clientdb.ErrNotFound):
			// Pin the key the other device saw; the device list comes
			// from the server when it is first needed.
			p = &clientdb.Peer{Handle: h, PinnedKey: ct.IdentityKey, CurrentKey: ct.IdentityKey, Verified: ct.Verified}
		case err != nil:
			return err
		case bytes.Equal(p.PinnedKey, ct.IdentityKey):
			if ct.Verified {
				p.Verified = true
			}
		case bytes.Equal(p.CurrentKey, ct.IdentityKey) && ct.Verified:
			// The other device accepted the new key.
			p.PinnedKey, p.KeyChanged, p.Verified = ct.IdentityKey, false, true
		default:
			continue
		}
		if err := tx.PutPeer(p); err != nil {
			return err
		}
	}
	return nil
}

// SafetyNumber returns the safety number with handle, for the peer's
// current key: when KeyChanged is set, that is the new key, which
// MarkVerified would pin.
func (c *Client) SafetyNumber(ctx context.Context, handle string) (SafetyNumber, error) {
	me, err := c.self()
	if err != nil {
		return SafetyNumber{}, err
	}
	h, err := normHandle(handle)
	if err != nil {
		return SafetyNumber{}, err
	}
	// Ask the server for the current key, so a change shows now; offline,
	// the stored key serves.
	p, err := c.refreshPeer(ctx, h)
	var ae *APIError
	if err != nil && !errors.As(err, &ae) && !errors.Is(err, ErrUnknownHandle) {
		c.log.Info("using the stored identity key", "peer", h, "err", err)
		p, err = c.storedPeer(ctx, h)
		if err == nil && p == nil {
			err = fmt.Errorf("%w: @%s", ErrUnknownHandle, h)
		}
	}
	if err != nil {
		return SafetyNumber{}, err
	}
	num, qr := safetynumber.Compute(me.handle, me.accountKey.Public(), h, p.key)
	return SafetyNumber{Peer: h, Number: num, QR: qr, Verified: p.verified && !p.keyChanged, KeyChanged: p.keyChanged}, nil
}

// MarkVerified records that the user compared the safety number with
// handle: the peer's current key is pinned and marked verified, and a key
// change warning is cleared.
func (c *Client) MarkVerified(ctx context.Context, handle string) error {
	h, err := normHandle(handle)
	if err != nil {
		return err
	}
	if _, err := c.peer(ctx, h); err != nil {
		return err
	}
	err = c.db.Update(ctx, func(tx *clientdb.Tx) error {
		p, err := tx.Peer(h)
		if err != nil {
			return err
		}
		p.PinnedKey, p.KeyChanged, p.Verified = p.CurrentKey, false, true
		return tx.PutPeer(p)
	})
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	c.syncContacts(ctx)
	return nil
}
