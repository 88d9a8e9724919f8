package call

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"strings"
)

// sdpFingerprints returns the a=fingerprint attributes of an SDP (session
// and media level) as (hash function, value) pairs (RFC 8122 §5).
func sdpFingerprints(sdp string) [][2]string {
	var out [][2]string
	for line := range strings.SplitSeq(sdp, "\n") {
		line = strings.TrimRight(line, "\r")
		v, ok := strings.CutPrefix(line, "a=fingerprint:")
		if !ok {
			continue
		}
		algo, value, ok := strings.Cut(strings.TrimSpace(v), " ")
		if !ok {
			continue
		}
		out = append(out, [2]string{strings.ToLower(algo), strings.TrimSpace(value)})
	}
	return out
}

// certFingerprint is the RFC 8122 fingerprint of a DER certificate:
// upper-case hex bytes joined by colons.
func certFingerprint(algo string, der []byte) (string, bool) {
	var h hash.Hash
	switch algo {
	case "sha-1":
		h = sha1.New()
	case "sha-256":
		h = sha256.New()
	case "sha-384":
		h = sha512.New384()
	case "sha-512":
		h = sha512.New()
	default:
		return "", false
	}
	h.Write(der)
	sum := h.Sum(nil)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":"), true
}

// checkFingerprint checks that the certificate the peer presented in the
// DTLS handshake (der) matches a SHA-256 or stronger fingerprint of the
// description the peer sent end-to-end encrypted (RFC 8827 §6.5). SHA-1
// fingerprints alone are not enough.
func checkFingerprint(sdp string, der []byte) error {
	if len(der) == 0 {
		return fmt.Errorf("%w (no certificate)", ErrFingerprint)
	}
	fps := sdpFingerprints(sdp)
	for _, fp := range fps {
		if fp[0] == "sha-1" {
			continue
		}
		if got, ok := certFingerprint(fp[0], der); ok && strings.EqualFold(got, fp[1]) {
			return nil
		}
	}
	if len(fps) == 0 {
		return fmt.Errorf("%w (the description has no fingerprint)", ErrFingerprint)
	}
	return ErrFingerprint
}
