package loadgen

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
)

// The load tool sends opaque random bytes as "ciphertext": parleyd never
// reads ciphertext, so the run measures the server's path (HTTP, commit,
// fan-out, WebSocket delivery, acknowledgement) and not client crypto.
// Each payload starts with a header the receiver reads back:
//
//	run id (8) || send time (8, ns since the run's epoch, big endian) ||
//	sender index (4) || sequence number (4) || random bytes
//
// The send time comes from the monotonic clock of the one process that both
// sends and receives, so end-to-end latency needs no clock sync.
const (
	payloadHeaderSize = 24
	// MinSize is the smallest --size: the payload header.
	MinSize = payloadHeaderSize
	// MaxSize bounds --size. parleyd's own limit on a send body may be
	// lower; the run then reports payload_too_large errors.
	MaxSize = 1 << 20
)

// errNotOurs is returned for a payload that another run (or nothing) made.
var errNotOurs = errors.New("loadgen: payload is not from this run")

// payloadHeader is the part of a payload the receiver reads back.
type payloadHeader struct {
	Run    uint64
	SentNS int64
	Sender uint32
	Seq    uint32
}

// appendHeader writes h at the start of buf, which must hold at least
// payloadHeaderSize bytes.
func (h payloadHeader) put(buf []byte) {
	binary.BigEndian.PutUint64(buf[0:8], h.Run)
	binary.BigEndian.PutUint64(buf[8:16], uint64(h.SentNS))
	binary.BigEndian.PutUint32(buf[16:20], h.Sender)
	binary.BigEndian.PutUint32(buf[20:24], h.Seq)
}

// parseHeader reads a payload header from b.
func parseHeader(b []byte) (payloadHeader, error) {
	if len(b) < payloadHeaderSize {
		return payloadHeader{}, fmt.Errorf("loadgen: payload of %d bytes is shorter than its %d-byte header", len(b), payloadHeaderSize)
	}
	return payloadHeader{
		Run:    binary.BigEndian.Uint64(b[0:8]),
		SentNS: int64(binary.BigEndian.Uint64(b[8:16])),
		Sender: binary.BigEndian.Uint32(b[16:20]),
		Seq:    binary.BigEndian.Uint32(b[20:24]),
	}, nil
}

// fillPayload fills buf with h and random bytes from rng.
func fillPayload(buf []byte, h payloadHeader, rng *rand.ChaCha8) {
	_, _ = rng.Read(buf[payloadHeaderSize:]) // ChaCha8.Read never fails
	h.put(buf)
}

// messageID derives the wire message id (32 lower-case hex digits) of a
// send: run (low 4 bytes) || sender || sequence, unique within the run.
func messageID(run uint64, sender, seq uint32) (msgID, string) {
	var id msgID
	binary.BigEndian.PutUint32(id[0:4], uint32(run))
	binary.BigEndian.PutUint32(id[4:8], sender)
	binary.BigEndian.PutUint64(id[8:16], uint64(seq))
	return id, hex.EncodeToString(id[:])
}

// parseMessageID decodes a message id of 32 lower-case hex digits.
func parseMessageID(s string) (msgID, bool) {
	var id msgID
	if len(s) != 2*len(id) {
		return id, false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return id, false // the API's ids are lower-case hex
		}
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, false
	}
	return id, true
}
