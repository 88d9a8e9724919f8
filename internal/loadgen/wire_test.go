package loadgen

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/parleychat/parley/internal/api"
)

// serverFrames are frames as parleyd writes them (json.Marshal of
// api.Frame).
func serverFrames(t testing.TB) [][]byte {
	var out [][]byte
	for _, f := range []api.Frame{
		{Type: api.FrameEnvelope, Envelope: &api.Envelope{Seq: 42, MessageID: "00112233445566778899aabbccddeeff",
			Sender: "ld01_3", SenderDevice: 7, Ciphertext: []byte("0123456789abcdefghijklmnopqrstuvwxyz"), ServerTime: 1700000000000}},
		{Type: api.FrameDrained},
		{Type: api.FrameSent, ID: 18446744073709551615, Sent: &api.SendResponse{MessageID: "00112233445566778899aabbccddeeff", ServerTime: 5}},
		{Type: api.FrameError, ID: 3, Error: &api.Error{Code: api.CodeDeviceMismatch, Message: "no",
			Mismatch: []api.DeviceMismatch{{Handle: "a", Current: []uint32{1, 2}, Missing: []uint32{2}}}}},
		{Type: "device_list", Handle: "ld01_4"},
	} {
		b, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func TestDecodeFrame(t *testing.T) {
	var r frameReader
	var sc frameScanner
	frames := serverFrames(t)
	for i, b := range frames {
		var want frameIn
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		got, err := r.decode(b)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !sameFrame(got, &want) {
			t.Fatalf("frame %d: got %+v, want %+v", i, got, want)
		}
		// Every frame the hot path sees takes the fast way; error answers
		// go through encoding/json.
		var f frameIn
		var env envelopeIn
		if fast := sc.scan(b, &f, &env); fast != (want.Type != api.FrameError) {
			t.Errorf("frame %d (%s): fast path %v", i, want.Type, fast)
		}
	}
	if got, _ := r.decode(frames[3]); got.Error == nil || got.Error.Code != api.CodeDeviceMismatch || got.ID != 3 {
		t.Fatalf("error frame: %+v", got)
	}
	for _, bad := range []string{``, `{`, `{"type":"envelope","envelope":{"ciphertext":"!!"}}`, `[]`, `{"id":-1}`, `{"type":1}`} {
		if _, err := r.decode([]byte(bad)); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
}

// TestDecodeFrameAllocs checks that reading an envelope frame allocates
// only its message id.
func TestDecodeFrameAllocs(t *testing.T) {
	var r frameReader
	b := serverFrames(t)[0]
	if n := testing.AllocsPerRun(100, func() {
		if _, err := r.decode(b); err != nil {
			t.Fatal(err)
		}
	}); n > 1 {
		t.Fatalf("%v allocations per envelope frame", n)
	}
}

func sameFrame(a, b *frameIn) bool {
	if a.Type != b.Type || a.ID != b.ID || !reflect.DeepEqual(a.Error, b.Error) || (a.Envelope == nil) != (b.Envelope == nil) {
		return false
	}
	if a.Envelope == nil {
		return true
	}
	x, y := a.Envelope, b.Envelope
	return x.Seq == y.Seq && x.MessageID == y.MessageID && bytes.Equal(x.Ciphertext, y.Ciphertext)
}

// FuzzDecodeFrame checks the fast frame reader against encoding/json:
// whatever it accepts, json.Unmarshal accepts too, with the same values;
// and decode never fails where json.Unmarshal succeeds.
func FuzzDecodeFrame(f *testing.F) {
	for _, b := range serverFrames(f) {
		f.Add(b)
	}
	f.Add([]byte(` { "TYPE" : "x" , "id" : 1e3 } `))
	f.Add([]byte(`{"envelope":{"seq":-0,"x":[1,{"a":null},true,false,-1.5e+3]},"type":"envelope"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var sc frameScanner
		var fast frameIn
		env := envelopeIn{}
		ok := sc.scan(data, &fast, &env)
		var want frameIn
		jerr := json.Unmarshal(data, &want)
		if ok {
			if jerr != nil {
				t.Fatalf("fast reader accepted %q, encoding/json: %v", data, jerr)
			}
			if !sameFrame(&fast, &want) {
				t.Fatalf("%q: fast %+v, encoding/json %+v", data, fast, want)
			}
		}
		var r frameReader
		got, err := r.decode(data)
		if (err == nil) != (jerr == nil) {
			t.Fatalf("%q: decode error %v, encoding/json %v", data, err, jerr)
		}
		if err == nil && !sameFrame(got, &want) {
			t.Fatalf("%q: decode %+v, encoding/json %+v", data, got, want)
		}
	})
}

// TestAppendFrames checks the hand-written encoders against
// encoding/json's reading of them.
func TestAppendFrames(t *testing.T) {
	envs := []outEnvelope{{"ld01_2", 1}, {"ld01_2", 4294967295}, {`we"ird\`, 3}}
	ct := []byte("some ciphertext \x00\xff")
	b := appendSendFrame([]byte("junk"), 77, "00112233445566778899aabbccddeeff", "ld01_2", envs, ct)[4:]
	var f api.Frame
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	want := api.Frame{Type: api.FrameSend, ID: 77, Send: &api.SendRequest{
		MessageID: "00112233445566778899aabbccddeeff", To: "ld01_2",
		Envelopes: []api.OutgoingEnvelope{
			{Handle: "ld01_2", DeviceID: 1, Ciphertext: ct},
			{Handle: "ld01_2", DeviceID: 4294967295, Ciphertext: ct},
			{Handle: `we"ird\`, DeviceID: 3, Ciphertext: ct},
		}}}
	if !reflect.DeepEqual(f, want) {
		t.Fatalf("send frame %s decodes to %+v", b, f)
	}
	if s := appendString(nil, "a\n\x01\"\\b"); string(s) != `"a\u000a\u0001\"\\b"` {
		t.Fatalf("appendString: %s", s)
	}

	for _, seqs := range [][]int64{{1}, {1, -2, 9223372036854775807}} {
		b := appendAckFrame(nil, seqs)
		var f api.Frame
		if err := json.Unmarshal(b, &f); err != nil || f.Type != api.FrameAck || !reflect.DeepEqual(f.Seqs, seqs) {
			t.Fatalf("ack frame %s: %+v, %v", b, f, err)
		}
	}
}
