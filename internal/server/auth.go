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
	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/identity"
	"github.com/parleychat/parley/internal/ratelimit"
	"github.com/parleychat/parley/internal/store"
)

// Sizes of the random values the server hands out.
const (
	challengeSize = 32
	tokenSize     = 32
)

// Sign-in challenges per minute per client address, and the burst. They
// follow the registration limits (each new account signs in once, so the
// load tool raises both together), and never fall below a floor that lets
// the devices behind one NAT sign in. A per-device limit would let anyone
// lock a device out of signing in, so there is none.
const (
	challengesPerRegistration = 10
	minChallengeRate          = 120 // per minute
	minChallengeBurst         = 120
)

// challenges issues auth challenges. They live in the store, not in this
// node's memory, so the token request that answers one may reach any node;
// the store deletes expired ones (Store.Expire). What bounds the rows is
// the per-address rate limit here and the challenge lifetime.
type challenges struct {
	ttl time.Duration

	once    sync.Once
	perAddr *ratelimit.Limiter
}

func newChallenges(ttl time.Duration) *challenges {
	return &challenges{ttl: ttl}
}

// allow takes a token from the client address's bucket.
func (c *challenges) allow(cfg config.Config, addr string) bool {
	c.once.Do(func() {
		rate := max(challengesPerRegistration*cfg.RegisterRate, minChallengeRate)
		burst := max(challengesPerRegistration*cfg.RegisterBurst, minChallengeBurst)
		c.perAddr = ratelimit.New(rate, burst, 0)
	})
	return c.perAddr.Allow(addr)
}

// issueChallenge stores a new challenge for (handle, device).
func (s *Server) issueChallenge(ctx context.Context, handle string, device uint32) ([]byte, time.Time, error) {
	ch := make([]byte, challengeSize)
	rand.Read(ch)
	exp := time.Now().Add(s.challenges.ttl)
	err := s.store.PutChallenge(ctx, ch, handle, device, exp)
	if errors.Is(err, store.ErrNotFound) {
		return nil, time.Time{}, errorf(api.CodeNotFound, "@%s has no device %d.", handle, device)
	}
	if err != nil {
		return nil, time.Time{}, err
	}
	return ch, exp, nil
}

// takeChallenge uses up a challenge and reports whether it was live and
// issued to (handle, device).
func (s *Server) takeChallenge(ctx context.Context, ch []byte, handle string, device uint32) (bool, error) {
	if len(ch) != challengeSize {
		return false, nil
	}
	h, d, _, err := s.store.TakeChallenge(ctx, ch)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return h == handle && d == device, nil
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
	if !s.challenges.allow(s.cfg, s.clientAddr(r)) {
		writeError(w, api.CodeRateLimited, "Too many sign-ins from this address; try again shortly.")
		return
	}
	if _, err := s.device(r.Context(), handle, req.DeviceID); err != nil {
		s.fail(w, r, err)
		return
	}
	ch, exp, err := s.issueChallenge(r.Context(), handle, req.DeviceID)
	if err != nil {
		s.fail(w, r, err)
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
	ok, err := s.takeChallenge(r.Context(), req.Challenge, handle, req.DeviceID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !ok {
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
