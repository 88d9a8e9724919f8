// Package s3 is a small client for one bucket of an S3-compatible object
// store (AWS S3, MinIO, Garage, SeaweedFS, Versity Gateway): put, get from
// an offset, delete, list a prefix (list.go), and create the bucket.
// parleyd keeps the encrypted file blobs of a cluster there.
//
// Requests are path-style (endpoint/bucket/key) and signed with AWS
// Signature Version 4 (sigv4.go), the payload's SHA-256 included. The
// package uses only the standard library. internal/s3/s3test starts a real
// S3-compatible server for tests.
package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxKeyLen is the longest key S3 accepts, in bytes of UTF-8.
const MaxKeyLen = 1024

// Client talks to one bucket. It is safe for concurrent use.
type Client struct {
	endpoint *url.URL // scheme and host only
	bucket   string
	region   string
	signer   signer
	hc       *http.Client
	now      func() time.Time
}

// New returns a client for cfg, which must pass Validate. hc nil means a
// client with timeouts on dialling (10 s), the TLS handshake (10 s) and the
// wait for response headers (2 min), but no overall timeout: objects may be
// large, and callers bound each call with its context. A non-nil hc is used
// as given, except that redirects are never followed (an S3 redirect means
// a wrong endpoint or region, and would not carry the signature).
func New(cfg Config, hc *http.Client) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	u, err := parseEndpoint(cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	var c http.Client
	if hc != nil {
		c = *hc
	} else {
		c.Transport = defaultTransport()
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Client{
		endpoint: u,
		bucket:   cfg.Bucket,
		region:   cfg.region(),
		signer:   signer{accessKey: cfg.AccessKey, secretKey: cfg.SecretKey, region: cfg.region()},
		hc:       &c,
		now:      time.Now,
	}, nil
}

func defaultTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ResponseHeaderTimeout = 2 * time.Minute
	t.ExpectContinueTimeout = time.Second
	t.IdleConnTimeout = 90 * time.Second
	t.MaxIdleConnsPerHost = 32
	return t
}

// String describes c without its credentials.
func (c *Client) String() string {
	return "s3.Client{" + c.endpoint.String() + "/" + c.bucket + "}"
}

// Put stores data under key, replacing any object there (PutObject). The
// request carries Content-Length, Content-MD5 and the payload's SHA-256,
// both signed, so the service rejects a body damaged in transit. Put
// returns once the service acknowledged the object (durable on AWS S3).
func (c *Client) Put(ctx context.Context, key string, data []byte) error {
	if err := validKey(key); err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	md := md5.Sum(data)
	req, err := c.newRequest(ctx, http.MethodPut, key, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-MD5", base64.StdEncoding.EncodeToString(md[:]))
	resp, err := c.do(req, hex.EncodeToString(sum[:]))
	if err != nil {
		return fmt.Errorf("s3: put %q: %w", key, err)
	}
	if !success(resp.StatusCode) {
		return fmt.Errorf("s3: put %q: %w", key, c.errorOf(resp))
	}
	drain(resp)
	return nil
}

// Get returns the object's bytes from offset to its end (offset > 0 sends
// Range: bytes=offset-). The caller must close the reader; cancelling ctx
// aborts a read in progress with ctx's error.
//
// A missing key is an error wrapping ErrNotFound (and the *Error behind
// it). offset equal to the object's size gives an empty reader; offset
// beyond it an error wrapping an *Error with Status 416 (InvalidRange).
func (c *Client) Get(ctx context.Context, key string, offset int64) (io.ReadCloser, error) {
	if err := validKey(key); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("s3: get %q: negative offset %d", key, offset)
	}
	req, err := c.newRequest(ctx, http.MethodGet, key, nil)
	if err != nil {
		return nil, err
	}
	if offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
	}
	// No transparent gzip: the bytes must be the object's.
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := c.do(req, emptySHA256Hex)
	if err != nil {
		return nil, fmt.Errorf("s3: get %q: %w", key, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if offset == 0 {
			return resp.Body, nil
		}
		// The service ignored the Range header: skip to offset ourselves.
		n, err := io.CopyN(io.Discard, resp.Body, offset)
		if err == nil {
			return resp.Body, nil
		}
		resp.Body.Close()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("s3: get %q: %w", key, &Error{
				Status:  http.StatusRequestedRangeNotSatisfiable,
				Code:    "InvalidRange",
				Message: fmt.Sprintf("offset %d is beyond the object's %d bytes", offset, n),
			})
		}
		return nil, fmt.Errorf("s3: get %q: %w", key, err)
	case http.StatusPartialContent:
		if start, ok := rangeStart(resp.Header.Get("Content-Range")); !ok || start != offset {
			resp.Body.Close()
			return nil, fmt.Errorf("s3: get %q: asked for bytes from %d, got Content-Range %q",
				key, offset, resp.Header.Get("Content-Range"))
		}
		return resp.Body, nil
	case http.StatusRequestedRangeNotSatisfiable:
		rangeErr := c.errorOf(resp)
		// S3 refuses "bytes=size-" too; an offset at the very end is an
		// empty read, so look at the size.
		size, err := c.size(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("s3: get %q: %w", key, err)
		}
		if size == offset {
			return http.NoBody, nil
		}
		return nil, fmt.Errorf("s3: get %q from %d (object has %d bytes): %w", key, offset, size, rangeErr)
	default:
		return nil, fmt.Errorf("s3: get %q: %w", key, notFound(c.errorOf(resp)))
	}
}

// size returns the object's length (HeadObject).
func (c *Client) size(ctx context.Context, key string) (int64, error) {
	resp, err := c.head(ctx, key)
	if e := (*Error)(nil); errors.As(err, &e) {
		return 0, notFound(e)
	}
	if err != nil {
		return 0, err
	}
	if resp.ContentLength < 0 {
		return 0, errors.New("s3: HEAD response without Content-Length")
	}
	return resp.ContentLength, nil
}

// notFound wraps ErrNotFound around e when it says the key does not exist:
// code NoSuchKey, or a 404 without a code (HEAD has no body). NoSuchBucket
// is not ErrNotFound: a missing bucket is a configuration error, not a
// missing object.
func notFound(e *Error) error {
	if e.Code == "NoSuchKey" || e.Code == "" && e.Status == http.StatusNotFound {
		return fmt.Errorf("%w: %w", ErrNotFound, e)
	}
	return e
}

// rangeStart parses the first byte position of "bytes first-last/length".
func rangeStart(cr string) (int64, bool) {
	rest, ok := strings.CutPrefix(cr, "bytes ")
	if !ok {
		return 0, false
	}
	first, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(first), 10, 64)
	return n, err == nil
}

// Delete removes key (DeleteObject). Deleting a missing key is not an
// error.
func (c *Client) Delete(ctx context.Context, key string) error {
	if err := validKey(key); err != nil {
		return err
	}
	req, err := c.newRequest(ctx, http.MethodDelete, key, nil)
	if err != nil {
		return err
	}
	resp, err := c.do(req, emptySHA256Hex)
	if err != nil {
		return fmt.Errorf("s3: delete %q: %w", key, err)
	}
	if success(resp.StatusCode) {
		drain(resp)
		return nil
	}
	e := c.errorOf(resp)
	if e.Code == "NoSuchKey" {
		// AWS answers 204 for a missing key; some gateways say 404.
		return nil
	}
	return fmt.Errorf("s3: delete %q: %w", key, e)
}

// EnsureBucket creates the bucket (CreateBucket) unless it exists already
// and is ours: BucketAlreadyOwnedByYou is success. If the credentials may
// not create buckets (AccessDenied) but may use this one (HeadBucket
// succeeds), that is success too. It is how parleyd checks at start-up that
// the endpoint and the credentials work; its errors say which is wrong
// (e.g. InvalidAccessKeyId, SignatureDoesNotMatch, BucketAlreadyExists:
// the name is taken by another account).
func (c *Client) EnsureBucket(ctx context.Context) error {
	var body []byte
	if c.region != DefaultRegion {
		body = []byte(`<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
			`<LocationConstraint>` + c.region + `</LocationConstraint></CreateBucketConfiguration>`)
	}
	req, err := c.newRequest(ctx, http.MethodPut, "", bytes.NewReader(body))
	if err != nil {
		return err
	}
	sum := sha256.Sum256(body)
	resp, err := c.do(req, hex.EncodeToString(sum[:]))
	if err != nil {
		return fmt.Errorf("s3: create bucket %q at %s: %w", c.bucket, c.endpoint, err)
	}
	if success(resp.StatusCode) {
		drain(resp)
		return nil
	}
	e := c.errorOf(resp)
	switch e.Code {
	case "BucketAlreadyOwnedByYou":
		return nil
	case "AccessDenied":
		if _, err := c.head(ctx, ""); err == nil {
			return nil
		}
	}
	return fmt.Errorf("s3: create bucket %q at %s: %w", c.bucket, c.endpoint, e)
}

// head sends HEAD for key ("" is the bucket itself) and returns the
// response, its body drained, or an *Error if the answer is not 200.
func (c *Client) head(ctx context.Context, key string) (*http.Response, error) {
	req, err := c.newRequest(ctx, http.MethodHead, key, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(req, emptySHA256Hex)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, c.errorOf(resp)
	}
	drain(resp)
	return resp, nil
}

// validKey accepts what S3 and a filesystem-backed gateway both store
// faithfully: 1 to MaxKeyLen bytes of UTF-8 without control characters,
// and no empty, "." or ".." segment between slashes (HTTP stacks and
// gateways may normalise those away).
func validKey(key string) error {
	bad := func(why string) error { return fmt.Errorf("s3: invalid key %q: %s", key, why) }
	switch {
	case key == "":
		return errors.New("s3: empty key")
	case len(key) > MaxKeyLen:
		return bad(fmt.Sprintf("longer than %d bytes", MaxKeyLen))
	case !utf8.ValidString(key):
		return bad("not UTF-8")
	case strings.ContainsFunc(key, func(r rune) bool { return r < ' ' || r == 0x7f }):
		return bad("contains a control character")
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return bad(`it has an empty, "." or ".." segment`)
		}
	}
	return nil
}

// newRequest builds a request for key in the bucket ("" is the bucket
// itself). The URL's path is escaped exactly as the signature's canonical
// URI, so what is sent is what is signed.
func (c *Client) newRequest(ctx context.Context, method, key string, body io.Reader) (*http.Request, error) {
	u := *c.endpoint
	u.Path = "/" + c.bucket
	if key != "" {
		u.Path += "/" + key
	}
	u.RawPath = canonicalURI(u.Path)
	if u.EscapedPath() != u.RawPath {
		// Cannot happen for keys validKey accepts; refuse rather than send
		// a request whose path differs from the one signed.
		return nil, fmt.Errorf("s3: key %q cannot be put in a URL", key)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	req.URL = &u
	req.Host = u.Host
	return req, nil
}

// do signs req and sends it.
func (c *Client) do(req *http.Request, payloadHash string) (*http.Response, error) {
	c.signer.sign(req, payloadHash, c.now())
	return c.hc.Do(req)
}

// errorOf reads at most maxErrorBody bytes of a failed response, closes
// it, and decodes the error.
func (c *Client) errorOf(resp *http.Response) *Error {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return decodeError(resp.StatusCode, body, resp.Header.Get("X-Amz-Request-Id"))
}

func success(status int) bool { return status >= 200 && status <= 299 }

// drain reads a little of a response's remaining body, so its connection
// can be reused, and closes it.
func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
}
