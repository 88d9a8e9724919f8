package server

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/internal/api"
)

// FuzzDecodeFrame decodes arbitrary client frames: a frame that decodes
// to an ack or a send decodes the same after re-encoding, and its encoding
// is then stable.
func FuzzDecodeFrame(f *testing.F) {
	for _, seed := range []string{
		`{"type":"ack","seqs":[1,2,3]}`,
		`{"type":"ack","seqs":[]}`,
		`{"type":"send","id":7,"send":{"message_id":"00112233445566778899aabbccddeeff","to":"bob","envelopes":[{"handle":"bob","device_id":1,"ciphertext":"aGk="}]}}`,
		`{"type":"send","id":1}`,
		`{"type":"send","id":0,"send":{}}`,
		`{"type":"later","x":1}`,
		`{"type":`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decodeFrame(websocket.MessageText, data)
		if err != nil {
			return
		}
		if got.send != nil && got.seqs != nil {
			t.Fatalf("one frame decoded to both a send and acks: %+v", got)
		}
		var re api.Frame
		switch {
		case got.send != nil:
			if got.send.ID == 0 {
				t.Fatal("a send without an id was accepted")
			}
			re = *got.send
		case got.seqs != nil:
			if len(got.seqs) > maxAckSeqs {
				t.Fatalf("%d seqs accepted, limit %d", len(got.seqs), maxAckSeqs)
			}
			re = api.Frame{Type: api.FrameAck, Seqs: got.seqs}
		default:
			return
		}
		enc, err := json.Marshal(re)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeFrame(websocket.MessageText, enc)
		if err != nil || !slices.Equal(again.seqs, got.seqs) || !reflect.DeepEqual(again.send, got.send) {
			t.Fatalf("re-encoded %s decodes to %+v, %v; want %+v", enc, again, err, got)
		}
		enc2, _ := json.Marshal(re)
		if string(enc2) != string(enc) {
			t.Fatalf("encoding not stable: %s then %s", enc, enc2)
		}
	})
}
