package server

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/store"
)

// Frames as clients write them (json.Marshal), and near misses that the
// fast path must leave to encoding/json.
var clientFrameSeeds = []string{
	`{"type":"ack","seqs":[1,2,3]}`,
	`{"type":"ack","seqs":[]}`,
	`{"type":"ack","seqs":[0]}`,
	`{"seqs":[9,8],"type":"ack"}`,
	`{"type":"ack","seqs":[999999999999999999]}`,
	`{"type":"ack","seqs":[9223372036854775807]}`,
	`{"type":"ack","seqs":[9223372036854775808]}`,
	`{"type":"ack","seqs":[-1]}`,
	`{"type":"ack","seqs":[1.0]}`,
	`{"type":"ack","seqs":[1e2]}`,
	`{"type":"ack","seqs":[01]}`,
	`{"type":"ack","seqs":null}`,
	`{"type":"ack","seqs":[1],"seqs":[2]}`,
	`{"type":"ack","Seqs":[1],"seqs":[2]}`,
	`{"type":"ack","SEQS":[1]}`,
	`{"type":"ack", "seqs":[1]}`,
	` {"type":"ack","seqs":[1]}`,
	`{"type":"ack","seqs":[1]} `,
	`{"type":"ack","seqs":[1]}x`,
	`{"type":"\u0061ck","seqs":[1]}`,
	`{"type":"ack","seqs":[1],"id":3}`,
	`{"type":"ack","seqs":[1],"handle":"x"}`,
	`{"type":"send","id":7,"send":{"message_id":"00112233445566778899aabbccddeeff","to":"bob","envelopes":[{"handle":"bob","device_id":1,"ciphertext":"aGk="}]}}`,
	`{"type":"send","id":7,"send":{"message_id":"00112233445566778899aabbccddeeff","to":"bob","envelopes":[{"handle":"bob","device_id":1,"ciphertext":"aGk="},{"handle":"bob","device_id":2,"ciphertext":"aGkh"},{"handle":"alice","device_id":4294967295,"ciphertext":""}],"expires_at":1700000000000}}`,
	`{"type":"send","id":7,"send":{"message_id":"m","to":"bob","envelopes":[{"handle":"bob","device_id":4294967296,"ciphertext":"aGk="}]}}`,
	`{"type":"send","id":7,"send":{"message_id":"m","to":"bob","envelopes":[{"handle":"bob","device_id":1,"ciphertext":"aGk"}]}}`,
	`{"type":"send","id":7,"send":{"message_id":"m","to":"bob","envelopes":[{"handle":"bob","device_id":1,"ciphertext":"aGl="}]}}`,
	`{"type":"send","id":7,"send":{"message_id":"m","to":"bob","envelopes":[{"handle":"bob","device_id":1,"ciphertext":"a\nGk="}]}}`,
	`{"type":"send","id":7,"send":{"message_id":"m","to":"bob","envelopes":[{"handle":"bob","device_id":1,"ciphertext":null}]}}`,
	`{"type":"send","id":7,"send":{"message_id":"m","to":"bob","envelopes":[{}]}}`,
	`{"type":"send","id":7,"send":{"message_id":"m","to":"bob","envelopes":[]}}`,
	`{"type":"send","id":7,"send":{"message_id":"m","to":"b\u00f6b","envelopes":[]}}`,
	`{"type":"send","id":7,"send":{"message_id":"m","to":"böb","envelopes":[]}}`,
	`{"type":"send","id":7,"send":{"to":"bob","to":"carol"}}`,
	`{"type":"send","id":18446744073709551615,"send":{}}`,
	`{"type":"send","id":18446744073709551616,"send":{}}`,
	`{"type":"send","id":1}`,
	`{"type":"send","id":0,"send":{}}`,
	`{"type":"send","id":1,"send":null}`,
	`{"type":"send","id":1,"send":{"expires_at":-5}}`,
	`{"type":"send","id":1,"send":{"extra":1}}`,
	`{"type":"later","x":1}`,
	`{"type":`,
	`{}`,
	`[]`,
	`null`,
	``,
}

// TestParseFrameFast: every frame the fast path decodes, encoding/json
// decodes to the same api.Frame; the frames clients write take the fast
// path.
func TestParseFrameFast(t *testing.T) {
	for _, s := range clientFrameSeeds {
		checkFastParse(t, []byte(s))
	}
	for _, s := range []string{
		`{"type":"ack","seqs":[1,2,3]}`,
		`{"type":"send","id":7,"send":{"message_id":"00112233445566778899aabbccddeeff","to":"bob","envelopes":[{"handle":"bob","device_id":1,"ciphertext":"aGk="}]}}`,
	} {
		if _, ok := parseFrameFast([]byte(s)); !ok {
			t.Errorf("%s: not on the fast path", s)
		}
	}
	// What json.Marshal writes for a send, the common case.
	f := api.Frame{Type: api.FrameSend, ID: 42, Send: &api.SendRequest{
		MessageID: "00112233445566778899aabbccddeeff", To: "bob", ExpiresAt: 5,
		Envelopes: []api.OutgoingEnvelope{
			{Handle: "bob", DeviceID: 1, Ciphertext: bytes.Repeat([]byte{0xfe}, 301)},
			{Handle: "bob", DeviceID: 2, Ciphertext: []byte{1}},
			{Handle: "alice", DeviceID: 3, Ciphertext: []byte{1, 2}},
		}}}
	b, _ := json.Marshal(f)
	got, ok := parseFrameFast(b)
	if !ok || !reflect.DeepEqual(got, f) {
		t.Errorf("%s: fast path gives %+v, %v", b, got, ok)
	}
	checkFastParse(t, b)
}

// checkFastParse fails if the fast path accepts data and encoding/json
// does not, or decodes it differently.
func checkFastParse(t *testing.T, data []byte) {
	t.Helper()
	fast, ok := parseFrameFast(data)
	if !ok {
		return
	}
	var std api.Frame
	if err := json.Unmarshal(data, &std); err != nil {
		t.Fatalf("%q: fast path accepts it, encoding/json says %v", data, err)
	}
	if !reflect.DeepEqual(fast, std) {
		t.Fatalf("%q: fast path gives\n%#v\nencoding/json\n%#v", data, fast, std)
	}
	if fast.Send != nil {
		if !reflect.DeepEqual(fast.Send, std.Send) {
			t.Fatalf("%q: sends differ", data)
		}
	}
}

// Server frames to compare with json.Marshal.
func envelopeSeeds() []store.Envelope {
	at := time.UnixMilli(1_700_000_000_123)
	return []store.Envelope{
		{Seq: 1, MessageID: "00112233445566778899aabbccddeeff", Sender: "alice", SenderDevice: 1, Ciphertext: []byte("hello"), ServerTime: at},
		{Seq: 1 << 62, MessageID: "m", Sender: "a<b>&\"c\\", SenderDevice: 1<<32 - 1, Ciphertext: []byte{}, ServerTime: at},
		{Seq: -3, MessageID: "\u2028\x00\xff", Sender: "böb", SenderDevice: 7, ServerTime: time.Unix(-5, 0)},
		{Seq: 2, MessageID: "n", Sender: "realm", SenderDevice: noticeDevice, Ciphertext: []byte(`{"kind":"x"}`), ServerTime: at},
		{Seq: 3, MessageID: "n", Sender: "realm", SenderDevice: noticeDevice, Ciphertext: []byte(`not a notice`), ServerTime: at},
	}
}

func answerSeeds() []api.Frame {
	return []api.Frame{
		{Type: api.FrameSent, ID: 1, Sent: &api.SendResponse{MessageID: "00112233445566778899aabbccddeeff", ServerTime: 1700000000000}},
		{Type: api.FrameSent, ID: 1<<64 - 1, Sent: &api.SendResponse{MessageID: "x", ServerTime: -1, Duplicate: true}},
		{Type: api.FrameSent},
		{Type: api.FrameError, ID: 9, Error: &api.Error{Code: api.CodeBadRequest, Message: "A send frame needs a send: the body of POST /v1/messages."}},
		{Type: api.FrameError, ID: 9, Error: &api.Error{Code: api.CodeDeviceMismatch, Message: "<&>", Mismatch: []api.DeviceMismatch{
			{Handle: "bob", Current: []uint32{1, 2}, Missing: []uint32{2}},
			{Handle: "alice", Extra: []uint32{9, 1<<32 - 1}},
			{Handle: "carol", Current: []uint32{}, Missing: []uint32{}, Extra: []uint32{}},
		}}},
		{Type: api.FrameDrained},
		{Type: FrameDeviceList, Handle: "bob"},
		{Type: api.FrameSent, Handle: "odd", Sent: &api.SendResponse{}},
	}
}

func TestAppendFrames(t *testing.T) {
	for _, e := range envelopeSeeds() {
		checkAppendDelivery(t, e)
	}
	for _, f := range answerSeeds() {
		checkAppendFrame(t, f)
	}
}

func checkAppendDelivery(t *testing.T, e store.Envelope) {
	t.Helper()
	want, err := json.Marshal(deliveryFrame(e))
	if err != nil {
		t.Fatal(err)
	}
	got, err := appendDeliveryFrame([]byte("prefix"), e)
	if err != nil || !bytes.Equal(got, append([]byte("prefix"), want...)) {
		t.Fatalf("%+v: appendDeliveryFrame gives\n%s, %v\njson.Marshal\n%s", e, got, err, want)
	}
}

func checkAppendFrame(t *testing.T, f api.Frame) {
	t.Helper()
	want, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	got, err := appendFrame(nil, f)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%+v: appendFrame gives\n%s, %v\njson.Marshal\n%s", f, got, err, want)
	}
}

// The encode and decode paths, by hand and through encoding/json (the
// baseline), on frames of parley-load's shape: 200-byte ciphertexts, a
// send of three envelopes.
func benchEnvelope() store.Envelope {
	return store.Envelope{Seq: 123456, MessageID: "00112233445566778899aabbccddeeff", Sender: "loadtest-000123",
		SenderDevice: 2, Ciphertext: bytes.Repeat([]byte{0xa5}, 200+64), ServerTime: time.UnixMilli(1_700_000_000_123)}
}

func benchSendFrame() []byte {
	ct := bytes.Repeat([]byte{0x5a}, 200+64)
	b, _ := json.Marshal(api.Frame{Type: api.FrameSend, ID: 981, Send: &api.SendRequest{
		MessageID: "00112233445566778899aabbccddeeff", To: "loadtest-000124",
		Envelopes: []api.OutgoingEnvelope{
			{Handle: "loadtest-000124", DeviceID: 1, Ciphertext: ct},
			{Handle: "loadtest-000124", DeviceID: 2, Ciphertext: ct},
			{Handle: "loadtest-000123", DeviceID: 2, Ciphertext: ct},
		}}})
	return b
}

func BenchmarkEncodeEnvelope(b *testing.B) {
	e := benchEnvelope()
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(deliveryFrame(e)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf, _ = appendDeliveryFrame(buf[:0], e)
		}
	})
}

func BenchmarkEncodeSent(b *testing.B) {
	f := api.Frame{Type: api.FrameSent, ID: 981, Sent: &api.SendResponse{MessageID: "00112233445566778899aabbccddeeff", ServerTime: 1_700_000_000_123}}
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(f); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf, _ = appendFrame(buf[:0], f)
		}
	})
}

func BenchmarkDecodeFrame(b *testing.B) {
	for _, c := range []struct {
		name string
		data []byte
	}{
		{"ack", []byte(`{"type":"ack","seqs":[123456]}`)},
		{"send", benchSendFrame()},
	} {
		b.Run(c.name+"/json", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var f api.Frame
				if err := json.Unmarshal(c.data, &f); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/fast", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := parseFrameFast(c.data); !ok {
					b.Fatal("not on the fast path")
				}
			}
		})
	}
}

// TestAppendJSONString covers the strings json.Marshal escapes.
func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", "a\"b", `back\slash`, "<html>&", "\x00\x1f\x7f", "é", "\u2028\u2029", "\xff\xfe", strings.Repeat("x", 300)} {
		want, _ := json.Marshal(s)
		if got := appendJSONString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("%q: got %s, want %s", s, got, want)
		}
	}
}
