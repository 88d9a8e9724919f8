package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/server"
	"github.com/parleychat/parley/internal/stream"
)

// rawResponse is a response whose body was read in full.
type rawResponse struct {
	*http.Response
	body []byte
}

// raw sends a request with the given headers and body (nil: none; a
// reader without a known length goes out chunked) and reads the answer.
func (ts *testServer) raw(method, path, token string, hdr map[string]string, body io.Reader) rawResponse {
	ts.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, ts.url+path, body)
	if err != nil {
		ts.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		ts.t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return rawResponse{resp, b}
}

// apiErr decodes an error body.
func (r rawResponse) apiErr(t *testing.T) api.Error {
	t.Helper()
	var e api.ErrorResponse
	if err := json.Unmarshal(r.body, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("status %d with a body that is not an api.ErrorResponse: %q", r.StatusCode, r.body)
	}
	return e.Error
}

func (r rawResponse) wantErr(t *testing.T, status int, code string) api.Error {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s %s: status %d (%s), want %d %s", r.Request.Method, r.Request.URL.Path, r.StatusCode, r.body, status, code)
	}
	e := r.apiErr(t)
	if e.Code != code {
		t.Fatalf("%s %s: code %s (%s), want %s", r.Request.Method, r.Request.URL.Path, e.Code, e.Message, code)
	}
	return e
}

func (r rawResponse) offset(t *testing.T) int64 {
	t.Helper()
	n, err := strconv.ParseInt(r.Header.Get(api.HeaderUploadOffset), 10, 64)
	if err != nil {
		t.Fatalf("Upload-Offset %q: %v", r.Header.Get(api.HeaderUploadOffset), err)
	}
	return n
}

func blobPath(id string) string { return "/v1/blobs/" + id }

func (ts *testServer) createBlob(tok string, size int64) api.BlobStatus {
	ts.t.Helper()
	var st api.BlobStatus
	ts.mustDo("POST", api.PathBlobs, tok, api.CreateBlobRequest{Size: size}, &st)
	if len(st.ID) != 43 || st.Size != size || st.Offset != 0 || st.Complete {
		ts.t.Fatalf("created %+v", st)
	}
	return st
}

// patch appends b at off and requires success.
func (ts *testServer) patch(tok, id string, off int64, b []byte) int64 {
	ts.t.Helper()
	r := ts.raw("PATCH", blobPath(id), tok, map[string]string{api.HeaderUploadOffset: strconv.FormatInt(off, 10)}, bytes.NewReader(b))
	if r.StatusCode != 200 {
		ts.t.Fatalf("PATCH at %d: %d %s", off, r.StatusCode, r.body)
	}
	var st api.BlobStatus
	if err := json.Unmarshal(r.body, &st); err != nil {
		ts.t.Fatal(err)
	}
	if st.Offset != off+int64(len(b)) || r.offset(ts.t) != st.Offset {
		ts.t.Fatalf("PATCH at %d of %d bytes: status %+v, header %s", off, len(b), st, r.Header.Get(api.HeaderUploadOffset))
	}
	return st.Offset
}

func (ts *testServer) finishBlob(tok, id string, sum []byte, rcpts ...api.BlobRecipient) api.BlobStatus {
	ts.t.Helper()
	var st api.BlobStatus
	ts.mustDo("POST", blobPath(id)+"/finish", tok, api.FinishBlobRequest{SHA256: sum, Recipients: rcpts}, &st)
	return st
}

// encryptedFile is a random plaintext and its age STREAM ciphertext.
type encryptedFile struct {
	key, plain, cipher []byte
	sum                []byte // SHA-256 of cipher
}

func newEncryptedFile(t *testing.T, size int) encryptedFile {
	f := encryptedFile{key: make([]byte, stream.KeySize), plain: make([]byte, size)}
	rand.Read(f.key)
	rand.Read(f.plain)
	var buf bytes.Buffer
	w, err := stream.NewWriter(f.key, &buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(f.plain)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.cipher = buf.Bytes()
	h := sha256.Sum256(f.cipher)
	f.sum = h[:]
	return f
}

func rcpt(a *account, d *device) api.BlobRecipient {
	return api.BlobRecipient{Handle: a.handle, DeviceID: d.id}
}

func TestBlobUploadDownload(t *testing.T) {
	ts := startServer(t, nil)
	a := ts.register("alice")
	b := ts.register("bob")
	at, bt := a.devices[0].token, b.devices[0].token
	f := newEncryptedFile(t, 300_000)
	size := int64(len(f.cipher))
	if size != stream.EncryptedSize(300_000) {
		t.Fatalf("ciphertext %d bytes", size)
	}

	st := ts.createBlob(at, size)
	if st.ExpiresAt < time.Now().Add(ts.cfg.BlobUploadTTL-time.Minute).UnixMilli() {
		t.Fatalf("upload expires at %d", st.ExpiresAt)
	}
	off := ts.patch(at, st.ID, 0, f.cipher[:1000])
	off = ts.patch(at, st.ID, off, f.cipher[1000:200_000])

	// HEAD and GET status show the offset; the download is refused.
	h := ts.raw("HEAD", blobPath(st.ID), at, nil, nil)
	if h.StatusCode != 200 || h.offset(t) != 200_000 || h.Header.Get(api.HeaderUploadLength) != strconv.FormatInt(size, 10) ||
		h.Header.Get(api.HeaderUploadComplete) != "?0" {
		t.Fatalf("HEAD: %d %v", h.StatusCode, h.Header)
	}
	var got api.BlobStatus
	ts.mustDo("GET", blobPath(st.ID)+"/status", bt, nil, &got)
	if got.Offset != 200_000 || got.Complete || got.ID != st.ID {
		t.Fatalf("status %+v", got)
	}
	dl := ts.raw("GET", blobPath(st.ID), bt, nil, nil)
	dl.wantErr(t, 409, api.CodeUploadIncomplete)
	if dl.offset(t) != 200_000 {
		t.Fatalf("Upload-Offset %d", dl.offset(t))
	}
	ts.wantErr(409, api.CodeUploadIncomplete, "POST", blobPath(st.ID)+"/finish", at, api.FinishBlobRequest{SHA256: f.sum})

	ts.patch(at, st.ID, off, f.cipher[200_000:])
	fin := ts.finishBlob(at, st.ID, f.sum, rcpt(b, b.devices[0]))
	if !fin.Complete || fin.Offset != size || fin.ExpiresAt < time.Now().Add(ts.cfg.BlobTTL-time.Minute).UnixMilli() {
		t.Fatalf("finished %+v", fin)
	}
	// A retry of the same finish answers the same.
	ts.finishBlob(at, st.ID, f.sum, rcpt(b, b.devices[0]))

	// Bob downloads it whole and decrypts it.
	dl = ts.raw("GET", blobPath(st.ID), bt, nil, nil)
	if dl.StatusCode != 200 || !bytes.Equal(dl.body, f.cipher) || dl.Header.Get("Content-Length") != strconv.FormatInt(size, 10) ||
		dl.Header.Get("Accept-Ranges") != "bytes" || dl.Header.Get("ETag") != fmt.Sprintf(`"%x"`, f.sum) {
		t.Fatalf("download: %d, %d bytes, %v", dl.StatusCode, len(dl.body), dl.Header)
	}
	r, _ := stream.NewReader(f.key, bytes.NewReader(dl.body))
	if pt, err := io.ReadAll(r); err != nil || !bytes.Equal(pt, f.plain) {
		t.Fatalf("decrypting the download: %v", err)
	}
	h = ts.raw("HEAD", blobPath(st.ID), bt, nil, nil)
	if h.Header.Get(api.HeaderUploadComplete) != "?1" || h.Header.Get("Content-Length") != strconv.FormatInt(size, 10) {
		t.Fatalf("HEAD after finish: %v", h.Header)
	}

	// Ranges.
	for _, c := range []struct {
		rng        string
		start, end int64 // [start, end)
	}{
		{"bytes=0-99", 0, 100},
		{"bytes=100-199", 100, 200},
		{"bytes=1000-", 1000, size},
		{"bytes=-50", size - 50, size},
		{"bytes=-99999999", 0, size},
		{"bytes=5-99999999", 5, size},
		{fmt.Sprintf("bytes=%d-%d", size-1, size-1), size - 1, size},
	} {
		r := ts.raw("GET", blobPath(st.ID), bt, map[string]string{"Range": c.rng}, nil)
		want := fmt.Sprintf("bytes %d-%d/%d", c.start, c.end-1, size)
		if r.StatusCode != 206 || !bytes.Equal(r.body, f.cipher[c.start:c.end]) || r.Header.Get("Content-Range") != want {
			t.Fatalf("Range %s: %d, %d bytes, Content-Range %q (want %q)", c.rng, r.StatusCode, len(r.body), r.Header.Get("Content-Range"), want)
		}
	}
	for _, bad := range []string{fmt.Sprintf("bytes=%d-", size), "bytes=0-1,5-6", "bytes=-0", "bytes=9-3", "items=0-1", "bytes=x-1", "bytes=--1"} {
		r := ts.raw("GET", blobPath(st.ID), bt, map[string]string{"Range": bad}, nil)
		r.wantErr(t, 416, api.CodeRangeNotSatisfiable)
		if r.Header.Get("Content-Range") != fmt.Sprintf("bytes */%d", size) {
			t.Fatalf("Range %s: Content-Range %q", bad, r.Header.Get("Content-Range"))
		}
	}

	// A download resumed at chunk 2 with a Range decrypts to the rest.
	co, po := stream.ChunkOffset(2)
	r2 := ts.raw("GET", blobPath(st.ID), bt, map[string]string{"Range": fmt.Sprintf("bytes=%d-", co)}, nil)
	sr, _ := stream.NewReaderAt(f.key, bytes.NewReader(r2.body), 2)
	if pt, err := io.ReadAll(sr); err != nil || !bytes.Equal(pt, f.plain[po:]) {
		t.Fatalf("resumed decryption: %v", err)
	}

	// The server's files hold no plaintext: no 32-byte window of it
	// appears anywhere under the data folder.
	requireNoPlaintext(t, ts.cfg.DataDir, f.plain)
}

// requireNoPlaintext scans every file under dir for 32-byte windows of pt
// taken every 4 KiB.
func requireNoPlaintext(t *testing.T, dir string, pt []byte) {
	t.Helper()
	files := 0
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files++
		for i := 0; i+32 <= len(pt); i += 4096 {
			if bytes.Contains(b, pt[i:i+32]) {
				t.Fatalf("%s holds plaintext of the file (offset %d)", p, i)
			}
		}
		return nil
	})
	if files == 0 {
		t.Fatal("no files scanned")
	}
}

func TestBlobResume(t *testing.T) {
	ts := startServer(t, nil)
	a := ts.register("alice")
	at := a.devices[0].token
	f := newEncryptedFile(t, 1<<20)
	size := int64(len(f.cipher))
	st := ts.createBlob(at, size)

	// A client sends 400 000 of the 700 000 bytes it announced, then its
	// connection dies.
	conn, err := net.Dial("tcp", ts.srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: parley\r\nAuthorization: Bearer %s\r\n%s: 0\r\nContent-Length: 700000\r\n\r\n",
		blobPath(st.ID), at, api.HeaderUploadOffset)
	if _, err := conn.Write(f.cipher[:400_000]); err != nil {
		t.Fatal(err)
	}
	conn.Close()

	// The server keeps what arrived; the client asks where to resume
	// (bounded wait: the server notices the closed connection on its own).
	var off int64
	deadline := time.Now().Add(30 * time.Second)
	for {
		h := ts.raw("HEAD", blobPath(st.ID), at, nil, nil)
		off = h.offset(t)
		if off == 400_000 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if off != 400_000 {
		t.Fatalf("after the interruption the upload is at %d, want 400000", off)
	}
	// The bytes can be on disk before the server has seen the connection
	// close, and until then the upload is busy: a resuming client retries
	// upload_busy, and so does this test, with an empty PATCH.
	for {
		r := ts.raw("PATCH", blobPath(st.ID), at, map[string]string{api.HeaderUploadOffset: "400000"}, bytes.NewReader(nil))
		if r.StatusCode == 200 {
			break
		}
		r.wantErr(t, 409, api.CodeUploadBusy)
		if time.Now().After(deadline) {
			t.Fatal("the interrupted PATCH still holds the upload after 30 s")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A PATCH at a stale offset is refused with the current one.
	for _, stale := range []int64{0, 399_999, 400_001} {
		r := ts.raw("PATCH", blobPath(st.ID), at, map[string]string{api.HeaderUploadOffset: strconv.FormatInt(stale, 10)}, bytes.NewReader(f.cipher[stale:stale+10]))
		r.wantErr(t, 409, api.CodeOffsetMismatch)
		if r.offset(t) != 400_000 {
			t.Fatalf("offset_mismatch carries Upload-Offset %d", r.offset(t))
		}
	}
	// Missing or malformed offsets.
	for _, bad := range []string{"", "-1", "abc", "1e3"} {
		hdr := map[string]string{}
		if bad != "" {
			hdr[api.HeaderUploadOffset] = bad
		}
		ts.raw("PATCH", blobPath(st.ID), at, hdr, bytes.NewReader([]byte("x"))).wantErr(t, 400, api.CodeBadRequest)
	}

	// The rest goes in two more requests, one of them chunked (no
	// Content-Length).
	off = ts.patch(at, st.ID, off, f.cipher[400_000:800_000])
	r := ts.raw("PATCH", blobPath(st.ID), at, map[string]string{api.HeaderUploadOffset: strconv.FormatInt(off, 10)},
		io.MultiReader(bytes.NewReader(f.cipher[off:])))
	if r.StatusCode != 200 || r.offset(t) != size {
		t.Fatalf("chunked PATCH: %d %s", r.StatusCode, r.body)
	}
	ts.finishBlob(at, st.ID, f.sum)
	dl := ts.raw("GET", blobPath(st.ID), at, nil, nil)
	if !bytes.Equal(dl.body, f.cipher) {
		t.Fatal("resumed upload differs")
	}
	ts.raw("PATCH", blobPath(st.ID), at, map[string]string{api.HeaderUploadOffset: strconv.FormatInt(size, 10)}, bytes.NewReader([]byte("x"))).
		wantErr(t, 409, api.CodeUploadComplete)
}

func TestBlobUploadSurvivesRestart(t *testing.T) {
	ts := startServer(t, nil)
	a := ts.register("alice")
	at := a.devices[0].token
	f := newEncryptedFile(t, 200_000)
	st := ts.createBlob(at, int64(len(f.cipher)))
	off := ts.patch(at, st.ID, 0, f.cipher[:123_456])
	if err := ts.stop(); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(ts.cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ts2 := runServer(t, srv)
	ts2.login(a, a.devices[0])
	at = a.devices[0].token
	if h := ts2.raw("HEAD", blobPath(st.ID), at, nil, nil); h.offset(t) != off {
		t.Fatalf("after restart the upload is at %d, want %d", h.offset(t), off)
	}
	ts2.patch(at, st.ID, off, f.cipher[off:])
	ts2.finishBlob(at, st.ID, f.sum)
}

func TestBlobFinishErrors(t *testing.T) {
	ts := startServer(t, nil)
	a := ts.register("alice")
	at := a.devices[0].token
	f := newEncryptedFile(t, 1000)
	st := ts.createBlob(at, int64(len(f.cipher)))
	ts.patch(at, st.ID, 0, f.cipher)
	fin := blobPath(st.ID) + "/finish"

	wrong := bytes.Clone(f.sum)
	wrong[31] ^= 1
	ts.wantErr(409, api.CodeHashMismatch, "POST", fin, at, api.FinishBlobRequest{SHA256: wrong})
	ts.wantErr(400, api.CodeBadRequest, "POST", fin, at, api.FinishBlobRequest{SHA256: f.sum[:31]})
	ts.wantErr(400, api.CodeBadRequest, "POST", fin, at, []byte(`{"sha256":"x"}`))
	ts.wantErr(400, api.CodeInvalidHandle, "POST", fin, at, api.FinishBlobRequest{SHA256: f.sum, Recipients: []api.BlobRecipient{{Handle: "x", DeviceID: 1}}})
	many := make([]api.BlobRecipient, server.MaxBlobRecipients+1)
	for i := range many {
		many[i] = api.BlobRecipient{Handle: "bob", DeviceID: uint32(i)}
	}
	ts.wantErr(400, api.CodeBadRequest, "POST", fin, at, api.FinishBlobRequest{SHA256: f.sum, Recipients: many})

	// After a mismatch the upload is still open: the right hash finishes it.
	ts.finishBlob(at, st.ID, f.sum, api.BlobRecipient{Handle: "Bob", DeviceID: 3})
	// Finishing again with another hash is refused; with the same hash it
	// is a retry (handles are normalised) that never removes a recipient.
	ts.wantErr(409, api.CodeUploadComplete, "POST", fin, at, api.FinishBlobRequest{SHA256: wrong, Recipients: []api.BlobRecipient{{Handle: "bob", DeviceID: 3}}})
	ts.finishBlob(at, st.ID, f.sum, api.BlobRecipient{Handle: "BOB", DeviceID: 3})
	ts.finishBlob(at, st.ID, f.sum)

	// Bodies longer than the declared size.
	st2 := ts.createBlob(at, 100)
	ts.raw("PATCH", blobPath(st2.ID), at, map[string]string{api.HeaderUploadOffset: "0"}, bytes.NewReader(make([]byte, 101))).
		wantErr(t, 413, api.CodeTooLarge)
	r := ts.raw("PATCH", blobPath(st2.ID), at, map[string]string{api.HeaderUploadOffset: "0"}, io.MultiReader(bytes.NewReader(make([]byte, 150))))
	r.wantErr(t, 413, api.CodeTooLarge)
	if r.offset(t) != 100 {
		t.Fatalf("chunked body too long: offset %d, want the declared 100", r.offset(t))
	}
}

func TestBlobLimits(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.MaxBlobBytes = 600
		c.BlobQuotaBytes = 1000
	})
	a := ts.register("alice")
	b := ts.register("bob")
	at, bt := a.devices[0].token, b.devices[0].token

	ts.wantErr(413, api.CodeTooLarge, "POST", api.PathBlobs, at, api.CreateBlobRequest{Size: 601})
	ts.wantErr(400, api.CodeBadRequest, "POST", api.PathBlobs, at, api.CreateBlobRequest{Size: 0})
	ts.wantErr(400, api.CodeBadRequest, "POST", api.PathBlobs, at, api.CreateBlobRequest{Size: -5})
	ts.wantErr(400, api.CodeBadRequest, "POST", api.PathBlobs, at, api.CreateBlobRequest{Size: 5, TTL: -1})
	ts.wantErr(400, api.CodeBadRequest, "POST", api.PathBlobs, at, []byte(`{"size":5,"extra":1}`))

	first := ts.createBlob(at, 600)
	e := ts.wantErr(507, api.CodeQuotaExceeded, "POST", api.PathBlobs, at, api.CreateBlobRequest{Size: 401})
	if !strings.Contains(e.Message, "600") || !strings.Contains(e.Message, "1000") {
		t.Fatalf("quota message %q does not say what is used and allowed", e.Message)
	}
	ts.createBlob(at, 400)
	// Another account has its own quota.
	ts.createBlob(bt, 600)
	// Deleting an upload frees its bytes.
	ts.mustDo("DELETE", blobPath(first.ID), at, nil, nil)
	ts.wantErr(404, api.CodeNotFound, "GET", blobPath(first.ID)+"/status", at, nil)
	ts.createBlob(at, 600)
}

func TestBlobAccess(t *testing.T) {
	ts := startServer(t, nil)
	a := ts.register("alice")
	b := ts.register("bob")
	at, bt := a.devices[0].token, b.devices[0].token
	f := newEncryptedFile(t, 100)
	st := ts.createBlob(at, int64(len(f.cipher)))
	p := blobPath(st.ID)

	// Nobody but the uploading device writes, finishes or deletes.
	ts.raw("PATCH", p, bt, map[string]string{api.HeaderUploadOffset: "0"}, bytes.NewReader(f.cipher)).wantErr(t, 403, api.CodeForbidden)
	ts.wantErr(403, api.CodeForbidden, "POST", p+"/finish", bt, api.FinishBlobRequest{SHA256: f.sum})
	ts.wantErr(403, api.CodeForbidden, "DELETE", p, bt, nil)
	if h := ts.raw("HEAD", p, at, nil, nil); h.offset(t) != 0 {
		t.Fatalf("bob's refused PATCH wrote: offset %d", h.offset(t))
	}

	// Without a token, nothing.
	for _, r := range []struct{ method, path string }{
		{"POST", api.PathBlobs}, {"PATCH", p}, {"GET", p}, {"HEAD", p}, {"DELETE", p},
		{"GET", p + "/status"}, {"POST", p + "/finish"}, {"POST", p + "/done"},
	} {
		resp := ts.raw(r.method, r.path, "", nil, nil)
		if resp.StatusCode != 401 {
			t.Errorf("%s %s without a token: %d", r.method, r.path, resp.StatusCode)
		}
		if r.method != "HEAD" {
			resp.wantErr(t, 401, api.CodeUnauthorized)
		}
	}

	// Unknown and malformed ids.
	for _, id := range []string{strings.Repeat("A", 43), "short", strings.Repeat("A", 42) + "B", "..%2F..%2Fetc"} {
		ts.wantErr(404, api.CodeNotFound, "GET", blobPath(id)+"/status", at, nil)
		ts.wantErr(404, api.CodeNotFound, "GET", blobPath(id), at, nil)
		ts.wantErr(404, api.CodeNotFound, "POST", blobPath(id)+"/done", at, nil)
		ts.wantErr(404, api.CodeNotFound, "DELETE", blobPath(id), at, nil)
	}

	// Once finished, any authenticated device that knows the id may
	// download it: the id is the capability.
	ts.patch(at, st.ID, 0, f.cipher)
	ts.finishBlob(at, st.ID, f.sum)
	ts.register("carol")
	c := ts.register("dave")
	if dl := ts.raw("GET", p, c.devices[0].token, nil, nil); dl.StatusCode != 200 || !bytes.Equal(dl.body, f.cipher) {
		t.Fatalf("download by a device that knows the id: %d", dl.StatusCode)
	}
	// The uploader may delete a finished blob.
	ts.mustDo("DELETE", p, at, nil, nil)
	ts.wantErr(404, api.CodeNotFound, "GET", p, bt, nil)
}

func TestBlobClaimDeletes(t *testing.T) {
	ts := startServer(t, nil)
	a := ts.register("alice")
	b := ts.register("bob")
	c := ts.register("carol")
	// A second device for bob, linked and signed in.
	bd2 := ts.addDevice(b, b.devices[0])

	at := a.devices[0].token
	f := newEncryptedFile(t, 5000)
	st := ts.createBlob(at, int64(len(f.cipher)))
	p := blobPath(st.ID)
	ts.wantErr(409, api.CodeUploadIncomplete, "POST", p+"/done", b.devices[0].token, nil)
	ts.patch(at, st.ID, 0, f.cipher)
	ts.finishBlob(at, st.ID, f.sum, rcpt(b, b.devices[0]), rcpt(b, bd2))

	var done api.BlobDoneResponse
	ts.wantErr(403, api.CodeForbidden, "POST", p+"/done", c.devices[0].token, nil)
	ts.wantErr(403, api.CodeForbidden, "POST", p+"/done", at, nil)
	// A device that appears after finish (the send answered
	// device_mismatch) is added by finishing again with the same hash.
	ts.finishBlob(at, st.ID, f.sum, rcpt(b, b.devices[0]), rcpt(b, bd2), rcpt(c, c.devices[0]))
	ts.mustDo("POST", p+"/done", c.devices[0].token, nil, &done)
	if done.Deleted {
		t.Fatal("deleted after the first of three recipients")
	}
	ts.mustDo("POST", p+"/done", b.devices[0].token, nil, &done)
	if done.Deleted {
		t.Fatal("deleted after the first of two recipients")
	}
	// A repeated done changes nothing.
	ts.mustDo("POST", p+"/done", b.devices[0].token, nil, &done)
	if done.Deleted {
		t.Fatal("deleted after a repeated done")
	}
	if dl := ts.raw("GET", p, bd2.token, nil, nil); dl.StatusCode != 200 || !bytes.Equal(dl.body, f.cipher) {
		t.Fatalf("second device's download: %d", dl.StatusCode)
	}
	ts.mustDo("POST", p+"/done", bd2.token, nil, &done)
	if !done.Deleted {
		t.Fatal("not deleted after every recipient was done")
	}
	ts.wantErr(404, api.CodeNotFound, "GET", p, bd2.token, nil)
	ts.wantErr(404, api.CodeNotFound, "POST", p+"/done", bd2.token, nil)
	// Its bytes left alice's quota and the disk.
	des, err := os.ReadDir(filepath.Join(ts.cfg.DataDir, server.BlobDir))
	if err != nil || len(des) != 0 {
		t.Fatalf("blob folder after deletion: %d entries, %v", len(des), err)
	}
}

func TestBlobExpiry(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.BlobUploadTTL = time.Hour })
	a := ts.register("alice")
	at := a.devices[0].token
	f := newEncryptedFile(t, 100)

	unfinished := ts.createBlob(at, 50)
	done := ts.createBlob(at, int64(len(f.cipher)))
	ts.patch(at, done.ID, 0, f.cipher)
	fin := ts.finishBlob(at, done.ID, f.sum)
	var short api.BlobStatus
	ts.mustDo("POST", api.PathBlobs, at, api.CreateBlobRequest{Size: int64(len(f.cipher)), TTL: 60}, &short)
	ts.patch(at, short.ID, 0, f.cipher)
	shortFin := ts.finishBlob(at, short.ID, f.sum)
	if d := time.Duration(shortFin.ExpiresAt-time.Now().UnixMilli()) * time.Millisecond; d > time.Minute || d < 50*time.Second {
		t.Fatalf("a blob finished with ttl 60 expires in %v", d)
	}
	if d := time.Duration(fin.ExpiresAt-time.Now().UnixMilli()) * time.Millisecond; d < 29*24*time.Hour {
		t.Fatalf("a finished blob expires in %v, want blob_ttl", d)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alive := func(id string) bool {
		status, _ := ts.do("GET", blobPath(id)+"/status", at, nil, nil)
		return status == 200
	}
	// Nothing is due yet.
	if n, err := ts.srv.ExpireBlobs(ctx, time.Now()); err != nil || n != 0 {
		t.Fatalf("ExpireBlobs(now) = %d, %v", n, err)
	}
	// Two minutes on: the short-lived blob goes.
	if n, err := ts.srv.ExpireBlobs(ctx, time.Now().Add(2*time.Minute)); err != nil || n != 1 || alive(short.ID) {
		t.Fatalf("ExpireBlobs(+2m) = %d, %v", n, err)
	}
	// Past the upload window: the unfinished upload goes.
	if n, err := ts.srv.ExpireBlobs(ctx, time.Now().Add(2*time.Hour)); err != nil || n != 1 || alive(unfinished.ID) || !alive(done.ID) {
		t.Fatalf("ExpireBlobs(+2h) = %d, %v", n, err)
	}
	// Past blob_ttl: the finished one goes.
	if n, err := ts.srv.ExpireBlobs(ctx, time.Now().Add(31*24*time.Hour)); err != nil || n != 1 || alive(done.ID) {
		t.Fatalf("ExpireBlobs(+31d) = %d, %v", n, err)
	}
}

// TestBlobExpirySweep lets the server's own expire loop delete a blob.
func TestBlobExpirySweep(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.ExpireInterval = time.Second
		c.BlobTTL = time.Second
	})
	a := ts.register("alice")
	at := a.devices[0].token
	f := newEncryptedFile(t, 10)
	st := ts.createBlob(at, int64(len(f.cipher)))
	ts.patch(at, st.ID, 0, f.cipher)
	ts.finishBlob(at, st.ID, f.sum)
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, _ := ts.do("GET", blobPath(st.ID)+"/status", at, nil, nil)
		if status == 404 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("blob still there 30s after it expired (status %d)", status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestBlobBusy(t *testing.T) {
	ts := startServer(t, nil)
	a := ts.register("alice")
	at := a.devices[0].token
	f := newEncryptedFile(t, 1000)
	st := ts.createBlob(at, int64(len(f.cipher)))

	// A PATCH whose body trickles in holds the upload.
	conn, err := net.Dial("tcp", ts.srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: parley\r\nAuthorization: Bearer %s\r\n%s: 0\r\nContent-Length: %d\r\n\r\n",
		blobPath(st.ID), at, api.HeaderUploadOffset, len(f.cipher))
	if _, err := conn.Write(f.cipher[:10]); err != nil {
		t.Fatal(err)
	}
	// Wait (bounded) until the first request holds the upload: a finish,
	// which changes nothing while the upload is incomplete, says so.
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, apiErr := ts.do("POST", blobPath(st.ID)+"/finish", at, api.FinishBlobRequest{SHA256: f.sum}, nil)
		if status == 409 && apiErr.Code == api.CodeUploadBusy {
			break
		}
		if status == 200 || time.Now().After(deadline) {
			t.Fatalf("finish while the first PATCH runs: %d %+v", status, apiErr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// While it runs, a second PATCH is refused too.
	if r := ts.raw("PATCH", blobPath(st.ID), at, map[string]string{api.HeaderUploadOffset: "0"}, bytes.NewReader(f.cipher[:1])); r.StatusCode != 409 || r.apiErr(t).Code != api.CodeUploadBusy {
		t.Fatalf("second PATCH while the first runs: %d %s", r.StatusCode, r.body)
	}
	if _, err := conn.Write(f.cipher[10:]); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get(api.HeaderUploadOffset) != strconv.Itoa(len(f.cipher)) {
		t.Fatalf("first PATCH: %d, Upload-Offset %s", resp.StatusCode, resp.Header.Get(api.HeaderUploadOffset))
	}
	ts.finishBlob(at, st.ID, f.sum)
}
