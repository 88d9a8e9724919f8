package client

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/parleychat/parley/internal/api"
)

// Errors. Each is wrapped with %w and says, in a sentence a person
// understands, what went wrong; test with errors.Is.
var (
	ErrNotRegistered     = errors.New("client: this device is not registered yet (register a handle or link this device first)")
	ErrAlreadyRegistered = errors.New("client: this device already has an account")
	ErrNoServer          = errors.New("client: no server address is known (pass the server URL)")
	ErrInvalidHandle     = errors.New("client: a handle is 3 to 32 characters of a-z, 0-9 and _")
	ErrUnknownHandle     = errors.New("client: no account has this handle")
	ErrHandleTaken       = errors.New("client: this handle is already taken")
	ErrInviteRequired    = errors.New("client: this server registers accounts by invitation only; an invite code is needed")
	ErrInviteInvalid     = errors.New("client: the invite code is unknown, expired, used up, or for another handle")
	ErrRateLimited       = errors.New("client: the server is rate limiting this request; try again later")
	ErrKeyChanged        = errors.New("client: the contact's safety number changed; compare it again and mark it verified before sending")
	ErrBlocked           = errors.New("client: this handle is blocked; unblock it first")
	ErrSelf              = errors.New("client: that is your own handle")
	ErrTooLong           = errors.New("client: the message is too long")
	ErrRollback          = errors.New("client: the server served an older device list than one already seen (possible tampering)")
	ErrBadDeviceList     = errors.New("client: a device list does not verify against the account's identity key (possible tampering)")
	ErrIdentityMismatch  = errors.New("client: the server served a different identity key for your own account (possible tampering)")
	ErrUnknownDevice     = errors.New("client: no such device on this account")
	ErrCurrentDevice     = errors.New("client: this is the device you are using; remove it from another device")
	ErrTooManyDevices    = errors.New("client: the account already has the most devices it may have")
	ErrDeviceMismatch    = errors.New("client: the recipient's devices kept changing while sending; try again")
	ErrLinkUsed          = errors.New("client: this link code was already used")
	ErrLinkExpired       = errors.New("client: this link code has expired; make a new one")
	ErrBadLinkCode       = errors.New("client: this is not a valid link code")
	ErrLinkVerify        = errors.New("client: the linked account failed verification")
	ErrDeviceRemoved     = errors.New("client: this device is no longer part of the account (it was removed, or the server forgot it)")
	ErrReplaced          = errors.New("client: another connection of this device (another parley on the same home?) took over receiving")
	ErrQueueFull         = errors.New("client: a recipient's queue on the server is full")
	ErrUnavailable       = errors.New("client: the server is unavailable; try again later")
)

// APIError is an error answer of the server.
type APIError struct {
	Status  int    // HTTP status
	Code    string // api.Code*
	Message string // the server's sentence
	// Mismatch is set with api.CodeDeviceMismatch.
	Mismatch []api.DeviceMismatch
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Code != "" {
		return fmt.Sprintf("client: the server refused: %s (%s, HTTP %d)", msg, e.Code, e.Status)
	}
	return fmt.Sprintf("client: the server refused: %s (HTTP %d)", msg, e.Status)
}

// Is lets errors.Is match an APIError against the sentinel of its code.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrHandleTaken:
		return e.Code == api.CodeHandleTaken
	case ErrInviteRequired:
		return e.Code == api.CodeInviteRequired
	case ErrInviteInvalid:
		return e.Code == api.CodeInviteInvalid
	case ErrRateLimited:
		return e.Code == api.CodeRateLimited || e.Status == http.StatusTooManyRequests
	case ErrInvalidHandle:
		return e.Code == api.CodeInvalidHandle
	case ErrLinkUsed:
		return e.Code == api.CodeLinkUsed
	case ErrLinkExpired:
		return e.Code == api.CodeLinkExpired
	case ErrQueueFull:
		return e.Code == api.CodeQueueFull
	case ErrTooLong:
		return e.Code == api.CodeTooLarge
	case ErrUnavailable:
		return e.Code == api.CodeUnavailable || e.Status == http.StatusServiceUnavailable
	}
	return false
}

// temporary reports whether a send refused with err may succeed later
// unchanged (so its outbox item is kept).
func temporary(err error) bool {
	var ae *APIError
	if !errors.As(err, &ae) {
		return true // network, database, context
	}
	switch {
	case ae.Status == http.StatusTooManyRequests, ae.Status >= 500:
		return true
	case ae.Code == api.CodeUnauthorized, ae.Code == api.CodeDeviceMismatch, ae.Code == api.CodeStaleDeviceList:
		return true
	}
	return false
}
