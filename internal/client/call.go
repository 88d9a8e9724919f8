package client

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/client/clientdb"
	"github.com/parleychat/parley/internal/content"
)

// Call event types.
const (
	EventCall       = "call"        // Call: a call signalling message (offer, answer, ringing, hangup, ...)
	EventMissedCall = "missed_call" // Message: a call rang here and ended unanswered; the entry is in the history
)

// CallSignal is a call signalling message as received. Signals travel
// like text messages: end-to-end encrypted, to every device of the peer
// and, as copies, to the sender's own other devices.
type CallSignal struct {
	content.Call
	Peer string // the other party of the call
	From string // the sender: Peer, or this account's handle for a copy from another own device
	// SenderDevice is the sending device (Call.Device is the device the
	// signal is for, or 0).
	SenderDevice uint32
	SentAt       time.Time // the sender's clock
	ServerTime   time.Time // when the server stored it (compare with now to drop stale offers)
}

// Own reports whether the signal comes from another device of this
// account (a copy of what it sent to Peer).
func (s *CallSignal) Own() bool { return s.From != s.Peer }

// TURN asks the server for TURN/STUN servers and credentials for a call.
// ICEServers is empty if the server runs no relay.
func (c *Client) TURN(ctx context.Context) (api.TURNCredentials, error) {
	var out api.TURNCredentials
	if err := c.call(ctx, http.MethodGet, api.PathTURN, nil, &out, true); err != nil {
		return api.TURNCredentials{}, fmt.Errorf("client: fetching TURN credentials: %w", err)
	}
	return out, nil
}

// SendCall sends a call signalling message to every device of handle and
// to this account's other devices. Like typing, it is not queued: if it
// cannot be sent now the error says why and nothing is retried.
func (c *Client) SendCall(ctx context.Context, handle string, call *content.Call) error {
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
	if call == nil {
		return fmt.Errorf("client: no call signal to send")
	}
	state, err := c.contactState(ctx, h)
	if err != nil {
		return err
	}
	if state == clientdb.StateBlocked {
		return fmt.Errorf("%w: @%s", ErrBlocked, h)
	}
	id := randomID()
	ct := content.Content{Kind: content.KindCall, ID: id, SentAt: time.Now().UnixMilli(), To: h, Call: call}
	b, err := ct.Marshal()
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	item := &clientdb.OutboxItem{ID: hex.EncodeToString(id[:]), To: h, Kind: uint8(content.KindCall), Content: b}
	if err := c.db.Update(ctx, func(tx *clientdb.Tx) error { return tx.PutOutbox(item) }); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if err := c.deliver(ctx, item.ID); err != nil {
		_ = c.db.Update(context.WithoutCancel(ctx), func(tx *clientdb.Tx) error { return tx.DeleteOutbox(item.ID) })
		return err
	}
	switch call.Type {
	case content.CallAnswer, content.CallDecline:
		c.rings.handled(call.ID) // taken or refused here: not a missed call
	}
	return nil
}

const settingRelayOnly = "relay_only"

// RelayOnly reports whether this device's calls use the TURN relay only
// (off by default): the other party then never learns the device's IP
// addresses, at the cost of a detour through the server.
func (c *Client) RelayOnly() bool {
	on := false
	_ = c.db.View(context.Background(), func(tx *clientdb.Tx) error {
		v, err := tx.Setting(settingRelayOnly, "off")
		on = v == "on"
		return err
	})
	return on
}

// SetRelayOnly turns relay-only calls on or off for this device.
func (c *Client) SetRelayOnly(ctx context.Context, on bool) error {
	v := "off"
	if on {
		v = "on"
	}
	return c.db.Update(ctx, func(tx *clientdb.Tx) error { return tx.PutSetting(settingRelayOnly, v) })
}

// maxRings bounds the calls remembered for missed-call entries.
const maxRings = 64

// rings remembers the calls that rang on this device until they end, to
// write a "missed call" entry for one that ended unanswered. It lives in
// memory: a process that stops while a call rings writes no entry.
type rings struct {
	mu    sync.Mutex
	calls map[[16]byte]*ring
	order [][16]byte
}

type ring struct {
	peer    string
	device  uint32
	media   content.Media
	sentAt  time.Time
	handled bool // answered or declined by some device of this account
}

func (r *rings) add(id [16]byte, g *ring) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.calls == nil {
		r.calls = map[[16]byte]*ring{}
	}
	if _, ok := r.calls[id]; ok {
		return
	}
	r.calls[id] = g
	r.order = append(r.order, id)
	for len(r.order) > maxRings {
		delete(r.calls, r.order[0])
		r.order = r.order[1:]
	}
}

func (r *rings) handled(id [16]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if g, ok := r.calls[id]; ok {
		g.handled = true
	}
}

// end forgets a call; it returns the call if it rang and no device of
// this account took or declined it, and whether it was known at all.
func (r *rings) end(id [16]byte) (*ring, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	g, ok := r.calls[id]
	if !ok {
		return nil, false
	}
	delete(r.calls, id)
	for i, o := range r.order {
		if o == id {
			r.order = append(r.order[:i], r.order[i+1:]...)
			break
		}
	}
	if g.handled {
		return nil, true
	}
	return g, true
}

// onCall turns a received call signal into events, inside the receive
// transaction; a call that ended unanswered becomes a history entry.
// from is the sender's handle, peer the other party of the call, own
// whether from is this account (a copy from another own device).
func (c *Client) onCall(tx *clientdb.Tx, own bool, from, peer, state string, env *api.Envelope, ct *content.Content) ([]Event, error) {
	if ct.Call == nil {
		return nil, nil
	}
	if !own && state != clientdb.StateContact {
		// Only contacts can ring: a call from a stranger (a message
		// request) would be a way to reach past the request screen.
		c.log.Info("ignoring a call signal from a handle that is not a contact", "from", from, "type", ct.Call.Type.String())
		return nil, nil
	}
	sig := &CallSignal{
		Call: *ct.Call, Peer: peer, From: from, SenderDevice: env.SenderDevice,
		SentAt: time.UnixMilli(ct.SentAt), ServerTime: time.UnixMilli(env.ServerTime),
	}
	evs := []Event{{Type: EventCall, Peer: peer, Device: env.SenderDevice, Call: sig}}
	call := ct.Call
	switch {
	case !own && call.Type == content.CallOffer:
		c.rings.add(call.ID, &ring{peer: peer, device: env.SenderDevice, media: call.Media, sentAt: sig.SentAt})
	case own && (call.Type == content.CallAnswer || call.Type == content.CallDecline):
		c.rings.handled(call.ID)
	case !own && call.Type == content.CallAnsweredElsewhere:
		c.rings.handled(call.ID)
	case !own && call.Type == content.CallHangup:
		// A hang-up for every device (device 0) ends a call nobody took:
		// the caller gave up, or a callee device was busy. A device that
		// did not see the offer (another process read it) still records
		// the miss, from what the hang-up says.
		g, known := c.rings.end(call.ID)
		if !known && call.Device == 0 {
			g = &ring{peer: peer, device: env.SenderDevice, media: call.Media, sentAt: sig.SentAt}
		}
		if g != nil && call.Device == 0 {
			ev, err := missedCall(tx, call.ID, g)
			if err != nil {
				return nil, err
			}
			if ev != nil {
				evs = append(evs, *ev)
			}
		}
	}
	return evs, nil
}

// missedCall stores the history entry of a missed call (idempotent: the
// entry's id is the call's).
func missedCall(tx *clientdb.Tx, id [16]byte, g *ring) (*Event, error) {
	text := "Missed voice call"
	if g.media&content.MediaVideo != 0 {
		text = "Missed video call"
	}
	m := &clientdb.Message{
		ID: hex.EncodeToString(id[:]), Peer: g.peer, Sender: g.peer, Device: g.device,
		SentAt: g.sentAt, ReceivedAt: time.Now(), Text: text, Status: clientdb.StatusReceived,
	}
	ins, err := tx.InsertMessage(m)
	if err != nil || !ins {
		return nil, err
	}
	msg := messageFromRow(m)
	return &Event{Type: EventMissedCall, Message: &msg, Peer: g.peer, Device: g.device}, nil
}
