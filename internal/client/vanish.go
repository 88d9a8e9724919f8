package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/client/clientdb"
	"github.com/parleychat/parley/internal/content"
)

// Vanishing messages: each conversation has a timer (off, or MinTimer to
// MaxTimer) that either side may change with a KindTimer message both sides
// show. Every outgoing message carries the current timer. A device deletes
// a vanishing message, its file and its other local traces when its time
// is up, counted from when this device's user read it (the sender: from
// sending). The sender also declares the time to the server, which drops
// envelopes and blobs nobody fetched by then.

// Limits of the vanishing timer.
const (
	MinTimer = 30 * time.Second
	MaxTimer = 4 * 7 * 24 * time.Hour
)

// Message kinds (Message.Kind).
const (
	KindMessage = "message" // text, a file, or both
	KindTimer   = "timer"   // the conversation's vanishing timer changed
)

// EventVanished: messages of Peer (Refs) vanished from this device.
const EventVanished = "vanished"

// ErrTimerRange is returned for a timer outside MinTimer..MaxTimer.
var ErrTimerRange = errors.New("client: a vanishing timer is from 30 seconds to 4 weeks, or off")

// sweepInterval is how often Run and Sync look for messages whose time is
// up.
const sweepInterval = time.Second

// settingPurgeWAL is set while deleted messages may still have copies in
// the write-ahead log.
const settingPurgeWAL = "purge_wal"

func kindString(k uint8) string {
	switch {
	case content.Kind(k) == content.KindTimer:
		return KindTimer
	case k == kindDeleted: // unsend.go
		return KindDeleted
	}
	return KindMessage
}

// minTimer is the shortest timer this client accepts: MinTimer, or a
// shorter one from Options.MinTimer (for tests).
func (c *Client) minTimer() time.Duration {
	if c.o.MinTimer > 0 {
		return c.o.MinTimer
	}
	return MinTimer
}

// Timer returns the vanishing timer of the conversation with handle (0:
// off).
func (c *Client) Timer(ctx context.Context, handle string) (time.Duration, error) {
	h, err := normHandle(handle)
	if err != nil {
		return 0, err
	}
	var secs uint32
	err = c.db.View(ctx, func(tx *clientdb.Tx) error {
		var err error
		secs, _, err = tx.Timer(h)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("client: %w", err)
	}
	return time.Duration(secs) * time.Second, nil
}

// timerFor returns the timer that a message to h carries now, in seconds.
func timerFor(tx *clientdb.Tx, h string) (uint32, error) {
	secs, _, err := tx.Timer(h)
	return min(secs, uint32(MaxTimer/time.Second)), err
}

// SetTimer sets the vanishing timer of the conversation with handle (0
// turns it off; else MinTimer to MaxTimer, whole seconds) and tells the
// peer and this account's other devices with a message that every side
// shows. Messages sent from then on carry the new timer.
func (c *Client) SetTimer(ctx context.Context, handle string, d time.Duration) (Message, error) {
	if d != 0 && (d < c.minTimer() || d > MaxTimer || d%time.Second != 0) {
		return Message{}, fmt.Errorf("%w (not %s)", ErrTimerRange, d)
	}
	me, h, err := c.checkRecipient(ctx, handle)
	if err != nil {
		return Message{}, err
	}
	secs := uint32(d / time.Second)
	id := randomID()
	now := time.Now()
	ct := &content.Content{Kind: content.KindTimer, ID: id, SentAt: now.UnixMilli(), To: h, Timer: secs}
	row := &clientdb.Message{
		ID: idString(id), Peer: h, Sender: me.handle, Device: me.deviceID,
		SentAt: time.UnixMilli(ct.SentAt), ReceivedAt: now, Text: TimerText(secs), Outgoing: true,
		Status: clientdb.StatusSending, Kind: uint8(content.KindTimer), Timer: secs,
	}
	return c.sendContent(ctx, h, ct, row, func(tx *clientdb.Tx) error {
		return tx.PutTimer(h, secs, time.UnixMilli(ct.SentAt))
	})
}

// TimerText is the history text of a timer change: "set the timer to 1h"
// or "turned the timer off".
func TimerText(secs uint32) string {
	if secs == 0 {
		return "turned the timer off"
	}
	return "set the timer to " + FormatTimer(time.Duration(secs)*time.Second)
}

// FormatTimer writes a timer compactly: 30s, 5m, 1h30m, 1d, 4w.
func FormatTimer(d time.Duration) string {
	if d <= 0 {
		return "off"
	}
	units := []struct {
		d    time.Duration
		name string
	}{{7 * 24 * time.Hour, "w"}, {24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}}
	var b strings.Builder
	for _, u := range units {
		if n := d / u.d; n > 0 {
			b.WriteString(strconv.FormatInt(int64(n), 10) + u.name)
			d -= n * u.d
		}
	}
	if b.Len() == 0 {
		return d.String()
	}
	return b.String()
}

// ParseTimer reads a timer as FormatTimer writes it, or as Go writes
// durations ("90m", "1h30m"), with d (days) and w (weeks) too; "off" and
// "0" are 0.
func ParseTimer(s string) (time.Duration, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "off" || s == "0" {
		return 0, nil
	}
	var total time.Duration
	rest := s
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) {
			return 0, fmt.Errorf("client: %q is not a duration (e.g. 30s, 10m, 1h, 1d, 4w, off)", s)
		}
		n, err := strconv.ParseInt(rest[:i], 10, 64)
		if err != nil || n > 1<<20 {
			return 0, fmt.Errorf("client: %q is not a duration (e.g. 30s, 10m, 1h, 1d, 4w, off)", s)
		}
		var unit time.Duration
		switch rest[i] {
		case 's':
			unit = time.Second
		case 'm':
			unit = time.Minute
		case 'h':
			unit = time.Hour
		case 'd':
			unit = 24 * time.Hour
		case 'w':
			unit = 7 * 24 * time.Hour
		default:
			return 0, fmt.Errorf("client: %q is not a duration (e.g. 30s, 10m, 1h, 1d, 4w, off)", s)
		}
		total += time.Duration(n) * unit
		rest = rest[i+1:]
	}
	return total, nil
}

// expiryOf is when a message sent at t with a timer of secs vanishes from
// the sender's devices (zero: it does not vanish).
func expiryOf(t time.Time, secs uint32) time.Time {
	if secs == 0 {
		return time.Time{}
	}
	return t.Add(time.Duration(secs) * time.Second)
}

// sendExpiry is the api.SendRequest.ExpiresAt of outbox item o: for a
// vanishing message, now plus its timer, after which the server drops the
// envelopes nobody fetched; 0 otherwise.
func sendExpiry(o *clientdb.OutboxItem) int64 {
	if content.Kind(o.Kind) != content.KindText {
		return 0
	}
	ct, err := content.Unmarshal(o.Content)
	if err != nil || ct.Timer == 0 {
		return 0
	}
	return expiryOf(time.Now(), ct.Timer).UnixMilli()
}

// setSendExpiry fills the expiry a send request declares (encrypt, send.go).
func setSendExpiry(req *api.SendRequest, o *clientdb.OutboxItem) { req.ExpiresAt = sendExpiry(o) }

// startExpiry starts the clock of the vanishing messages of conversation
// peer with the given ids, read on this device or another own device.
func startExpiry(tx *clientdb.Tx, peer string, ids []string) error {
	return tx.StartExpiry(peer, ids, time.Now())
}

// onTimer applies a timer change from the peer (own: from another own
// device, conv is then the conversation) inside the receive transaction.
// The change with the latest sending time wins; every change is shown.
func (c *Client) onTimer(tx *clientdb.Tx, own bool, sender, conv, state string, env *api.Envelope, ct *content.Content) ([]Event, error) {
	sent := time.UnixMilli(ct.SentAt)
	_, setAt, err := tx.Timer(conv)
	if err != nil {
		return nil, err
	}
	if !sent.Before(setAt) {
		if err := tx.PutTimer(conv, ct.Timer, sent); err != nil {
			return nil, err
		}
	}
	m := &clientdb.Message{
		ID: env.MessageID, Peer: conv, Sender: sender, Device: env.SenderDevice,
		SentAt: sent, ReceivedAt: time.Now(), Text: TimerText(ct.Timer),
		Outgoing: own, Status: clientdb.StatusReceived, Request: !own && state != clientdb.StateContact,
		Kind: uint8(content.KindTimer), Timer: ct.Timer,
	}
	if own {
		m.Status = clientdb.StatusSent
	}
	ins, err := tx.InsertMessage(m)
	if err != nil || !ins {
		return nil, err
	}
	msg := messageFromRow(m)
	return []Event{{Type: EventMessage, Message: &msg, Peer: conv, Device: env.SenderDevice}}, nil
}

// sweep deletes the messages whose time is up, with their attachment rows
// and the files parley wrote for them, then truncates the write-ahead
// log so no old copy of their pages stays on disk (the database runs with
// secure_delete, which zeroes what the deletions free). It returns the
// vanished messages by conversation.
func (c *Client) sweep(ctx context.Context) (map[string][]string, error) {
	now := time.Now()
	var next time.Time
	purge := "0"
	err := c.db.View(ctx, func(tx *clientdb.Tx) error {
		var err error
		if next, err = tx.NextExpiry(); err != nil {
			return err
		}
		purge, err = tx.Setting(settingPurgeWAL, "0")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	gone := map[string][]string{}
	if !next.IsZero() && !next.After(now) {
		var files []string
		err = c.db.Update(ctx, func(tx *clientdb.Tx) error {
			clear(gone)
			files = files[:0]
			ms, err := tx.Expired(now)
			if err != nil || len(ms) == 0 {
				return err
			}
			for _, m := range ms {
				a, err := tx.AttachmentOf(m.Seq)
				switch {
				case err == nil:
					files = append(files, a.Path, a.Partial)
				case !errors.Is(err, clientdb.ErrNotFound):
					return err
				}
				if err := tx.DeleteMessage(m.Seq, m.ID); err != nil {
					return err
				}
				gone[m.Peer] = append(gone[m.Peer], m.ID)
			}
			return tx.PutSetting(settingPurgeWAL, "1")
		})
		if err != nil {
			return nil, fmt.Errorf("client: %w", err)
		}
		for _, f := range files {
			if f != "" {
				if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
					c.log.Warn("removing the file of a vanished message", "err", err)
				}
			}
		}
		if len(gone) > 0 {
			purge = "1"
		}
	}
	if purge == "1" {
		ok, err := c.db.PurgeWAL(ctx)
		if err != nil {
			return gone, fmt.Errorf("client: %w", err)
		}
		if ok {
			err := c.db.Update(ctx, func(tx *clientdb.Tx) error { return tx.PutSetting(settingPurgeWAL, "0") })
			if err != nil {
				return gone, fmt.Errorf("client: %w", err)
			}
			// Checkpoint that small change too, so the log is empty.
			_, _ = c.db.PurgeWAL(ctx)
		}
	}
	return gone, nil
}

// Sweep deletes the messages whose time is up now (Open and Run do it by
// themselves) and returns how many vanished.
func (c *Client) Sweep(ctx context.Context) (int, error) {
	gone, err := c.sweep(ctx)
	n := 0
	for peer, ids := range gone {
		n += len(ids)
		c.emit(Event{Type: EventVanished, Peer: peer, Refs: ids})
	}
	return n, err
}

func (c *Client) sweepQuietly(ctx context.Context) {
	if _, err := c.Sweep(ctx); err != nil && ctx.Err() == nil {
		c.log.Warn("deleting vanished messages", "err", err)
	}
}

// startSweeper sweeps every sweepInterval until the returned stop is
// called (Run, Sync).
func (c *Client) startSweeper(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(sweepInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				c.sweepQuietly(ctx)
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}
