package s3_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/s3"
	"github.com/parleychat/parley/internal/s3/s3test"
)

// The integration tests run against a real Versity Gateway (s3test). One
// gateway serves the whole file; each test uses its own keys.

func newClient(t *testing.T, cfg s3.Config) *s3.Client {
	t.Helper()
	c, err := s3.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// blobKey is a key shaped like the blob store's.
func blobKey(seq int) string {
	return fmt.Sprintf("blobs/%s/%012d", strings.ReplaceAll(rand.Text()+rand.Text(), "=", "")[:43], seq)
}

func readAll(t *testing.T, c *s3.Client, ctx context.Context, key string, offset int64) []byte {
	t.Helper()
	rc, err := c.Get(ctx, key, offset)
	if err != nil {
		t.Fatalf("Get(%q, %d): %v", key, offset, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading %q from %d: %v", key, offset, err)
	}
	return b
}

func TestIntegration(t *testing.T) {
	cfg := s3test.Start(t)
	c := newClient(t, cfg)

	t.Run("RoundTrip", func(t *testing.T) {
		ctx := testContext(t)
		for _, size := range []int{0, 1, 5 << 20} {
			key := blobKey(size)
			data := randomBytes(size)
			if err := c.Put(ctx, key, data); err != nil {
				t.Fatalf("Put %d bytes: %v", size, err)
			}
			if got := readAll(t, c, ctx, key, 0); !bytes.Equal(got, data) {
				t.Errorf("%d bytes: Get returned %d bytes, not what was put", size, len(got))
			}
		}
	})

	t.Run("Overwrite", func(t *testing.T) {
		ctx := testContext(t)
		key := blobKey(1)
		for _, s := range []string{"first version, longer", "second"} {
			if err := c.Put(ctx, key, []byte(s)); err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, c, ctx, key, 0); string(got) != s {
				t.Errorf("Get = %q, want %q", got, s)
			}
		}
	})

	t.Run("Offsets", func(t *testing.T) {
		ctx := testContext(t)
		key := blobKey(2)
		data := randomBytes(100_003)
		if err := c.Put(ctx, key, data); err != nil {
			t.Fatal(err)
		}
		size := int64(len(data))
		for _, off := range []int64{0, 1, size / 2, size - 1} {
			if got := readAll(t, c, ctx, key, off); !bytes.Equal(got, data[off:]) {
				t.Errorf("offset %d: got %d bytes, want the last %d", off, len(got), size-off)
			}
		}
		// At the end: an empty read, not an error.
		if got := readAll(t, c, ctx, key, size); len(got) != 0 {
			t.Errorf("offset == size: got %d bytes, want none", len(got))
		}
		// Beyond the end: a 416 InvalidRange.
		for _, off := range []int64{size + 1, size + 1000} {
			_, err := c.Get(ctx, key, off)
			var e *s3.Error
			if !errors.As(err, &e) || e.Status != http.StatusRequestedRangeNotSatisfiable {
				t.Errorf("offset %d beyond %d bytes: err = %v, want an *s3.Error with status 416", off, size, err)
			} else if errors.Is(err, s3.ErrNotFound) {
				t.Errorf("offset beyond the end is ErrNotFound: %v", err)
			}
		}
		if _, err := c.Get(ctx, key, -1); err == nil {
			t.Error("Get with a negative offset succeeded")
		}
	})

	t.Run("OffsetsOfEmptyObject", func(t *testing.T) {
		ctx := testContext(t)
		key := blobKey(3)
		if err := c.Put(ctx, key, nil); err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, c, ctx, key, 0); len(got) != 0 {
			t.Errorf("got %d bytes from an empty object", len(got))
		}
		var e *s3.Error
		if _, err := c.Get(ctx, key, 1); !errors.As(err, &e) || e.Status != http.StatusRequestedRangeNotSatisfiable {
			t.Errorf("offset 1 of an empty object: err = %v, want status 416", err)
		}
	})

	t.Run("Missing", func(t *testing.T) {
		ctx := testContext(t)
		key := blobKey(4)
		for _, off := range []int64{0, 5} {
			_, err := c.Get(ctx, key, off)
			if !errors.Is(err, s3.ErrNotFound) {
				t.Errorf("Get of a missing key at %d: err = %v, want ErrNotFound", off, err)
			}
			var e *s3.Error
			if !errors.As(err, &e) || e.Status != http.StatusNotFound {
				t.Errorf("Get of a missing key at %d: err = %v, want an *s3.Error with status 404", off, err)
			}
		}
	})

	t.Run("Delete", func(t *testing.T) {
		ctx := testContext(t)
		key := blobKey(5)
		if err := c.Put(ctx, key, []byte("to be deleted")); err != nil {
			t.Fatal(err)
		}
		if err := c.Delete(ctx, key); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := c.Get(ctx, key, 0); !errors.Is(err, s3.ErrNotFound) {
			t.Errorf("Get after Delete: err = %v, want ErrNotFound", err)
		}
		if err := c.Delete(ctx, key); err != nil {
			t.Errorf("Delete again: %v", err)
		}
		if err := c.Delete(ctx, blobKey(6)); err != nil {
			t.Errorf("Delete of a key never written: %v", err)
		}
	})

	t.Run("EscapedKeys", func(t *testing.T) {
		ctx := testContext(t)
		keys := []string{
			"esc/with space/a b",
			"esc/plus+sign",
			"esc/per%cent%20%2F",
			"esc/ключ/日本語/é",
			"esc/!$&'()*,;=:@[]",
			"esc/tilde~dash-under_dot.",
			"esc/question?hash#",
		}
		for i, key := range keys {
			data := []byte(fmt.Sprintf("object %d: %s", i, key))
			if err := c.Put(ctx, key, data); err != nil {
				t.Errorf("Put(%q): %v", key, err)
				continue
			}
			if got := readAll(t, c, ctx, key, 0); !bytes.Equal(got, data) {
				t.Errorf("Get(%q) = %q, want %q", key, got, data)
			}
			if got := readAll(t, c, ctx, key, 3); !bytes.Equal(got, data[3:]) {
				t.Errorf("Get(%q, 3) = %q, want %q", key, got, data[3:])
			}
		}
		// Keys differing only in escaping are distinct objects.
		if got := readAll(t, c, ctx, "esc/per%cent%20%2F", 0); strings.Contains(string(got), "with space") {
			t.Errorf("%%20 in a key was decoded: %q", got)
		}
		for _, key := range keys {
			if err := c.Delete(ctx, key); err != nil {
				t.Errorf("Delete(%q): %v", key, err)
			}
			if _, err := c.Get(ctx, key, 0); !errors.Is(err, s3.ErrNotFound) {
				t.Errorf("Get(%q) after Delete: %v", key, err)
			}
		}
	})

	t.Run("InvalidKeys", func(t *testing.T) {
		ctx := testContext(t)
		for _, key := range []string{"", "/abs", "a//b", "a/", "a/./b", "a/../b", "..", "nul\x00", "bad\xff", strings.Repeat("k", s3.MaxKeyLen+1)} {
			if err := c.Put(ctx, key, []byte("x")); err == nil {
				t.Errorf("Put(%q) succeeded", key)
			}
			if _, err := c.Get(ctx, key, 0); err == nil || errors.Is(err, s3.ErrNotFound) {
				t.Errorf("Get(%q): err = %v, want a key error", key, err)
			}
		}
		long := strings.Repeat("k", 200) + "/" + strings.Repeat("l", 200)
		if err := c.Put(ctx, long, []byte("x")); err != nil {
			t.Errorf("Put of a long valid key: %v", err)
		}
	})

	t.Run("WrongSecret", func(t *testing.T) {
		ctx := testContext(t)
		key := blobKey(7)
		if err := c.Put(ctx, key, []byte("secret data")); err != nil {
			t.Fatal(err)
		}
		bad := cfg
		bad.SecretKey = "wrong" + cfg.SecretKey[5:]
		bc := newClient(t, bad)
		check := func(op string, err error) {
			t.Helper()
			var e *s3.Error
			if !errors.As(err, &e) {
				t.Errorf("%s with a wrong secret: err = %v, want an *s3.Error", op, err)
				return
			}
			if e.Status != http.StatusForbidden || e.Code != "SignatureDoesNotMatch" {
				t.Errorf("%s with a wrong secret: status %d code %q, want 403 SignatureDoesNotMatch", op, e.Status, e.Code)
			}
			if errors.Is(err, s3.ErrNotFound) {
				t.Errorf("%s with a wrong secret is ErrNotFound", op)
			}
			for _, s := range []string{cfg.SecretKey, bad.SecretKey, "Signature="} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("%s error %q contains %q", op, err, s)
				}
			}
		}
		_, err := bc.Get(ctx, key, 0)
		check("Get", err)
		_, err = bc.Get(ctx, key, 2)
		check("Get at an offset", err)
		check("Put", bc.Put(ctx, key, []byte("overwritten")))
		check("Delete", bc.Delete(ctx, key))
		check("EnsureBucket", bc.EnsureBucket(ctx))
		if got := readAll(t, c, ctx, key, 0); string(got) != "secret data" {
			t.Errorf("object changed by a client with a wrong secret: %q", got)
		}
	})

	t.Run("WrongAccessKey", func(t *testing.T) {
		ctx := testContext(t)
		bad := cfg
		bad.AccessKey = "NOSUCHACCESSKEY"
		bc := newClient(t, bad)
		check := func(op string, err error) {
			t.Helper()
			if !unknownAccessKey(err) {
				t.Errorf("%s with an unknown access key: err = %v, want 403 InvalidAccessKeyId (AWS) or 404 XAdminUserNotFound (versitygw)", op, err)
			}
			if errors.Is(err, s3.ErrNotFound) {
				t.Errorf("%s with an unknown access key is ErrNotFound: %v", op, err)
			}
		}
		_, err := bc.Get(ctx, blobKey(8), 0)
		check("Get", err)
		check("Put", bc.Put(ctx, blobKey(8), []byte("x")))
		check("EnsureBucket", bc.EnsureBucket(ctx))
	})

	t.Run("WrongBucket", func(t *testing.T) {
		ctx := testContext(t)
		other := cfg
		other.Bucket = cfg.Bucket + "-other"
		_, err := newClient(t, other).Get(ctx, blobKey(9), 0)
		var e *s3.Error
		if !errors.As(err, &e) || e.Code != "NoSuchBucket" {
			t.Errorf("Get from a missing bucket: err = %v, want NoSuchBucket", err)
		}
		if errors.Is(err, s3.ErrNotFound) {
			t.Errorf("a missing bucket is ErrNotFound: %v", err)
		}
	})

	t.Run("EnsureBucketTwice", func(t *testing.T) {
		ctx := testContext(t)
		// s3test.Start created the bucket already.
		for range 2 {
			if err := c.EnsureBucket(ctx); err != nil {
				t.Fatalf("EnsureBucket: %v", err)
			}
		}
		other := cfg
		other.Bucket = cfg.Bucket + "-new"
		oc := newClient(t, other)
		for range 2 {
			if err := oc.EnsureBucket(ctx); err != nil {
				t.Fatalf("EnsureBucket of a new bucket: %v", err)
			}
		}
		if err := oc.Put(ctx, "k", []byte("v")); err != nil {
			t.Fatalf("Put into the new bucket: %v", err)
		}
	})

	t.Run("CancelMidBody", func(t *testing.T) {
		ctx := testContext(t)
		key := blobKey(10)
		data := randomBytes(32 << 20)
		if err := c.Put(ctx, key, data); err != nil {
			t.Fatal(err)
		}
		getCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		rc, err := c.Get(getCtx, key, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		first := make([]byte, 4096)
		if _, err := io.ReadFull(rc, first); err != nil {
			t.Fatalf("reading the start: %v", err)
		}
		if !bytes.Equal(first, data[:len(first)]) {
			t.Fatal("start of the body differs")
		}
		cancel()
		n, err := io.Copy(io.Discard, rc)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("read after cancel: %d more bytes, err = %v, want context.Canceled", n, err)
		}
		if int64(len(first))+n >= int64(len(data)) {
			t.Errorf("the whole object was read despite the cancel")
		}
		// A cancelled context fails a new request at once.
		if _, err := c.Get(getCtx, key, 0); !errors.Is(err, context.Canceled) {
			t.Errorf("Get with a cancelled context: %v", err)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		ctx := testContext(t)
		errs := make(chan error, 8)
		for i := range 8 {
			go func() {
				key := blobKey(100 + i)
				data := randomBytes(64<<10 + i)
				if err := c.Put(ctx, key, data); err != nil {
					errs <- err
					return
				}
				rc, err := c.Get(ctx, key, int64(i))
				if err != nil {
					errs <- err
					return
				}
				defer rc.Close()
				got, err := io.ReadAll(rc)
				if err == nil && !bytes.Equal(got, data[i:]) {
					err = fmt.Errorf("key %s: wrong bytes", key)
				}
				errs <- err
			}()
		}
		for range 8 {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
	})
}

// Several gateways in one process are independent.
func TestTwoGateways(t *testing.T) {
	ctx := testContext(t)
	a, b := s3test.Start(t), s3test.Start(t)
	if a.Endpoint == b.Endpoint || a.SecretKey == b.SecretKey {
		t.Fatalf("two Starts share an endpoint or a secret: %v %v", a, b)
	}
	ca, cb := newClient(t, a), newClient(t, b)
	if err := ca.Put(ctx, "only/in/a", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := cb.Get(ctx, "only/in/a", 0); err == nil {
		t.Error("an object put on gateway a is on gateway b")
	}
	// a's credentials mean nothing to b.
	cross := b
	cross.AccessKey, cross.SecretKey = a.AccessKey, a.SecretKey
	if _, err := newClient(t, cross).Get(ctx, "x", 0); !unknownAccessKey(err) {
		t.Errorf("gateway b did not refuse gateway a's keys: %v", err)
	}
}

// unknownAccessKey reports whether err is the service refusing an access
// key it does not know. AWS says 403 InvalidAccessKeyId; Versity Gateway
// v1.8.0 says 404 XAdminUserNotFound.
func unknownAccessKey(err error) bool {
	var e *s3.Error
	return errors.As(err, &e) &&
		(e.Status == http.StatusForbidden && e.Code == "InvalidAccessKeyId" ||
			e.Status == http.StatusNotFound && e.Code == "XAdminUserNotFound")
}

// A region other than us-east-1 is in every signature's scope, and
// EnsureBucket sends it as the LocationConstraint.
func TestOtherRegion(t *testing.T) {
	ctx := testContext(t)
	cfg := s3test.StartWith(t, s3test.Options{Region: "eu-central-1"})
	c := newClient(t, cfg)
	if err := c.EnsureBucket(ctx); err != nil {
		t.Fatalf("EnsureBucket again: %v", err)
	}
	other := cfg
	other.Bucket += "-2"
	if err := newClient(t, other).EnsureBucket(ctx); err != nil {
		t.Fatalf("EnsureBucket of a new bucket in %s: %v", cfg.Region, err)
	}
	if err := c.Put(ctx, "r/k", []byte("regional")); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, c, ctx, "r/k", 2); string(got) != "gional" {
		t.Errorf("Get = %q", got)
	}
	// Signed for the wrong region: refused.
	wrong := cfg
	wrong.Region = "us-east-1"
	var e *s3.Error
	if _, err := newClient(t, wrong).Get(ctx, "r/k", 0); !errors.As(err, &e) ||
		e.Status != http.StatusBadRequest || e.Code != "AuthorizationHeaderMalformed" {
		t.Errorf("Get signed for the wrong region: %v, want 400 AuthorizationHeaderMalformed", err)
	}
}
