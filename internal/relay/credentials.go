package relay

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/parleychat/parley/internal/identity"
)

// Credential errors.
var (
	ErrBadUsername = errors.New("relay: malformed TURN username")
	ErrExpired     = errors.New("relay: TURN credentials expired")
)

// Credentials are one device's short-lived TURN credentials, in the
// convention of the TURN REST API (draft-uberti-behave-turn-rest, also
// coturn's --use-auth-secret): the username is "EXPIRY:HANDLE.DEVICE"
// (EXPIRY in Unix seconds) and the password is
// base64(HMAC-SHA1(secret, username)). The server recomputes the password
// from the username, so it stores nothing per credential; the TURN
// long-term credential mechanism (RFC 8489 §9.2) then proves that the
// client knows the password without sending it.
type Credentials struct {
	Username string
	Password string
	Expires  time.Time
}

// NewCredentials returns credentials for device of handle that expire at
// expires (rounded down to the second).
func NewCredentials(secret []byte, handle string, device uint32, expires time.Time) Credentials {
	u := strconv.FormatInt(expires.Unix(), 10) + ":" + handle + "." + strconv.FormatUint(uint64(device), 10)
	return Credentials{Username: u, Password: Password(secret, u), Expires: time.Unix(expires.Unix(), 0)}
}

// Password is the TURN REST password of username: base64(HMAC-SHA1(secret,
// username)).
func Password(secret []byte, username string) string {
	m := hmac.New(sha1.New, secret)
	m.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// ParseUsername splits a username made by NewCredentials.
func ParseUsername(username string) (expires time.Time, handle string, device uint32, err error) {
	exp, acct, ok := strings.Cut(username, ":")
	if !ok {
		return time.Time{}, "", 0, fmt.Errorf("%w: %q has no expiry", ErrBadUsername, username)
	}
	secs, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || secs <= 0 {
		return time.Time{}, "", 0, fmt.Errorf("%w: %q has no expiry", ErrBadUsername, username)
	}
	i := strings.LastIndexByte(acct, '.')
	if i < 0 {
		return time.Time{}, "", 0, fmt.Errorf("%w: %q names no device", ErrBadUsername, username)
	}
	handle = acct[:i]
	d, err := strconv.ParseUint(acct[i+1:], 10, 32)
	if err != nil || d == 0 || !identity.ValidHandle(handle) {
		return time.Time{}, "", 0, fmt.Errorf("%w: %q names no account device", ErrBadUsername, username)
	}
	return time.Unix(secs, 0), handle, uint32(d), nil
}

// CheckCredentials checks a username and password pair at time now: the
// username is well formed and not expired, and the password is the one
// the secret gives it.
func CheckCredentials(secret []byte, username, password string, now time.Time) error {
	exp, _, _, err := ParseUsername(username)
	if err != nil {
		return err
	}
	if !now.Before(exp) {
		return fmt.Errorf("%w at %s", ErrExpired, exp.UTC().Format(time.RFC3339))
	}
	if !hmac.Equal([]byte(Password(secret, username)), []byte(password)) {
		return errors.New("relay: wrong TURN password")
	}
	return nil
}
