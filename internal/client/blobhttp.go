package client

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"golang.org/x/time/rate"

	"github.com/parleychat/parley/internal/api"
)

// blobRequest sends one request to a blob endpoint (docs/PROTOCOL-files.md)
// with a raw body from newBody (nil: none) of n bytes, and hands a 2xx
// answer to onOK; any other answer is an *APIError. Unlike call it sets no
// overall timeout (a body may be gigabytes; ctx bounds it), and it makes
// the body again when it signs in again after a refused token. Errors do
// not quote the path: a blob id is the capability to download.
func (c *Client) blobRequest(ctx context.Context, method, p string, newBody func() (io.ReadCloser, error), n int64,
	h http.Header, onOK func(*http.Response) error) error {
	base, err := c.baseURL()
	if err != nil {
		return err
	}
	for fresh := false; ; fresh = true {
		tok, err := c.token(ctx, fresh)
		if err != nil {
			return err
		}
		var body io.ReadCloser
		if newBody != nil {
			if body, err = newBody(); err != nil {
				return err
			}
		}
		req, err := http.NewRequestWithContext(ctx, method, base+p, body)
		if err != nil {
			if body != nil {
				body.Close()
			}
			return fmt.Errorf("client: %w", err)
		}
		if body != nil {
			req.ContentLength = n
		}
		for k, v := range h {
			req.Header[k] = v
		}
		req.Header.Set(api.HeaderAuthorization, "Bearer "+tok)
		resp, err := c.http.Do(req)
		if err != nil {
			return &transferError{fmt.Errorf("client: %s of a file: %w", method, err)}
		}
		if resp.StatusCode == http.StatusUnauthorized && !fresh {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			continue
		}
		defer resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return readAPIError(resp)
		}
		return onOK(resp)
	}
}

// limiter bounds a transfer's rate.
type limiter struct{ l *rate.Limiter }

// newLimiter returns a limiter of bps bytes per second, or nil for none.
func newLimiter(bps int64) *limiter {
	if bps <= 0 {
		return nil
	}
	burst := int(min(bps, 256<<10))
	return &limiter{rate.NewLimiter(rate.Limit(bps), burst)}
}

// meter counts (and with a limiter, paces) what is read through it and
// reports the position: base plus the bytes read.
type meter struct {
	ctx  context.Context
	r    io.Reader
	lim  *limiter
	base int64
	done int64
	fn   func(pos int64)
	err  error // the reader's error, io.EOF excepted
}

func (m *meter) Read(p []byte) (int, error) {
	if m.lim != nil && len(p) > m.lim.l.Burst() {
		p = p[:m.lim.l.Burst()]
	}
	n, err := m.r.Read(p)
	if err != nil && err != io.EOF {
		m.err = err
	}
	if n > 0 {
		if m.lim != nil {
			if werr := m.lim.l.WaitN(m.ctx, n); werr != nil {
				return n, werr
			}
		}
		m.done += int64(n)
		if m.fn != nil {
			m.fn(m.base + m.done)
		}
	}
	return n, err
}

// progressFn turns a Progress callback into a position callback (nil for
// none).
func progressFn(fn func(Progress), id, name, phase string, total int64) func(int64) {
	if fn == nil {
		return nil
	}
	return func(pos int64) { fn(Progress{ID: id, Name: name, Phase: phase, Done: pos, Total: total}) }
}
