package client

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/client/clientdb"
	"github.com/parleychat/parley/internal/content"
	"github.com/parleychat/parley/internal/metastrip"
	"github.com/parleychat/parley/internal/stream"
)

// Files (docs/PROTOCOL-files.md): the sender's device strips photo
// metadata, encrypts the file with a fresh key (age STREAM), uploads the
// ciphertext to the server in resumable appends, names the devices that
// will fetch it, and sends the key, the ciphertext's SHA-256, the sizes,
// the media type and the name inside the end-to-end encrypted message.
// Receiving devices download, check and decrypt it (download.go).

// Attachment states, as Attachment.State shows them.
const (
	AttachmentPending  = "pending"  // not downloaded yet: Download fetches it
	AttachmentSaved    = "saved"    // downloaded and checked: Path
	AttachmentUnopened = "unopened" // view-once media waiting to be opened once (Open)
	AttachmentOpened   = "opened"   // view-once media that was opened: only a placeholder remains
	AttachmentFailed   = "failed"   // the download failed (Error says why)
	AttachmentSent     = "sent"     // sent from this account
)

// Attachment is the file of a message.
type Attachment struct {
	Name      string // the sender's file name, made safe (a base name)
	MediaType string // as the sender said; not checked
	Size      int64  // bytes of the file
	ViewOnce  bool
	State     string // Attachment*
	Path      string // where the file was saved (State saved)
	Error     string // why the download failed (State failed)
}

// Errors of files.
var (
	ErrNoAttachment = errors.New("client: no message with a file has this id")
	ErrOpened       = errors.New("client: this view-once media was already opened; only a placeholder remains")
	ErrFileChanged  = errors.New("client: the file changed since its upload began; cancel the upload ('parley uploads cancel ID') and send it again")
	ErrTampered     = errors.New("client: the downloaded file failed its integrity check (altered on the server or on the way); nothing was saved")
	ErrBlobGone     = errors.New("client: the file is no longer on the server (it expired, or was deleted)")
	ErrNoUpload     = errors.New("client: no unfinished upload has this id")
)

// Progress reports a transfer.
type Progress struct {
	ID    string // the message id
	Name  string // the file's name
	Phase string // "preparing" (stripping and hashing), "uploading" or "downloading"
	Done  int64  // bytes so far
	Total int64  // bytes in all
}

// FileOptions tune SendFile and the upload side of ResumeUploads.
type FileOptions struct {
	Caption      string
	KeepMetadata bool // send JPEG and PNG images with their metadata (EXIF, GPS, XMP, ...)
	ViewOnce     bool // the recipient may open it once
	// Progress, if set, is called as the transfer advances (from the
	// calling goroutine).
	Progress func(Progress)
	// RateLimit bounds the transfer in bytes per second (0: none).
	RateLimit int64
}

// SentFile is what SendFile did.
type SentFile struct {
	Message Message
	// ResumedFrom is how many ciphertext bytes were already on the server
	// when this call began (an upload resumed after an interruption).
	ResumedFrom int64
	// Removed names the metadata removed from an image ("EXIF", "XMP",
	// ...); Stripped is true if the file was a JPEG or PNG that was
	// rewritten without metadata.
	Removed  []string
	Stripped bool
}

// patchSize is the ciphertext one PATCH carries: an interruption loses at
// most what was in flight, since the server keeps the bytes that arrived.
const patchSize = 32 << 20

// maxTransferTries bounds consecutive failed attempts of one transfer
// before it gives up (it resumes on the next run).
const maxTransferTries = 6

func idString(id [16]byte) string { return hex.EncodeToString(id[:]) }

// checkRecipient checks that handle may be sent to now (what Send checks)
// and returns it normalised.
func (c *Client) checkRecipient(ctx context.Context, handle string) (self, string, error) {
	me, err := c.self()
	if err != nil {
		return self{}, "", err
	}
	h, err := normHandle(handle)
	if err != nil {
		return self{}, "", err
	}
	if h == me.handle {
		return self{}, "", ErrSelf
	}
	state, err := c.contactState(ctx, h)
	if err != nil {
		return self{}, "", err
	}
	if state == clientdb.StateBlocked {
		return self{}, "", fmt.Errorf("%w: @%s", ErrBlocked, h)
	}
	p, err := c.peer(ctx, h)
	if err != nil {
		return self{}, "", err
	}
	if p.keyChanged && p.verified {
		return self{}, "", fmt.Errorf("%w (@%s)", ErrKeyChanged, h)
	}
	return me, h, nil
}

// sendContent commits an outgoing history row and its content to the
// outbox in one transaction with extra, makes h a contact as Send does,
// and sends it now if it can (else Sync/Run send it later and the error
// says why).
func (c *Client) sendContent(ctx context.Context, h string, ct *content.Content, row *clientdb.Message, extra func(tx *clientdb.Tx) error) (Message, error) {
	b, err := ct.Marshal()
	if err != nil {
		return Message{}, fmt.Errorf("client: %w", err)
	}
	item := &clientdb.OutboxItem{ID: row.ID, To: h, Kind: uint8(ct.Kind), Content: b}
	becameContact := false
	var att *Attachment
	err = c.db.Update(ctx, func(tx *clientdb.Tx) error {
		att = nil
		if _, err := tx.InsertMessage(row); err != nil {
			return err
		}
		if err := tx.PutOutbox(item); err != nil {
			return err
		}
		if ct.Attachment != nil {
			a := attachmentRow(row.Seq, ct.Attachment, clientdb.AttachSent)
			if err := tx.PutAttachment(a); err != nil {
				return err
			}
			att = attachmentFromRow(a, row)
		}
		if extra != nil {
			if err := extra(tx); err != nil {
				return err
			}
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
	_ = c.db.View(ctx, func(tx *clientdb.Tx) error {
		if m, err := tx.OutgoingMessage(row.ID); err == nil {
			row.Status = m.Status
		}
		return nil
	})
	if err == nil && row.Status == clientdb.StatusFailed {
		err = errors.New("client: the server refused the message")
	}
	msg := messageFromRow(row)
	msg.Attachment = att
	return msg, err
}

// attachmentRow is the stored form of a received or sent attachment.
func attachmentRow(seq int64, a *content.Attachment, state string) *clientdb.Attachment {
	row := &clientdb.Attachment{
		Msg: seq, BlobID: a.BlobID, Key: a.Key, SHA256: a.SHA256, Size: a.CiphertextSize,
		PlainSize: a.PlaintextSize, MediaType: a.MediaType, Name: SafeFileName(a.FileName),
		ViewOnce: a.ViewOnce, State: state,
	}
	if size, err := stream.PlaintextSize(a.CiphertextSize); err != nil || size != a.PlaintextSize {
		row.State, row.Error = clientdb.AttachFailed, "the message's file sizes do not agree"
	}
	return row
}

// putAttachment stores the attachment of a message received (from a peer,
// or sent from another own device) inside the receive transaction.
func putAttachment(tx *clientdb.Tx, m *clientdb.Message, a *content.Attachment) (*Attachment, error) {
	if a == nil {
		return nil, nil
	}
	state := clientdb.AttachPending
	if m.Outgoing && a.ViewOnce {
		// Sent from another own device: never shown here, but the server
		// waits for this device before it deletes the blob.
		state = clientdb.AttachRelease
	}
	row := attachmentRow(m.Seq, a, state)
	if err := tx.PutAttachment(row); err != nil {
		return nil, err
	}
	return attachmentFromRow(row, m), nil
}

func attachmentFromRow(a *clientdb.Attachment, m *clientdb.Message) *Attachment {
	out := &Attachment{Name: a.Name, MediaType: a.MediaType, Size: a.PlainSize, ViewOnce: a.ViewOnce, Error: a.Error}
	switch a.State {
	case clientdb.AttachSaved:
		out.State, out.Path = AttachmentSaved, a.Path
		if a.ViewOnce {
			out.State, out.Path = AttachmentUnopened, ""
		}
	case clientdb.AttachFailed:
		out.State = AttachmentFailed
	case clientdb.AttachOpened:
		out.State = AttachmentOpened
	case clientdb.AttachSent, clientdb.AttachRelease, clientdb.AttachReleased:
		out.State = AttachmentSent
	default:
		out.State = AttachmentPending
		if m.Outgoing && !a.ViewOnce {
			out.State = AttachmentSent // a copy of a file sent from another own device, not fetched yet
		}
	}
	return out
}

// addAttachments fills the attachments of history messages.
func (c *Client) addAttachments(ctx context.Context, rows []*clientdb.Message, out []Message) error {
	return c.db.View(ctx, func(tx *clientdb.Tx) error {
		for i, r := range rows {
			if content.Kind(r.Kind) != content.KindText {
				continue
			}
			a, err := tx.AttachmentOf(r.Seq)
			if errors.Is(err, clientdb.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			out[i].Attachment = attachmentFromRow(a, r)
		}
		return nil
	})
}

// SendFile sends the file at path to handle's devices and this account's
// other devices: it strips a JPEG's or PNG's metadata (unless
// KeepMetadata), encrypts the file under a fresh key, uploads the
// ciphertext, and sends the message that carries the key. Memory stays
// flat whatever the size. If it is interrupted (or the process killed),
// calling SendFile again with the same file and options, or
// ResumeUploads, continues the upload where the server's copy ends.
func (c *Client) SendFile(ctx context.Context, handle, path string, o FileOptions) (SentFile, error) {
	me, h, err := c.checkRecipient(ctx, handle)
	if err != nil {
		return SentFile{}, err
	}
	if len(o.Caption) > MaxTextBytes {
		return SentFile{}, fmt.Errorf("%w (the caption has %d bytes; at most %d)", ErrTooLong, len(o.Caption), MaxTextBytes)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return SentFile{}, fmt.Errorf("client: %w", err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return SentFile{}, fmt.Errorf("client: %w", err)
	}
	if !st.Mode().IsRegular() {
		return SentFile{}, fmt.Errorf("client: %s is not a regular file", path)
	}
	// The same file to the same peer with the same options, unfinished:
	// resume it.
	var u *clientdb.Upload
	err = c.db.View(ctx, func(tx *clientdb.Tx) error {
		us, err := tx.Uploads()
		for _, x := range us {
			if x.Peer == h && x.Source == abs && x.SourceSize == st.Size() && x.SourceMtime.Equal(st.ModTime().Truncate(time.Microsecond)) &&
				x.KeepMetadata == o.KeepMetadata && x.ViewOnce == o.ViewOnce {
				u = x
			}
		}
		return err
	})
	if err != nil {
		return SentFile{}, fmt.Errorf("client: %w", err)
	}
	var res SentFile
	if u == nil {
		if u, res, err = c.prepareUpload(ctx, h, abs, st, o); err != nil {
			return SentFile{}, err
		}
	} else if u.Caption != o.Caption {
		u.Caption = o.Caption
		if err := c.db.Update(ctx, func(tx *clientdb.Tx) error { return tx.PutUpload(u) }); err != nil {
			return SentFile{}, fmt.Errorf("client: %w", err)
		}
	}
	res.Stripped = u.Temp
	return c.runUpload(ctx, me, u, o, res)
}

// prepareUpload strips the file's metadata into a copy in the home (for
// a JPEG or PNG, unless kept), picks a key, computes the ciphertext's
// size and SHA-256 (one pass of encryption, in flat memory), and records
// the upload.
func (c *Client) prepareUpload(ctx context.Context, h, abs string, st os.FileInfo, o FileOptions) (*clientdb.Upload, SentFile, error) {
	var res SentFile
	u := &clientdb.Upload{
		ID: idString(randomID()), Peer: h, Source: abs, SourceSize: st.Size(),
		SourceMtime: st.ModTime().Truncate(time.Microsecond), PlainPath: abs, KeepMetadata: o.KeepMetadata,
		Name: filepath.Base(abs), Caption: o.Caption, ViewOnce: o.ViewOnce,
	}
	f, err := os.Open(abs)
	if err != nil {
		return nil, res, fmt.Errorf("client: %w", err)
	}
	defer f.Close()
	head := make([]byte, 512)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return nil, res, fmt.Errorf("client: reading %s: %w", abs, err)
	}
	head = head[:n]
	u.MediaType = mediaType(abs, head)
	if format := metastrip.Sniff(head); format != metastrip.Unknown && !o.KeepMetadata {
		tmp, removed, err := c.stripCopy(abs, u.ID)
		if err != nil {
			return nil, res, err
		}
		u.PlainPath, u.Temp, res.Removed = tmp, true, removed
	}
	pst, err := os.Stat(u.PlainPath)
	if err != nil {
		return nil, res, fmt.Errorf("client: %w", err)
	}
	u.PlainSize = pst.Size()
	u.Size = stream.EncryptedSize(u.PlainSize)
	u.Key = make([]byte, stream.KeySize)
	rand.Read(u.Key)
	if u.SHA256, err = ciphertextHash(ctx, u, o); err != nil {
		c.removeTemp(u)
		return nil, res, err
	}
	if err := c.db.Update(ctx, func(tx *clientdb.Tx) error { return tx.PutUpload(u) }); err != nil {
		c.removeTemp(u)
		return nil, res, fmt.Errorf("client: %w", err)
	}
	return u, res, nil
}

// mediaType guesses a file's media type from its name, then its first
// bytes.
func mediaType(name string, head []byte) string {
	if t := mime.TypeByExtension(strings.ToLower(filepath.Ext(name))); t != "" {
		return t
	}
	return http.DetectContentType(head)
}

// tmpDir is the home's folder for copies of files being sent.
func (c *Client) tmpDir() (string, error) {
	dir := filepath.Join(c.o.Home, "tmp")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("client: %w", err)
	}
	return dir, nil
}

// stripCopy writes the image at path without its metadata to a file in
// the home and returns its name and what was removed.
func (c *Client) stripCopy(path, id string) (string, []string, error) {
	dir, err := c.tmpDir()
	if err != nil {
		return "", nil, err
	}
	src, err := os.Open(path)
	if err != nil {
		return "", nil, fmt.Errorf("client: %w", err)
	}
	defer src.Close()
	tmp := filepath.Join(dir, id+".stripped")
	dst, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return "", nil, fmt.Errorf("client: %w", err)
	}
	res, err := metastrip.Strip(dst, src)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		if errors.Is(err, metastrip.ErrMalformed) {
			return "", nil, fmt.Errorf("client: %s looks like an image but is malformed, so its metadata cannot be removed (send it with --keep-metadata to send it as it is): %w", path, err)
		}
		return "", nil, fmt.Errorf("client: removing the metadata of %s: %w", path, err)
	}
	return tmp, res.Removed, nil
}

func (c *Client) removeTemp(u *clientdb.Upload) {
	if u.Temp {
		if err := os.Remove(u.PlainPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			c.log.Warn("removing a copy of a sent file", "err", err)
		}
	}
}

// ciphertextHash encrypts the upload's file once to hash the ciphertext.
func ciphertextHash(ctx context.Context, u *clientdb.Upload, o FileOptions) ([]byte, error) {
	f, err := os.Open(u.PlainPath)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	w, err := stream.NewWriter(u.Key, h)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	r := &meter{ctx: ctx, r: f, fn: progressFn(o.Progress, u.ID, u.Name, "preparing", u.PlainSize)}
	n, err := io.Copy(w, r)
	if err != nil {
		return nil, fmt.Errorf("client: reading %s: %w", u.Source, err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if n != u.PlainSize {
		return nil, ErrFileChanged
	}
	return h.Sum(nil), nil
}

// runUpload takes an upload from wherever it is to a sent message:
// create the blob, append what the server lacks, finish it with the
// recipient devices, send the message.
func (c *Client) runUpload(ctx context.Context, me self, u *clientdb.Upload, o FileOptions, res SentFile) (SentFile, error) {
	if err := c.checkSource(u); err != nil {
		return res, err
	}
	var secs uint32
	err := c.db.View(ctx, func(tx *clientdb.Tx) error {
		var err error
		secs, err = timerFor(tx, u.Peer)
		return err
	})
	if err != nil {
		return res, fmt.Errorf("client: %w", err)
	}
	st, err := c.ensureBlob(ctx, u, secs)
	if err != nil {
		return res, err
	}
	res.ResumedFrom = st.Offset
	for try := 0; ; try++ {
		if !st.Complete && st.Offset < u.Size {
			from, err := c.uploadBytes(ctx, u, st.Offset, o)
			if err != nil {
				return res, err
			}
			if try == 0 {
				res.ResumedFrom = from
			}
		}
		err := c.finishBlob(ctx, me, u)
		var ae *APIError
		if errors.As(err, &ae) && ae.Code == api.CodeUploadIncomplete && try < maxTransferTries {
			if st, err = c.blobStatus(ctx, u.BlobID); err != nil {
				return res, err
			}
			continue
		}
		if errors.As(err, &ae) && ae.Code == api.CodeHashMismatch {
			return res, fmt.Errorf("%w (%w)", ErrFileChanged, err)
		}
		if err != nil {
			return res, err
		}
		break
	}

	// The message: the key and the hash travel end-to-end encrypted.
	id, _ := parseID(u.ID)
	now := time.Now()
	ct := &content.Content{
		Kind: content.KindText, ID: id, SentAt: now.UnixMilli(), To: u.Peer, Text: u.Caption, Timer: secs,
		Attachment: &content.Attachment{
			BlobID: u.BlobID, Key: u.Key, SHA256: u.SHA256, CiphertextSize: u.Size, PlaintextSize: u.PlainSize,
			MediaType: u.MediaType, FileName: u.Name, ViewOnce: u.ViewOnce,
		},
	}
	row := &clientdb.Message{
		ID: u.ID, Peer: u.Peer, Sender: me.handle, Device: me.deviceID, SentAt: time.UnixMilli(ct.SentAt),
		ReceivedAt: now, Text: u.Caption, Outgoing: true, Status: clientdb.StatusSending,
		Timer: secs, ExpiresAt: expiryOf(now, secs),
	}
	msg, err := c.sendContent(ctx, u.Peer, ct, row, func(tx *clientdb.Tx) error { return tx.DeleteUpload(u.ID) })
	res.Message = msg
	if msg.ID == "" {
		return res, err // nothing was committed; the upload stays
	}
	c.removeTemp(u)
	// A device that appeared while sending got the message too: name it
	// as a recipient of the blob as well (finish only adds).
	if ferr := c.finishBlob(ctx, me, u); ferr != nil {
		c.log.Info("naming the file's recipients again", "err", ferr)
	}
	return res, err
}

// checkSource fails if the file being sent is not the one the upload
// began with.
func (c *Client) checkSource(u *clientdb.Upload) error {
	st, err := os.Stat(u.PlainPath)
	if err != nil {
		return fmt.Errorf("client: the file being sent is gone: %w", err)
	}
	if st.Size() != u.PlainSize {
		return ErrFileChanged
	}
	if !u.Temp {
		if !st.ModTime().Truncate(time.Microsecond).Equal(u.SourceMtime) {
			return ErrFileChanged
		}
	}
	return nil
}

// ensureBlob creates the upload's blob on the server if it has none (or
// the server forgot it), and returns its state.
func (c *Client) ensureBlob(ctx context.Context, u *clientdb.Upload, timer uint32) (api.BlobStatus, error) {
	if u.BlobID != "" {
		st, err := c.blobStatus(ctx, u.BlobID)
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusNotFound {
			return st, err
		}
		c.log.Info("the server forgot an unfinished upload; starting it again", "id", u.ID)
	}
	var st api.BlobStatus
	if err := c.call(ctx, http.MethodPost, api.PathBlobs, api.CreateBlobRequest{Size: u.Size, TTL: int64(timer)}, &st, true); err != nil {
		return st, fmt.Errorf("client: creating the upload: %w", err)
	}
	u.BlobID = st.ID
	if err := c.db.Update(ctx, func(tx *clientdb.Tx) error { return tx.PutUpload(u) }); err != nil {
		return st, fmt.Errorf("client: %w", err)
	}
	return st, nil
}

func (c *Client) blobStatus(ctx context.Context, id string) (api.BlobStatus, error) {
	var st api.BlobStatus
	err := c.call(ctx, http.MethodGet, path(api.PathBlobStatus, id), nil, &st, true)
	return st, err
}

// finishBlob checks the upload on the server and names the devices that
// will fetch it: every device of the peer and every other own device.
func (c *Client) finishBlob(ctx context.Context, me self, u *clientdb.Upload) error {
	ts, err := c.targets(ctx, me, u.Peer)
	if err != nil {
		return err
	}
	req := api.FinishBlobRequest{SHA256: u.SHA256}
	for _, t := range ts {
		req.Recipients = append(req.Recipients, api.BlobRecipient{Handle: t.peer.handle, DeviceID: t.dev.ID})
	}
	return c.call(ctx, http.MethodPost, path(api.PathBlobFinish, u.BlobID), req, nil, true)
}

// uploadBytes appends the ciphertext from off to the end, re-encrypting
// it from the file (STREAM is deterministic under the key), patchSize
// bytes a request, asking the server where it stands after a failure. It
// returns the offset its first accepted append started at.
func (c *Client) uploadBytes(ctx context.Context, u *clientdb.Upload, off int64, o FileOptions) (from int64, err error) {
	lim := newLimiter(o.RateLimit)
	report := progressFn(o.Progress, u.ID, u.Name, "uploading", u.Size)
	fails := 0
	from = -1
	for off < u.Size {
		n := min(int64(patchSize), u.Size-off)
		next, err := c.patchBlob(ctx, u, off, n, lim, report)
		if err == nil {
			if from < 0 {
				from = off
			}
			off, fails = next, 0
			continue
		}
		if ctx.Err() != nil {
			return from, ctx.Err()
		}
		var ae *APIError
		if errors.As(err, &ae) {
			switch {
			case ae.Code == api.CodeUploadComplete:
				return max(from, off), nil
			case ae.Code == api.CodeOffsetMismatch, ae.Code == api.CodeUploadBusy, ae.Code == api.CodeBadRequest,
				ae.Status == http.StatusTooManyRequests, ae.Status >= 500, ae.Status == http.StatusUnauthorized:
			default:
				return from, fmt.Errorf("client: uploading: %w", err)
			}
		}
		fails++
		if fails >= maxTransferTries {
			return from, fmt.Errorf("client: uploading (it resumes from where it stopped next time): %w", err)
		}
		c.log.Info("upload interrupted; resuming", "err", err, "try", fails)
		if err := sleepCtx(ctx, backoff(fails)); err != nil {
			return from, err
		}
		st, err := c.blobStatus(ctx, u.BlobID)
		if err != nil {
			continue
		}
		off = st.Offset
		if st.Complete {
			break
		}
	}
	if from < 0 {
		from = off
	}
	return from, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// patchBlob sends the n ciphertext bytes from off in one PATCH and
// returns the server's new offset.
func (c *Client) patchBlob(ctx context.Context, u *clientdb.Upload, off, n int64, lim *limiter, report func(int64)) (int64, error) {
	var st api.BlobStatus
	err := c.blobRequest(ctx, http.MethodPatch, path(api.PathBlob, u.BlobID), func() (io.ReadCloser, error) {
		body, err := ciphertextFrom(u.PlainPath, u.Key, off, n)
		if err != nil {
			return nil, err
		}
		m := &meter{ctx: ctx, r: body, lim: lim, base: off, fn: report}
		return readCloser{m, body}, nil
	}, n, http.Header{api.HeaderUploadOffset: {fmt.Sprint(off)}, "Content-Type": {"application/offset+octet-stream"}}, func(resp *http.Response) error {
		return decodeJSON(resp, &st)
	})
	if err != nil {
		return 0, err
	}
	return st.Offset, nil
}

// ciphertextFrom returns n bytes of the ciphertext of the file at plain
// under key, from ciphertext offset off: it encrypts from the chunk that
// holds off (stream.NewWriterAt) and skips the bytes before off. Close
// stops the encryption.
func ciphertextFrom(plain string, key []byte, off, n int64) (io.ReadCloser, error) {
	f, err := os.Open(plain)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	i := off / stream.EncryptedChunkSize
	ctStart, ptStart := stream.ChunkOffset(i)
	if _, err := f.Seek(ptStart, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("client: %w", err)
	}
	pr, pw := io.Pipe()
	go func() {
		defer f.Close()
		w, err := stream.NewWriterAt(key, &skipWriter{w: pw, skip: off - ctStart}, i)
		if err == nil {
			_, err = io.Copy(w, f)
		}
		if err == nil {
			err = w.Close()
		}
		pw.CloseWithError(err)
	}()
	return readCloser{io.LimitReader(pr, n), pr}, nil
}

// skipWriter drops the first skip bytes written to it.
type skipWriter struct {
	w    io.Writer
	skip int64
}

func (s *skipWriter) Write(p []byte) (int, error) {
	n := len(p)
	if s.skip > 0 {
		k := min(int64(len(p)), s.skip)
		s.skip -= k
		p = p[k:]
	}
	if len(p) == 0 {
		return n, nil
	}
	if _, err := s.w.Write(p); err != nil {
		return 0, err
	}
	return n, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// Upload is an unfinished upload, kept until its message is sent.
type Upload struct {
	ID      string // the message id it will be sent with
	Peer    string
	Path    string // the file
	Name    string
	Size    int64 // bytes of the file (after metadata removal)
	Created time.Time
}

// Uploads returns the unfinished uploads, oldest first.
func (c *Client) Uploads(ctx context.Context) ([]Upload, error) {
	var us []*clientdb.Upload
	err := c.db.View(ctx, func(tx *clientdb.Tx) error {
		var err error
		us, err = tx.Uploads()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	out := make([]Upload, len(us))
	for i, u := range us {
		out[i] = Upload{ID: u.ID, Peer: u.Peer, Path: u.Source, Name: u.Name, Size: u.PlainSize, Created: u.Created}
	}
	return out, nil
}

// ResumeUpload continues the unfinished upload id and sends its message.
// o's Caption, KeepMetadata and ViewOnce are ignored: the upload keeps
// those it began with.
func (c *Client) ResumeUpload(ctx context.Context, id string, o FileOptions) (SentFile, error) {
	me, err := c.self()
	if err != nil {
		return SentFile{}, err
	}
	var u *clientdb.Upload
	err = c.db.View(ctx, func(tx *clientdb.Tx) error {
		var err error
		u, err = tx.Upload(id)
		return err
	})
	if errors.Is(err, clientdb.ErrNotFound) {
		return SentFile{}, fmt.Errorf("%w: %s", ErrNoUpload, id)
	}
	if err != nil {
		return SentFile{}, fmt.Errorf("client: %w", err)
	}
	if _, _, err := c.checkRecipient(ctx, u.Peer); err != nil {
		return SentFile{}, err
	}
	return c.runUpload(ctx, me, u, o, SentFile{Stripped: u.Temp})
}

// CancelUpload drops the unfinished upload id, here and on the server.
func (c *Client) CancelUpload(ctx context.Context, id string) error {
	var u *clientdb.Upload
	err := c.db.View(ctx, func(tx *clientdb.Tx) error {
		var err error
		u, err = tx.Upload(id)
		return err
	})
	if errors.Is(err, clientdb.ErrNotFound) {
		return fmt.Errorf("%w: %s", ErrNoUpload, id)
	}
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if u.BlobID != "" {
		err := c.call(ctx, http.MethodDelete, path(api.PathBlob, u.BlobID), nil, nil, true)
		var ae *APIError
		if err != nil && !(errors.As(err, &ae) && ae.Status == http.StatusNotFound) {
			return fmt.Errorf("client: deleting the upload on the server: %w", err)
		}
	}
	if err := c.db.Update(ctx, func(tx *clientdb.Tx) error { return tx.DeleteUpload(id) }); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	c.removeTemp(u)
	return nil
}

// SafeFileName makes a received file name safe to save: the base name
// only (after '/' and '\'), without control characters or characters that
// some file systems refuse, without leading dots (no hidden files), at
// most 200 bytes with its extension kept; "file" if nothing is left.
func SafeFileName(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	var b strings.Builder
	for _, r := range name {
		switch {
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0xfffd:
		case r == 0x200e || r == 0x200f || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069):
			// Bidirectional overrides would let "gpj.exe" show as "exe.jpg".
		case strings.ContainsRune(`:*?"<>|`, r):
			b.WriteRune('_')
		default:
			b.WriteRune(r)
		}
	}
	name = strings.TrimLeft(strings.TrimSpace(b.String()), ".")
	name = strings.TrimRight(name, ". ")
	if len(name) > 200 {
		ext := filepath.Ext(name)
		if len(ext) > 20 {
			ext = ""
		}
		stem := name[:200-len(ext)]
		for !utf8.ValidString(stem) {
			stem = stem[:len(stem)-1]
		}
		name = stem + ext
	}
	if name == "" {
		return "file"
	}
	return name
}

// decodeJSON reads a JSON answer.
func decodeJSON(resp *http.Response, out any) error {
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("client: reading the answer: %w", err)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("client: decoding the answer: %w", err)
	}
	return nil
}
