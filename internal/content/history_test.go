package content

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func historySample() []HistoryMessage {
	return []HistoryMessage{
		{ID: [16]byte{1}, Peer: "bob", Sender: "alice", Device: 7, SentAt: 1700000000123, ReceivedAt: 1700000000123,
			Outgoing: true, Status: 3, Kind: KindText, Text: "hello, bob"},
		{ID: [16]byte{2}, Peer: "bob", Sender: "bob", Device: 0xfffffffe, SentAt: 1700000001000, ReceivedAt: 1700000002000,
			Kind: KindText, Timer: 3600, ExpiresAt: 1700003602000, Text: strings.Repeat("é", 300)},
		{ID: [16]byte{3}, Peer: "stranger", Sender: "stranger", Device: 1, Request: true, Kind: KindText, Text: ""},
		{ID: [16]byte{4}, Peer: "bob", Sender: "alice", Device: 7, Outgoing: true, Kind: KindTimer, Timer: 30},
	}
}

func TestHistoryRoundTrip(t *testing.T) {
	for _, ms := range [][]HistoryMessage{historySample(), {}} {
		b, err := MarshalHistory(ms)
		if err != nil {
			t.Fatal(err)
		}
		got, err := UnmarshalHistory(b)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 0 && len(got) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, ms) {
			t.Fatalf("got %+v\nwant %+v", got, ms)
		}
	}
}

func TestHistoryRejects(t *testing.T) {
	for name, m := range map[string]HistoryMessage{
		"no-peer":    {Sender: "a", Kind: KindText},
		"no-sender":  {Peer: "a", Kind: KindText},
		"kind-call":  {Peer: "a", Sender: "a", Kind: KindCall},
		"negative":   {Peer: "a", Sender: "a", Kind: KindText, SentAt: -1},
		"long-text":  {Peer: "a", Sender: "a", Kind: KindText, Text: strings.Repeat("x", maxHistoryText+1)},
		"long-peer":  {Peer: strings.Repeat("a", 256), Sender: "a", Kind: KindText},
		"kind-zero":  {Peer: "a", Sender: "a"},
		"kind-typin": {Peer: "a", Sender: "a", Kind: KindTyping},
	} {
		if _, err := MarshalHistory([]HistoryMessage{m}); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: MarshalHistory = %v", name, err)
		}
	}
	good, _ := MarshalHistory(historySample())
	for name, bad := range map[string][]byte{
		"empty":      nil,
		"format":     append([]byte{2}, good[1:]...),
		"count-high": append([]byte{1, 0, 0, 0, 5}, good[5:]...),
		"count-huge": append([]byte{1, 0xff, 0xff, 0xff, 0xff}, good[5:]...),
		"truncated":  good[:len(good)-1],
		"trailing":   append(bytes.Clone(good), 0),
	} {
		if _, err := UnmarshalHistory(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: UnmarshalHistory = %v", name, err)
		}
	}
}

// FuzzUnmarshalHistory: what decodes encodes to the same bytes.
func FuzzUnmarshalHistory(f *testing.F) {
	good, _ := MarshalHistory(historySample())
	empty, _ := MarshalHistory(nil)
	for _, b := range [][]byte{good, empty, good[:40], {1, 0, 0, 0, 1}} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := UnmarshalHistory(b)
		if err != nil {
			return
		}
		again, err := MarshalHistory(ms)
		if err != nil {
			t.Fatalf("decoded history does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("round trip changed the bytes:\n%x\n%x", b, again)
		}
	})
}
