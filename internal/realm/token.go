package realm

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/parleychat/parley/internal/identity"
	"github.com/parleychat/parley/internal/pinbackup"
)

// Token errors.
var (
	ErrTokenMalformed = errors.New("realm: malformed token")
	ErrTokenInvalid   = errors.New("realm: token signature, audience or lifetime is not valid")
)

// Token is a realm access token: parleyd's statement that the bearer may
// act on Handle's PIN backup at Realm until Expires. parleyd signs it with
// its token key; each realm is configured with the public half.
//
//	token = u8 format || u8-len handle || realm id (16) || u64 expires_ms || signature (64)
//	signature = Ed25519(issuer key, "parley-realm-token-v1" || token without the signature)
//
// The format byte is the token's scope: 1 (ScopeAccount) for a device of
// the account, which may do everything; 2 (ScopeRecovery) for a device
// that is recovering the account and has no credentials yet, which may only
// read the status and recover (status, evaluate, unlock), never register or
// delete. On the wire a token is the unpadded base64url of those bytes,
// sent as "Authorization: Bearer <token>".
type Token struct {
	Handle  string
	Realm   pinbackup.RealmID
	Expires time.Time
	// Scope is ScopeAccount (the zero value) or ScopeRecovery.
	Scope Scope
}

// Scope is what a token allows.
type Scope uint8

// Scopes, encoded as the token's format byte.
const (
	ScopeAccount  Scope = 0 // format 1: every endpoint
	ScopeRecovery Scope = 1 // format 2: status, evaluate and unlock only
)

const (
	tokenFormat         = 1 // ScopeAccount
	tokenFormatRecovery = 2 // ScopeRecovery
	tokenContext        = "parley-realm-token-v1"
)

func (t Token) body() ([]byte, error) {
	if !identity.ValidHandle(t.Handle) {
		return nil, fmt.Errorf("%w: handle %q", ErrTokenMalformed, t.Handle)
	}
	format := byte(tokenFormat)
	switch t.Scope {
	case ScopeAccount:
	case ScopeRecovery:
		format = tokenFormatRecovery
	default:
		return nil, fmt.Errorf("%w: scope %d", ErrTokenMalformed, t.Scope)
	}
	b := []byte{format, byte(len(t.Handle))}
	b = append(b, t.Handle...)
	b = append(b, t.Realm[:]...)
	return binary.BigEndian.AppendUint64(b, uint64(t.Expires.UnixMilli())), nil
}

// SignToken is parleyd's side: it issues a token for t signed with the
// issuer's private key.
func SignToken(issuer ed25519.PrivateKey, t Token) (string, error) {
	body, err := t.body()
	if err != nil {
		return "", err
	}
	sig := ed25519.Sign(issuer, append([]byte(tokenContext), body...))
	return base64.RawURLEncoding.EncodeToString(append(body, sig...)), nil
}

// parseToken decodes token bytes (not base64) into the token and its
// signature, strictly.
func parseToken(b []byte) (Token, []byte, error) {
	bad := fmt.Errorf("%w", ErrTokenMalformed)
	if len(b) < 2 || (b[0] != tokenFormat && b[0] != tokenFormatRecovery) {
		return Token{}, nil, bad
	}
	n := int(b[1])
	if len(b) != 2+n+pinbackup.RealmIDSize+8+ed25519.SignatureSize {
		return Token{}, nil, bad
	}
	handle := string(b[2 : 2+n])
	if !identity.ValidHandle(handle) {
		return Token{}, nil, bad
	}
	rest := b[2+n:]
	t := Token{Handle: handle, Realm: pinbackup.RealmID(rest[:pinbackup.RealmIDSize])}
	if b[0] == tokenFormatRecovery {
		t.Scope = ScopeRecovery
	}
	ms := binary.BigEndian.Uint64(rest[pinbackup.RealmIDSize:])
	if ms > 1<<62 {
		return Token{}, nil, bad
	}
	t.Expires = time.UnixMilli(int64(ms))
	return t, rest[pinbackup.RealmIDSize+8:], nil
}

// VerifyToken is the realm's side: it decodes s, checks the issuer's
// signature, that the token names this realm, and that it expires after
// now but no later than now + maxTTL.
func VerifyToken(issuer ed25519.PublicKey, realm pinbackup.RealmID, s string, now time.Time, maxTTL time.Duration) (Token, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Token{}, ErrTokenMalformed
	}
	t, sig, err := parseToken(b)
	if err != nil {
		return Token{}, err
	}
	if !ed25519.Verify(issuer, append([]byte(tokenContext), b[:len(b)-len(sig)]...), sig) {
		return Token{}, fmt.Errorf("%w: bad signature", ErrTokenInvalid)
	}
	if t.Realm != realm {
		return Token{}, fmt.Errorf("%w: issued for another realm", ErrTokenInvalid)
	}
	if !t.Expires.After(now) {
		return Token{}, fmt.Errorf("%w: expired", ErrTokenInvalid)
	}
	if t.Expires.After(now.Add(maxTTL)) {
		return Token{}, fmt.Errorf("%w: lifetime longer than %s", ErrTokenInvalid, maxTTL)
	}
	return t, nil
}
