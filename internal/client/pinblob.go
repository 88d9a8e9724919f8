package client

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"

	"github.com/parleychat/parley/internal/content"
	"github.com/parleychat/parley/internal/identity"
)

// backupPayload is what a PIN backup holds: the plaintext that
// pinbackup.SealBlob seals under the backup key. It is the account, not
// this device: a restored device makes its own device keys.
type backupPayload struct {
	Handle       string
	AccountSeed  []byte // the account identity key's 32-byte seed
	ReadReceipts bool
	Contacts     []content.Contact
}

// Backup payload encoding (docs/PROTOCOL-pin.md §10.4):
//
//	payload = u8 format (1) || u8-len handle || account seed (32) || u8 flags
//	          || u16 count || count × contact
//	contact = u8-len handle || u8 state (1 accepted, 2 blocked, 3 rejected)
//	          || u8 verified (0 or 1) || u8-len identity key (0 or 32 bytes)
//
// flags: bit 0 = read receipts on; the other bits are 0.
const (
	backupFormat      = 1
	backupFlagReceipt = 1
	maxBackupContacts = 10000
)

var errBackupPayload = errors.New("client: malformed backup payload")

func (p *backupPayload) marshal() ([]byte, error) {
	if !identity.ValidHandle(p.Handle) || len(p.AccountSeed) != 32 || len(p.Contacts) > maxBackupContacts {
		return nil, errBackupPayload
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddUint8(backupFormat)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(p.Handle)) })
	b.AddBytes(p.AccountSeed)
	var flags uint8
	if p.ReadReceipts {
		flags |= backupFlagReceipt
	}
	b.AddUint8(flags)
	b.AddUint16(uint16(len(p.Contacts)))
	for _, c := range p.Contacts {
		if !identity.ValidHandle(c.Handle) || c.State < content.ContactAccepted || c.State > content.ContactRejected ||
			(len(c.IdentityKey) != 0 && len(c.IdentityKey) != 32) {
			return nil, fmt.Errorf("%w: contact %q", errBackupPayload, c.Handle)
		}
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(c.Handle)) })
		b.AddUint8(uint8(c.State))
		var v uint8
		if c.Verified {
			v = 1
		}
		b.AddUint8(v)
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(c.IdentityKey) })
	}
	return b.Bytes()
}

// parseBackupPayload decodes marshal's output strictly: anything that
// parses re-encodes to the same bytes.
func parseBackupPayload(in []byte) (*backupPayload, error) {
	s := cryptobyte.String(in)
	var format, flags uint8
	var handle, seed cryptobyte.String
	var count uint16
	if !s.ReadUint8(&format) || format != backupFormat ||
		!s.ReadUint8LengthPrefixed(&handle) || !identity.ValidHandle(string(handle)) ||
		!s.ReadBytes((*[]byte)(&seed), 32) || !s.ReadUint8(&flags) || flags&^backupFlagReceipt != 0 ||
		!s.ReadUint16(&count) || count > maxBackupContacts {
		return nil, errBackupPayload
	}
	p := &backupPayload{Handle: string(handle), AccountSeed: append([]byte(nil), seed...), ReadReceipts: flags&backupFlagReceipt != 0}
	for range count {
		var h, key cryptobyte.String
		var state, verified uint8
		if !s.ReadUint8LengthPrefixed(&h) || !identity.ValidHandle(string(h)) ||
			!s.ReadUint8(&state) || state < uint8(content.ContactAccepted) || state > uint8(content.ContactRejected) ||
			!s.ReadUint8(&verified) || verified > 1 ||
			!s.ReadUint8LengthPrefixed(&key) || (len(key) != 0 && len(key) != 32) {
			return nil, errBackupPayload
		}
		c := content.Contact{Handle: string(h), State: content.ContactState(state), Verified: verified == 1}
		if len(key) > 0 {
			c.IdentityKey = append([]byte(nil), key...)
		}
		p.Contacts = append(p.Contacts, c)
	}
	if !s.Empty() {
		return nil, errBackupPayload
	}
	return p, nil
}
