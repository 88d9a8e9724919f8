package identity

import (
	"crypto/sha256"

	"golang.org/x/crypto/cryptobyte"
)

const recoveryLabel = "parley-recover-device-v1"

// RecoveryMessage is what the account identity key signs to answer a
// server challenge when a device recovered by PIN (it has the account key
// and no device credentials yet) reads the account's device list, or
// installs a new one that adds itself (docs/PROTOCOL-pin.md §10):
//
//	"parley-recover-device-v1" || u8-len handle || u16-len challenge || SHA-256(device list)
//
// deviceList is the signed list being installed, or empty to read the
// current one. RecoveryMessage returns nil if the handle is longer than
// 255 bytes or the challenge longer than 65535 bytes.
func RecoveryMessage(handle string, challenge, deviceList []byte) []byte {
	h := sha256.Sum256(deviceList)
	b := cryptobyte.NewBuilder(make([]byte, 0, len(recoveryLabel)+1+len(handle)+2+len(challenge)+len(h)))
	b.AddBytes([]byte(recoveryLabel))
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(handle)) })
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(challenge) })
	b.AddBytes(h[:])
	out, err := b.Bytes()
	if err != nil {
		return nil
	}
	return out
}

const deleteLabel = "parley-delete-account-v1"

// DeleteAccountMessage is what the account identity key signs to delete
// the account (DELETE /v1/accounts/{handle}):
//
//	"parley-delete-account-v1" || u8-len handle
//
// It binds no challenge: the signature verifies only against the key of
// the account it was made for, which is gone once it was used, and an
// account registered later under the handle has a key of its own. It
// returns nil for a handle longer than 255 bytes.
func DeleteAccountMessage(handle string) []byte {
	if len(handle) > 0xff {
		return nil
	}
	return append(append([]byte(deleteLabel), byte(len(handle))), handle...)
}
