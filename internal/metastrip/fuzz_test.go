package metastrip_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"os"
	"path/filepath"
	"testing"

	"github.com/parleychat/parley/internal/metastrip"
)

// fuzzSeeds are small real images with metadata, plus broken ones.
func fuzzSeeds(t testing.TB) map[string][]byte {
	jpg := encodeJPEG(t, testImage(8, 8))
	pngb := encodePNG(t, testImage(6, 5))
	exifJPEG := insertAfterSOI(jpg,
		segment(0xE0, []byte("JFIF\x00\x01\x02\x01\x00\x48\x00\x48\x00\x00")),
		segment(0xE1, append([]byte("Exif\x00\x00"), richEXIF(binary.LittleEndian, 6)...)),
		segment(0xE1, []byte("http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta/>")),
		segment(0xFE, []byte("comment")))
	text := []byte("tEXtAuthor\x00me")
	chunk := binary.BigEndian.AppendUint32(nil, uint32(len(text)-4))
	chunk = append(chunk, text...)
	chunk = binary.BigEndian.AppendUint32(chunk, crc32.ChecksumIEEE(text))
	textPNG := append(append(append([]byte(nil), pngb[:33]...), chunk...), pngb[33:]...)
	return map[string][]byte{
		"jpeg-plain":     jpg,
		"jpeg-exif":      exifJPEG,
		"jpeg-trailer":   append(bytes.Clone(jpg), "trailer"...),
		"jpeg-truncated": jpg[:len(jpg)/2],
		"png-plain":      pngb,
		"png-text":       textPNG,
		"png-truncated":  pngb[:40],
		"not-an-image":   []byte("GIF89a"),
	}
}

// FuzzStrip strips arbitrary bytes. Whatever strips is a fixed point
// (stripping the output again gives the same bytes and removes nothing),
// and if Go decodes the input, it decodes the output to the same pixels.
func FuzzStrip(f *testing.F) {
	for _, b := range fuzzSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		res, err := metastrip.Strip(&out, bytes.NewReader(in))
		if err != nil {
			if !errors.Is(err, metastrip.ErrMalformed) && !errors.Is(err, metastrip.ErrUnsupported) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		var again bytes.Buffer
		res2, err := metastrip.Strip(&again, bytes.NewReader(out.Bytes()))
		if err != nil {
			t.Fatalf("the output does not strip: %v", err)
		}
		if !bytes.Equal(again.Bytes(), out.Bytes()) || len(res2.Removed) != 0 || res2.Orientation != res.Orientation {
			t.Fatalf("stripping is not a fixed point (removed %v the second time)", res2.Removed)
		}
		cfg, _, err := image.DecodeConfig(bytes.NewReader(in))
		if err != nil || cfg.Width*cfg.Height > 1<<16 {
			return
		}
		orig, _, err := image.Decode(bytes.NewReader(in))
		if err != nil {
			return
		}
		got, _, err := image.Decode(bytes.NewReader(out.Bytes()))
		if err != nil {
			t.Fatalf("the input decodes, the output does not: %v", err)
		}
		if !samePixels(orig, got) {
			t.Fatal("the output decodes to other pixels")
		}
	})
}

// TestWriteFuzzSeeds rewrites testdata/fuzz/FuzzStrip when
// PARLEY_WRITE_SEEDS=1.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("PARLEY_WRITE_SEEDS") != "1" {
		t.Skip("set PARLEY_WRITE_SEEDS=1 to rewrite testdata/fuzz")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzStrip")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range fuzzSeeds(t) {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
