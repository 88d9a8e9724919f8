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
