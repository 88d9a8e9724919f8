package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"log/slog"
	"strings"

	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/store"
)

// Registration by invitation.
//
// With registration "invite", POST /v1/accounts needs the code of an
// invite the operator made (`parleyd invite create`). A code carries 128
// random bits, written as 26 base32 letters in groups of four; the store
// keeps only its SHA-256 (store.Invite), so a copy of the database does
// not hand out registrations. The store uses the invite in the
// registration's own transaction: a code good for n accounts makes n, even
// when nodes of a cluster take registrations at once.

// registrationInvite is config.Registration's value for invite-only.
const registrationInvite = "invite"

// inviteCodeLen is the length of a code's letters, without its dashes.
const inviteCodeLen = 26

var inviteEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewInviteCode returns a fresh invite code, such as
// "kq3z-7hxm-...-ab".
func NewInviteCode() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	s := strings.ToLower(inviteEncoding.EncodeToString(b[:]))
	var out strings.Builder
	for i := 0; i < len(s); i += 4 {
		if i > 0 {
			out.WriteByte('-')
		}
		out.WriteString(s[i:min(i+4, len(s))])
	}
	return out.String()
}

// NormaliseInviteCode returns code as it is hashed: lower case, without
// dashes and spaces. ok is false if the result is not a code's shape.
func NormaliseInviteCode(code string) (norm string, ok bool) {
	norm = strings.ToLower(strings.NewReplacer("-", "", " ", "").Replace(code))
	if len(norm) != inviteCodeLen {
		return norm, false
	}
	_, err := inviteEncoding.DecodeString(strings.ToUpper(norm))
	return norm, err == nil
}

// InviteHash is what the store keeps of an invite code (store.Invite.Hash).
// A string that is not a code still hashes, to a hash no invite has.
func InviteHash(code string) []byte {
	norm, _ := NormaliseInviteCode(code)
	h := sha256.Sum256([]byte("parley-invite-v1\x00" + norm))
	return h[:]
}

// OpenStore opens the store cfg names, as parleyd does at start, for
// commands that work on it beside a running server (parleyd invite): the
// invites are not among what a running server caches.
func OpenStore(ctx context.Context, cfg config.Config, logger *slog.Logger) (store.Store, error) {
	return openStore(ctx, cfg, logger)
}
