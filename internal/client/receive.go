package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/client/clientdb"
	"github.com/parleychat/parley/internal/content"
	"github.com/parleychat/parley/internal/session"
)

// Keepalive of the delivery stream.
const (
	pingInterval = 30 * time.Second
	pingTimeout  = 20 * time.Second
)

// Reconnect backoff of Run: full jitter between 0 and min(max, base·2^n).
const (
	backoffBase = 250 * time.Millisecond
	backoffMax  = 30 * time.Second
)

// Sync connects, receives everything pending, keeps receiving until wait
// has passed after the backlog was drained (wait 0: returns at drained),
// sends what is queued, and returns. fn gets every event, on the calling
// goroutine.
func (c *Client) Sync(ctx context.Context, wait time.Duration, fn func(Event)) error {
	if fn == nil {
		fn = func(Event) {}
	}
	c.listen(1)
	defer c.listen(-1)
	defer c.startSweeper(ctx)() // vanish.go
	return c.stream(ctx, fn, false, wait)
}

// Run stays connected and receives until ctx is done, reconnecting with
// exponential backoff and full jitter (250 ms to 30 s, reset after a
// successful connection). It returns ctx's error, or an error that
// retrying cannot fix: ErrDeviceRemoved, ErrNotRegistered, or ErrReplaced
// (another connection of this device, e.g. another process on the same
// home, took over the stream; the protocol says not to fight it). fn gets every
// event, on the calling goroutine.
func (c *Client) Run(ctx context.Context, fn func(Event)) error {
	if fn == nil {
		fn = func(Event) {}
	}
	c.listen(1)
	defer c.listen(-1)
	defer c.startSweeper(ctx)() // vanish.go
	failures := 0
	for {
		connected := false
		err := c.stream(ctx, func(ev Event) {
			if ev.Type == EventConnected {
				connected = true
			}
			fn(ev)
		}, true, 0)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, ErrDeviceRemoved) || errors.Is(err, ErrReplaced) || errors.Is(err, ErrNotRegistered) || errors.Is(err, ErrNoServer) {
			return err
		}
		if connected {
			failures = 0
		}
		d := backoff(failures)
		failures++
		c.log.Info("disconnected; reconnecting", "err", err, "in", d)
		fn(Event{Type: EventDisconnected, Detail: errString(err)})
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// backoff is the wait before reconnect attempt n (0-based): uniform in
// [0, min(backoffMax, backoffBase·2^n)].
func backoff(n int) time.Duration {
	limit := backoffMax
	if n < 20 {
		limit = min(backoffMax, backoffBase<<n)
	}
	return time.Duration(rand.Int64N(int64(limit) + 1))
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (c *Client) listen(d int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.listeners += d
}

// Close codes of the delivery stream (docs/PROTOCOL-api.md).
const (
	closeReplaced      websocket.StatusCode = 4000 // a newer connection of the same device
	closeDeviceRemoved websocket.StatusCode = 4001 // the device left the account's list
	frameDeviceList                         = "device_list"
)

// wsFrame is one frame read from the WebSocket, or the error that ended
// reading.
type wsFrame struct {
	f   api.Frame
	err error
}

// stream runs one connection: prekey top-up, outbox flush, then the
// WebSocket until the end of the Sync window (live: until it breaks).
func (c *Client) stream(ctx context.Context, fn func(Event), live bool, wait time.Duration) error {
	me, err := c.self()
	if err != nil {
		return err
	}
	if err := c.maintainPrekeys(ctx); err != nil {
		return err
	}
	if err := c.flushOutbox(ctx); err != nil {
		if errors.Is(err, ErrDeviceRemoved) {
			return err
		}
		c.log.Info("queued messages wait for the next try", "err", err)
	}
	conn, sends, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer conn.CloseNow()
	conn.SetReadLimit(8 << 20)

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if sends {
		c.sockets.attach(conn)
		defer c.sockets.detach(conn)
	}
	frames := make(chan wsFrame, 16)
	go func() {
		defer c.sockets.detach(conn)
		for {
			var f api.Frame
			_, data, err := conn.Read(cctx)
			if err == nil {
				err = json.Unmarshal(data, &f)
			}
			if err == nil && c.sockets.answer(&f) {
				continue // the answer to a send (wssend.go)
			}
			select {
			case frames <- wsFrame{f, err}:
			case <-cctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	// Ping the server now and then, so a connection that died silently is
	// noticed and replaced.
	pingErr := make(chan error, 1)
	go func() {
		t := time.NewTicker(pingInterval)
		defer t.Stop()
		for {
			select {
			case <-cctx.Done():
				return
			case <-t.C:
			}
			pctx, pcancel := context.WithTimeout(cctx, pingTimeout)
			err := conn.Ping(pctx)
			pcancel()
			if err != nil {
				pingErr <- err
				return
			}
		}
	}()
	fn(Event{Type: EventConnected})

	drained := false
	var timer <-chan time.Time
	// A device that stays connected tops up and rotates its prekeys too.
	maintain := time.NewTicker(prekeyCheck)
	defer maintain.Stop()
	deliverPending := func() {
		for _, ev := range c.takePending() {
			fn(ev)
		}
	}
	for {
		deliverPending()
		select {
		case <-ctx.Done():
			conn.Close(websocket.StatusNormalClosure, "")
			return ctx.Err()
		case <-c.wake:
			continue
		case <-maintain.C:
			if err := c.maintainPrekeys(ctx); err != nil {
				return err
			}
		case err := <-pingErr:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("client: the server stopped answering pings: %w", err)
		case <-timer:
			c.finishSync(ctx)
			deliverPending()
			conn.Close(websocket.StatusNormalClosure, "")
			return nil
		case wf := <-frames:
			if wf.err != nil {
				switch websocket.CloseStatus(wf.err) {
				case closeDeviceRemoved:
					return fmt.Errorf("%w: %w", ErrDeviceRemoved, wf.err)
				case closeReplaced:
					return fmt.Errorf("%w: %w", ErrReplaced, wf.err)
				}
				return fmt.Errorf("client: delivery stream: %w", wf.err)
			}
			switch wf.f.Type {
			case api.FrameEnvelope:
				if wf.f.Envelope == nil {
					continue
				}
				// Committed (or nothing to keep): show it, then acknowledge.
				// If the ack is lost the server delivers it again, and the
				// dedupe record keeps it from showing twice.
				evs, err := c.receive(ctx, me, wf.f.Envelope)
				if err != nil {
					return err
				}
				deliverPending()
				for _, ev := range evs {
					fn(ev)
				}
				if err := c.hook("before-ack"); err != nil {
					return err
				}
				if err := writeFrame(ctx, conn, api.Frame{Type: api.FrameAck, Seqs: []int64{wf.f.Envelope.Seq}}); err != nil {
					return fmt.Errorf("client: acknowledging: %w", err)
				}
				if drained {
					c.flushQuietly(ctx)
				}
			case api.FrameDrained:
				if drained {
					continue
				}
				drained = true
				c.importHistory(ctx, fn) // history.go
				if !live && wait <= 0 {
					c.finishSync(ctx)
					deliverPending()
					conn.Close(websocket.StatusNormalClosure, "")
					return nil
				}
				c.flushQuietly(ctx)
				if !live {
					timer = time.After(wait)
				}
			case api.FrameNotice: // a server notice about the account (pin.go)
				if err := c.onNotice(ctx, conn, wf.f.Notice, fn); err != nil {
					return err
				}
			case frameDeviceList:
				if h, err := normHandle(wf.f.Handle); err == nil {
					if _, err := c.refreshPeer(ctx, h); err != nil {
						c.log.Warn("refreshing a changed device list", "peer", h, "err", err)
					}
				}
			}
		}
	}
}

// maintainPrekeys tops up and rotates this device's prekeys. A failure is
// logged and tried again later, except that the device was removed.
func (c *Client) maintainPrekeys(ctx context.Context) error {
	err := c.topUpPrekeys(ctx)
	if errors.Is(err, ErrDeviceRemoved) {
		return err
	}
	if err != nil {
		c.log.Warn("prekey top-up or rotation failed", "err", err)
	}
	return nil
}

// finishSync sends what receiving queued (receipts) before Sync returns.
func (c *Client) finishSync(ctx context.Context) { c.flushQuietly(ctx) }

func (c *Client) flushQuietly(ctx context.Context) {
	if err := c.flushOutbox(ctx); err != nil && !errors.Is(err, errInflight) {
		c.log.Info("queued messages wait for the next try", "err", err)
	}
}

func (c *Client) hook(point string) error {
	if c.testHook == nil {
		return nil
	}
	return c.testHook(point)
}

func writeFrame(ctx context.Context, conn *websocket.Conn, f api.Frame) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return conn.Write(wctx, websocket.MessageText, b)
}

// dial opens the delivery WebSocket with this device's token, signing in
// again once if the server refuses the cached token. sends reports
// whether the server takes sends over it (api.HeaderFeatures).
func (c *Client) dial(ctx context.Context) (conn *websocket.Conn, sends bool, err error) {
	base, err := c.baseURL()
	if err != nil {
		return nil, false, err
	}
	for fresh := false; ; fresh = true {
		tok, err := c.token(ctx, fresh)
		if err != nil {
			return nil, false, err
		}
		dctx, cancel := context.WithTimeout(ctx, requestTimeout)
		var resp *http.Response
		conn, resp, err = websocket.Dial(dctx, base+api.PathWebSocket, &websocket.DialOptions{
			HTTPClient: c.http,
			HTTPHeader: http.Header{api.HeaderAuthorization: []string{"Bearer " + tok}},
		})
		cancel()
		if err == nil {
			return conn, hasFeature(resp.Header.Get(api.HeaderFeatures), api.FeatureSend), nil
		}
		if resp != nil && resp.StatusCode == http.StatusUnauthorized && !fresh {
			continue
		}
		if resp != nil && resp.StatusCode/100 != 1 && resp.StatusCode/100 != 2 {
			ae := &APIError{Status: resp.StatusCode, Message: http.StatusText(resp.StatusCode)}
			if resp.StatusCode == http.StatusUnauthorized {
				return nil, false, fmt.Errorf("%w: %w", ErrDeviceRemoved, ae)
			}
			return nil, false, fmt.Errorf("client: connecting: %w", ae)
		}
		return nil, false, fmt.Errorf("client: connecting: %w", err)
	}
}

// hasFeature reports whether the comma-separated list has feature.
func hasFeature(list, feature string) bool {
	for f := range strings.SplitSeq(list, ",") {
		if strings.TrimSpace(f) == feature {
			return true
		}
	}
	return false
}

// dropError is an envelope that can never be read: it is acknowledged
// and reported, not stored.
type dropError struct {
	typ    string // EventDropped or EventReplay
	detail string
}

func (e *dropError) Error() string { return "client: " + e.typ + ": " + e.detail }

func drop(format string, args ...any) error {
	return &dropError{typ: EventDropped, detail: fmt.Sprintf(format, args...)}
}

// receive processes one envelope. It returns the events to show once the
// envelope is acknowledged; an error means the envelope must not be
// acknowledged (it may succeed later: network, database). Everything the
// envelope changes (session state, used one-time prekeys, the message or
// status, the dedupe record, queued receipts) commits in one transaction.
func (c *Client) receive(ctx context.Context, me self, env *api.Envelope) ([]Event, error) {
	evs, err := c.receive1(ctx, me, env)
	var de *dropError
	if errors.As(err, &de) {
		c.log.Warn("discarding an envelope", "from", env.Sender, "device", env.SenderDevice, "id", env.MessageID, "why", de.detail)
		return []Event{{Type: de.typ, Peer: env.Sender, Device: env.SenderDevice, Detail: de.detail}}, nil
	}
	return evs, err
}

func (c *Client) receive1(ctx context.Context, me self, env *api.Envelope) ([]Event, error) {
	sender, err := normHandle(env.Sender)
	if err != nil {
		return nil, drop("the sender's handle %q is not valid", env.Sender)
	}
	msgID, ok := parseID(env.MessageID)
	if !ok {
		return nil, drop("the message id %q is not valid", env.MessageID)
	}
	if sender == me.handle && env.SenderDevice == me.deviceID {
		return nil, drop("the envelope claims to come from this device")
	}
	// Already received (the ack was lost, or the process stopped after
	// committing and before acknowledging): acknowledge again, show nothing.
	var seen bool
	var state string
	err = c.db.View(ctx, func(tx *clientdb.Tx) error {
		if seen, err = tx.Seen(sender, env.MessageID); err != nil {
			return err
		}
		state, err = tx.ContactState(sender)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if seen {
		c.log.Debug("duplicate envelope", "from", sender, "id", env.MessageID)
		return nil, nil
	}
	if sender != me.handle && (state == clientdb.StateBlocked || state == clientdb.StateRejected) {
		c.log.Debug("dropping an envelope from a blocked or rejected handle", "from", sender)
		return nil, nil
	}
	p, dev, err := c.device(ctx, sender, env.SenderDevice)
	var ae *APIError
	switch {
	case errors.Is(err, ErrUnknownHandle), errors.Is(err, ErrUnknownDevice), errors.Is(err, ErrBadDeviceList), errors.Is(err, ErrIdentityMismatch):
		return nil, drop("%v", err)
	case errors.As(err, &ae) && ae.Status/100 == 4 && ae.Status != http.StatusUnauthorized && ae.Status != http.StatusRequestTimeout && ae.Status != http.StatusTooManyRequests:
		// The server refuses to tell who sent it: it can never be read.
		return nil, drop("cannot look up the sender: %v", err)
	case err != nil:
		return nil, err
	}
	info, err := session.Inspect(env.Ciphertext)
	if err != nil {
		return nil, drop("malformed frame: %v", err)
	}
	if info.Prekey && !bytes.Equal(info.IdentityDH, dev.DHKey) {
		return nil, drop("the frame's identity key is not the one in @%s's device list", sender)
	}

	var evs []Event
	err = c.db.Update(ctx, func(tx *clientdb.Tx) error {
		evs = nil
		// Another process may have taken it meanwhile.
		if seen, err := tx.Seen(sender, env.MessageID); err != nil || seen {
			return err
		}
		pt, err := decrypt(tx, me, p, dev.ID, remote(p, dev), info, env.Ciphertext)
		if err != nil {
			return err
		}
		ct, err := content.Unmarshal(pt)
		if err != nil {
			return drop("malformed content: %v", err)
		}
		if ct.ID != msgID {
			return drop("the message id inside does not match the envelope's")
		}
		if err := tx.MarkSeen(sender, env.MessageID, time.Now()); err != nil {
			return err
		}
		if sender == me.handle {
			evs, err = c.fromOwnDevice(tx, me, env, ct)
		} else {
			evs, err = c.fromPeer(tx, sender, state, env, ct)
		}
		if err != nil {
			return err
		}
		return c.hook("before-commit")
	})
	if err != nil {
		return nil, err
	}
	return evs, c.hook("after-commit")
}

// decrypt opens a frame with the sender device's sessions inside tx: a
// prekey frame of a known base key, or a ratchet frame, goes to the
// sessions; a prekey frame of a new base key is accepted with this
// device's prekeys (deleting the one-time ones it used). The session that
// worked becomes the one to send with.
func decrypt(tx *clientdb.Tx, me self, p *peer, devID uint32, r session.Remote, info *session.FrameInfo, frame []byte) ([]byte, error) {
	stored, err := tx.Sessions(p.handle, devID)
	if err != nil {
		return nil, err
	}
	save := func(s *session.Session, bk []byte) error {
		state, err := s.MarshalBinary()
		if err != nil {
			return err
		}
		return tx.PutSession(&clientdb.Session{Handle: p.handle, Device: devID, BaseKey: bk, State: state})
	}
	var firstErr error
	replay := false
	for _, st := range stored {
		if info.Prekey && !bytes.Equal(st.BaseKey, info.BaseKey) {
			continue
		}
		s, err := session.Unmarshal(st.State)
		if err != nil {
			return nil, fmt.Errorf("client: stored session with @%s/%d: %w", p.handle, devID, err)
		}
		pt, err := s.Decrypt(frame)
		if err == nil {
			return pt, save(s, st.BaseKey)
		}
		if errors.Is(err, session.ErrReplay) {
			replay = true
		}
		if firstErr == nil {
			firstErr = err
		}
		if info.Prekey {
			break
		}
	}
	if replay {
		return nil, &dropError{typ: EventReplay, detail: "a message from @" + p.handle + " was received again"}
	}
	if !info.Prekey {
		if firstErr == nil {
			return nil, drop("no session with @%s's device %d to read it", p.handle, devID)
		}
		return nil, drop("decryption failed: %v", firstErr)
	}
	if firstErr != nil {
		return nil, drop("decryption failed: %v", firstErr)
	}
	keys := &txPrekeys{tx: tx}
	s, pt, err := session.Accept(me.local(), r, keys, frame)
	if err != nil {
		return nil, drop("cannot start the session: %v", err)
	}
	for _, id := range keys.used {
		if err := tx.DeletePrekey(id); err != nil {
			return nil, err
		}
	}
	return pt, save(s, s.BaseKey())
}

// fromPeer applies content from another account, inside the receive
// transaction.
func (c *Client) fromPeer(tx *clientdb.Tx, sender, state string, env *api.Envelope, ct *content.Content) ([]Event, error) {
	switch ct.Kind {
	case content.KindText:
		m := &clientdb.Message{
			ID: env.MessageID, Peer: sender, Sender: sender, Device: env.SenderDevice,
			SentAt: time.UnixMilli(ct.SentAt), ReceivedAt: time.Now(), Text: ct.Text,
			Status: clientdb.StatusReceived, Request: state != clientdb.StateContact, Timer: ct.Timer,
			ReplyTo: replyID(ct), // reply.go
		}
		ins, err := tx.InsertMessage(m)
		if err != nil || !ins {
			return nil, err
		}
		att, err := putAttachment(tx, m, ct.Attachment) // files.go
		if err != nil {
			return nil, err
		}
		if state == clientdb.StateContact {
			if err := queueReceipt(tx, sender, sender, content.KindDelivered, ct.ID); err != nil {
				return nil, err
			}
		}
		msg := messageFromRow(m)
		msg.Attachment = att
		qs := []Message{msg}
		if err := addQuotes(tx, qs); err != nil { // reply.go
			return nil, err
		}
		msg = qs[0]
		return []Event{{Type: EventMessage, Message: &msg, Peer: sender, Device: env.SenderDevice}}, nil
	case content.KindTimer: // vanish.go
		return c.onTimer(tx, false, sender, sender, state, env, ct)
	case content.KindDelivered, content.KindRead:
		status, typ := clientdb.StatusDelivered, EventDelivered
		if ct.Kind == content.KindRead {
			status, typ = clientdb.StatusRead, EventRead
		}
		changed, err := tx.RaiseStatus(sender, true, refIDs(ct.Refs), status)
		if err != nil || len(changed) == 0 {
			return nil, err
		}
		return []Event{{Type: typ, Peer: sender, Device: env.SenderDevice, Refs: changed}}, nil
	case content.KindTyping:
		if state != clientdb.StateContact {
			return nil, nil
		}
		return []Event{{Type: EventTyping, Peer: sender, Device: env.SenderDevice, Typing: ct.Typing}}, nil
	case content.KindCall:
		return c.onCall(tx, false, sender, sender, state, env, ct)
	case content.KindDelete: // unsend.go
		return c.onDelete(tx, sender, sender, false, env, ct)
	case content.KindEdit: // edit.go
		return c.onEdit(tx, sender, sender, false, env, ct)
	case content.KindReaction: // reactions.go
		if state == clientdb.StateBlocked {
			return nil, nil
		}
		return c.onReaction(tx, sender, sender, env, ct)
	}
	// A contact sync from another account, or a kind this build does not
	// know: nothing to do.
	return nil, nil
}

// fromOwnDevice applies content from another device of this account.
func (c *Client) fromOwnDevice(tx *clientdb.Tx, me self, env *api.Envelope, ct *content.Content) ([]Event, error) {
	switch ct.Kind {
	case content.KindContactSync:
		if err := importContacts(tx, me.handle, ct.Contacts); err != nil {
			return nil, err
		}
		return []Event{{Type: EventContacts, Device: env.SenderDevice}}, nil
	case content.KindHistory: // history.go
		return c.onHistory(tx, me, env, ct)
	}
	// The rest act on the conversation To names.
	why, acts := badConversation[ct.Kind]
	if !acts {
		return nil, nil // the own devices' copies of delivery receipts and typing: nothing to do
	}
	conv, err := normHandle(ct.To)
	if err != nil {
		if why == "" {
			return nil, nil
		}
		return nil, drop("%s", why)
	}
	switch ct.Kind {
	case content.KindText:
		m := &clientdb.Message{
			ID: env.MessageID, Peer: conv, Sender: me.handle, Device: env.SenderDevice,
			SentAt: time.UnixMilli(ct.SentAt), ReceivedAt: time.Now(), Text: ct.Text,
			Outgoing: true, Status: clientdb.StatusSent,
			Timer: ct.Timer, ExpiresAt: expiryOf(time.UnixMilli(ct.SentAt), ct.Timer), // vanish.go: from sending
			ReplyTo: replyID(ct), // reply.go
		}
		ins, err := tx.InsertMessage(m)
		if err != nil || !ins {
			return nil, err
		}
		att, err := putAttachment(tx, m, ct.Attachment) // files.go
		if err != nil {
			return nil, err
		}
		msg := messageFromRow(m)
		msg.Attachment = att
		qs := []Message{msg}
		if err := addQuotes(tx, qs); err != nil { // reply.go
			return nil, err
		}
		msg = qs[0]
		return []Event{{Type: EventMessage, Message: &msg, Peer: conv, Device: env.SenderDevice}}, nil
	case content.KindTimer: // vanish.go
		return c.onTimer(tx, true, me.handle, conv, clientdb.StateContact, env, ct)
	case content.KindRead:
		changed, err := tx.RaiseStatus(conv, false, refIDs(ct.Refs), clientdb.StatusRead)
		if err != nil || len(changed) == 0 {
			return nil, err
		}
		if err := startExpiry(tx, conv, changed); err != nil { // vanish.go: read on another own device
			return nil, err
		}
		return []Event{{Type: EventRead, Peer: conv, Device: env.SenderDevice, Refs: changed}}, nil
	case content.KindCall:
		return c.onCall(tx, true, me.handle, conv, clientdb.StateContact, env, ct)
	case content.KindDelete: // unsend.go
		return c.onDelete(tx, me.handle, conv, true, env, ct)
	case content.KindEdit: // edit.go
		return c.onEdit(tx, me.handle, conv, true, env, ct)
	default: // content.KindReaction, reactions.go
		return c.onReaction(tx, me.handle, conv, env, ct)
	}
}

// badConversation lists the kinds another own device sends about one
// conversation (in To), with why such content is dropped when To names no
// valid one ("": it is ignored).
var badConversation = map[content.Kind]string{
	content.KindText:     "a message from another own device names no valid conversation",
	content.KindTimer:    "a timer change from another own device names no valid conversation",
	content.KindRead:     "",
	content.KindCall:     "a call signal from another own device names no valid peer",
	content.KindDelete:   "a deletion from another own device names no valid conversation",
	content.KindEdit:     "an edit from another own device names no valid conversation",
	content.KindReaction: "a reaction from another own device names no valid conversation",
}

func refIDs(refs [][16]byte) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = hex.EncodeToString(r[:])
	}
	return out
}
