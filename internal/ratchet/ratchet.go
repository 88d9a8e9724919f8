// Package ratchet implements the Double Ratchet (Signal specification,
// revision 4) with X25519, HKDF-SHA256, HMAC-SHA256 chain keys and
// ChaCha20-Poly1305, with bounded skipped message keys.
package ratchet
