package server

import (
	"testing"
	"time"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/store"
)

// FuzzParseFrameFast compares the fast path with encoding/json on
// arbitrary input: whatever the fast path accepts, encoding/json accepts
// and decodes to the same api.Frame.
func FuzzParseFrameFast(f *testing.F) {
	for _, s := range clientFrameSeeds {
		f.Add([]byte(s))
	}
	f.Add(benchSendFrame())
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFastParse(t, data)
	})
}

// FuzzAppendFrames compares the hand-written encodings of the server's
// envelope, sent and error frames with json.Marshal's.
func FuzzAppendFrames(f *testing.F) {
	for _, e := range envelopeSeeds() {
		f.Add(e.Seq, e.MessageID, e.Sender, e.SenderDevice, e.Ciphertext, e.Ciphertext == nil, e.ServerTime.UnixMilli(), uint64(e.Seq), false)
	}
	f.Add(int64(0), "", "", uint32(0), []byte(nil), true, int64(0), uint64(0), true)
	f.Add(int64(-1), "<a&b>", "\u2028", uint32(5), []byte{0, 1, 2, 3}, false, int64(-1), uint64(1<<63), true)
	f.Fuzz(func(t *testing.T, seq int64, s1, s2 string, dev uint32, ct []byte, nilCT bool, ms int64, id uint64, dup bool) {
		if nilCT {
			ct = nil
		}
		checkAppendDelivery(t, store.Envelope{Seq: seq, MessageID: s1, Sender: s2, SenderDevice: dev, Ciphertext: ct, ServerTime: time.UnixMilli(ms)})
		checkAppendFrame(t, api.Frame{Type: api.FrameSent, ID: id, Sent: &api.SendResponse{MessageID: s1, ServerTime: ms, Duplicate: dup}})
		var mm []api.DeviceMismatch
		if dup {
			cur := []uint32{dev, uint32(seq)}
			if nilCT {
				cur = nil
			}
			mm = []api.DeviceMismatch{{Handle: s2, Current: cur, Missing: []uint32{dev}[:len(ct)%2]}, {Handle: s1, Extra: []uint32{uint32(id)}}}
		}
		checkAppendFrame(t, api.Frame{Type: api.FrameError, ID: id, Error: &api.Error{Code: s2, Message: s1, Mismatch: mm}})
	})
}
