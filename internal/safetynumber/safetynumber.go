// Package safetynumber computes safety numbers between two accounts, after
// Signal's numeric fingerprint: 60 digits that both sides compute alike,
// and a QR payload that one side scans to compare without reading digits.
package safetynumber

import (
	"crypto/ed25519"
	"errors"
)

// ErrMismatch is returned by VerifyQR when the scanned code differs.
var ErrMismatch = errors.New("safetynumber: the scanned code does not match")

// Compute returns the 60-digit safety number (no spaces) and the QR payload
// for local and remote. Compute(a, b) and Compute(b, a) give the same number.
func Compute(localHandle string, localKey ed25519.PublicKey, remoteHandle string, remoteKey ed25519.PublicKey) (number string, qr []byte) {
	panic("unimplemented")
}

// VerifyQR checks a payload scanned from the remote side's screen.
func VerifyQR(scanned []byte, localHandle string, localKey ed25519.PublicKey, remoteHandle string, remoteKey ed25519.PublicKey) error {
	panic("unimplemented")
}
