package s3_test

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/parleychat/parley/internal/s3"
)

// These tests put the client in front of HTTP servers that behave in ways
// the real gateway of client_test.go cannot be made to: servers that
// ignore Range, send a wrong Content-Range, redirect, or answer through a
// proxy's error page. They also look at the request as it goes on the wire.

func wireClient(t *testing.T, h http.Handler) *s3.Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cfg := s3.Config{Endpoint: srv.URL, Bucket: "bucket", AccessKey: "AK", SecretKey: "top-secret-key"}
	c, err := s3.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestWirePut(t *testing.T) {
	data := []byte("hello, wire")
	var seen atomic.Pointer[http.Request]
	var body atomic.Pointer[[]byte]
	c := wireClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seen.Store(r)
		body.Store(&b)
	}))
	key := "blobs/a b+c%d/é~"
	if err := c.Put(testContext(t), key, data); err != nil {
		t.Fatal(err)
	}
	r, b := seen.Load(), *body.Load()
	if want := "/bucket/blobs/a%20b%2Bc%25d/%C3%A9~"; r.RequestURI != want {
		t.Errorf("request path %q, want %q", r.RequestURI, want)
	}
	if r.Method != http.MethodPut || !bytes.Equal(b, data) || r.ContentLength != int64(len(data)) {
		t.Errorf("%s with %d bytes (Content-Length %d)", r.Method, len(b), r.ContentLength)
	}
	sum := sha256.Sum256(data)
	if got := r.Header.Get("X-Amz-Content-Sha256"); got != hex.EncodeToString(sum[:]) {
		t.Errorf("X-Amz-Content-Sha256 %q", got)
	}
	md := md5.Sum(data)
	if got := r.Header.Get("Content-Md5"); got != base64.StdEncoding.EncodeToString(md[:]) {
		t.Errorf("Content-MD5 %q", got)
	}
	auth := r.Header.Get("Authorization")
	if !strings.Contains(auth, "SignedHeaders=content-md5;host;x-amz-content-sha256;x-amz-date,") ||
		!strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AK/") ||
		strings.Contains(auth, "top-secret-key") {
		t.Errorf("Authorization %q", auth)
	}
}

// A server that ignores Range and always sends the whole object.
func TestWireRangeIgnored(t *testing.T) {
	data := []byte("0123456789")
	c := wireClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(data)
	}))
	ctx := testContext(t)
	for _, off := range []int64{0, 3, 9, 10} {
		if got := readAll(t, c, ctx, "k", off); !bytes.Equal(got, data[off:]) {
			t.Errorf("offset %d: %q, want %q", off, got, data[off:])
		}
	}
	_, err := c.Get(ctx, "k", 11)
	var e *s3.Error
	if !errors.As(err, &e) || e.Status != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("offset beyond the end: %v, want status 416", err)
	}
}

// A 206 must start where we asked.
func TestWireWrongContentRange(t *testing.T) {
	c := wireClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Range", "bytes 0-9/10")
		w.WriteHeader(http.StatusPartialContent)
		w.Write([]byte("0123456789"))
	}))
	if _, err := c.Get(testContext(t), "k", 5); err == nil || !strings.Contains(err.Error(), "Content-Range") {
		t.Errorf("Get with a wrong Content-Range: %v", err)
	}
}

// Redirects (a wrong region or endpoint) are errors, not followed.
func TestWireRedirectNotFollowed(t *testing.T) {
	var followed atomic.Bool
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { followed.Store(true) }))
	defer target.Close()
	c := wireClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", target.URL+r.URL.Path)
		w.WriteHeader(http.StatusMovedPermanently)
		io.WriteString(w, `<Error><Code>PermanentRedirect</Code><Message>Use the eu-west-1 endpoint.</Message></Error>`)
	}))
	_, err := c.Get(testContext(t), "k", 0)
	var e *s3.Error
	if !errors.As(err, &e) || e.Status != http.StatusMovedPermanently || e.Code != "PermanentRedirect" {
		t.Errorf("Get answered by a redirect: %v", err)
	}
	if followed.Load() {
		t.Error("the redirect was followed")
	}
}

// A proxy's HTML error page, and an endless error body.
func TestWireUnstructuredErrors(t *testing.T) {
	c := wireClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, "<html><body><h1>502 Bad Gateway</h1></body></html>")
			return
		}
		w.Header().Set("X-Amz-Request-Id", "REQ")
		w.WriteHeader(http.StatusInternalServerError)
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for range 256 { // 16 MiB
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	ctx := testContext(t)
	var e *s3.Error
	err := c.Put(ctx, "k", []byte("x"))
	if !errors.As(err, &e) || e.Status != http.StatusBadGateway || e.Code != "" || !strings.Contains(e.Message, "502 Bad Gateway") {
		t.Errorf("Put through a failing proxy: %v", err)
	}
	_, err = c.Get(ctx, "k", 0)
	if !errors.As(err, &e) || e.Status != http.StatusInternalServerError || e.RequestID != "REQ" || len(err.Error()) > 1024 {
		t.Errorf("Get with an endless error body: %.300v", err)
	}
}
