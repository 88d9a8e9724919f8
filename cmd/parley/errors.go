package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/client"
	"github.com/parleychat/parley/internal/linking"
)

// sentence turns err into a sentence a person understands, without the
// leading "parley: ".
func (a *app) sentence(err error) string {
	who := "that account"
	if a.subject != "" {
		who = "@" + a.subject
	}
	server := a.usedServer
	if server == "" {
		server = "the server"
	}

	if s, ok := a.pinSentence(err); ok { // pin.go
		return s
	}
	if s, ok := a.fileSentence(err); ok { // files.go
		return s
	}
	switch {
	case errors.Is(err, client.ErrNotRegistered):
		return "this device has no account yet: run 'parley register HANDLE' to create one, or 'parley link CODE' to join an existing one"
	case errors.Is(err, client.ErrAlreadyRegistered):
		return "this home already holds an account; use another --home (or PARLEY_HOME) for a second one"
	case errors.Is(err, client.ErrNoServer):
		return "no server is known for this home: pass --server URL (or set PARLEY_SERVER)"
	case errors.Is(err, client.ErrInvalidHandle):
		return fmt.Sprintf("%q is not a valid handle: use 3 to 32 characters of a-z, 0-9 and _", a.subject)
	case errors.Is(err, client.ErrUnknownHandle):
		return fmt.Sprintf("there is no account %s on this server", who)
	case errors.Is(err, client.ErrBadReaction):
		return "a reaction is an emoji (at most 64 bytes)"
	case errors.Is(err, client.ErrNotEditable):
		return "only your own messages of the last 24 hours can be edited"
	case errors.Is(err, client.ErrNotDeletable):
		return "only your own messages of the last 24 hours can be deleted for everyone"
	case errors.Is(err, client.ErrUnknownMessage):
		return "there is no message with that id here ('parley history HANDLE --json' shows the ids)"
	case errors.Is(err, client.ErrHandleTaken):
		return fmt.Sprintf("the handle %s is already taken; choose another", who)
	case errors.Is(err, client.ErrInviteRequired):
		return "this server registers accounts by invitation only: ask its operator for an invite code, then run 'parley register --invite CODE HANDLE'"
	case errors.Is(err, client.ErrInviteInvalid):
		return fmt.Sprintf("the server did not take that invite code: it is unknown, expired, used up, or made for another handle than %s", who)
	case errors.Is(err, client.ErrRateLimited):
		return "the server is limiting how fast this device may do that; wait a minute and try again"
	case errors.Is(err, client.ErrKeyChanged):
		return fmt.Sprintf("the safety number with %s has changed: compare it with 'parley verify %s', then accept it with 'parley verify %s --mark'",
			who, a.subject, a.subject)
	case errors.Is(err, client.ErrBlocked):
		return fmt.Sprintf("you have blocked %s; run 'parley unblock %s' first", who, a.subject)
	case errors.Is(err, client.ErrSelf):
		return "that is your own handle"
	case errors.Is(err, client.ErrTooLong):
		return "the message is too long"
	case errors.Is(err, client.ErrCurrentDevice):
		return "this is the device you are using; remove it from another of your devices"
	case errors.Is(err, client.ErrUnknownDevice):
		return "this account has no such device; 'parley devices list' shows them"
	case errors.Is(err, client.ErrTooManyDevices):
		return "this account already has as many devices as it may have; remove one with 'parley devices remove ID'"
	case errors.Is(err, client.ErrDeviceMismatch):
		return fmt.Sprintf("the devices of %s kept changing while sending; try again", who)
	case errors.Is(err, client.ErrLinkUsed):
		return "this link code has already been used; make a new one with 'parley link new'"
	case errors.Is(err, client.ErrLinkExpired):
		return "this link code has expired; make a new one with 'parley link new'"
	case errors.Is(err, client.ErrBadLinkCode), errors.Is(err, linking.ErrBadCode):
		return "that is not a valid link code; check for typos, or make a new one with 'parley link new'"
	case errors.Is(err, linking.ErrBadMAC), errors.Is(err, linking.ErrOpen):
		return "the link code does not match the device that answered; make a new one with 'parley link new' and try again"
	case errors.Is(err, client.ErrDeviceRemoved):
		return "this device is no longer part of its account (it was removed); link it again with 'parley link CODE' in a fresh --home"
	case errors.Is(err, client.ErrQueueFull):
		return fmt.Sprintf("the server holds too many undelivered messages for %s; try again later", who)
	case errors.Is(err, client.ErrUnavailable):
		return "the server is shutting down or unavailable; try again shortly"
	case errors.Is(err, client.ErrRollback), errors.Is(err, client.ErrBadDeviceList), errors.Is(err, client.ErrIdentityMismatch),
		errors.Is(err, client.ErrLinkVerify):
		// Possible tampering by the server: say exactly what the client saw.
		return "refusing to continue: " + strings.TrimPrefix(err.Error(), "client: ")
	case errors.Is(err, context.DeadlineExceeded):
		return "gave up waiting: the operation took too long"
	}

	var apiErr *client.APIError
	if errors.As(err, &apiErr) {
		return apiSentence(apiErr, who)
	}

	var urlErr *url.Error
	var opErr *net.OpError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("cannot reach %s: nothing is listening there (is parleyd running?)", server)
	case errors.As(err, &opErr), errors.As(err, &urlErr):
		return fmt.Sprintf("cannot reach %s: %v", server, innermost(err))
	}
	return strings.TrimPrefix(err.Error(), "client: ")
}

func apiSentence(e *client.APIError, who string) string {
	detail := ""
	if e.Message != "" {
		detail = ": " + e.Message
	}
	switch e.Code {
	case api.CodeHandleTaken:
		return fmt.Sprintf("the handle %s is already taken; choose another", who)
	case api.CodeInvalidHandle:
		return "the server does not accept that handle" + detail
	case api.CodeRateLimited:
		return "the server is limiting how fast this device may do that; wait a minute and try again"
	case api.CodeNotFound:
		return fmt.Sprintf("there is no account %s on this server", who)
	case api.CodeDeviceMismatch:
		return fmt.Sprintf("the devices of %s changed while sending; try again", who)
	case api.CodeStaleDeviceList:
		return "this account's device list changed on another device; run 'parley sync' and try again"
	case api.CodeUnauthorized:
		return "the server no longer accepts this device; it may have been removed from the account"
	case api.CodeChallengeExpired:
		return "signing in to the server took too long; try again"
	case api.CodeForbidden:
		return "the server does not allow that" + detail
	case api.CodeLinkUsed:
		return "this link code has already been used; make a new one with 'parley link new'"
	case api.CodeLinkExpired:
		return "this link code has expired; make a new one with 'parley link new'"
	case api.CodeTooLarge:
		return "the message is too large for the server"
	case api.CodeQueueFull:
		return fmt.Sprintf("the server holds too many undelivered messages for %s; try again later", who)
	case api.CodeUnavailable:
		return "the server is shutting down or unavailable; try again shortly"
	case api.CodeInternal:
		return "the server failed with an internal error; try again later"
	case api.CodeBadRequest, api.CodeBadSignature:
		return "the server rejected the request" + detail
	}
	return fmt.Sprintf("the server answered %d %s%s", e.Status, e.Code, detail)
}

// innermost returns the text of the deepest wrapped error, which for
// network errors is the useful part ("connection reset by peer").
func innermost(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return strings.TrimSpace(err.Error())
		}
		err = next
	}
}
