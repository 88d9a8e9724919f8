package realm

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/parleychat/parley/internal/pinbackup"
	"github.com/parleychat/parley/internal/toprf"
)

// endpoint is one route.
type endpoint struct {
	method, path string
	auth         bool
	// recovery: a recovery-scoped token (ScopeRecovery) is enough.
	recovery bool
	h        func(w *reply, r *http.Request, handle string, body []byte)
}

func (s *Server) endpoints() []endpoint {
	return []endpoint{
		{"GET", PathHealth, false, false, s.handleHealth},
		{"GET", PathInfo, false, false, s.handleInfo},
		{"POST", PathRegister, true, false, s.handleRegister},
		{"GET", PathStatus, true, true, s.handleStatus},
		{"POST", PathEvaluate, true, true, s.handleEvaluate},
		{"POST", PathUnlock, true, true, s.handleUnlock},
		{"DELETE", PathDelete, true, false, s.handleDelete},
	}
}

func (s *Server) routes() {
	m := http.NewServeMux()
	for _, e := range s.endpoints() {
		m.Handle(e.method+" "+e.path, s.serve(e))
	}
	m.Handle("/", s.serve(endpoint{h: func(w *reply, r *http.Request, _ string, _ []byte) {
		w.fail(CodeNotFound, "There is no endpoint "+r.Method+" "+r.URL.Path+".")
	}}))
	s.mux = m
}

// reply buffers a response so that the realm can sign it.
type reply struct {
	status int
	body   []byte
}

func (w *reply) json(status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"The response could not be encoded."}}`)
	}
	w.status, w.body = status, append(b, '\n')
}

func (w *reply) ok(v any) { w.json(http.StatusOK, v) }

func (w *reply) fail(code, message string) { w.failLeft(code, message, nil) }

func (w *reply) failLeft(code, message string, left *int) {
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	w.json(status, ErrorResponse{Error{Code: code, Message: message, GuessesLeft: left}})
}

// serve wraps an endpoint: shutdown refusal, body reading (bounded),
// token check and per-handle throttling, then the signed response.
func (s *Server) serve(e endpoint) http.Handler {
	return http.HandlerFunc(func(hw http.ResponseWriter, r *http.Request) {
		start := time.Now()
		w := &reply{}
		handle := ""
		body, err := io.ReadAll(http.MaxBytesReader(hw, r.Body, s.cfg.MaxBodyBytes))
		switch {
		case s.closing.Load():
			w.fail(CodeUnavailable, "The realm is shutting down; try again shortly.")
		case err != nil:
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				w.fail(CodeTooLarge, fmt.Sprintf("The request body is larger than %d bytes.", s.cfg.MaxBodyBytes))
			} else {
				w.fail(CodeBadRequest, "The request body could not be read.")
			}
		case e.auth:
			tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			t, err := VerifyToken(s.issuer, s.id, tok, s.now(), s.cfg.MaxTokenTTL)
			if !ok || err != nil {
				w.fail(CodeUnauthorized, "A valid access token for this realm is required (Authorization: Bearer <token from parleyd>).")
				break
			}
			handle = t.Handle
			if t.Scope != ScopeAccount && !e.recovery {
				w.fail(CodeForbidden, "A recovery token may only read the status and recover; registering and deleting need a token for a device of the account.")
				break
			}
			if !s.requestRL.Allow(handle) {
				w.fail(CodeRateLimited, "Too many requests for this account; try again later.")
				break
			}
			e.h(w, r, handle, body)
		default:
			e.h(w, r, handle, body)
		}
		sig := ed25519.Sign(s.key, ResponseMessage(s.id, handle, r.Method, r.URL.Path, body, w.status, w.body))
		h := hw.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set(HeaderSignature, base64.StdEncoding.EncodeToString(sig))
		if w.status == http.StatusUnauthorized {
			h.Set("WWW-Authenticate", `Bearer realm="parley-realm"`)
		}
		hw.WriteHeader(w.status)
		hw.Write(w.body)
		s.log.Debug("request", "method", r.Method, "route", r.Pattern, "status", w.status,
			"ms", time.Since(start).Milliseconds())
	})
}

// decode parses one JSON value with no unknown fields and nothing after it.
func decode(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}

// internal logs err and answers 500 (or 503 when shutting down).
func (s *Server) internal(w *reply, r *http.Request, err error) {
	if s.closing.Load() || errors.Is(err, context.Canceled) {
		w.fail(CodeUnavailable, "The realm is shutting down; try again shortly.")
		return
	}
	s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	w.fail(CodeInternal, "The realm failed to handle the request.")
}

// stateError answers the errors a stored registration can give.
func (s *Server) stateError(w *reply, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrNotRegistered):
		w.fail(CodeNotRegistered, "No PIN backup is registered for this account at this realm.")
	case errors.Is(err, ErrDestroyed):
		w.fail(CodeDestroyed, "This account's PIN backup was destroyed after too many wrong PINs.")
	case errors.Is(err, ErrVersion):
		w.fail(CodeVersion, "The PIN backup was registered again since this recovery began.")
	default:
		s.internal(w, r, err)
	}
}

func (s *Server) handleHealth(w *reply, r *http.Request, _ string, _ []byte) {
	w.ok(map[string]string{"status": "ok", "version": Version()})
}

func (s *Server) handleInfo(w *reply, r *http.Request, _ string, _ []byte) {
	w.ok(Info{ID: s.id[:], PublicKey: s.PublicKey(), Version: Version()})
}

func (s *Server) handleRegister(w *reply, r *http.Request, handle string, body []byte) {
	var reg pinbackup.Registration
	if err := decode(body, &reg); err != nil {
		w.fail(CodeBadRequest, "The request body is not a registration: "+err.Error()+".")
		return
	}
	if err := reg.Check(s.id); err != nil {
		w.fail(CodeBadRequest, "The registration is not valid for this realm: "+err.Error()+".")
		return
	}
	if reg.AllowedGuesses > s.cfg.MaxAllowedGuesses {
		w.fail(CodeBadRequest, fmt.Sprintf("This realm allows at most %d guesses.", s.cfg.MaxAllowedGuesses))
		return
	}
	if err := s.db.register(r.Context(), handle, &reg, s.now()); err != nil {
		s.internal(w, r, err)
		return
	}
	s.log.Info("registered", "handle", handle, "allowed_guesses", reg.AllowedGuesses)
	w.ok(struct{}{})
}

func (s *Server) handleStatus(w *reply, r *http.Request, handle string, _ []byte) {
	rec, err := s.db.status(r.Context(), handle, s.now())
	switch {
	case errors.Is(err, ErrNotRegistered):
		w.ok(pinbackup.Status{State: pinbackup.StateNone})
	case errors.Is(err, ErrDestroyed):
		w.ok(pinbackup.Status{State: pinbackup.StateDestroyed})
	case err != nil:
		s.internal(w, r, err)
	default:
		w.ok(rec.reg.StatusOf(rec.attempted))
	}
}

func (s *Server) handleEvaluate(w *reply, r *http.Request, handle string, body []byte) {
	var req pinbackup.EvaluateRequest
	if err := decode(body, &req); err != nil {
		w.fail(CodeBadRequest, "The request body is not an evaluation request: "+err.Error()+".")
		return
	}
	if len(req.Version) != pinbackup.VersionSize {
		w.fail(CodeBadRequest, "The version has the wrong size.")
		return
	}
	// Checked before the guess is counted, so a malformed request costs none.
	if _, err := toprf.ParseBlindedElement(req.Blinded); err != nil {
		w.fail(CodeBadRequest, "The blinded element is not a valid ristretto255 element.")
		return
	}
	if !s.guessRL.Allow(handle) {
		w.fail(CodeRateLimited, "Too many recovery attempts for this account; try again later.")
		return
	}
	// The guess is counted and committed before anything is evaluated.
	rec, err := s.db.guess(r.Context(), handle, req.Version, s.now())
	if err != nil {
		if errors.Is(err, ErrDestroyed) {
			s.log.Warn("backup destroyed: no guesses left", "handle", handle)
		}
		s.stateError(w, r, err)
		return
	}
	resp, err := rec.reg.Evaluate(&req, rec.attempted)
	if err != nil {
		w.fail(CodeBadRequest, "The blinded element is not valid: "+err.Error()+".")
		return
	}
	s.log.Info("recovery attempt", "handle", handle, "attempted", rec.attempted, "allowed", rec.reg.AllowedGuesses)
	w.ok(resp)
}

func (s *Server) handleUnlock(w *reply, r *http.Request, handle string, body []byte) {
	var req pinbackup.UnlockRequest
	if err := decode(body, &req); err != nil {
		w.fail(CodeBadRequest, "The request body is not an unlock request: "+err.Error()+".")
		return
	}
	rec, left, err := s.db.unlock(r.Context(), handle, req.Version, req.Tag, s.now())
	switch {
	case errors.Is(err, ErrWrongTag):
		w.failLeft(CodeWrongPIN, fmt.Sprintf("Wrong PIN: %d guesses left before the backup is destroyed.", left), &left)
	case errors.Is(err, ErrDestroyed):
		s.log.Warn("backup destroyed: wrong PIN on the last guess", "handle", handle)
		s.stateError(w, r, err)
	case err != nil:
		s.stateError(w, r, err)
	default:
		s.log.Info("recovered", "handle", handle)
		w.ok(rec.reg.Release())
	}
}

func (s *Server) handleDelete(w *reply, r *http.Request, handle string, _ []byte) {
	if err := s.db.remove(r.Context(), handle); err != nil {
		s.internal(w, r, err)
		return
	}
	s.log.Info("deleted", "handle", handle)
	w.ok(struct{}{})
}
