package loadgen

import (
	"bytes"
	"encoding/hex"
	"math/rand/v2"
	"testing"
)

func TestPayloadRoundTrip(t *testing.T) {
	buf := make([]byte, 100)
	h := payloadHeader{Run: 0x0102030405060708, SentNS: 123456789, Sender: 7, Seq: 99}
	fillPayload(buf, h, rand.NewChaCha8([32]byte{1}))
	got, err := parseHeader(buf)
	if err != nil || got != h {
		t.Fatalf("parseHeader = %+v, %v; want %+v", got, err, h)
	}
	if _, err := parseHeader(buf[:payloadHeaderSize-1]); err == nil {
		t.Fatal("short payload parsed")
	}
	id, s := messageID(h.Run, 7, 99)
	if len(s) != 32 {
		t.Fatalf("message id %q is not 32 hex digits", s)
	}
	back, ok := parseMessageID(s)
	if !ok || back != id {
		t.Fatalf("parseMessageID(%q) = %x, %v", s, back, ok)
	}
	for _, bad := range []string{"", "zz" + s[2:], s[1:], s + "00", "0A" + s[2:]} {
		if _, ok := parseMessageID(bad); ok {
			t.Errorf("parseMessageID(%q) accepted", bad)
		}
	}
}

// FuzzParseHeader: the receiver parses payloads that came back from the
// server; whatever parses must re-encode to the same header bytes.
func FuzzParseHeader(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHeader(b)
		if err != nil {
			return
		}
		out := make([]byte, payloadHeaderSize)
		h.put(out)
		if !bytes.Equal(out, b[:payloadHeaderSize]) {
			t.Fatalf("re-encoded %x, want %x", out, b[:payloadHeaderSize])
		}
	})
}

// FuzzParseMessageID: ids in delivered envelopes come from the server.
func FuzzParseMessageID(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		id, ok := parseMessageID(s)
		if !ok {
			return
		}
		if got := hex.EncodeToString(id[:]); got != s {
			t.Fatalf("re-encoded %q, want %q", got, s)
		}
	})
}
