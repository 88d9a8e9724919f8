package client

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/client/clientdb"
	"github.com/parleychat/parley/internal/content"
	"github.com/parleychat/parley/internal/stream"
)

// DownloadsDir is the folder in the home where received files are saved
// unless DownloadOptions.Dir names another.
const DownloadsDir = "downloads"

// mediaDir holds view-once media until it is opened (inside the home,
// never in the downloads folder).
const mediaDir = "media"

// DownloadOptions tune Download and DownloadPending.
type DownloadOptions struct {
	Dir       string // where files are saved; "" is the home's downloads folder
	Progress  func(Progress)
	RateLimit int64 // bytes per second (0: no limit)
}

// Downloaded is the outcome of one download.
type Downloaded struct {
	ID       string // the message id
	Peer     string
	From     string
	Name     string
	Size     int64
	ViewOnce bool   // saved privately: Open shows it once
	Path     string // where the file is (not for view-once media)
	Err      error  // why it failed (DownloadPending)
}

// Download fetches the file of message id (resuming a download that was
// interrupted), checks the ciphertext's size and SHA-256 and that every
// chunk authenticates, and only then gives the plaintext its final name:
// a new name in o.Dir (view-once media: a private place, for Open). A
// file altered on the server is refused with ErrTampered and nothing is
// kept. Afterwards it tells the server this device is done with the blob.
// A file already saved is not fetched again.
func (c *Client) Download(ctx context.Context, id string, o DownloadOptions) (Downloaded, error) {
	var a *clientdb.Attachment
	var m *clientdb.Message
	err := c.db.View(ctx, func(tx *clientdb.Tx) error {
		var err error
		if m, err = tx.MessageByID(strings.ToLower(id)); err != nil {
			return err
		}
		a, err = tx.AttachmentOf(m.Seq)
		return err
	})
	if errors.Is(err, clientdb.ErrNotFound) {
		return Downloaded{ID: id}, fmt.Errorf("%w: %s", ErrNoAttachment, id)
	}
	if err != nil {
		return Downloaded{ID: id}, fmt.Errorf("client: %w", err)
	}
	return c.download(ctx, m, a, o)
}

// DownloadPending downloads the files of received messages not fetched
// yet (message requests excepted: they wait until accepted, or for
// Download), and finishes what earlier downloads left (telling the server
// a blob is done). fn gets each outcome; a failed download is reported
// there, not returned.
func (c *Client) DownloadPending(ctx context.Context, o DownloadOptions, fn func(Downloaded)) error {
	var as []*clientdb.Attachment
	var ms []*clientdb.Message
	err := c.db.View(ctx, func(tx *clientdb.Tx) error {
		var err error
		as, ms, err = tx.AttachmentsToDo()
		return err
	})
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	for i, a := range as {
		m := ms[i]
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case a.State == clientdb.AttachSaved && a.Claimed:
			continue
		case a.State == clientdb.AttachSaved, a.State == clientdb.AttachRelease:
			c.claim(ctx, a)
			continue
		case m.Request:
			continue
		}
		d, err := c.download(ctx, m, a, o)
		d.Err = err
		if fn != nil {
			fn(d)
		}
	}
	return nil
}

// download is Download of one stored attachment.
func (c *Client) download(ctx context.Context, m *clientdb.Message, a *clientdb.Attachment, o DownloadOptions) (Downloaded, error) {
	d := Downloaded{ID: m.ID, Peer: m.Peer, From: m.Sender, Name: a.Name, Size: a.PlainSize, ViewOnce: a.ViewOnce}
	switch a.State {
	case clientdb.AttachSaved:
		if !a.ViewOnce {
			d.Path = a.Path
		}
		if !a.Claimed {
			c.claim(ctx, a)
		}
		return d, nil
	case clientdb.AttachOpened:
		return d, ErrOpened
	case clientdb.AttachSent, clientdb.AttachRelease, clientdb.AttachReleased:
		if a.State == clientdb.AttachRelease {
			c.claim(ctx, a)
		}
		return d, fmt.Errorf("client: that file was sent from this account (%s)", a.Name)
	}
	if size, err := stream.PlaintextSize(a.Size); err != nil || size != a.PlainSize {
		return d, c.failDownload(ctx, a, errors.New("client: the message's file sizes do not agree"))
	}
	dir, final, err := c.destination(a, m, o.Dir)
	if err != nil {
		return d, err
	}
	path, err := c.fetch(ctx, m, a, dir, final, o)
	if err != nil {
		return d, err
	}
	if !a.ViewOnce {
		d.Path = path
	}
	c.claim(ctx, a)
	return d, nil
}

// destination returns the folder and final name of a download: view-once
// media go to the home's private media folder under the message id.
func (c *Client) destination(a *clientdb.Attachment, m *clientdb.Message, dir string) (string, string, error) {
	if a.ViewOnce {
		dir = filepath.Join(c.o.Home, mediaDir)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", "", fmt.Errorf("client: %w", err)
		}
		return dir, m.ID, nil
	}
	if dir == "" {
		dir = filepath.Join(c.o.Home, DownloadsDir)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", "", fmt.Errorf("client: %w", err)
		}
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", "", fmt.Errorf("client: %w", err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return "", "", fmt.Errorf("client: %w", err)
	}
	if !st.IsDir() {
		return "", "", fmt.Errorf("client: %s is not a folder", dir)
	}
	return dir, SafeFileName(a.Name), nil
}

// transferError is a download that broke off (network, server): it
// resumes later from what was kept.
type transferError struct{ err error }

func (e *transferError) Error() string { return e.err.Error() }
func (e *transferError) Unwrap() error { return e.err }

// retryable reports whether a download that failed with err may succeed
// if tried again: it broke off, or the server is busy or failing.
func retryable(err error) bool {
	var te *transferError
	var ae *APIError
	switch {
	case errors.As(err, &te):
		return true
	case errors.As(err, &ae):
		return ae.Status == http.StatusTooManyRequests || ae.Status >= 500
	}
	return false
}

// fetch downloads, checks and decrypts a's blob into dir and returns the
// final path. The plaintext grows in a hidden file next to its final
// place, kept across interruptions (a.Partial) and given its final name
// only once every check passed.
func (c *Client) fetch(ctx context.Context, m *clientdb.Message, a *clientdb.Attachment, dir, final string, o DownloadOptions) (string, error) {
	partial := filepath.Join(dir, ".parley-"+m.ID+".part")
	if a.Partial != "" && a.Partial != partial {
		os.Remove(a.Partial) // a download into another folder: start over here
	}
	if a.Partial != partial {
		a.Partial = partial
		if err := c.db.Update(ctx, func(tx *clientdb.Tx) error { return tx.PutAttachment(a) }); err != nil {
			return "", fmt.Errorf("client: %w", err)
		}
	}
	f, err := os.OpenFile(partial, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return "", fmt.Errorf("client: %w", err)
	}
	defer f.Close()
	lim := newLimiter(o.RateLimit)
	report := progressFn(o.Progress, m.ID, a.Name, "downloading", a.Size)
	fails := 0
	for {
		err = c.fetchFrom(ctx, f, a, lim, report)
		if err == nil || !retryable(err) || ctx.Err() != nil {
			break
		}
		fails++
		if fails >= maxTransferTries {
			return "", fmt.Errorf("client: downloading %s (it resumes from where it stopped next time): %w", a.Name, err)
		}
		c.log.Info("download interrupted; resuming", "err", err, "try", fails)
		if err := sleepCtx(ctx, backoff(fails)); err != nil {
			return "", err
		}
	}
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	if err != nil {
		f.Close()
		os.Remove(partial)
		return "", c.failDownload(ctx, a, err)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("client: %w", err)
	}
	f.Close()
	path, err := placeFile(partial, dir, final)
	if err != nil {
		return "", fmt.Errorf("client: %w", err)
	}
	a.State, a.Path, a.Partial, a.Error = clientdb.AttachSaved, path, "", ""
	if err := c.db.Update(context.WithoutCancel(ctx), func(tx *clientdb.Tx) error { return tx.PutAttachment(a) }); err != nil {
		return "", fmt.Errorf("client: %w", err)
	}
	return path, nil
}

// fetchFrom continues the download in f: it keeps the whole chunks
// already there, rebuilds the SHA-256 of their ciphertext by encrypting
// them again (STREAM is deterministic under the key), fetches the rest
// with a Range request, and decrypts it chunk by chunk into f. It returns
// nil when the whole ciphertext arrived, hashed to a.SHA256 and
// authenticated to its final chunk; a *transferError when the transfer
// broke off; any other error means the file is bad.
func (c *Client) fetchFrom(ctx context.Context, f *os.File, a *clientdb.Attachment, lim *limiter, report func(int64)) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	i := st.Size() / stream.ChunkSize
	if i*stream.ChunkSize >= a.PlainSize && a.PlainSize > 0 {
		i = (a.PlainSize - 1) / stream.ChunkSize // the final chunk is always fetched
	}
	if a.PlainSize == 0 {
		i = 0
	}
	ctOff, ptOff := stream.ChunkOffset(i)
	if err := f.Truncate(ptOff); err != nil {
		return err
	}
	h := sha256.New()
	if err := rehash(f, a.Key, ptOff, h); err != nil {
		return err
	}
	if _, err := f.Seek(ptOff, io.SeekStart); err != nil {
		return err
	}
	hdr := http.Header{}
	if ctOff > 0 {
		hdr.Set("Range", "bytes="+strconv.FormatInt(ctOff, 10)+"-")
	}
	return c.blobRequest(ctx, http.MethodGet, path(api.PathBlob, a.BlobID), nil, 0, hdr, func(resp *http.Response) error {
		if err := checkRange(resp, ctOff, a.Size); err != nil {
			return err
		}
		body := &meter{ctx: ctx, r: resp.Body, lim: lim, base: ctOff, fn: report}
		dec, err := stream.NewReaderAt(a.Key, io.TeeReader(body, h), i)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, dec)
		if body.err != nil {
			// The transfer broke off (a connection cut mid-chunk reads
			// as a chunk that fails to authenticate: the body says which).
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &transferError{fmt.Errorf("client: the download broke off after %d of %d bytes: %w", ctOff+body.done, a.Size, body.err)}
		}
		if err != nil {
			if errors.Is(err, stream.ErrAuth) || errors.Is(err, stream.ErrTruncated) || errors.Is(err, stream.ErrTrailingData) || errors.Is(err, stream.ErrEmptyFinalChunk) {
				return fmt.Errorf("%w: %w", ErrTampered, err)
			}
			return fmt.Errorf("client: saving %s: %w", a.Name, err)
		}
		if got := ctOff + body.done; got != a.Size {
			return fmt.Errorf("%w: %d bytes of ciphertext, the message says %d", ErrTampered, got, a.Size)
		}
		if subtle.ConstantTimeCompare(h.Sum(nil), a.SHA256) != 1 {
			return fmt.Errorf("%w: the SHA-256 of the file's ciphertext is not the one in the message", ErrTampered)
		}
		if pos, err := f.Seek(0, io.SeekCurrent); err != nil || pos != a.PlainSize {
			return fmt.Errorf("%w: %d bytes decrypted, the message says %d", ErrTampered, pos, a.PlainSize)
		}
		return nil
	})
}

// checkRange checks that a download answer starts at from and is of a
// blob of size bytes.
func checkRange(resp *http.Response, from, size int64) error {
	switch {
	case from == 0 && resp.StatusCode == http.StatusOK:
		if resp.ContentLength != size {
			return fmt.Errorf("%w: the server's file is %d bytes, the message says %d", ErrTampered, resp.ContentLength, size)
		}
	case resp.StatusCode == http.StatusPartialContent:
		want := fmt.Sprintf("bytes %d-%d/%d", from, size-1, size)
		if resp.Header.Get("Content-Range") != want {
			return fmt.Errorf("%w: the server answered the range %q, not %q", ErrTampered, resp.Header.Get("Content-Range"), want)
		}
	default:
		return fmt.Errorf("client: unexpected download answer %s", resp.Status)
	}
	return nil
}

// rehash writes to h the ciphertext of the first n plaintext bytes of f
// (n a multiple of the chunk size), as non-final chunks.
func rehash(f *os.File, key []byte, n int64, h hash.Hash) error {
	if n == 0 {
		return nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	w, err := stream.NewWriter(key, h)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(w, f, n); err != nil {
		return err
	}
	// The writer holds back the last full chunk until it knows more
	// follows: one more byte seals it as non-final (the byte itself is
	// never sealed).
	_, err = w.Write([]byte{0})
	return err
}

// placeFile gives the checked file at partial a final name in dir: name,
// or "name (2)", "name (3)", ... if taken (never replacing a file).
func placeFile(partial, dir, name string) (string, error) {
	ext := filepath.Ext(name)
	stem := strings.TrimSuffix(name, ext)
	for n := 1; n < 10000; n++ {
		cand := name
		if n > 1 {
			cand = fmt.Sprintf("%s (%d)%s", stem, n, ext)
		}
		p := filepath.Join(dir, cand)
		err := os.Link(partial, p)
		if err == nil {
			return p, os.Remove(partial)
		}
		if errors.Is(err, os.ErrExist) {
			continue
		}
		// No hard links here: rename, after checking the name is free.
		if _, serr := os.Lstat(p); serr == nil {
			continue
		}
		return p, os.Rename(partial, p)
	}
	return "", fmt.Errorf("no free name for %s in %s", name, dir)
}

// failDownload records a download that cannot succeed as it is.
func (c *Client) failDownload(ctx context.Context, a *clientdb.Attachment, cause error) error {
	a.State, a.Error, a.Partial = clientdb.AttachFailed, strings.TrimPrefix(cause.Error(), "client: "), ""
	var ae *APIError
	if errors.As(cause, &ae) && ae.Status == http.StatusNotFound {
		cause = fmt.Errorf("%w: %w", ErrBlobGone, cause)
		a.Error = strings.TrimPrefix(ErrBlobGone.Error(), "client: ")
	}
	if err := c.db.Update(context.WithoutCancel(ctx), func(tx *clientdb.Tx) error { return tx.PutAttachment(a) }); err != nil {
		c.log.Warn("recording a failed download", "err", err)
	}
	return cause
}

// claim tells the server this device is done with a's blob (so it is
// deleted once every recipient is), and records it. Failures are logged;
// DownloadPending tries again.
func (c *Client) claim(ctx context.Context, a *clientdb.Attachment) {
	err := c.call(ctx, http.MethodPost, path(api.PathBlobDone, a.BlobID), nil, nil, true)
	var ae *APIError
	if err != nil && !(errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Status == http.StatusForbidden)) {
		c.log.Info("telling the server a file was fetched", "err", err)
		return
	}
	a.Claimed = true
	if a.State == clientdb.AttachRelease {
		a.State = clientdb.AttachReleased
	}
	if err := c.db.Update(context.WithoutCancel(ctx), func(tx *clientdb.Tx) error { return tx.PutAttachment(a) }); err != nil {
		c.log.Warn("recording a fetched file", "err", err)
	}
}

// Open writes the file of message id to w: for view-once media, once (it
// downloads it if needed; afterwards the file is deleted and only a
// placeholder remains, ErrOpened); for any other file, the saved copy
// (downloading it first if needed). It marks the conversation read.
func (c *Client) Open(ctx context.Context, id string, w io.Writer, o DownloadOptions) (Downloaded, error) {
	var a *clientdb.Attachment
	var m *clientdb.Message
	load := func() error {
		return c.db.View(ctx, func(tx *clientdb.Tx) error {
			var err error
			if m, err = tx.MessageByID(strings.ToLower(id)); err != nil {
				return err
			}
			a, err = tx.AttachmentOf(m.Seq)
			return err
		})
	}
	err := load()
	if errors.Is(err, clientdb.ErrNotFound) {
		return Downloaded{ID: id}, fmt.Errorf("%w: %s", ErrNoAttachment, id)
	}
	if err != nil {
		return Downloaded{ID: id}, fmt.Errorf("client: %w", err)
	}
	d := Downloaded{ID: m.ID, Peer: m.Peer, From: m.Sender, Name: a.Name, Size: a.PlainSize, ViewOnce: a.ViewOnce}
	if a.State == clientdb.AttachOpened {
		return d, ErrOpened
	}
	if a.State != clientdb.AttachSaved {
		if _, err := c.download(ctx, m, a, o); err != nil {
			return d, err
		}
		if err := load(); err != nil {
			return d, fmt.Errorf("client: %w", err)
		}
	}
	f, err := os.Open(a.Path)
	if err != nil {
		return d, fmt.Errorf("client: %w", err)
	}
	_, err = io.Copy(w, f)
	f.Close()
	if err != nil {
		return d, fmt.Errorf("client: %w", err)
	}
	if a.ViewOnce {
		if err := os.Remove(a.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return d, fmt.Errorf("client: %w", err)
		}
		a.State, a.Path = clientdb.AttachOpened, ""
		if err := c.db.Update(context.WithoutCancel(ctx), func(tx *clientdb.Tx) error { return tx.PutAttachment(a) }); err != nil {
			return d, fmt.Errorf("client: %w", err)
		}
	} else {
		d.Path = a.Path
	}
	if !m.Outgoing && content.Kind(m.Kind) == content.KindText {
		if err := c.MarkRead(ctx, m.Peer); err != nil {
			c.log.Info("marking read", "err", err)
		}
	}
	return d, nil
}
