package content

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func samples() map[string]*Content {
	id := [16]byte{0: 0x11, 15: 0xff}
	key := bytes.Repeat([]byte{0xab}, 32)
	return map[string]*Content{
		"text": {Kind: KindText, ID: id, SentAt: 1700000000123, To: "bob", Text: "hello, bob"},
		"text-long": {Kind: KindText, ID: id, SentAt: 1, To: "bob",
			Text: strings.Repeat("héllo ", 40)},
		"delivered": {Kind: KindDelivered, ID: id, SentAt: 2, To: "alice",
			Refs: [][16]byte{{1}, {2}, {3}}},
		"read":       {Kind: KindRead, ID: id, SentAt: 3, To: "alice", Refs: [][16]byte{{9}}},
		"typing-on":  {Kind: KindTyping, ID: id, SentAt: 4, To: "carol", Typing: true},
		"typing-off": {Kind: KindTyping, ID: id, SentAt: -5, To: "carol"},
		"contact-sync": {Kind: KindContactSync, ID: id, SentAt: 6, Contacts: []Contact{
			{Handle: "bob", State: ContactAccepted, IdentityKey: key, Verified: true},
			{Handle: "mallory", State: ContactBlocked},
			{Handle: "spam_1", State: ContactRejected, IdentityKey: key},
		}},
		"call-offer": {Kind: KindCall, ID: id, SentAt: 7, To: "bob", Call: &Call{ID: [16]byte{0: 0xca, 15: 0x11},
			Type: CallOffer, Media: MediaAudio | MediaVideo, SDP: "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\na=fingerprint:sha-256 AB:CD\r\n"}},
		"call-ice": {Kind: KindCall, ID: id, SentAt: 8, To: "alice", Call: &Call{ID: [16]byte{0: 0xca, 15: 0x11},
			Type: CallICE, Device: 0x01020304, Candidate: "candidate:1 1 udp 2130706431 192.0.2.1 50000 typ relay", MID: "0", MLineIndex: 1}},
		"call-answered-elsewhere": {Kind: KindCall, ID: id, SentAt: 9, To: "alice", Call: &Call{ID: [16]byte{0: 0xca, 15: 0x11},
			Type: CallAnsweredElsewhere, Device: 77}},
		"delete": {Kind: KindDelete, ID: id, SentAt: 11, To: "bob", Refs: [][16]byte{{7}}},
		"edit":   {Kind: KindEdit, ID: id, SentAt: 12, To: "bob", Refs: [][16]byte{{7}}, Text: "what I meant"},
		"react":  {Kind: KindReaction, ID: id, SentAt: 14, To: "bob", Refs: [][16]byte{{7}}, Text: "👍"},
		"reply":  {Kind: KindText, ID: id, SentAt: 13, To: "bob", Text: "yes", ReplyTo: [16]byte{0: 9, 15: 9}, Timer: 60},
		"history": {Kind: KindHistory, ID: id, SentAt: 10, To: "alice", ForDevice: 0x0badcafe, Attachment: &Attachment{
			BlobID: strings.Repeat("A", BlobIDSize), Key: key, SHA256: key, CiphertextSize: 1000, PlaintextSize: 984,
			MediaType: HistoryMediaType, FileName: "history"}},
	}
}

func TestRoundTrip(t *testing.T) {
	for name, c := range samples() {
		b, err := c.Marshal()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(b)%PadBlock != 0 {
			t.Fatalf("%s: length %d not padded", name, len(b))
		}
		got, err := Unmarshal(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("%s: got %+v, want %+v", name, got, c)
		}
	}
}

func TestPadding(t *testing.T) {
	for n := 0; n < 3*PadBlock; n++ {
		p := pad(bytes.Repeat([]byte{7}, n))
		if len(p)%PadBlock != 0 || len(p) <= n || len(p)-n > PadBlock {
			t.Fatalf("pad(%d) has length %d", n, len(p))
		}
		u, err := unpad(p)
		if err != nil || len(u) != n {
			t.Fatalf("unpad(pad(%d)) = %d, %v", n, len(u), err)
		}
	}
	c := &Content{Kind: KindText, Text: "x"}
	b, _ := c.Marshal()
	for name, bad := range map[string][]byte{
		"empty":        nil,
		"not-multiple": b[:len(b)-1],
		"no-marker":    bytes.Repeat([]byte{0}, PadBlock),
		"trailing":     append(bytes.Clone(b[:len(b)-1]), 1),
		"extra-block":  append(bytes.Clone(b), make([]byte, PadBlock)...),
	} {
		if _, err := Unmarshal(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestRejects(t *testing.T) {
	for name, c := range map[string]*Content{
		"kind0":     {Kind: 0},
		"kind12":    {Kind: 12}, // 7 is KindTimer, 8 KindHistory, 9 KindDelete, 10 KindEdit, 11 KindReaction
		"state0":    {Kind: KindContactSync, Contacts: []Contact{{Handle: "a"}}},
		"state4":    {Kind: KindContactSync, Contacts: []Contact{{Handle: "a", State: 4}}},
		"short-key": {Kind: KindContactSync, Contacts: []Contact{{Handle: "a", State: 1, IdentityKey: []byte{1}}}},
		"long-to":   {Kind: KindText, To: strings.Repeat("a", 256)},
	} {
		if _, err := c.Marshal(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Marshal = %v", name, err)
		}
	}
	// Hand-made encodings with bad fields.
	good, _ := (&Content{Kind: KindTyping, Typing: true, Contacts: []Contact{{Handle: "a", State: 1, Verified: true}}}).Marshal()
	inner, _ := unpad(good)
	kindAt, typingAt := 1, 1+1+16+8+1+4+2
	verifiedAt := len(inner) - 1
	stateAt := verifiedAt - 2
	for name, mut := range map[string]func(b []byte){
		"version":  func(b []byte) { b[0] = 2 },
		"kind":     func(b []byte) { b[kindAt] = 12 },
		"typing":   func(b []byte) { b[typingAt] = 2 },
		"state":    func(b []byte) { b[stateAt] = 0 },
		"verified": func(b []byte) { b[verifiedAt] = 2 },
	} {
		b := bytes.Clone(inner)
		mut(b)
		if _, err := Unmarshal(pad(b)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Unmarshal = %v", name, err)
		}
	}
	if _, err := Unmarshal(pad(append(bytes.Clone(inner), 0))); !errors.Is(err, ErrMalformed) {
		t.Errorf("trailing byte inside the padding accepted: %v", err)
	}
}

// TestGolden pins the encoding of every kind. Regenerate with
// go test ./internal/content -run TestGolden -update
func TestGolden(t *testing.T) {
	got := map[string]string{}
	for name, c := range samples() {
		b, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		got[name] = hex.EncodeToString(b)
	}
	path := filepath.Join("testdata", "golden.json")
	if *update {
		j, _ := json.MarshalIndent(got, "", "  ")
		if err := os.WriteFile(path, append(j, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	j, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]string
	if err := json.Unmarshal(j, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("encodings differ from %s (run with -update if the change is intended)", path)
	}
	for name, h := range want {
		b, _ := hex.DecodeString(h)
		c, err := Unmarshal(b)
		if err != nil || !reflect.DeepEqual(c, samples()[name]) {
			t.Fatalf("%s: golden bytes decode to %+v, %v", name, c, err)
		}
	}
}

func FuzzUnmarshal(f *testing.F) {
	for _, c := range samples() {
		b, _ := c.Marshal()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Unmarshal(b)
		if err != nil {
			return
		}
		again, err := c.Marshal()
		if err != nil {
			t.Fatalf("decoded content does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("round trip changed the bytes:\n%x\n%x", b, again)
		}
	})
}
