package client

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/client/clientdb"
	"github.com/parleychat/parley/internal/content"
	"github.com/parleychat/parley/internal/devicelist"
	"github.com/parleychat/parley/internal/pqxdh"
	"github.com/parleychat/parley/internal/session"
)

// maxSendTries bounds the retries of one send after device mismatches.
const maxSendTries = 4

// maxRefs bounds the message ids one receipt carries.
const maxRefs = 100

// Send sends text to handle's devices and to this account's other
// devices, and returns once the server committed it. Messaging a handle
// that is not a contact makes it one (and accepts its request, if any).
// If the server cannot be reached the message stays queued (Status
// "sending") and Sync/Run send it later; the error says why.
func (c *Client) Send(ctx context.Context, handle, text string) (Message, error) {
	return c.SendReply(ctx, handle, text, "")
}

// SendReply is Send of a message that answers message replyTo of the
// conversation (ErrUnknownMessage if this device does not have it there);
// "" sends a plain message (reply.go).
func (c *Client) SendReply(ctx context.Context, handle, text, replyTo string) (Message, error) {
	me, err := c.self()
	if err != nil {
		return Message{}, err
	}
	h, err := normHandle(handle)
	if err != nil {
		return Message{}, err
	}
	if h == me.handle {
		return Message{}, ErrSelf
	}
	if text == "" {
		return Message{}, errors.New("client: the message is empty")
	}
	if len(text) > MaxTextBytes {
		return Message{}, fmt.Errorf("%w (%d bytes; at most %d)", ErrTooLong, len(text), MaxTextBytes)
	}
	state, err := c.contactState(ctx, h)
	if err != nil {
		return Message{}, err
	}
	if state == clientdb.StateBlocked {
		return Message{}, fmt.Errorf("%w: @%s", ErrBlocked, h)
	}
	p, err := c.peer(ctx, h)
	if err != nil {
		return Message{}, err
	}
	if p.keyChanged && p.verified {
		return Message{}, fmt.Errorf("%w (@%s)", ErrKeyChanged, h)
	}
	id := randomID()
	now := time.Now()
	ct := content.Content{Kind: content.KindText, ID: id, SentAt: now.UnixMilli(), To: h, Text: text}
	err = c.db.View(ctx, func(tx *clientdb.Tx) error { // the conversation's vanishing timer (vanish.go)
		var err error
		if ct.Timer, err = timerFor(tx, h); err != nil {
			return err
		}
		ct.ReplyTo, err = replyTarget(tx, h, replyTo) // reply.go
		return err
	})
	if errors.Is(err, ErrUnknownMessage) {
		return Message{}, err
	}
	if err != nil {
		return Message{}, fmt.Errorf("client: %w", err)
	}
	b, err := ct.Marshal()
	if err != nil {
		return Message{}, fmt.Errorf("client: %w", err)
	}
	row := &clientdb.Message{
		ID: hex.EncodeToString(id[:]), Peer: h, Sender: me.handle, Device: me.deviceID,
		SentAt: time.UnixMilli(ct.SentAt), ReceivedAt: now, Text: text, Outgoing: true, Status: clientdb.StatusSending,
		Timer: ct.Timer, ExpiresAt: expiryOf(now, ct.Timer), ReplyTo: replyID(&ct),
	}
	item := &clientdb.OutboxItem{ID: row.ID, To: h, Kind: uint8(content.KindText), Content: b}
	becameContact := false
	err = c.db.Update(ctx, func(tx *clientdb.Tx) error {
		if _, err := tx.InsertMessage(row); err != nil {
			return err
		}
		if err := tx.PutOutbox(item); err != nil {
			return err
		}
		st, err := tx.ContactState(h)
		if err != nil {
			return err
		}
		if st == "" || st == clientdb.StateRejected {
			becameContact = true
			if err := tx.SetContact(h, clientdb.StateContact); err != nil {
				return err
			}
			return tx.SetRequest(h, false)
		}
		return nil
	})
	if err != nil {
		return Message{}, fmt.Errorf("client: %w", err)
	}
	if becameContact {
		c.syncContacts(ctx)
	}
	err = c.deliver(ctx, item.ID)
	if err != nil && !temporary(err) {
		row.Status = clientdb.StatusFailed
	} else if err == nil {
		row.Status = clientdb.StatusSent
	}
	// A receipt may have raced ahead of us, or another goroutine sent it:
	// report the stored status.
	_ = c.db.View(ctx, func(tx *clientdb.Tx) error {
		if m, err := tx.OutgoingMessage(row.ID); err == nil {
			row.Status = m.Status
		}
		return nil
	})
	if err == nil && row.Status == clientdb.StatusFailed {
		err = errors.New("client: the server refused the message")
	}
	return messageFromRow(row), err
}

// SendTyping tells handle that this user started or stopped typing. It is
// not queued: if it cannot be sent now it is dropped.
func (c *Client) SendTyping(ctx context.Context, handle string, typing bool) error {
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
	id := randomID()
	ct := content.Content{Kind: content.KindTyping, ID: id, SentAt: time.Now().UnixMilli(), To: h, Typing: typing}
	b, err := ct.Marshal()
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	item := &clientdb.OutboxItem{ID: hex.EncodeToString(id[:]), To: h, Kind: uint8(content.KindTyping), Content: b}
	if err := c.db.Update(ctx, func(tx *clientdb.Tx) error { return tx.PutOutbox(item) }); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	err = c.deliver(ctx, item.ID)
	if err != nil {
		_ = c.db.Update(context.WithoutCancel(ctx), func(tx *clientdb.Tx) error { return tx.DeleteOutbox(item.ID) })
	}
	return err
}

// queueControl stores a control message (receipt, contact sync) in the
// outbox inside tx; flushOutbox sends it.
func queueControl(tx *clientdb.Tx, to string, ct *content.Content) error {
	ct.ID = randomID()
	ct.SentAt = time.Now().UnixMilli()
	b, err := ct.Marshal()
	if err != nil {
		return err
	}
	return tx.PutOutbox(&clientdb.OutboxItem{ID: hex.EncodeToString(ct.ID[:]), To: to, Kind: uint8(ct.Kind), Content: b, Refs: len(ct.Refs)})
}

// queueReceipt adds a receipt for message id to `to`, merged into a
// receipt of the same kind not yet sent when there is one.
func queueReceipt(tx *clientdb.Tx, to, conv string, kind content.Kind, id [16]byte) error {
	o, err := tx.MergeableOutbox(to, uint8(kind), maxRefs)
	if err == nil {
		ct, err := content.Unmarshal(o.Content)
		if err == nil && ct.To == conv {
			ct.Refs = append(ct.Refs, id)
			b, err := ct.Marshal()
			if err != nil {
				return err
			}
			o.Content, o.Refs = b, len(ct.Refs)
			return tx.PutOutbox(o)
		}
	} else if !errors.Is(err, clientdb.ErrNotFound) {
		return err
	}
	return queueControl(tx, to, &content.Content{Kind: kind, To: conv, Refs: [][16]byte{id}})
}

// flushOutbox sends everything waiting in the outbox, oldest first. Items
// the server refuses for good are dropped (a text message is marked
// failed); the others stay for the next try. It returns the first error
// that stopped it.
func (c *Client) flushOutbox(ctx context.Context) error {
	var items []*clientdb.OutboxItem
	if err := c.db.View(ctx, func(tx *clientdb.Tx) error {
		var err error
		items, err = tx.Outbox()
		return err
	}); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	for _, o := range items {
		err := c.deliverOpt(ctx, o.ID, false)
		if err == nil || errors.Is(err, errInflight) {
			continue
		}
		if temporary(err) {
			return err
		}
		c.log.Warn("the server refused a queued message; dropping it", "id", o.ID, "to", o.To, "err", err)
	}
	return nil
}

// errNoDevice: no device of the recipient could get a session yet (none
// has published prekeys); the message stays queued.
var errNoDevice = errors.New("client: no device of the recipient can receive yet (no prekeys published); the message stays queued")

// errInflight: another goroutine is sending this item right now.
var errInflight = errors.New("client: already being sent")

// deliver sends outbox item id: it encrypts it for every device of the
// recipient and every other own device (starting sessions where none
// exist), posts it, and on a device mismatch refreshes the device lists
// and tries again with the same message id. Success deletes the item and
// marks a text message sent; a refusal for good deletes it and marks a
// text message failed.
func (c *Client) deliver(ctx context.Context, id string) error {
	return c.deliverOpt(ctx, id, true)
}

// deliverOpt is deliver; if another goroutine is sending the item, it
// waits for that (wait) or returns errInflight.
func (c *Client) deliverOpt(ctx context.Context, id string, wait bool) error {
	for {
		c.mu.Lock()
		busy, ok := c.inflight[id]
		if !ok {
			done := make(chan struct{})
			c.inflight[id] = done
			c.mu.Unlock()
			defer func() {
				c.mu.Lock()
				delete(c.inflight, id)
				c.mu.Unlock()
				close(done)
			}()
			break
		}
		c.mu.Unlock()
		if !wait {
			return errInflight
		}
		select {
		case <-busy:
		case <-ctx.Done():
			return ctx.Err()
		}
	}

	var err error
	for try := 1; try <= maxSendTries; try++ {
		var req *api.SendRequest
		req, err = c.encrypt(ctx, id)
		if errors.Is(err, clientdb.ErrNotFound) {
			return nil // sent meanwhile (by another process)
		}
		if err != nil {
			break
		}
		if req == nil {
			// Nothing to send to: a message to the own account, which has
			// no other device.
			return c.finish(ctx, id, true)
		}
		err = c.postMessage(ctx, req)
		if err == nil {
			return c.finish(ctx, id, true)
		}
		var ae *APIError
		if !errors.As(err, &ae) || ae.Code != api.CodeDeviceMismatch {
			break
		}
		c.log.Info("device lists changed; refreshing and sending again", "id", id, "mismatch", describeMismatch(ae.Mismatch))
		if err = c.refreshMismatched(ctx, req, ae.Mismatch); err != nil {
			break
		}
		if try == maxSendTries {
			err = fmt.Errorf("%w: %w", ErrDeviceMismatch, ae)
		}
	}
	if err != nil && !temporary(err) {
		if ferr := c.finish(context.WithoutCancel(ctx), id, false); ferr != nil {
			c.log.Warn("dropping a refused message", "id", id, "err", ferr)
		}
	}
	return err
}

func describeMismatch(ms []api.DeviceMismatch) string {
	var parts []string
	for _, m := range ms {
		parts = append(parts, fmt.Sprintf("@%s missing %v extra %v", m.Handle, m.Missing, m.Extra))
	}
	return strings.Join(parts, "; ")
}

// refreshMismatched refetches the device lists of the accounts a device
// mismatch named (or, if it named none, of both accounts of the send).
func (c *Client) refreshMismatched(ctx context.Context, req *api.SendRequest, ms []api.DeviceMismatch) error {
	me, err := c.self()
	if err != nil {
		return err
	}
	handles := []string{}
	for _, m := range ms {
		if h, err := normHandle(m.Handle); err == nil && !slices.Contains(handles, h) {
			handles = append(handles, h)
		}
	}
	if len(handles) == 0 {
		handles = []string{req.To, me.handle}
	}
	for _, h := range handles {
		if _, err := c.refreshPeer(ctx, h); err != nil {
			return err
		}
	}
	return nil
}

// finish ends an outbox item: deleted, and for a text message the status
// set to sent (ok) or failed.
func (c *Client) finish(ctx context.Context, id string, ok bool) error {
	return c.db.Update(ctx, func(tx *clientdb.Tx) error {
		o, err := tx.OutboxItem(id)
		if errors.Is(err, clientdb.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if k := content.Kind(o.Kind); k == content.KindText || k == content.KindTimer {
			if ok {
				err = tx.MarkSent(id)
			} else {
				err = tx.SetOutgoingStatus(id, clientdb.StatusFailed)
			}
			if err != nil {
				return err
			}
		}
		return tx.DeleteOutbox(id)
	})
}

// target is one device a message is encrypted for.
type target struct {
	peer *peer
	dev  devicelist.Device
}

// encrypt builds the SendRequest for outbox item id: one frame per device
// of the recipient and per other own device. Devices without a session get
// one from a fresh prekey bundle. The sessions' new states are committed
// before the frames leave, in the transaction that counts the attempt, so
// no message key is ever used twice. It returns nil for a message to the
// own account when there is no other own device.
func (c *Client) encrypt(ctx context.Context, id string) (*api.SendRequest, error) {
	me, err := c.self()
	if err != nil {
		return nil, err
	}
	var item *clientdb.OutboxItem
	if err := c.db.View(ctx, func(tx *clientdb.Tx) error {
		item, err = tx.OutboxItem(id)
		return err
	}); err != nil {
		return nil, err
	}
	targets, err := c.targets(ctx, me, item.To)
	if err != nil {
		return nil, err
	}
	if len(targets) == 0 {
		return nil, nil
	}
	// Start sessions with the devices that have none. Fetching bundles may
	// refresh a device list, so read the targets again after.
	fresh, err := c.startSessions(ctx, me, targets)
	if err != nil {
		return nil, err
	}
	if targets, err = c.targets(ctx, me, item.To); err != nil {
		return nil, err
	}

	req := &api.SendRequest{MessageID: id, To: item.To}
	setSendExpiry(req, item) // vanish.go
	err = c.db.Update(ctx, func(tx *clientdb.Tx) error {
		// Re-read the item: a receipt may have been merged into it.
		item, err := tx.OutboxItem(id)
		if err != nil {
			return err
		}
		if err := tx.AttemptOutbox(id); err != nil {
			return err
		}
		req.Envelopes = req.Envelopes[:0]
		for _, t := range targets {
			key := sessionKey(t.peer.handle, t.dev.ID)
			var s *session.Session
			var bk []byte
			stored, err := tx.Sessions(t.peer.handle, t.dev.ID)
			if err != nil {
				return err
			}
			isNew := false
			switch {
			case len(stored) > 0:
				if s, err = session.Unmarshal(stored[0].State); err != nil {
					return fmt.Errorf("client: stored session with @%s/%d: %w", t.peer.handle, t.dev.ID, err)
				}
				bk = stored[0].BaseKey
			case fresh[key] != nil:
				s, bk, isNew = fresh[key], fresh[key].BaseKey(), true
			default:
				// No bundle was served for it (it has not uploaded prekeys
				// yet): leave it out; the server's mismatch answer retries.
				c.log.Warn("no session with a device; leaving it out", "peer", t.peer.handle, "device", t.dev.ID)
				continue
			}
			frame, err := s.Encrypt(item.Content)
			if err != nil {
				return fmt.Errorf("client: encrypting for @%s/%d: %w", t.peer.handle, t.dev.ID, err)
			}
			state, err := s.MarshalBinary()
			if err != nil {
				return err
			}
			row := &clientdb.Session{Handle: t.peer.handle, Device: t.dev.ID, BaseKey: bk, State: state}
			if isNew {
				err = tx.PutSession(row)
			} else {
				err = tx.UpdateSessionState(row)
			}
			if err != nil {
				return err
			}
			req.Envelopes = append(req.Envelopes, api.OutgoingEnvelope{Handle: t.peer.handle, DeviceID: t.dev.ID, Ciphertext: frame})
		}
		if len(req.Envelopes) == 0 {
			return errNoDevice
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return req, nil
}

// targets lists the devices a message to `to` is encrypted for: every
// device of to, and every own device but this one.
func (c *Client) targets(ctx context.Context, me self, to string) ([]target, error) {
	var out []target
	if to != me.handle {
		p, err := c.peer(ctx, to)
		if err != nil {
			return nil, err
		}
		for _, d := range p.list.Devices {
			out = append(out, target{p, d})
		}
	}
	own, err := c.peer(ctx, me.handle)
	if err != nil {
		return nil, err
	}
	for _, d := range own.list.Devices {
		if d.ID != me.deviceID {
			out = append(out, target{own, d})
		}
	}
	return out, nil
}

func sessionKey(handle string, dev uint32) string {
	return handle + "/" + strconv.FormatUint(uint64(dev), 10)
}

// local is this device as a session endpoint.
func (me self) local() session.Local {
	return session.Local{
		Address: session.Address{Handle: me.handle, DeviceID: me.deviceID, IdentityKey: me.accountKey.Public()},
		Device:  me.deviceKey,
	}
}

func remote(p *peer, d devicelist.Device) session.Remote {
	return session.Remote{
		Address:    session.Address{Handle: p.handle, DeviceID: d.ID, IdentityKey: p.key},
		IdentityDH: d.DHKey,
	}
}

// startSessions fetches prekey bundles for the targets without a session
// and initiates sessions with them (not stored yet: encrypt stores them
// with their first frame).
func (c *Client) startSessions(ctx context.Context, me self, targets []target) (map[string]*session.Session, error) {
	need := map[string][]uint32{}
	var order []string
	err := c.db.View(ctx, func(tx *clientdb.Tx) error {
		for _, t := range targets {
			ss, err := tx.Sessions(t.peer.handle, t.dev.ID)
			if err != nil {
				return err
			}
			if len(ss) == 0 {
				if _, ok := need[t.peer.handle]; !ok {
					order = append(order, t.peer.handle)
				}
				need[t.peer.handle] = append(need[t.peer.handle], t.dev.ID)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	out := map[string]*session.Session{}
	for _, h := range order {
		ids := need[h]
		bs, err := c.bundles(ctx, h, ids)
		var ae *APIError
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound && len(ids) > 1 {
			// One of them is gone or has no prekeys yet: take them one by
			// one, so the others still get their sessions.
			bs = nil
			for _, id := range ids {
				b, err := c.bundles(ctx, h, []uint32{id})
				if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
					c.log.Info("no prekey bundle for a device", "peer", h, "device", id, "err", err)
					continue
				}
				if err != nil {
					return nil, err
				}
				bs = append(bs, b...)
			}
		} else if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			c.log.Info("no prekey bundle for a device", "peer", h, "device", ids, "err", err)
			continue
		} else if err != nil {
			return nil, err
		}
		for _, fb := range bs {
			p, b := fb.peer, fb.bundle
			d, ok := p.list.Device(b.DeviceID)
			if !ok || !slices.Contains(ids, b.DeviceID) {
				continue
			}
			pb := &pqxdh.Bundle{
				IdentityDH:      d.DHKey,
				SigningKey:      d.SigningKey,
				SignedPrekeyID:  b.SignedPrekey.ID,
				SignedPrekey:    b.SignedPrekey.Public,
				SignedPrekeySig: b.SignedPrekey.Signature,
				PQPrekeyID:      b.PQPrekey.ID,
				PQPrekey:        b.PQPrekey.Public,
				PQPrekeySig:     b.PQPrekey.Signature,
				PQLastResort:    b.PQLastResort,
			}
			if b.OneTime != nil {
				pb.OneTimeID, pb.OneTime = b.OneTime.ID, b.OneTime.Public
			}
			s, err := session.Initiate(me.local(), remote(p, d), pb)
			if err != nil {
				return nil, fmt.Errorf("client: starting a session with @%s device %d: %w", h, d.ID, err)
			}
			out[sessionKey(h, d.ID)] = s
		}
	}
	return out, nil
}

// fetchedBundle is one device's bundle with the account it was served
// with, verified.
type fetchedBundle struct {
	peer   *peer
	bundle api.Bundle
}

// bundles takes prekey bundles of h's devices ids from the server and
// checks the account (key and device list) served with them.
func (c *Client) bundles(ctx context.Context, h string, ids []uint32) ([]fetchedBundle, error) {
	var q []string
	for _, id := range ids {
		q = append(q, strconv.FormatUint(uint64(id), 10))
	}
	var bs api.Bundles
	if err := c.call(ctx, http.MethodGet, path(api.PathBundles, h)+"?devices="+strings.Join(q, ","), nil, &bs, true); err != nil {
		return nil, fmt.Errorf("client: fetching @%s's prekeys: %w", h, err)
	}
	p, err := c.applyAccount(ctx, h, bs.IdentityKey, bs.DeviceList)
	if err != nil {
		return nil, err
	}
	out := make([]fetchedBundle, len(bs.Bundles))
	for i, b := range bs.Bundles {
		out[i] = fetchedBundle{p, b}
	}
	return out, nil
}
