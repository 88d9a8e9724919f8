package content

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestCallRejects(t *testing.T) {
	good := &Call{Type: CallHangup}
	for name, c := range map[string]*Content{
		"call-without-section": {Kind: KindCall},
		"section-on-text":      {Kind: KindText, Call: good},
		"type0":                {Kind: KindCall, Call: &Call{}},
		"type9":                {Kind: KindCall, Call: &Call{Type: 9}},
		"media-bits":           {Kind: KindCall, Call: &Call{Type: CallOffer, Media: 4}},
		"long-mid":             {Kind: KindCall, Call: &Call{Type: CallICE, MID: string(make([]byte, 256))}},
	} {
		if _, err := c.Marshal(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Marshal = %v", name, err)
		}
	}
	b, err := (&Content{Kind: KindCall, Call: good}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	inner, _ := unpad(b)
	// The call section is the last 1+16+1+4+4+2+1+2 = 31 bytes.
	at := len(inner) - 31
	for name, mut := range map[string]func(b []byte) []byte{
		"type":      func(b []byte) []byte { b[at] = 0; return b },
		"type-high": func(b []byte) []byte { b[at] = 9; return b },
		"media":     func(b []byte) []byte { b[at+17] = 0x80; return b },
		"sdp-len":   func(b []byte) []byte { b[at+22] = 0xff; return b },
		"truncated": func(b []byte) []byte { return b[:len(b)-1] },
		"trailing":  func(b []byte) []byte { return append(b, 0) },
		"no-section": func(b []byte) []byte {
			return b[:at]
		},
	} {
		if _, err := Unmarshal(pad(mut(bytes.Clone(inner)))); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Unmarshal = %v", name, err)
		}
	}
	// A text message with a call section appended is not a text message.
	txt, _ := (&Content{Kind: KindText, Text: "x"}).Marshal()
	ti, _ := unpad(txt)
	if _, err := Unmarshal(pad(append(bytes.Clone(ti), inner[at:]...))); !errors.Is(err, ErrMalformed) {
		t.Errorf("text with a call section: %v", err)
	}
}

func TestCallTypeNames(t *testing.T) {
	for typ := CallOffer; typ <= CallAnsweredElsewhere; typ++ {
		got, ok := ParseCallType(typ.String())
		if !ok || got != typ {
			t.Errorf("%d: %q parses to %d %v", typ, typ.String(), got, ok)
		}
	}
	if _, ok := ParseCallType("call-type-0"); ok {
		t.Error("parsed an unknown type")
	}
	if CallType(0).String() != "call-type-0" {
		t.Error(CallType(0).String())
	}
}

// TestWriteCallSeeds keeps the fuzz corpus in step with the call samples.
// Regenerate with go test ./internal/content -run TestWriteCallSeeds -update
func TestWriteCallSeeds(t *testing.T) {
	for _, name := range []string{"call-offer", "call-ice", "call-answered-elsewhere"} {
		b, err := samples()[name].Marshal()
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		path := filepath.Join("testdata", "fuzz", "FuzzUnmarshal", name)
		if *update {
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Fatalf("%s: seed missing or stale (run with -update): %v", path, err)
		}
	}
}
