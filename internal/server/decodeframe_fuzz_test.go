package server

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/internal/api"
)

// FuzzDecodeFrame decodes arbitrary client frames: a frame that decodes
// to an ack decodes the same after re-encoding, and its encoding is then
// stable.
func FuzzDecodeFrame(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		seqs, err := decodeFrame(websocket.MessageText, data)
		if err != nil || seqs == nil {
			return
		}
		if len(seqs) > maxAckSeqs {
			t.Fatalf("%d seqs accepted, limit %d", len(seqs), maxAckSeqs)
		}
		enc, err := json.Marshal(api.Frame{Type: api.FrameAck, Seqs: seqs})
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeFrame(websocket.MessageText, enc)
		if err != nil || !slices.Equal(again, seqs) {
			t.Fatalf("re-encoded %s decodes to %v, %v; want %v", enc, again, err, seqs)
		}
		enc2, _ := json.Marshal(api.Frame{Type: api.FrameAck, Seqs: again})
		if string(enc2) != string(enc) {
			t.Fatalf("encoding not stable: %s then %s", enc, enc2)
		}
	})
}
