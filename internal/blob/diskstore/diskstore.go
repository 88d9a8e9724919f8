// Package diskstore is the blob store on local disk: one folder, three
// kinds of file per blob, named by the hex of the blob id's bytes (so
// case-insensitive file systems cannot confuse two base64url ids):
//
//	<hex>.json   the metadata sidecar (owner, size, offset, running SHA-256
//	             state, hash, recipients, expiry), replaced atomically
//	<hex>.part   the data while uploading
//	<hex>.blob   the data once finished (fsync'ed, then renamed from .part)
//
// Files are created with mode 0600 and the folder with 0700. The sidecar is
// the truth; Open reads every sidecar into memory (the index that answers
// Usage and Expired) and repairs what a crash left behind: a .part longer
// than the recorded offset is cut back to it, a shorter one is re-hashed
// and its offset lowered, a .blob whose sidecar is not finished goes back
// to .part, and files without a sidecar are removed.
//
// Appends are not fsync'ed one by one (an upload resumes from whatever
// survived, and the SHA-256 check at Finish catches anything else); Finish
// fsyncs the data, renames it, and fsyncs the folder and the sidecar.
package diskstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parleychat/parley/internal/blob"
)

const (
	sidecarExt = ".json"
	partExt    = ".part"
	blobExt    = ".blob"
	tmpExt     = ".tmp"

	// bufSize is the copy buffer of one Append or rehash.
	bufSize = 1 << 20
	// checkpointBytes: an Append records its progress in the sidecar this
	// often, so a crash of the server loses at most this much of an upload.
	checkpointBytes = 64 << 20

	recordVersion = 1
)

var _ blob.Store = (*Store)(nil)

// bufPool holds the copy buffers of appends.
var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// Store is a blob.Store in one folder.
type Store struct {
	dir string
	log *slog.Logger

	mu     sync.Mutex // guards everything below and every sidecar write
	blobs  map[string]*entry
	usage  map[string]int64 // declared bytes per owner handle
	closed bool
	ops    sync.WaitGroup
}

// entry is one blob in memory.
type entry struct {
	rec     record
	hash    hash.Hash // running SHA-256 of the data while uploading
	busy    bool      // an Append or Finish runs
	deleted bool      // removed while busy: the busy operation must not write
}

// record is the JSON sidecar.
type record struct {
	Version   int           `json:"v"`
	ID        string        `json:"id"`
	Owner     blob.Device   `json:"owner"`
	Size      int64         `json:"size"`
	Created   time.Time     `json:"created"`
	Expires   time.Time     `json:"expires"`
	Lifetime  time.Duration `json:"lifetime"`
	Offset    int64         `json:"offset"`
	HashState []byte        `json:"hash_state,omitempty"` // sha256 state after Offset bytes
	Complete  bool          `json:"complete,omitempty"`
	SHA256    []byte        `json:"sha256,omitempty"`
	Pending   []blob.Device `json:"pending,omitempty"`
	Claimed   []blob.Device `json:"claimed,omitempty"`
}

// parseRecord decodes and checks a sidecar.
func parseRecord(b []byte) (record, error) {
	var r record
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return record{}, fmt.Errorf("parsing the sidecar: %w", err)
	}
	if dec.More() {
		return record{}, errors.New("data after the sidecar")
	}
	switch {
	case r.Version != recordVersion:
		return record{}, fmt.Errorf("sidecar version %d", r.Version)
	case !blob.ValidID(r.ID) || r.Owner.Handle == "":
		return record{}, errors.New("the sidecar has no valid id or owner")
	case r.Size < 1 || r.Offset < 0 || r.Offset > r.Size:
		return record{}, errors.New("the sidecar's size and offset are inconsistent")
	case r.Complete && (r.Offset != r.Size || len(r.SHA256) != sha256.Size || len(r.HashState) != 0):
		return record{}, errors.New("the sidecar is finished but inconsistent")
	case !r.Complete && (len(r.SHA256) != 0 || len(r.Pending) != 0 || len(r.Claimed) != 0):
		return record{}, errors.New("the sidecar is unfinished but has recipients or a hash")
	}
	return r, nil
}

func (r *record) info() blob.Info {
	return blob.Info{
		Meta: blob.Meta{
			ID: r.ID, Owner: r.Owner, Size: r.Size, Created: r.Created,
			Expires: r.Expires, Lifetime: r.Lifetime,
		},
		Offset:   r.Offset,
		Complete: r.Complete,
		SHA256:   slices.Clone(r.SHA256),
		Pending:  slices.Clone(r.Pending),
		Claimed:  slices.Clone(r.Claimed),
	}
}

// Open opens (creating it with mode 0700 if needed) the blob folder dir,
// loads every blob's metadata and repairs what an interrupted run left.
func Open(dir string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("diskstore: creating %s: %w", dir, err)
	}
	s := &Store{dir: dir, log: logger, blobs: make(map[string]*entry), usage: make(map[string]int64)}
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

// Dir returns the folder.
func (s *Store) Dir() string { return s.dir }

// base is the path of a blob's files without extension.
func (s *Store) base(id string) string {
	b, _ := base64.RawURLEncoding.DecodeString(id)
	return filepath.Join(s.dir, hex.EncodeToString(b))
}

// load reads the folder: sidecars first, then files nobody owns.
func (s *Store) load() error {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("diskstore: reading %s: %w", s.dir, err)
	}
	owned := make(map[string]bool)
	for _, de := range des {
		name := de.Name()
		if strings.HasSuffix(name, tmpExt) {
			s.remove(filepath.Join(s.dir, name))
			continue
		}
		stem, ok := strings.CutSuffix(name, sidecarExt)
		if !ok || !de.Type().IsRegular() {
			continue
		}
		e, err := s.recover(stem)
		if err != nil {
			s.log.Warn("dropping a blob that cannot be recovered", "file", short(name), "err", err)
			for _, ext := range []string{sidecarExt, partExt, blobExt} {
				s.remove(filepath.Join(s.dir, stem+ext))
			}
			continue
		}
		owned[stem] = true
		s.blobs[e.rec.ID] = e
		s.usage[e.rec.Owner.Handle] += e.rec.Size
	}
	for _, de := range des {
		name := de.Name()
		stem := strings.TrimSuffix(strings.TrimSuffix(name, partExt), blobExt)
		if stem != name && !owned[stem] {
			s.log.Warn("removing blob data without metadata", "file", short(name))
			s.remove(filepath.Join(s.dir, name))
		}
	}
	return nil
}

// recover loads one sidecar and brings its data file in line with it.
func (s *Store) recover(stem string) (*entry, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, stem+sidecarExt))
	if err != nil {
		return nil, err
	}
	r, err := parseRecord(b)
	if err != nil {
		return nil, err
	}
	base := s.base(r.ID)
	if filepath.Base(base) != stem {
		return nil, errors.New("the sidecar names another blob")
	}
	e := &entry{rec: r}
	part, done := base+partExt, base+blobExt
	if r.Complete {
		fi, err := os.Stat(done)
		if err != nil || fi.Size() != r.Size {
			return nil, fmt.Errorf("the finished data is missing or has the wrong size: %v", err)
		}
		return e, nil
	}
	// Unfinished: a .blob means the run stopped between the rename and the
	// sidecar; take it back.
	if _, err := os.Stat(done); err == nil {
		if err := os.Rename(done, part); err != nil {
			return nil, err
		}
	}
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	e.hash = sha256.New()
	restored := fi.Size() >= r.Offset && len(r.HashState) > 0 &&
		e.hash.(encoding.BinaryUnmarshaler).UnmarshalBinary(r.HashState) == nil
	if !restored && r.Offset == 0 {
		e.hash.Reset()
		restored = true
	}
	if restored {
		if fi.Size() > r.Offset {
			if err := f.Truncate(r.Offset); err != nil {
				return nil, err
			}
		}
		return e, nil
	}
	// The data is shorter than recorded (lost in a crash) or the hash state
	// is unusable: keep what is there and hash it again.
	e.hash.Reset()
	n, err := io.CopyBuffer(e.hash, io.LimitReader(f, min(fi.Size(), r.Size)), make([]byte, bufSize))
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(n); err != nil {
		return nil, err
	}
	e.rec.Offset = n
	s.log.Warn("blob data shorter than recorded; resuming from what is on disk", "file", short(stem), "offset", n, "recorded", r.Offset)
	if err := s.writeRecord(e, true); err != nil {
		return nil, err
	}
	return e, nil
}

// short shortens a file name for logs: a blob's name is its id, and the
// id is the capability to download it.
func short(name string) string {
	if len(name) > 8 {
		return name[:8] + "…"
	}
	return name
}

func (s *Store) remove(path string) {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("removing a blob file", "file", short(filepath.Base(path)), "err", err)
	}
}

// writeRecord replaces e's sidecar: write a temporary file, rename it over.
// With durable, the file and the folder are fsync'ed. Called with s.mu
// held (or before the store is shared).
func (s *Store) writeRecord(e *entry, durable bool) error {
	e.rec.Version = recordVersion
	if e.hash != nil {
		st, err := e.hash.(encoding.BinaryMarshaler).MarshalBinary()
		if err != nil {
			return fmt.Errorf("diskstore: saving the hash state: %w", err)
		}
		e.rec.HashState = st
	} else {
		e.rec.HashState = nil
	}
	b, err := json.Marshal(&e.rec)
	if err != nil {
		return fmt.Errorf("diskstore: encoding metadata: %w", err)
	}
	path := s.base(e.rec.ID) + sidecarExt
	tmp := path + tmpExt
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("diskstore: writing metadata: %w", err)
	}
	_, err = f.Write(b)
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil && durable {
		err = s.syncDir()
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("diskstore: writing metadata: %w", err)
	}
	return nil
}

func (s *Store) syncDir() error {
	d, err := os.Open(s.dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// begin counts an operation in; false once closed. Called with s.mu held.
func (s *Store) begin() bool {
	if s.closed {
		return false
	}
	s.ops.Add(1)
	return true
}

// lookup returns the live entry for id. Called with s.mu held.
func (s *Store) lookup(id string) (*entry, error) {
	if !blob.ValidID(id) {
		return nil, blob.ErrNotFound
	}
	e, ok := s.blobs[id]
	if !ok {
		return nil, blob.ErrNotFound
	}
	return e, nil
}

// Create implements blob.Store.
func (s *Store) Create(ctx context.Context, m blob.Meta, quota int64) error {
	if !blob.ValidID(m.ID) || m.Size < 1 || m.Owner.Handle == "" {
		return fmt.Errorf("%w: blob id, size or owner", blob.ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.begin() {
		return blob.ErrClosed
	}
	defer s.ops.Done()
	if _, ok := s.blobs[m.ID]; ok {
		return blob.ErrExists
	}
	if used := s.usage[m.Owner.Handle]; used > quota-m.Size {
		return fmt.Errorf("%w: %d bytes held, %d asked, quota %d", blob.ErrQuota, used, m.Size, quota)
	}
	e := &entry{
		rec: record{
			ID: m.ID, Owner: m.Owner, Size: m.Size, Created: m.Created,
			Expires: m.Expires, Lifetime: m.Lifetime,
		},
		hash: sha256.New(),
	}
	base := s.base(m.ID)
	f, err := os.OpenFile(base+partExt, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("diskstore: creating blob data: %w", err)
	}
	f.Close()
	if err := s.writeRecord(e, true); err != nil {
		os.Remove(base + partExt)
		return err
	}
	s.blobs[m.ID] = e
	s.usage[m.Owner.Handle] += m.Size
	return nil
}

// Info implements blob.Store.
func (s *Store) Info(ctx context.Context, id string) (blob.Info, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return blob.Info{}, blob.ErrClosed
	}
	e, err := s.lookup(id)
	if err != nil {
		return blob.Info{}, err
	}
	return e.rec.info(), nil
}

// claimBusy marks e busy for an Append or Finish. Called with s.mu held.
func (s *Store) claimBusy(id string) (*entry, error) {
	if s.closed {
		return nil, blob.ErrClosed
	}
	e, err := s.lookup(id)
	if err != nil {
		return nil, err
	}
	if e.rec.Complete {
		return e, blob.ErrComplete
	}
	if e.busy {
		return e, blob.ErrBusy
	}
	e.busy = true
	s.ops.Add(1)
	return e, nil
}

// release ends a busy operation.
func (s *Store) release(e *entry) {
	e.busy = false
	s.ops.Done()
}

// Append implements blob.Store.
func (s *Store) Append(ctx context.Context, id string, offset int64, r io.Reader) (int64, error) {
	s.mu.Lock()
	e, err := s.claimBusy(id)
	if err != nil {
		s.mu.Unlock()
		return 0, err
	}
	if offset != e.rec.Offset {
		cur := e.rec.Offset
		s.release(e)
		s.mu.Unlock()
		return cur, fmt.Errorf("%w: offset %d, current size %d", blob.ErrOffset, offset, cur)
	}
	size := e.rec.Size
	path := s.base(id) + partExt
	s.mu.Unlock()

	n, werr := s.write(ctx, e, path, offset, size, r)

	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.release(e)
	if e.deleted {
		return offset + n, blob.ErrNotFound
	}
	if err := s.writeRecord(e, false); err != nil && werr == nil {
		werr = err
	}
	return e.rec.Offset, werr
}

// write copies r to the data file from offset, hashing as it goes and
// recording progress in e (under s.mu) every checkpointBytes. It returns
// the bytes written.
func (s *Store) write(ctx context.Context, e *entry, path string, offset, size int64, r io.Reader) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return 0, fmt.Errorf("diskstore: opening blob data: %w", err)
	}
	defer f.Close()
	// A failed write may have left bytes past the recorded size.
	if err := f.Truncate(offset); err != nil {
		return 0, fmt.Errorf("diskstore: %w", err)
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return 0, fmt.Errorf("diskstore: %w", err)
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var written, sinceCheckpoint int64
	// commit records the bytes written so far in e (the caller writes the
	// sidecar at the end); every checkpointBytes it writes the sidecar too.
	commit := func(checkpoint bool) {
		s.mu.Lock()
		if !e.deleted {
			e.rec.Offset = offset + written
			if checkpoint {
				if err := s.writeRecord(e, false); err != nil {
					s.log.Warn("checkpointing an upload", "err", err)
				}
			}
		}
		s.mu.Unlock()
	}
	defer commit(false)
	for {
		if err := ctx.Err(); err != nil {
			return written, err
		}
		room := size - offset - written
		if room == 0 {
			// Declared size reached: anything more is refused.
			var one [1]byte
			n, err := io.ReadFull(r, one[:])
			if n > 0 {
				return written, fmt.Errorf("%w: the blob is %d bytes", blob.ErrTooLong, size)
			}
			if err != nil && err != io.EOF {
				return written, err
			}
			return written, nil
		}
		n, rerr := fill(r, buf[:min(int64(len(buf)), room)])
		if n > 0 {
			if _, err := f.Write(buf[:n]); err != nil {
				return written, fmt.Errorf("diskstore: writing blob data: %w", err)
			}
			e.hash.Write(buf[:n]) // only the busy operation touches it
			written += int64(n)
			sinceCheckpoint += int64(n)
			if sinceCheckpoint >= checkpointBytes {
				commit(true)
				sinceCheckpoint = 0
			}
		}
		if rerr == io.EOF {
			return written, nil
		}
		if rerr != nil {
			return written, rerr
		}
	}
}

// fill reads into b until it is full or r fails (io.EOF included): whole
// buffers mean fewer, larger writes than one per network read.
func fill(r io.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Finish implements blob.Store.
func (s *Store) Finish(ctx context.Context, id string, fin blob.Finish) (blob.Info, error) {
	recipients := blob.SortDevices(fin.Recipients)
	s.mu.Lock()
	e, err := s.claimBusy(id)
	if errors.Is(err, blob.ErrComplete) {
		defer s.mu.Unlock()
		if string(e.rec.SHA256) != string(fin.SHA256) {
			return e.rec.info(), err
		}
		// Finishing again adds the recipients not named yet.
		var added []blob.Device
		for _, d := range recipients {
			if !slices.Contains(e.rec.Pending, d) && !slices.Contains(e.rec.Claimed, d) {
				added = append(added, d)
			}
		}
		if len(added) == 0 {
			return e.rec.info(), nil
		}
		prev := e.rec
		e.rec.Pending = blob.SortDevices(append(slices.Clone(e.rec.Pending), added...))
		if err := s.writeRecord(e, true); err != nil {
			e.rec = prev
			return blob.Info{}, err
		}
		return e.rec.info(), nil
	}
	if err != nil {
		s.mu.Unlock()
		return blob.Info{}, err
	}
	if e.rec.Offset != e.rec.Size {
		info := e.rec.info()
		s.release(e)
		s.mu.Unlock()
		return info, fmt.Errorf("%w: %d of %d bytes", blob.ErrIncomplete, info.Offset, info.Size)
	}
	if sum := e.hash.Sum(nil); string(sum) != string(fin.SHA256) {
		info := e.rec.info()
		s.release(e)
		s.mu.Unlock()
		return info, blob.ErrHash
	}
	base := s.base(id)
	s.mu.Unlock()

	// Make the data durable outside the lock: it may be gigabytes.
	err = syncFile(base + partExt)

	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.release(e)
	if e.deleted {
		return blob.Info{}, blob.ErrNotFound
	}
	if err != nil {
		return blob.Info{}, fmt.Errorf("diskstore: syncing blob data: %w", err)
	}
	if err := os.Rename(base+partExt, base+blobExt); err != nil {
		return blob.Info{}, fmt.Errorf("diskstore: %w", err)
	}
	prev := e.rec
	prevHash := e.hash
	e.rec.Complete = true
	e.rec.SHA256 = slices.Clone(fin.SHA256)
	e.rec.Pending = recipients
	e.rec.Claimed = nil
	e.rec.Expires = fin.Expires
	e.hash = nil
	if err := s.writeRecord(e, true); err != nil {
		os.Rename(base+blobExt, base+partExt)
		e.rec, e.hash = prev, prevHash
		return blob.Info{}, err
	}
	return e.rec.info(), nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Open implements blob.Store.
func (s *Store) Open(ctx context.Context, id string, offset int64) (io.ReadCloser, blob.Info, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, blob.Info{}, blob.ErrClosed
	}
	e, err := s.lookup(id)
	if err != nil {
		s.mu.Unlock()
		return nil, blob.Info{}, err
	}
	info := e.rec.info()
	s.mu.Unlock()
	if !info.Complete {
		return nil, info, blob.ErrIncomplete
	}
	if offset < 0 || offset > info.Size {
		return nil, info, fmt.Errorf("%w: offset %d of a %d-byte blob", blob.ErrInvalid, offset, info.Size)
	}
	f, err := os.Open(s.base(id) + blobExt)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, blob.Info{}, blob.ErrNotFound // deleted meanwhile
	}
	if err != nil {
		return nil, blob.Info{}, fmt.Errorf("diskstore: %w", err)
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil, blob.Info{}, fmt.Errorf("diskstore: %w", err)
	}
	return f, info, nil
}

// Claim implements blob.Store.
func (s *Store) Claim(ctx context.Context, id string, d blob.Device) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.begin() {
		return false, blob.ErrClosed
	}
	defer s.ops.Done()
	e, err := s.lookup(id)
	if err != nil {
		return false, err
	}
	if !e.rec.Complete {
		return false, blob.ErrIncomplete
	}
	i := slices.Index(e.rec.Pending, d)
	if i < 0 {
		if slices.Contains(e.rec.Claimed, d) {
			return false, nil
		}
		return false, blob.ErrNotRecipient
	}
	if len(e.rec.Pending) == 1 {
		return true, s.deleteLocked(e)
	}
	prev := e.rec
	e.rec.Pending = slices.Delete(slices.Clone(e.rec.Pending), i, i+1)
	e.rec.Claimed = blob.SortDevices(append(slices.Clone(e.rec.Claimed), d))
	if err := s.writeRecord(e, true); err != nil {
		e.rec = prev
		return false, err
	}
	return false, nil
}

// Delete implements blob.Store.
func (s *Store) Delete(ctx context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.begin() {
		return blob.ErrClosed
	}
	defer s.ops.Done()
	e, err := s.lookup(id)
	if err != nil {
		return err
	}
	return s.deleteLocked(e)
}

// deleteLocked removes e: sidecar first (so a crash leaves only orphan
// data, which Open removes), then the data. Called with s.mu held.
func (s *Store) deleteLocked(e *entry) error {
	base := s.base(e.rec.ID)
	if err := os.Remove(base + sidecarExt); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("diskstore: deleting blob metadata: %w", err)
	}
	s.remove(base + partExt)
	s.remove(base + blobExt)
	delete(s.blobs, e.rec.ID)
	s.usage[e.rec.Owner.Handle] -= e.rec.Size
	if s.usage[e.rec.Owner.Handle] == 0 {
		delete(s.usage, e.rec.Owner.Handle)
	}
	e.deleted = true
	return nil
}

// Expired implements blob.Store.
func (s *Store) Expired(ctx context.Context, now time.Time, limit int) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, blob.ErrClosed
	}
	var out []string
	for id, e := range s.blobs {
		if len(out) >= limit {
			break
		}
		if !e.rec.Expires.After(now) {
			out = append(out, id)
		}
	}
	return out, nil
}

// Usage implements blob.Store.
func (s *Store) Usage(ctx context.Context, handle string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, blob.ErrClosed
	}
	return s.usage[handle], nil
}

// Close implements blob.Store: new operations fail with ErrClosed, and
// Close waits for those in progress.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.ops.Wait()
	return nil
}
