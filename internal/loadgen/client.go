package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"syscall"
	"time"

	"github.com/parleychat/parley/internal/api"
)

// httpClients holds one HTTP client per source address, so that device i
// always leaves from the same local address.
type httpClients struct {
	clients []*http.Client
}

// newHTTPClients builds a client per source address (one client with the
// kernel's choice when there are none). Each keeps up to idle keep-alive
// connections, enough for every sender to reuse its own.
func newHTTPClients(addrs []netip.Addr, idle int) *httpClients {
	if len(addrs) == 0 {
		return &httpClients{clients: []*http.Client{newHTTPClient(nil, idle)}}
	}
	hc := &httpClients{}
	for _, a := range addrs {
		hc.clients = append(hc.clients, newHTTPClient(tcpAddr(a), idle))
	}
	return hc
}

func newHTTPClient(local *net.TCPAddr, idle int) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if local != nil {
		d.LocalAddr = local
	}
	return &http.Client{Transport: &http.Transport{
		DialContext:         d.DialContext,
		MaxIdleConns:        0, // no overall limit
		MaxIdleConnsPerHost: idle,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   false,
		DisableCompression:  true,
	}}
}

// get returns the client for device or sender i.
func (h *httpClients) get(i int) *http.Client { return h.clients[i%len(h.clients)] }

func (h *httpClients) close() {
	for _, c := range h.clients {
		c.CloseIdleConnections()
	}
}

// apiError is a non-2xx answer from parleyd.
type apiError struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration
}

func (e *apiError) Error() string {
	return fmt.Sprintf("loadgen: server answered %d %s: %s", e.Status, e.Code, e.Message)
}

// errorCode names an error for the error counts: the API code, or
// "timeout", "canceled", "transport" for failures below HTTP.
func errorCode(err error) string {
	var ae *apiError
	var ne net.Error
	switch {
	case errors.As(err, &ae):
		if ae.Code == "" {
			return "http_" + strconv.Itoa(ae.Status)
		}
		return ae.Code
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no_local_port"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too_many_files"
	default:
		return "transport"
	}
}

// rawJSON is a request body already encoded.
type rawJSON []byte

// call sends a JSON request (in as JSON, or a rawJSON as it is) and
// decodes a JSON answer into out (if not nil). Bodies of error answers
// become *apiError.
func call(ctx context.Context, c *http.Client, method, url, token string, in, out any) error {
	var body io.Reader
	switch in := in.(type) {
	case nil:
	case rawJSON:
		body = bytes.NewReader(in)
	default:
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("loadgen: encoding request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return fmt.Errorf("loadgen: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set(api.HeaderAuthorization, "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("loadgen: %s %s: %w", method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("loadgen: reading answer to %s %s: %w", method, req.URL.Path, err)
	}
	if resp.StatusCode/100 != 2 {
		ae := &apiError{Status: resp.StatusCode}
		var er api.ErrorResponse
		if json.Unmarshal(b, &er) == nil {
			ae.Code, ae.Message = er.Error.Code, er.Error.Message
		}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
			ae.RetryAfter = time.Duration(s) * time.Second
		}
		return ae
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("loadgen: decoding answer to %s %s: %w", method, req.URL.Path, err)
		}
	}
	return nil
}

// isRateLimited reports whether err is parleyd's 429.
func isRateLimited(err error) (time.Duration, bool) {
	var ae *apiError
	if errors.As(err, &ae) && (ae.Code == api.CodeRateLimited || ae.Status == http.StatusTooManyRequests) {
		return ae.RetryAfter, true
	}
	return 0, false
}

// pathURL joins the server's base URL and an API path.
func pathURL(base, path string) string {
	for len(base) > 0 && base[len(base)-1] == '/' {
		base = base[:len(base)-1]
	}
	return base + path
}
