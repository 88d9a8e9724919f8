package realm

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"net/http"

	"github.com/parleychat/parley/internal/pinbackup"
)

// Paths of the realm API. Every /v1/pin path needs "Authorization: Bearer
// <token>" (see Token); the handle comes from the token. Request and
// response bodies are JSON; the types live in pinbackup.
const (
	PathHealth   = "/healthz"
	PathInfo     = "/v1/realm"        // GET: Info (no auth)
	PathRegister = "/v1/pin/register" // POST pinbackup.Registration -> {}
	PathStatus   = "/v1/pin/status"   // GET -> pinbackup.Status (costs no guess)
	PathEvaluate = "/v1/pin/evaluate" // POST pinbackup.EvaluateRequest -> pinbackup.EvaluateResponse (counts a guess)
	PathUnlock   = "/v1/pin/unlock"   // POST pinbackup.UnlockRequest -> pinbackup.UnlockResponse
	PathDelete   = "/v1/pin"          // DELETE -> {}

	// HeaderSignature carries the realm's signature of every response
	// (ResponseMessage), standard base64.
	HeaderSignature = "Parley-Realm-Signature"
)

// Info is the body of GET /v1/realm.
type Info struct {
	ID        []byte `json:"id"`         // 16 bytes, pinbackup.RealmIDFromKey(PublicKey)
	PublicKey []byte `json:"public_key"` // Ed25519, 32 bytes
	Version   string `json:"version"`
}

// Error is the body of every non-2xx response: {"error": {...}}.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// GuessesLeft is set with CodeWrongPIN.
	GuessesLeft *int `json:"guesses_left,omitempty"`
}

// ErrorResponse wraps Error.
type ErrorResponse struct {
	Error Error `json:"error"`
}

// Error codes, each paired with one HTTP status.
const (
	CodeBadRequest    = "bad_request"       // 400
	CodeUnauthorized  = "unauthorized"      // 401
	CodeWrongPIN      = "wrong_pin"         // 403: the unlock tag is wrong
	CodeForbidden     = "forbidden"         // 403: the token's scope does not allow this
	CodeNotRegistered = "not_registered"    // 404
	CodeNotFound      = "not_found"         // 404: no such endpoint
	CodeVersion       = "version_mismatch"  // 409: re-registered meanwhile
	CodeDestroyed     = "backup_destroyed"  // 410: too many wrong PINs
	CodeTooLarge      = "payload_too_large" // 413
	CodeRateLimited   = "rate_limited"      // 429
	CodeInternal      = "internal"          // 500
	CodeUnavailable   = "unavailable"       // 503
)

var statusOf = map[string]int{
	CodeBadRequest:    http.StatusBadRequest,
	CodeUnauthorized:  http.StatusUnauthorized,
	CodeWrongPIN:      http.StatusForbidden,
	CodeForbidden:     http.StatusForbidden,
	CodeNotRegistered: http.StatusNotFound,
	CodeNotFound:      http.StatusNotFound,
	CodeVersion:       http.StatusConflict,
	CodeDestroyed:     http.StatusGone,
	CodeTooLarge:      http.StatusRequestEntityTooLarge,
	CodeRateLimited:   http.StatusTooManyRequests,
	CodeInternal:      http.StatusInternalServerError,
	CodeUnavailable:   http.StatusServiceUnavailable,
}

// ResponseMessage is what a realm signs for each response:
//
//	"parley-realm-response-v1" || realm id (16) || u8-len handle
//	|| SHA-256(method || " " || path || "\n" || request body)
//	|| u16 status || SHA-256(response body)
//
// handle is the token's handle, empty on endpoints without auth.
func ResponseMessage(realm pinbackup.RealmID, handle, method, path string, reqBody []byte, status int, respBody []byte) []byte {
	rh := sha256.New()
	rh.Write([]byte(method + " " + path + "\n"))
	rh.Write(reqBody)
	m := append([]byte("parley-realm-response-v1"), realm[:]...)
	m = append(m, byte(len(handle)))
	m = append(m, handle...)
	m = rh.Sum(m)
	m = binary.BigEndian.AppendUint16(m, uint16(status))
	sum := sha256.Sum256(respBody)
	return append(m, sum[:]...)
}

// VerifyResponse checks a response signature against a pinned realm key.
func VerifyResponse(pub ed25519.PublicKey, handle, method, path string, reqBody []byte, status int, respBody, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize {
		return false
	}
	m := ResponseMessage(pinbackup.RealmIDFromKey(pub), handle, method, path, reqBody, status, respBody)
	return ed25519.Verify(pub, m, sig)
}
