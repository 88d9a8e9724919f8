package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/parleychat/parley/internal/api"
)

// apiError is an error that becomes an api.ErrorResponse.
type apiError struct {
	e api.Error
}

func (e *apiError) Error() string { return e.e.Code + ": " + e.e.Message }

func errorf(code, format string, a ...any) *apiError {
	return &apiError{api.Error{Code: code, Message: fmt.Sprintf(format, a...)}}
}

func writeJSON(w http.ResponseWriter, v any) {
	writeJSONStatus(w, http.StatusOK, v)
}

func writeJSONStatus(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own wire types are written; they always marshal.
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"The response could not be encoded."}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, code, message string) {
	writeAPIError(w, &apiError{api.Error{Code: code, Message: message}})
}

// statusFor is the HTTP status paired with an error code.
func statusFor(code string) int {
	if st, ok := api.HTTPStatus(code); ok {
		return st
	}
	return http.StatusInternalServerError
}

func writeAPIError(w http.ResponseWriter, e *apiError) {
	status := statusFor(e.e.Code)
	if e.e.Code == api.CodeUnauthorized || e.e.Code == api.CodeChallengeExpired {
		w.Header().Set("WWW-Authenticate", `Bearer realm="parley"`)
	}
	if sw, ok := w.(*statusWriter); ok {
		sw.code = e.e.Code // for the errors metric
	}
	writeJSONStatus(w, status, api.ErrorResponse{Error: e.e})
}

// The errors every route may answer besides its own.
var (
	errShuttingDown = errorf(api.CodeUnavailable, "The server is shutting down; try again shortly.")
	errInternal     = errorf(api.CodeInternal, "The server failed to handle the request.")
)

// publicError is what a client is told of err: an *apiError as itself,
// errShuttingDown while the server shuts down, else errInternal, and then
// internal is true: the caller logs err (unless its client has gone).
func (s *Server) publicError(err error) (e *apiError, internal bool) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae, false
	case s.closing.Load():
		return errShuttingDown, false
	}
	return errInternal, true
}

// fail writes err: an *apiError as itself, anything else as 500 (logged),
// or 503 when the server is shutting down.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	ae, internal := s.publicError(err)
	if internal {
		if r.Context().Err() != nil {
			return // the client has gone
		}
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeAPIError(w, ae)
}

// decode reads one JSON value of the request body into v: at most
// MaxBodyBytes, no unknown fields, nothing after it.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) error {
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	b, err := io.ReadAll(body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errorf(api.CodeTooLarge, "The request body is larger than %d bytes.", s.cfg.MaxBodyBytes)
		}
		return errorf(api.CodeBadRequest, "The request body could not be read.")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(api.CodeBadRequest, "The request body is not the expected JSON: %s.", jsonProblem(err))
	}
	if dec.More() {
		return errorf(api.CodeBadRequest, "The request body has data after the JSON value.")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errorf(api.CodeBadRequest, "The request body has data after the JSON value.")
	}
	return nil
}

// jsonProblem describes a decoding error without echoing the input.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q must be a %s", te.Field, te.Type)
	case errors.Is(err, io.EOF):
		return "the body is empty"
	default:
		return err.Error() // e.g. json: unknown field "x"
	}
}

// clientAddr is the address a request comes from, the key of the
// per-address rate limits: the peer's, or, when the peer is a proxy of
// trusted_proxies, the nearest address of X-Forwarded-For that is not one.
// Each proxy appends the address it got the request from, so the entries
// left of the nearest untrusted one are that client's say, which anyone
// can forge; a malformed entry on the way ends the walk at the last
// trusted hop. Without trusted proxies the header is ignored.
func (s *Server) clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if len(s.proxies) == 0 || err != nil || !s.trustedProxy(peer.Unmap()) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	last := host
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := forwardedAddr(hops[i])
		if !ok {
			return last
		}
		if !s.trustedProxy(a) {
			return a.String()
		}
		last = a.String()
	}
	return last
}

// trustedProxy reports whether a is in trusted_proxies.
func (s *Server) trustedProxy(a netip.Addr) bool {
	for _, p := range s.proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedAddr reads one X-Forwarded-For entry: an address, possibly with
// a port (IPv6 then in brackets).
func forwardedAddr(e string) (netip.Addr, bool) {
	e = strings.TrimSpace(e)
	if a, err := netip.ParseAddr(e); err == nil && a.Zone() == "" {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(e); err == nil && ap.Addr().Zone() == "" {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// statusWriter records the status for the access log; Unwrap keeps
// http.ResponseController and WebSocket hijacking working.
type statusWriter struct {
	http.ResponseWriter
	status int
	code   string // the API error code written, if any
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// common wraps every handler: response headers, refusal during shutdown,
// and a debug access log (method, pattern, status, duration; never bodies
// or tokens).
func (s *Server) common(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		sw := &statusWriter{ResponseWriter: w}
		if s.closing.Load() {
			writeAPIError(sw, errShuttingDown)
		} else {
			h(sw, r)
		}
		d := time.Since(start)
		if sw.status != http.StatusSwitchingProtocols { // a WebSocket's duration is its lifetime
			s.metrics.ObserveHTTP(r.Pattern, sw.status, sw.code, d)
		}
		s.log.Debug("request", "method", r.Method, "route", r.Pattern, "status", sw.status,
			"ms", d.Milliseconds())
	})
}
