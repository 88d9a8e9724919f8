package content

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// extensionSamples are contents with the fields of attachment.go; their
// encodings are pinned in testdata/golden-extensions.json and seed the
// fuzz corpus.
func extensionSamples() map[string]*Content {
	id := [16]byte{0: 0x22, 15: 0xee}
	att := func(viewOnce bool) *Attachment {
		return &Attachment{
			BlobID:         "kQ7xVb-_" + strings.Repeat("A", BlobIDSize-8),
			Key:            bytes.Repeat([]byte{0x4b}, FileKeySize),
			SHA256:         bytes.Repeat([]byte{0x5a}, HashSize),
			CiphertextSize: 65552 + 116,
			PlaintextSize:  65536 + 100,
			MediaType:      "image/jpeg",
			FileName:       "holiday.jpg",
			ViewOnce:       viewOnce,
		}
	}
	return map[string]*Content{
		"text-timer": {Kind: KindText, ID: id, SentAt: 10, To: "bob", Text: "gone in an hour", Timer: 3600},
		"file":       {Kind: KindText, ID: id, SentAt: 11, To: "bob", Text: "a caption", Attachment: att(false)},
		"file-view-once-timer": {Kind: KindText, ID: id, SentAt: 12, To: "bob", Timer: 30,
			Attachment: att(true)},
		"timer-set": {Kind: KindTimer, ID: id, SentAt: 13, To: "bob", Timer: 4 * 7 * 24 * 3600},
		"timer-off": {Kind: KindTimer, ID: id, SentAt: 14, To: "alice"},
	}
}

func TestExtensionsRoundTrip(t *testing.T) {
	for name, c := range extensionSamples() {
		b, err := c.Marshal()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
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

// Contents without the new fields encode exactly as before they existed
// (TestGolden pins those bytes); this pins the new ones. Regenerate with
// go test ./internal/content -run TestExtensionsGolden -update
func TestExtensionsGolden(t *testing.T) {
	got := map[string]string{}
	for name, c := range extensionSamples() {
		b, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		got[name] = hex.EncodeToString(b)
	}
	path := filepath.Join("testdata", "golden-extensions.json")
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
}

// TestWriteExtensionSeeds keeps the fuzz corpus in step with the samples.
// Regenerate with go test ./internal/content -run TestWriteExtensionSeeds -update
func TestWriteExtensionSeeds(t *testing.T) {
	for name, c := range extensionSamples() {
		b, err := c.Marshal()
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

func TestExtensionsRejected(t *testing.T) {
	good := extensionSamples()["file"].Attachment
	with := func(f func(a *Attachment)) *Attachment {
		a := *good
		f(&a)
		return &a
	}
	for name, c := range map[string]*Content{
		"timer-on-read":       {Kind: KindRead, Timer: 5},
		"timer-on-call":       {Kind: KindCall, Call: &Call{Type: CallHangup}, Timer: 5},
		"attachment-on-timer": {Kind: KindTimer, Attachment: good},
		"short-blob-id":       {Kind: KindText, Attachment: with(func(a *Attachment) { a.BlobID = "abc" })},
		"blob-id-charset":     {Kind: KindText, Attachment: with(func(a *Attachment) { a.BlobID = strings.Repeat("+", BlobIDSize) })},
		"short-key":           {Kind: KindText, Attachment: with(func(a *Attachment) { a.Key = a.Key[:31] })},
		"no-hash":             {Kind: KindText, Attachment: with(func(a *Attachment) { a.SHA256 = nil })},
		"zero-size":           {Kind: KindText, Attachment: with(func(a *Attachment) { a.CiphertextSize, a.PlaintextSize = 0, 0 })},
		"plaintext-larger":    {Kind: KindText, Attachment: with(func(a *Attachment) { a.PlaintextSize = a.CiphertextSize + 1 })},
		"long-media-type":     {Kind: KindText, Attachment: with(func(a *Attachment) { a.MediaType = strings.Repeat("x", 256) })},
	} {
		if _, err := c.Marshal(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Marshal = %v", name, err)
		}
	}

	// Hand-made encodings: take a valid one and break its extension.
	inner := func(c *Content) []byte {
		b, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		u, err := unpad(b)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	plain := inner(&Content{Kind: KindText, To: "bob", Text: "x"})
	timer := inner(&Content{Kind: KindText, To: "bob", Text: "x", Timer: 60})
	timerField := timer[len(plain):]
	fileSample := extensionSamples()["file"]
	file := inner(fileSample)
	fileBase := inner(&Content{Kind: KindText, ID: fileSample.ID, SentAt: fileSample.SentAt, To: "bob", Text: fileSample.Text})
	fileField := file[len(fileBase):]
	// resized returns the file field with its value cut or grown by d bytes.
	resized := func(d int) []byte {
		f := bytes.Clone(fileField)
		if d < 0 {
			f = f[:len(f)+d]
		} else {
			f = append(f, make([]byte, d)...)
		}
		binary.BigEndian.PutUint16(f[1:3], uint16(len(f)-3))
		return f
	}
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	for name, b := range map[string][]byte{
		"zero-timer":      cat(plain, []byte{tagTimer, 0, 4, 0, 0, 0, 0}),
		"short-timer":     cat(plain, []byte{tagTimer, 0, 3, 0, 0, 1}),
		"long-timer":      cat(plain, []byte{tagTimer, 0, 5, 0, 0, 0, 1, 0}),
		"unknown-tag":     cat(plain, []byte{9, 0, 0}),
		"tag-zero":        cat(plain, []byte{0, 0, 0}),
		"repeated-timer":  cat(timer, timerField),
		"out-of-order":    cat(fileBase, fileField, timerField),
		"truncated-field": cat(plain, timerField[:len(timerField)-1]),
		"flags":           func() []byte { b := bytes.Clone(file); b[len(b)-1] = 2; return b }(),
		"timer-on-typing": cat(inner(&Content{Kind: KindTyping}), timerField),
		"file-on-timer":   cat(inner(&Content{Kind: KindTimer}), fileField),
		"missing-flags":   cat(fileBase, resized(-1)),
		"extra-in-value":  cat(fileBase, resized(1)),
		"trailing-byte":   append(bytes.Clone(file), 0),
	} {
		if _, err := Unmarshal(pad(b)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Unmarshal = %v", name, err)
		}
	}
	// And the unbroken ones parse.
	for name, b := range map[string][]byte{"timer": timer, "file": file} {
		if _, err := Unmarshal(pad(b)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// The key never shows when an attachment is printed.
func TestAttachmentStringHidesKey(t *testing.T) {
	a := extensionSamples()["file"].Attachment
	if s := a.String(); strings.Contains(s, "KKKK") || strings.Contains(s, hex.EncodeToString(a.Key)) {
		t.Fatalf("String shows the key: %s", s)
	}
}
