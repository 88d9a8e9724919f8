// Package safetynumber computes safety numbers between two accounts, after
// Signal's numeric fingerprint: 60 digits that both sides compute alike,
// and a QR payload that one side scans to compare without reading digits.
//
// Each side's fingerprint is 5200 iterations of SHA-512 over its account
// identity key and handle (docs/PROTOCOL-crypto.md has the bytes).
package safetynumber

import (
	"crypto/ed25519"
	"crypto/sha512"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
)

// ErrMismatch is returned by VerifyQR when the scanned code differs.
var ErrMismatch = errors.New("safetynumber: the scanned code does not match")

// Parameters.
const (
	Iterations  = 5200
	Digits      = 60
	qrPrefix    = "PSN1"
	qrHashSize  = 32
	QRSize      = len(qrPrefix) + 2*qrHashSize
	version0    = 0x00
	version1    = 0x00
	digitChunks = 6
)

// fingerprint is one side's iterated hash: h0 = SHA-512(0x00 0x00 || key
// || handle), h(i+1) = SHA-512(h(i) || key), 5200 hashes in all.
func fingerprint(handle string, key ed25519.PublicKey) [sha512.Size]byte {
	buf := make([]byte, 0, sha512.Size+len(key)+len(handle)+2)
	buf = append(buf, version0, version1)
	buf = append(buf, key...)
	buf = append(buf, handle...)
	h := sha512.Sum512(buf)
	for i := 1; i < Iterations; i++ {
		buf = append(append(buf[:0], h[:]...), key...)
		h = sha512.Sum512(buf)
	}
	return h
}

// digits turns the first 30 bytes of a fingerprint into 30 digits: six
// 5-byte big-endian chunks, each mod 100000, zero-padded to 5 digits.
func digits(h *[sha512.Size]byte) string {
	var sb strings.Builder
	for c := range digitChunks {
		var v uint64
		for _, b := range h[c*5 : c*5+5] {
			v = v<<8 | uint64(b)
		}
		fmt.Fprintf(&sb, "%05d", v%100000)
	}
	return sb.String()
}

// Compute returns the 60-digit safety number (no spaces) and the QR payload
// for local and remote. Compute(a, b) and Compute(b, a) give the same number.
func Compute(localHandle string, localKey ed25519.PublicKey, remoteHandle string, remoteKey ed25519.PublicKey) (number string, qr []byte) {
	local, remote := fingerprint(localHandle, localKey), fingerprint(remoteHandle, remoteKey)
	ld, rd := digits(&local), digits(&remote)
	if ld <= rd {
		number = ld + rd
	} else {
		number = rd + ld
	}
	return number, qrPayload(&local, &remote)
}

// qrPayload is "PSN1" || local[:32] || remote[:32].
func qrPayload(local, remote *[sha512.Size]byte) []byte {
	qr := make([]byte, 0, QRSize)
	qr = append(qr, qrPrefix...)
	qr = append(qr, local[:qrHashSize]...)
	return append(qr, remote[:qrHashSize]...)
}

// VerifyQR checks a payload scanned from the remote side's screen.
func VerifyQR(scanned []byte, localHandle string, localKey ed25519.PublicKey, remoteHandle string, remoteKey ed25519.PublicKey) error {
	if len(scanned) != QRSize || string(scanned[:len(qrPrefix)]) != qrPrefix {
		return fmt.Errorf("%w: not a Parley safety number code", ErrMismatch)
	}
	local, remote := fingerprint(localHandle, localKey), fingerprint(remoteHandle, remoteKey)
	// The scanned code is the remote side's: its local is our remote.
	want := make([]byte, 0, 2*qrHashSize)
	want = append(want, remote[:qrHashSize]...)
	want = append(want, local[:qrHashSize]...)
	if subtle.ConstantTimeCompare(scanned[len(qrPrefix):], want) != 1 {
		return ErrMismatch
	}
	return nil
}
