package server

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/blob"
	"github.com/parleychat/parley/internal/blob/diskstore"
	"github.com/parleychat/parley/internal/blob/s3store"
	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/s3"
	"github.com/parleychat/parley/internal/store"
)

// BlobDir is the blob store's folder inside Config.DataDir, unless
// Config.BlobDir names another.
const BlobDir = "blobs"

// openBlobStore opens the blob store the configuration names: with
// blob_s3, an s3store over that bucket and the PostgreSQL database of st
// (a cluster); else a diskstore in blob_dir.
func openBlobStore(cfg config.Config, st store.Store, logger *slog.Logger) (blob.Store, error) {
	logger = logger.With("component", "blobs")
	if cfg.BlobS3 != "" {
		return openS3Blobs(cfg, st, logger)
	}
	dir := cfg.BlobDir
	if dir == "" {
		dir = filepath.Join(cfg.DataDir, BlobDir)
	}
	bs, err := diskstore.Open(dir, logger)
	if err != nil {
		return nil, fmt.Errorf("server: opening the blob store: %w", err)
	}
	if cfg.NATS != "" {
		logger.Warn("blobs are on this node's disk while nats joins it to other nodes: a file uploaded " +
			"through one node cannot be downloaded through another; set blob_s3")
	}
	return bs, nil
}

// s3ObjectPrefix is where s3store keeps its objects in the bucket.
const s3ObjectPrefix = "blobs/"

func openS3Blobs(cfg config.Config, st store.Store, logger *slog.Logger) (blob.Store, error) {
	pool, ok := pgPool(st)
	if !ok {
		return nil, errors.New("server: blob_s3 needs the PostgreSQL store (db = postgres://...) for the blobs' metadata")
	}
	endpoint, bucket, err := config.SplitBlobS3(cfg.BlobS3)
	if err != nil {
		return nil, err
	}
	s3cfg := s3.Config{Endpoint: endpoint, Bucket: bucket, Region: cfg.BlobS3Region,
		AccessKey: cfg.BlobS3KeyID, SecretKey: os.Getenv("AWS_SECRET_ACCESS_KEY")}
	if s3cfg.AccessKey == "" {
		s3cfg.AccessKey = os.Getenv("AWS_ACCESS_KEY_ID")
	}
	if cfg.BlobS3Secret != "" {
		b, err := os.ReadFile(cfg.BlobS3Secret)
		if err != nil {
			return nil, fmt.Errorf("server: reading blob_s3_secret_file: %w", err)
		}
		s3cfg.SecretKey = strings.TrimSpace(string(b))
	}
	if s3cfg.AccessKey == "" || s3cfg.SecretKey == "" {
		return nil, errors.New("server: blob_s3 needs credentials: blob_s3_key_id and blob_s3_secret_file, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	client, err := s3.New(s3cfg, nil)
	if err != nil {
		return nil, fmt.Errorf("server: blob_s3: %w", err)
	}
	// Find out now, not at the first upload, whether the bucket answers.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := client.EnsureBucket(ctx); err != nil {
		return nil, fmt.Errorf("server: blob_s3 %s: %w", cfg.BlobS3, err)
	}
	logger.Info("blobs in S3", "endpoint", endpoint, "bucket", bucket)
	return s3store.Open(pool, client, logger, s3store.Options{Prefix: s3ObjectPrefix}), nil
}

// Limits of the blob endpoints.
const (
	// MaxBlobRecipients bounds the recipients one finish may name.
	MaxBlobRecipients = 1000
	// blobSweepBatch is how many expired blobs one sweep step deletes.
	blobSweepBatch = 500
)

// blobStatusOf pairs the blob endpoints' error codes with their HTTP
// status (the other codes are in api.HTTPStatus).
var blobStatusOf = map[string]int{
	api.CodeQuotaExceeded:       http.StatusInsufficientStorage,
	api.CodeOffsetMismatch:      http.StatusConflict,
	api.CodeUploadBusy:          http.StatusConflict,
	api.CodeUploadIncomplete:    http.StatusConflict,
	api.CodeUploadComplete:      http.StatusConflict,
	api.CodeHashMismatch:        http.StatusConflict,
	api.CodeRangeNotSatisfiable: http.StatusRequestedRangeNotSatisfiable,
}

// blobFail writes err like fail, knowing the blob codes, and logs internal
// failures by route rather than path (a blob's path holds its id, which is
// the capability to download it).
func (s *Server) blobFail(w http.ResponseWriter, r *http.Request, err error) {
	ae, internal := s.publicError(err)
	if internal {
		if r.Context().Err() != nil {
			return // the client has gone
		}
		s.log.Error("blob request failed", "method", r.Method, "route", r.Pattern, "err", err)
	}
	if status, ok := blobStatusOf[ae.e.Code]; ok {
		writeJSONStatus(w, status, api.ErrorResponse{Error: ae.e})
		return
	}
	writeAPIError(w, ae)
}

// blobError turns a blob store error into an API error; others pass.
func blobError(err error) error {
	switch {
	case errors.Is(err, blob.ErrNotFound):
		return errorf(api.CodeNotFound, "There is no such blob (it may have expired or been fetched by every recipient).")
	case errors.Is(err, blob.ErrBusy):
		return errorf(api.CodeUploadBusy, "Another request is writing or finishing this upload; retry once it ends.")
	case errors.Is(err, blob.ErrComplete):
		return errorf(api.CodeUploadComplete, "The upload is finished and cannot change.")
	case errors.Is(err, blob.ErrHash):
		return errorf(api.CodeHashMismatch, "The uploaded bytes do not have the given SHA-256; the upload stays open.")
	case errors.Is(err, blob.ErrTooLong):
		return errorf(api.CodeTooLarge, "The data goes beyond the blob's declared size; the bytes up to it were kept.")
	case errors.Is(err, blob.ErrClosed):
		return errShuttingDown
	}
	return err
}

func statusOfBlob(info blob.Info) api.BlobStatus {
	return api.BlobStatus{
		ID: info.ID, Size: info.Size, Offset: info.Offset, Complete: info.Complete,
		ExpiresAt: info.Expires.UnixMilli(),
	}
}

func ownerOf(c caller) blob.Device { return blob.Device{Handle: c.handle, ID: c.device} }

// blobInfo looks up the blob of the request's {id}.
func (s *Server) blobInfo(r *http.Request) (blob.Info, error) {
	id := r.PathValue("id")
	if !blob.ValidID(id) {
		return blob.Info{}, errorf(api.CodeNotFound, "There is no such blob.")
	}
	info, err := s.blobs.Info(r.Context(), id)
	if err != nil {
		return blob.Info{}, blobError(err)
	}
	return info, nil
}

// ownBlob looks up the request's blob and requires the caller to be the
// uploading device.
func (s *Server) ownBlob(r *http.Request) (blob.Info, error) {
	info, err := s.blobInfo(r)
	if err != nil {
		return info, err
	}
	if info.Owner != ownerOf(callerOf(r)) {
		return info, errorf(api.CodeForbidden, "Only the device that created this upload may change it.")
	}
	return info, nil
}

func setOffset(w http.ResponseWriter, off int64) {
	w.Header().Set(api.HeaderUploadOffset, strconv.FormatInt(off, 10))
}

// handleCreateBlob is POST /v1/blobs.
func (s *Server) handleCreateBlob(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	var req api.CreateBlobRequest
	if err := s.decode(w, r, &req); err != nil {
		s.blobFail(w, r, err)
		return
	}
	switch {
	case req.Size < 1:
		s.blobFail(w, r, errorf(api.CodeBadRequest, "size must be at least 1 byte."))
		return
	case req.Size > s.cfg.MaxBlobBytes:
		s.blobFail(w, r, errorf(api.CodeTooLarge, "A blob is at most %d bytes; this one would be %d.", s.cfg.MaxBlobBytes, req.Size))
		return
	case req.TTL < 0:
		s.blobFail(w, r, errorf(api.CodeBadRequest, "ttl must not be negative."))
		return
	}
	lifetime := s.cfg.BlobTTL
	if req.TTL > 0 && req.TTL < int64(lifetime/time.Second) {
		lifetime = time.Duration(req.TTL) * time.Second
	}
	now := time.Now()
	m := blob.Meta{
		ID:       blob.NewID(),
		Owner:    ownerOf(c),
		Size:     req.Size,
		Created:  now,
		Expires:  now.Add(s.cfg.BlobUploadTTL),
		Lifetime: lifetime,
	}
	err := s.blobs.Create(r.Context(), m, s.cfg.BlobQuotaBytes)
	if errors.Is(err, blob.ErrQuota) {
		used, uerr := s.blobs.Usage(r.Context(), c.handle)
		if uerr != nil {
			s.blobFail(w, r, uerr)
			return
		}
		s.blobFail(w, r, errorf(api.CodeQuotaExceeded,
			"Your account holds %d bytes of files (uploading or waiting to be fetched) of its %d; this upload needs %d more. Wait for recipients to fetch earlier files, or delete unfinished uploads.",
			used, s.cfg.BlobQuotaBytes, req.Size))
		return
	}
	if err != nil {
		s.blobFail(w, r, blobError(err))
		return
	}
	w.Header().Set("Location", strings.Replace(api.PathBlob, "{id}", m.ID, 1))
	setOffset(w, 0)
	writeJSON(w, statusOfBlob(blob.Info{Meta: m}))
}

// handleAppendBlob is PATCH /v1/blobs/{id}: the body is appended at
// Upload-Offset.
func (s *Server) handleAppendBlob(w http.ResponseWriter, r *http.Request) {
	info, err := s.ownBlob(r)
	if err != nil {
		s.blobFail(w, r, err)
		return
	}
	off, err := strconv.ParseInt(r.Header.Get(api.HeaderUploadOffset), 10, 64)
	if err != nil || off < 0 {
		s.blobFail(w, r, errorf(api.CodeBadRequest, "A PATCH needs an Upload-Offset header: the decimal byte offset it starts at."))
		return
	}
	if info.Complete {
		s.blobFail(w, r, blobError(blob.ErrComplete))
		return
	}
	if off != info.Offset {
		setOffset(w, info.Offset)
		s.blobFail(w, r, errorf(api.CodeOffsetMismatch, "The upload is at offset %d, not %d; continue from %d.", info.Offset, off, info.Offset))
		return
	}
	if r.ContentLength > 0 && r.ContentLength > info.Size-off {
		setOffset(w, info.Offset)
		s.blobFail(w, r, errorf(api.CodeTooLarge, "The body (%d bytes at offset %d) goes beyond the declared size %d.", r.ContentLength, off, info.Size))
		return
	}
	body := &bodyReader{r: r.Body}
	n, err := s.blobs.Append(r.Context(), info.ID, off, body)
	switch {
	case err == nil:
		info.Offset = n
		setOffset(w, n)
		writeJSON(w, statusOfBlob(info))
	case errors.Is(err, blob.ErrOffset):
		setOffset(w, n)
		s.blobFail(w, r, errorf(api.CodeOffsetMismatch, "The upload is at offset %d, not %d; continue from %d.", n, off, n))
	case errors.Is(err, blob.ErrTooLong):
		setOffset(w, n)
		s.blobFail(w, r, blobError(err))
	case body.err != nil && errors.Is(err, body.err), errors.Is(err, context.Canceled):
		// The body broke off: the client is usually gone. What arrived is
		// kept; tell whoever still listens where to go on.
		s.log.Debug("upload interrupted", "route", r.Pattern, "offset", n, "err", err)
		setOffset(w, n)
		s.blobFail(w, r, errorf(api.CodeBadRequest, "The request body ended early; %d bytes are stored, continue from there.", n))
	default:
		s.blobFail(w, r, blobError(err))
	}
}

// bodyReader remembers the request body's read error, to tell a client
// that went away from a failure of the server's disk.
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// handleBlobStatus is GET /v1/blobs/{id}/status.
func (s *Server) handleBlobStatus(w http.ResponseWriter, r *http.Request) {
	info, err := s.blobInfo(r)
	if err != nil {
		s.blobFail(w, r, err)
		return
	}
	setOffset(w, info.Offset)
	writeJSON(w, statusOfBlob(info))
}

// handleFinishBlob is POST /v1/blobs/{id}/finish.
func (s *Server) handleFinishBlob(w http.ResponseWriter, r *http.Request) {
	info, err := s.ownBlob(r)
	if err != nil {
		s.blobFail(w, r, err)
		return
	}
	var req api.FinishBlobRequest
	if err := s.decode(w, r, &req); err != nil {
		s.blobFail(w, r, err)
		return
	}
	if len(req.SHA256) != sha256.Size {
		s.blobFail(w, r, errorf(api.CodeBadRequest, "sha256 must be the 32-byte SHA-256 of the uploaded bytes."))
		return
	}
	if len(req.Recipients) > MaxBlobRecipients {
		s.blobFail(w, r, errorf(api.CodeBadRequest, "A blob has at most %d recipients.", MaxBlobRecipients))
		return
	}
	rcpts := make([]blob.Device, 0, len(req.Recipients))
	for _, rc := range req.Recipients {
		h, err := normHandle(rc.Handle)
		if err != nil {
			s.blobFail(w, r, err)
			return
		}
		rcpts = append(rcpts, blob.Device{Handle: h, ID: rc.DeviceID})
	}
	done, err := s.blobs.Finish(r.Context(), info.ID, blob.Finish{
		SHA256:     req.SHA256,
		Recipients: rcpts,
		Expires:    time.Now().Add(info.Lifetime),
	})
	if errors.Is(err, blob.ErrIncomplete) {
		setOffset(w, done.Offset)
		s.blobFail(w, r, errorf(api.CodeUploadIncomplete, "The upload has %d of its %d bytes; send the rest first.", done.Offset, done.Size))
		return
	}
	if errors.Is(err, blob.ErrComplete) {
		s.blobFail(w, r, errorf(api.CodeUploadComplete, "The upload was already finished with another SHA-256."))
		return
	}
	if err != nil {
		s.blobFail(w, r, blobError(err))
		return
	}
	setOffset(w, done.Offset)
	writeJSON(w, statusOfBlob(done))
}

// handleBlobDone is POST /v1/blobs/{id}/done.
func (s *Server) handleBlobDone(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !blob.ValidID(id) {
		s.blobFail(w, r, errorf(api.CodeNotFound, "There is no such blob."))
		return
	}
	deleted, err := s.blobs.Claim(r.Context(), id, ownerOf(callerOf(r)))
	switch {
	case errors.Is(err, blob.ErrNotRecipient):
		s.blobFail(w, r, errorf(api.CodeForbidden, "This device is not one of the blob's recipients."))
		return
	case errors.Is(err, blob.ErrIncomplete):
		s.blobFail(w, r, errorf(api.CodeUploadIncomplete, "The upload is not finished."))
		return
	case err != nil:
		s.blobFail(w, r, blobError(err))
		return
	}
	writeJSON(w, api.BlobDoneResponse{Deleted: deleted})
}

// handleDeleteBlob is DELETE /v1/blobs/{id}: the uploader drops a blob,
// finished or not.
func (s *Server) handleDeleteBlob(w http.ResponseWriter, r *http.Request) {
	info, err := s.ownBlob(r)
	if err != nil {
		s.blobFail(w, r, err)
		return
	}
	if err := s.blobs.Delete(r.Context(), info.ID); err != nil {
		s.blobFail(w, r, blobError(err))
		return
	}
	writeJSON(w, struct{}{})
}

// handleGetBlob is GET (download, with Range) and HEAD (state in headers)
// of /v1/blobs/{id}. Any authenticated device that knows the id may
// download: the id is the capability.
func (s *Server) handleGetBlob(w http.ResponseWriter, r *http.Request) {
	info, err := s.blobInfo(r)
	if err != nil {
		s.blobFail(w, r, err)
		return
	}
	h := w.Header()
	if r.Method == http.MethodHead {
		setOffset(w, info.Offset)
		h.Set(api.HeaderUploadLength, strconv.FormatInt(info.Size, 10))
		if info.Complete {
			h.Set(api.HeaderUploadComplete, "?1")
			h.Set("Accept-Ranges", "bytes")
			h.Set("Content-Length", strconv.FormatInt(info.Size, 10))
			h.Set("Content-Type", "application/octet-stream")
			h.Set("ETag", etag(info))
		} else {
			h.Set(api.HeaderUploadComplete, "?0")
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	if !info.Complete {
		setOffset(w, info.Offset)
		s.blobFail(w, r, errorf(api.CodeUploadIncomplete, "The upload is not finished yet (%d of %d bytes).", info.Offset, info.Size))
		return
	}
	start, end, partial, ok := parseRange(r.Header.Get("Range"), info.Size)
	if !ok {
		h.Set("Content-Range", fmt.Sprintf("bytes */%d", info.Size))
		s.blobFail(w, r, errorf(api.CodeRangeNotSatisfiable,
			"The blob is %d bytes; ask for one range bytes=first-last, bytes=first- or bytes=-suffix within it.", info.Size))
		return
	}
	rc, _, err := s.blobs.Open(r.Context(), info.ID, start)
	if err != nil {
		s.blobFail(w, r, blobError(err))
		return
	}
	defer rc.Close()
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Type", "application/octet-stream")
	h.Set("ETag", etag(info))
	h.Set("Content-Length", strconv.FormatInt(end-start, 10))
	status := http.StatusOK
	if partial {
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end-1, info.Size))
		status = http.StatusPartialContent
	}
	w.WriteHeader(status)
	// Copy to the connection's own writer, so a file goes out with
	// sendfile where the platform has it.
	var dst io.Writer = w
	if u, ok := w.(interface{ Unwrap() http.ResponseWriter }); ok {
		dst = u.Unwrap()
	}
	if _, err := io.Copy(dst, io.LimitReader(rc, end-start)); err != nil && r.Context().Err() == nil {
		s.log.Debug("download interrupted", "route", r.Pattern, "err", err)
	}
}

func etag(info blob.Info) string {
	return fmt.Sprintf(`"%x"`, info.SHA256)
}

// parseRange reads a Range header for a blob of size bytes (RFC 9110
// §14.2): one range of the bytes unit. It returns the half-open interval
// [start, end), whether it is a partial response, and false for anything
// unsatisfiable or not understood (several ranges included). An absent
// header is the whole blob.
func parseRange(h string, size int64) (start, end int64, partial, ok bool) {
	if h == "" {
		return 0, size, false, true
	}
	spec, found := strings.CutPrefix(h, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false, false
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false, false
	}
	num := func(s string) (int64, bool) {
		if s == "" || len(s) > 19 {
			return 0, false
		}
		for i := 0; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return 0, false
			}
		}
		n, err := strconv.ParseInt(s, 10, 64)
		return n, err == nil
	}
	if first == "" { // bytes=-N: the last N bytes
		n, ok := num(last)
		if !ok || n == 0 {
			return 0, 0, false, false
		}
		return max(0, size-n), size, true, true
	}
	a, ok := num(first)
	if !ok || a >= size {
		return 0, 0, false, false
	}
	if last == "" {
		return a, size, true, true
	}
	b, ok := num(last)
	if !ok || b < a {
		return 0, 0, false, false
	}
	return a, min(b+1, size), true, true
}

// ExpireBlobs deletes every blob whose expiry is at or before now and
// returns how many. The server calls it every expire_interval.
func (s *Server) ExpireBlobs(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for {
		ids, err := s.blobs.Expired(ctx, now, blobSweepBatch)
		if err != nil {
			return total, fmt.Errorf("server: listing expired blobs: %w", err)
		}
		for _, id := range ids {
			err := s.blobs.Delete(ctx, id)
			if err != nil && !errors.Is(err, blob.ErrNotFound) {
				return total, fmt.Errorf("server: deleting an expired blob: %w", err)
			}
			if err == nil {
				total++
			}
		}
		if len(ids) < blobSweepBatch {
			return total, nil
		}
	}
}

// expireBlobs is the expire loop's step.
func (s *Server) expireBlobs(now time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ExpireInterval)
	defer cancel()
	n, err := s.ExpireBlobs(ctx, now)
	if err != nil {
		s.log.Warn("expiring blobs", "err", err)
	}
	if n > 0 {
		s.log.Info("expired blobs deleted", "count", n)
	}
}

// The orphan sweep of a blob store in S3 (s3store.Store.Sweep).
const (
	// orphanSweepFirst is when a node first sweeps after it starts, so a
	// node that restarts more often than hourly still sweeps.
	orphanSweepFirst = time.Minute
	// orphanSweepEvery is how often it sweeps then.
	orphanSweepEvery = time.Hour
	// orphanGrace is how old an unrecorded object must be to be deleted:
	// far above the few minutes an append may take from writing an object
	// to recording it, so an append in flight loses nothing.
	orphanGrace = time.Hour
)

// orphanSweeper is a blob store that can delete its orphaned objects: an
// s3store, which the server has when blob_s3 is set.
type orphanSweeper interface {
	Sweep(ctx context.Context, cutoff time.Time) (int, error)
}

// orphanSweepLoop sweeps the blob store's orphaned objects until shutdown,
// if the store has them (blob_s3). Every node of a cluster sweeps the same
// bucket; that is harmless, as a sweep deletes only objects no row records
// and deleting a deleted object is not an error, so there is no lock.
func (s *Server) orphanSweepLoop() {
	sw, ok := s.blobs.(orphanSweeper)
	if !ok {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.shutdown:
		case <-ctx.Done():
		}
		cancel()
	}()
	t := time.NewTimer(orphanSweepFirst)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			sctx, scancel := context.WithTimeout(ctx, orphanSweepEvery)
			n, err := sw.Sweep(sctx, now.Add(-orphanGrace))
			scancel()
			if err != nil && ctx.Err() == nil {
				s.log.Warn("sweeping orphaned blob objects", "deleted", n, "err", err)
			} else if err == nil {
				s.log.Info("orphaned blob objects swept", "deleted", n)
			}
			t.Reset(orphanSweepEvery)
		}
	}
}
