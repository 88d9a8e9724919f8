package server

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/identity"
	"github.com/parleychat/parley/internal/store"
)

// Sizes of the random values the server hands out.
const (
	challengeSize = 32
	tokenSize     = 32
	// maxChallenges bounds the challenges kept in memory at once.
	maxChallenges = 100_000
)

// challenges are the outstanding auth challenges, in memory: a challenge
// is good for one token request on this node, until it expires.
type challenges struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[[challengeSize]byte]challenge
}

type challenge struct {
	handle  string
	device  uint32
	expires time.Time
}

func newChallenges(ttl time.Duration) *challenges {
	return &challenges{ttl: ttl, m: make(map[[challengeSize]byte]challenge)}
}

// issue makes a challenge for (handle, device); false if too many are
// outstanding.
func (c *challenges) issue(handle string, device uint32, now time.Time) ([]byte, time.Time, bool) {
	var k [challengeSize]byte
	rand.Read(k[:])
	exp := now.Add(c.ttl)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxChallenges {
		c.expireLocked(now)
		if len(c.m) >= maxChallenges {
			return nil, time.Time{}, false
		}
	}
	c.m[k] = challenge{handle, device, exp}
	return k[:], exp, true
}

// take removes a challenge and reports whether it was live and issued to
// (handle, device).
func (c *challenges) take(b []byte, handle string, device uint32, now time.Time) bool {
	if len(b) != challengeSize {
		return false
	}
	k := [challengeSize]byte(b)
	c.mu.Lock()
	defer c.mu.Unlock()
	ch, ok := c.m[k]
	if !ok {
		return false
	}
	delete(c.m, k)
	return ch.handle == handle && ch.device == device && now.Before(ch.expires)
}

func (c *challenges) expire(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expireLocked(now)
}

func (c *challenges) expireLocked(now time.Time) {
	for k, ch := range c.m {
		if !now.Before(ch.expires) {
			delete(c.m, k)
		}
	}
}

// device looks up a current device of an account.
func (s *Server) device(ctx context.Context, handle string, id uint32) (store.Device, error) {
	l, err := s.store.DeviceList(ctx, handle)
	if errors.Is(err, store.ErrNotFound) {
		return store.Device{}, errorf(api.CodeNotFound, "There is no account @%s.", handle)
	}
	if err != nil {
		return store.Device{}, err
	}
	for _, d := range l.Devices {
		if d.ID == id {
			return d, nil
		}
	}
	return store.Device{}, errorf(api.CodeNotFound, "@%s has no device %d.", handle, id)
}

func (s *Server) handleChallenge(w http.ResponseWriter, r *http.Request) {
	var req api.ChallengeRequest
	if err := s.decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	handle, err := normHandle(req.Handle)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if _, err := s.device(r.Context(), handle, req.DeviceID); err != nil {
		s.fail(w, r, err)
		return
	}
	ch, exp, ok := s.challenges.issue(handle, req.DeviceID, time.Now())
	if !ok {
		writeError(w, api.CodeRateLimited, "Too many sign-ins are in progress; try again shortly.")
		return
	}
	writeJSON(w, api.ChallengeResponse{Challenge: ch, ExpiresAt: exp.UnixMilli()})
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	var req api.TokenRequest
	if err := s.decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	handle, err := normHandle(req.Handle)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !s.challenges.take(req.Challenge, handle, req.DeviceID, time.Now()) {
		writeError(w, api.CodeChallengeExpired,
			"The challenge is unknown, expired, already used or was issued for another device; ask for a new one.")
		return
	}
	d, err := s.device(r.Context(), handle, req.DeviceID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	msg := identity.AuthMessage(handle, req.DeviceID, req.Challenge)
	if len(d.SigningKey) != ed25519.PublicKeySize || !ed25519.Verify(d.SigningKey, msg, req.Signature) {
		writeError(w, api.CodeUnauthorized, "The signature does not verify with the device's signing key.")
		return
	}
	tok := make([]byte, tokenSize)
	rand.Read(tok)
	exp := time.Now().Add(s.cfg.TokenTTL)
	h := sha256.Sum256(tok)
	if err := s.store.PutToken(r.Context(), h[:], handle, req.DeviceID, exp); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, api.TokenResponse{Token: base64.RawURLEncoding.EncodeToString(tok), ExpiresAt: exp.UnixMilli()})
}

// caller is the authenticated device of a request.
type caller struct {
	handle string
	device uint32
}

type callerKey struct{}

func callerOf(r *http.Request) caller {
	c, _ := r.Context().Value(callerKey{}).(caller)
	return c
}

// authed requires "Authorization: Bearer <token>" naming a live token.
func (s *Server) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := s.authenticate(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, c)))
	}
}

func (s *Server) authenticate(r *http.Request) (caller, error) {
	v := r.Header.Get(api.HeaderAuthorization)
	scheme, tok, ok := strings.Cut(v, " ")
	if v == "" {
		return caller{}, errorf(api.CodeUnauthorized, "This endpoint needs an Authorization: Bearer token.")
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return caller{}, errorf(api.CodeUnauthorized, "The Authorization header is not a Bearer token.")
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(tok))
	if err != nil || len(raw) != tokenSize {
		return caller{}, errorf(api.CodeUnauthorized, "The bearer token is malformed.")
	}
	hash := sha256.Sum256(raw)
	handle, device, err := s.store.TokenDevice(r.Context(), hash[:])
	if errors.Is(err, store.ErrNotFound) {
		return caller{}, errorf(api.CodeUnauthorized, "The bearer token is unknown or expired, or its device was removed; sign in again.")
	}
	if err != nil {
		return caller{}, err
	}
	return caller{handle, device}, nil
}

// normHandle lower-cases and checks a handle.
func normHandle(h string) (string, error) {
	h = asciiLower(h)
	if !identity.ValidHandle(h) {
		return "", errorf(api.CodeInvalidHandle, "A handle is 3 to 32 characters of a-z, 0-9 and _.")
	}
	return h, nil
}

// asciiLower lower-cases A-Z only (strings.ToLower would turn U+212A
// KELVIN SIGN into a valid 'k').
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
