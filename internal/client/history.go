package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/client/clientdb"
	"github.com/parleychat/parley/internal/content"
	"github.com/parleychat/parley/internal/identity"
	"github.com/parleychat/parley/internal/stream"
)

// Message history for a device just linked.
//
// When LinkNew has added a device, it sends that device the conversations
// this one holds, as Signal and WhatsApp do: the messages go into an
// archive (content.MarshalHistory), encrypted as a file under a fresh key
// and uploaded as a blob only the new device may fetch; the key and the
// archive's hash travel in a KindHistory message, end-to-end encrypted,
// which every own device receives and only the device it names acts on.
// The new device records it when it arrives and imports it once the
// backlog is read (so the import never holds up receiving), then tells the
// server it fetched the blob. The server sees a blob of some size, as for
// any file.
//
// Not carried: files (the server deletes a file once its recipients
// fetched it, so the new device could not fetch them; a message with a
// file keeps its caption and names the file), view-once media, and
// vanishing messages (the archive could outlive their timer on the
// server). The archive's blob is kept at most historyTTL; a device with
// no messages sends nothing.

// historyDeliverWait bounds how long LinkNew waits for the new device to
// publish its prekeys before the history message can be encrypted to it.
// Past it the message waits in the outbox for the next sync.
const historyDeliverWait = time.Minute

// historyTTL bounds how long the server keeps an archive the new device
// has not fetched.
const historyTTL = 7 * 24 * time.Hour

// historyPatch is how many bytes of the archive one PATCH carries.
const historyPatch = 4 << 20

// settingHistoryPending holds, as JSON, the history a KindHistory message
// gave this device until it is imported.
const settingHistoryPending = "history_pending"

// pendingHistory is settingHistoryPending's value.
type pendingHistory struct {
	BlobID string `json:"blob_id"`
	Key    []byte `json:"key"`
	SHA256 []byte `json:"sha256"`
	Size   int64  `json:"size"`
	Device uint32 `json:"device"` // the own device that sent it
}

// exportHistory is the archive of every conversation this device holds.
func (c *Client) exportHistory(ctx context.Context) ([]byte, int, error) {
	var ms []content.HistoryMessage
	err := c.db.View(ctx, func(tx *clientdb.Tx) error {
		rows, atts, err := tx.HistoryExport()
		if err != nil {
			return err
		}
		for i, m := range rows {
			if a := atts[i]; a != nil && a.ViewOnce {
				continue
			}
			if m.Timer != 0 && content.Kind(m.Kind) != content.KindTimer {
				continue // vanishing: it must not outlive its timer in a blob
			}
			id, ok := parseID(m.ID)
			if !ok {
				continue
			}
			text := m.Text
			if a := atts[i]; a != nil {
				text = fmt.Sprintf("[file %s, not transferred]", SafeFileName(a.Name))
				if m.Text != "" {
					text += " " + m.Text
				}
			}
			kind := content.Kind(m.Kind)
			if kind == 0 {
				kind = content.KindText
			}
			ms = append(ms, content.HistoryMessage{
				ID: id, Peer: m.Peer, Sender: m.Sender, Device: m.Device,
				SentAt: clientdb.UnixMS(m.SentAt), ReceivedAt: clientdb.UnixMS(m.ReceivedAt),
				Outgoing: m.Outgoing, Request: m.Request, Status: uint8(m.Status),
				Kind: kind, Timer: m.Timer, ExpiresAt: clientdb.UnixMS(m.ExpiresAt), Text: text,
			})
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("client: %w", err)
	}
	b, err := content.MarshalHistory(ms)
	if err != nil {
		return nil, 0, fmt.Errorf("client: %w", err)
	}
	return b, len(ms), nil
}

// sendHistory uploads this device's history for own device to and sends
// it the KindHistory message, waiting up to historyDeliverWait for that
// device's prekeys. It returns how many messages it carried.
func (c *Client) sendHistory(ctx context.Context, me self, to uint32) (int, error) {
	archive, n, err := c.exportHistory(ctx)
	if err != nil || n == 0 {
		return 0, err
	}
	key := make([]byte, content.FileKeySize)
	rand.Read(key)
	var ct bytes.Buffer
	w, err := stream.NewWriter(key, &ct)
	if err != nil {
		return 0, fmt.Errorf("client: %w", err)
	}
	w.Write(archive) // a bytes.Buffer does not fail
	if err := w.Close(); err != nil {
		return 0, fmt.Errorf("client: %w", err)
	}
	sum := sha256.Sum256(ct.Bytes())
	var st api.BlobStatus
	if err := c.call(ctx, http.MethodPost, api.PathBlobs, api.CreateBlobRequest{Size: int64(ct.Len()), TTL: int64(historyTTL / time.Second)}, &st, true); err != nil {
		return 0, fmt.Errorf("client: uploading the history: %w", err)
	}
	for off := 0; off < ct.Len(); off += historyPatch {
		part := ct.Bytes()[off:min(off+historyPatch, ct.Len())]
		err := c.blobRequest(ctx, http.MethodPatch, path(api.PathBlob, st.ID), func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(part)), nil
		}, int64(len(part)), http.Header{api.HeaderUploadOffset: {fmt.Sprint(off)}, "Content-Type": {"application/offset+octet-stream"}},
			func(*http.Response) error { return nil })
		if err != nil {
			return 0, fmt.Errorf("client: uploading the history: %w", err)
		}
	}
	finish := api.FinishBlobRequest{SHA256: sum[:], Recipients: []api.BlobRecipient{{Handle: me.handle, DeviceID: to}}}
	if err := c.call(ctx, http.MethodPost, path(api.PathBlobFinish, st.ID), finish, nil, true); err != nil {
		return 0, fmt.Errorf("client: uploading the history: %w", err)
	}
	msg := &content.Content{Kind: content.KindHistory, To: me.handle, ForDevice: to, Attachment: &content.Attachment{
		BlobID: st.ID, Key: key, SHA256: sum[:], CiphertextSize: int64(ct.Len()), PlaintextSize: int64(len(archive)),
		MediaType: content.HistoryMediaType, FileName: "history",
	}}
	if err := c.db.Update(ctx, func(tx *clientdb.Tx) error { return queueControl(tx, me.handle, msg) }); err != nil {
		return 0, fmt.Errorf("client: %w", err)
	}
	// The new device publishes its prekeys a moment after it was added;
	// until then a send to the account is a device mismatch, which leaves
	// the message in the outbox.
	id := hex.EncodeToString(msg.ID[:])
	deadline := time.Now().Add(historyDeliverWait)
	for {
		err := c.deliver(ctx, id)
		if err == nil || !temporary(err) || time.Now().After(deadline) {
			return n, err
		}
		if err := sleepCtx(ctx, time.Second); err != nil {
			return n, err
		}
	}
}

// onHistory records a KindHistory message from another own device, if it
// is for this device, to be imported by importHistory.
func (c *Client) onHistory(tx *clientdb.Tx, me self, env *api.Envelope, ct *content.Content) ([]Event, error) {
	a := ct.Attachment
	if ct.ForDevice != me.deviceID || a == nil || a.MediaType != content.HistoryMediaType {
		return nil, nil // for another own device
	}
	b, err := json.Marshal(pendingHistory{BlobID: a.BlobID, Key: a.Key, SHA256: a.SHA256, Size: a.CiphertextSize, Device: env.SenderDevice})
	if err != nil {
		return nil, err
	}
	return nil, tx.PutSetting(settingHistoryPending, string(b))
}

// maxHistoryBytes bounds the archive a device downloads.
const maxHistoryBytes = 1 << 30

// importHistory imports a history recorded by onHistory, if there is one:
// it downloads the archive, checks its hash, decrypts it and stores its
// messages (those already here stay as they are), then tells the server it
// has the blob. A failure that another try could mend (the network) keeps
// it for the next sync; an archive that is altered or gone is dropped.
func (c *Client) importHistory(ctx context.Context, fn func(Event)) {
	var p pendingHistory
	err := c.db.View(ctx, func(tx *clientdb.Tx) error {
		v, err := tx.Setting(settingHistoryPending, "")
		if err != nil || v == "" {
			return err
		}
		return json.Unmarshal([]byte(v), &p)
	})
	if err != nil || p.BlobID == "" {
		if err != nil {
			c.log.Warn("reading a pending history", "err", err)
		}
		return
	}
	n, err := c.fetchHistory(ctx, p)
	if err != nil && !errors.Is(err, errBadHistory) && temporary(err) {
		c.log.Info("the history from another device waits for the next sync", "err", err)
		return
	}
	if err != nil {
		c.log.Warn("the history from another own device could not be imported; dropping it", "err", err)
		_ = c.db.Update(ctx, func(tx *clientdb.Tx) error { return tx.PutSetting(settingHistoryPending, "") })
		fn(Event{Type: EventDropped, Device: p.Device, Detail: "message history: " + err.Error()})
		return
	}
	if err := c.call(ctx, http.MethodPost, path(api.PathBlobDone, p.BlobID), nil, nil, true); err != nil {
		c.log.Info("telling the server the history was fetched", "err", err)
	}
	c.log.Info("imported message history", "messages", n, "from_device", p.Device)
	fn(Event{Type: EventHistory, Device: p.Device, Count: n})
}

// errBadHistory is an archive no other try can mend: altered, not
// decodable, or gone from the server.
var errBadHistory = errors.New("client: the message history from another own device cannot be used")

// fetchHistory downloads, checks and imports an archive, and clears the
// pending setting in the same transaction. It returns how many messages
// were new here.
func (c *Client) fetchHistory(ctx context.Context, p pendingHistory) (int, error) {
	if p.Size < 1 || p.Size > maxHistoryBytes {
		return 0, fmt.Errorf("%w: %d bytes", errBadHistory, p.Size)
	}
	var ct []byte
	err := c.blobRequest(ctx, http.MethodGet, path(api.PathBlob, p.BlobID), nil, 0, nil, func(resp *http.Response) error {
		var err error
		ct, err = io.ReadAll(io.LimitReader(resp.Body, p.Size+1))
		return err
	})
	var ae *APIError
	if errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Status == http.StatusForbidden) {
		return 0, fmt.Errorf("%w: the server no longer has it (%w)", errBadHistory, err)
	}
	if err != nil {
		return 0, err
	}
	if sum := sha256.Sum256(ct); int64(len(ct)) != p.Size || !bytes.Equal(sum[:], p.SHA256) {
		return 0, fmt.Errorf("%w: it failed its integrity check (altered on the server or on the way)", errBadHistory)
	}
	r, err := stream.NewReader(p.Key, bytes.NewReader(ct))
	if err != nil {
		return 0, fmt.Errorf("%w: decrypting it: %w", errBadHistory, err)
	}
	archive, err := io.ReadAll(r)
	if err != nil {
		return 0, fmt.Errorf("%w: decrypting it: %w", errBadHistory, err)
	}
	ms, err := content.UnmarshalHistory(archive)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", errBadHistory, err)
	}
	rows := make([]*clientdb.Message, 0, len(ms))
	for _, m := range ms {
		if !identity.ValidHandle(m.Peer) || !identity.ValidHandle(m.Sender) {
			continue // an own device sent it, but nothing here may name no one
		}
		rows = append(rows, &clientdb.Message{
			ID: hex.EncodeToString(m.ID[:]), Peer: m.Peer, Sender: m.Sender, Device: m.Device,
			SentAt: clientdb.FromUnixMS(m.SentAt), ReceivedAt: clientdb.FromUnixMS(m.ReceivedAt), Text: m.Text,
			Outgoing: m.Outgoing, Status: clientdb.Status(m.Status), Request: m.Request,
			Kind: uint8(m.Kind), Timer: m.Timer, ExpiresAt: clientdb.FromUnixMS(m.ExpiresAt),
		})
	}
	added := 0
	err = c.db.Update(ctx, func(tx *clientdb.Tx) error {
		var err error
		if added, err = tx.ImportMessages(rows); err != nil {
			return err
		}
		return tx.PutSetting(settingHistoryPending, "")
	})
	if err != nil {
		return 0, fmt.Errorf("client: %w", err)
	}
	return added, nil
}
