package metastrip_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/parleychat/parley/internal/metastrip"
)

// testImage is a small picture with structure in every channel.
func testImage(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.NRGBA{uint8(x * 255 / w), uint8(y * 255 / h), uint8((x ^ y) * 7), uint8(255 - (x+y)%64)})
		}
	}
	return img
}

func encodeJPEG(t testing.TB, img image.Image) []byte {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodePNG(t testing.TB, img image.Image) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// segment builds a JPEG marker segment.
func segment(m byte, payload []byte) []byte {
	out := []byte{0xFF, m, 0, 0}
	binary.BigEndian.PutUint16(out[2:], uint16(len(payload)+2))
	return append(out, payload...)
}

// insertAfterSOI puts segments right after the start-of-image marker.
func insertAfterSOI(jpg []byte, segs ...[]byte) []byte {
	out := append([]byte(nil), jpg[:2]...)
	for _, s := range segs {
		out = append(out, s...)
	}
	return append(out, jpg[2:]...)
}

// tiffBuilder writes a TIFF/EXIF block: IFD0 with the given entries and
// their out-of-line values after it.
type ifdEntry struct {
	tag, typ uint16
	count    uint32
	value    []byte // raw value bytes in the block's byte order
}

// exifTIFF builds a TIFF block with IFD0 = ifd0 and, if gps is not nil, a
// GPS IFD pointed to by tag 0x8825.
func exifTIFF(bo binary.ByteOrder, ifd0, gps []ifdEntry) []byte {
	var magic []byte
	if bo == binary.ByteOrder(binary.LittleEndian) {
		magic = []byte("II*\x00")
	} else {
		magic = []byte("MM\x00*")
	}
	if gps != nil {
		ifd0 = append(ifd0, ifdEntry{0x8825, 4, 1, nil}) // filled below
	}
	ifdSize := func(es []ifdEntry) int { return 2 + 12*len(es) + 4 }
	extraSize := func(es []ifdEntry) int {
		n := 0
		for _, e := range es {
			if len(e.value) > 4 {
				n += len(e.value)
			}
		}
		return n
	}
	gpsAt := 8 + ifdSize(ifd0) + extraSize(ifd0)
	buf := make([]byte, gpsAt+ifdSize(gps)+extraSize(gps))
	copy(buf, magic)
	bo.PutUint32(buf[4:], 8)
	write := func(at int, es []ifdEntry) {
		bo.PutUint16(buf[at:], uint16(len(es)))
		extra := at + ifdSize(es)
		for i, e := range es {
			p := at + 2 + 12*i
			bo.PutUint16(buf[p:], e.tag)
			bo.PutUint16(buf[p+2:], e.typ)
			bo.PutUint32(buf[p+4:], e.count)
			switch {
			case e.tag == 0x8825:
				bo.PutUint32(buf[p+8:], uint32(gpsAt))
			case len(e.value) <= 4:
				copy(buf[p+8:], e.value)
			default:
				bo.PutUint32(buf[p+8:], uint32(extra))
				copy(buf[extra:], e.value)
				extra += len(e.value)
			}
		}
	}
	write(8, ifd0)
	if gps != nil {
		write(gpsAt, gps)
	}
	return buf
}

func short(bo binary.ByteOrder, v uint16) []byte {
	b := make([]byte, 4)
	bo.PutUint16(b, v)
	return b
}

func rationals(bo binary.ByteOrder, vs ...uint32) []byte {
	b := make([]byte, 4*len(vs))
	for i, v := range vs {
		bo.PutUint32(b[4*i:], v)
	}
	return b
}

// secret strings that must not survive stripping.
const (
	secretMake    = "SecretCam Model-X"
	secretDate    = "2031:07:04 12:34:56"
	secretXMP     = "<x:xmpmeta><rdf:Description exif:GPSLatitude=\"48,51.5N\"/></x:xmpmeta>"
	secretIPTC    = "Photoshop 3.0\x008BIM\x04\x04IPTC-secret-caption"
	secretComment = "secret comment: taken at home"
	secretTrailer = "TRAILER-SECRET-motion-photo"
)

// gpsLat is the GPS latitude of the test EXIF, as rationals; its bytes
// must be gone after stripping.
var gpsLat = []uint32{48, 1, 51, 1, 30123, 1000}

func richEXIF(bo binary.ByteOrder, orientation uint16) []byte {
	return exifTIFF(bo, []ifdEntry{
		{0x010F, 2, uint32(len(secretMake) + 1), append([]byte(secretMake), 0)},
		{0x0112, 3, 1, short(bo, orientation)},
		{0x0132, 2, uint32(len(secretDate) + 1), append([]byte(secretDate), 0)},
	}, []ifdEntry{
		{0x0001, 2, 2, []byte("N\x00\x00\x00")},
		{0x0002, 5, 3, rationals(bo, gpsLat...)},
		{0x0003, 2, 2, []byte("E\x00\x00\x00")},
		{0x0004, 5, 3, rationals(bo, 2, 1, 17, 1, 40000, 1000)},
	})
}

func mustNotContain(t *testing.T, out []byte, secrets ...[]byte) {
	t.Helper()
	for _, s := range secrets {
		if bytes.Contains(out, s) {
			t.Errorf("output still contains %q", s)
		}
	}
}

func decode(t *testing.T, b []byte) image.Image {
	t.Helper()
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("decoding: %v", err)
	}
	return img
}

// samePixels compares two decoded images pixel by pixel.
func samePixels(a, b image.Image) bool {
	if a.Bounds() != b.Bounds() {
		return false
	}
	r := a.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			r1, g1, b1, a1 := a.At(x, y).RGBA()
			r2, g2, b2, a2 := b.At(x, y).RGBA()
			if r1 != r2 || g1 != g2 || b1 != b2 || a1 != a2 {
				return false
			}
		}
	}
	return true
}

func strip(t *testing.T, in []byte) ([]byte, metastrip.Result) {
	t.Helper()
	var out bytes.Buffer
	res, err := metastrip.Strip(&out, bytes.NewReader(in))
	if err != nil {
		t.Fatalf("Strip: %v", err)
	}
	// Stripping again changes nothing.
	var again bytes.Buffer
	res2, err := metastrip.Strip(&again, bytes.NewReader(out.Bytes()))
	if err != nil || !bytes.Equal(again.Bytes(), out.Bytes()) || len(res2.Removed) != 0 || res2.Orientation != res.Orientation {
		t.Fatalf("second Strip: %v, removed %v, same %v", err, res2.Removed, bytes.Equal(again.Bytes(), out.Bytes()))
	}
	return out.Bytes(), res
}

func TestJPEG(t *testing.T) {
	img := testImage(97, 61)
	plain := encodeJPEG(t, img)
	jfifThumb := append([]byte("JFIF\x00\x01\x02\x01\x00\x48\x00\x48\x02\x01"), "THUMBS"...) // 2x1 RGB thumbnail
	icc := append([]byte("ICC_PROFILE\x00\x01\x01"), bytes.Repeat([]byte{0x42}, 200)...)
	for _, bo := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		in := insertAfterSOI(plain,
			segment(0xE0, jfifThumb),
			segment(0xE1, append([]byte("Exif\x00\x00"), richEXIF(bo, 6)...)),
			segment(0xE1, []byte("http://ns.adobe.com/xap/1.0/\x00"+secretXMP)),
			segment(0xE2, icc),
			segment(0xE2, []byte("MPF\x00secret-second-image-index")),
			segment(0xED, []byte(secretIPTC)),
			segment(0xFE, []byte(secretComment)),
		)
		in = append(in, secretTrailer...)

		out, res := strip(t, in)
		mustNotContain(t, out, []byte(secretMake), []byte(secretDate), []byte("xmpmeta"), []byte("IPTC"),
			[]byte(secretComment), []byte("secret"), []byte(secretTrailer), rationals(bo, gpsLat...), []byte("THUMBS"))
		if !bytes.Contains(out, icc) {
			t.Error("the ICC profile was dropped")
		}
		if res.Format != metastrip.JPEG || res.Orientation != 6 {
			t.Errorf("result %+v", res)
		}
		for _, want := range []string{"JFIF thumbnail", "EXIF", "XMP", "MPF", "APP13", "COM", "trailing data"} {
			if !slices.Contains(res.Removed, want) {
				t.Errorf("Removed %v lacks %q", res.Removed, want)
			}
		}
		// The orientation survives in a minimal EXIF block.
		wantEXIF := segment(0xE1, append([]byte("Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00"), 0, 0, 0, 0))
		if !bytes.Contains(out, wantEXIF) {
			t.Error("no minimal EXIF block with orientation 6")
		}
		if !bytes.HasSuffix(out, []byte{0xFF, 0xD9}) {
			t.Error("output does not end with EOI")
		}
		if !samePixels(decode(t, in), decode(t, out)) {
			t.Fatal("the stripped image decodes differently")
		}
	}

	// Orientation 1 or none: no EXIF at all.
	in := insertAfterSOI(plain, segment(0xE1, append([]byte("Exif\x00\x00"), richEXIF(binary.BigEndian, 1)...)))
	out, res := strip(t, in)
	if bytes.Contains(out, []byte("Exif")) || res.Orientation != 0 {
		t.Errorf("orientation 1 kept an EXIF block: %+v", res)
	}
	// A plain JPEG goes through unchanged.
	if out, res := strip(t, plain); !bytes.Equal(out, plain) || len(res.Removed) != 0 {
		t.Errorf("a JPEG without metadata changed (removed %v)", res.Removed)
	}
}

func TestJPEGFillBytesAndRestarts(t *testing.T) {
	// Go's encoder writes no restart markers; the GOROOT files cover them.
	// Fill bytes before a marker are dropped, the image is unchanged.
	plain := encodeJPEG(t, testImage(16, 16))
	in := append([]byte{0xFF, 0xD8, 0xFF, 0xFF, 0xFF}, plain[3:]...)
	out, _ := strip(t, in)
	if !bytes.Equal(out, plain) {
		t.Error("fill bytes were not normalised away")
	}
}

func TestPNG(t *testing.T) {
	img := testImage(53, 29)
	plain := encodePNG(t, img)
	chunk := func(typ string, data []byte) []byte {
		b := make([]byte, 8, 12+len(data))
		binary.BigEndian.PutUint32(b, uint32(len(data)))
		copy(b[4:], typ)
		b = append(b, data...)
		return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[4:]))
	}
	ihdrEnd := 8 + 12 + 13
	keep := [][]byte{
		chunk("gAMA", []byte{0, 1, 0x86, 0xA0}),
		chunk("sRGB", []byte{0}),
		chunk("pHYs", []byte{0, 0, 0x0B, 0x13, 0, 0, 0x0B, 0x13, 1}),
	}
	drop := [][]byte{
		chunk("tEXt", []byte("Author\x00"+secretMake)),
		chunk("zTXt", []byte("Comment\x00\x00x\x9c+N-JM\x01\x00\x08\xb4\x02\x8a")),
		chunk("iTXt", []byte("XML:com.adobe.xmp\x00\x00\x00\x00\x00"+secretXMP)),
		chunk("tIME", []byte{0x07, 0xEF, 7, 4, 12, 34, 56}),
		chunk("eXIf", richEXIF(binary.LittleEndian, 8)),
		chunk("prVt", []byte("private vendor secret")),
	}
	in := append([]byte(nil), plain[:ihdrEnd]...)
	for _, c := range append(append([][]byte(nil), keep...), drop...) {
		in = append(in, c...)
	}
	in = append(in, plain[ihdrEnd:]...)
	in = append(in, secretTrailer...)

	out, res := strip(t, in)
	mustNotContain(t, out, []byte(secretMake), []byte("xmpmeta"), []byte(secretTrailer), []byte("tEXt"), []byte("zTXt"),
		[]byte("iTXt"), []byte("tIME"), []byte("prVt"), []byte("secret"), rationals(binary.LittleEndian, gpsLat...))
	for _, c := range keep {
		if !bytes.Contains(out, c) {
			t.Errorf("chunk %q was dropped", c[4:8])
		}
	}
	wantEXIF := chunk("eXIf", []byte("MM\x00*\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x08\x00\x00\x00\x00\x00\x00"))
	if !bytes.Contains(out, wantEXIF) || res.Orientation != 8 {
		t.Errorf("no minimal eXIf with orientation 8 (result %+v)", res)
	}
	for _, want := range []string{"tEXt", "zTXt", "iTXt", "tIME", "eXIf", "prVt", "trailing data"} {
		if !slices.Contains(res.Removed, want) {
			t.Errorf("Removed %v lacks %q", res.Removed, want)
		}
	}
	if !samePixels(decode(t, in), decode(t, out)) {
		t.Fatal("the stripped PNG decodes differently")
	}
	if out, res := strip(t, plain); !bytes.Equal(out, plain) || len(res.Removed) != 0 {
		t.Errorf("a PNG without metadata changed (removed %v)", res.Removed)
	}

	// A kept chunk with a bad CRC is refused.
	bad := bytes.Clone(in)
	bad[ihdrEnd+len(keep[0])-1] ^= 1
	if _, err := metastrip.Strip(io.Discard, bytes.NewReader(bad)); !errors.Is(err, metastrip.ErrMalformed) {
		t.Errorf("bad CRC: %v", err)
	}
}

func TestUnsupportedAndMalformed(t *testing.T) {
	var out bytes.Buffer
	for _, in := range [][]byte{nil, []byte("GIF89a..."), []byte("hello"), {0xFF, 0xD8}, {0x89, 'P', 'N', 'G'}} {
		if _, err := metastrip.Strip(&out, bytes.NewReader(in)); !errors.Is(err, metastrip.ErrUnsupported) || out.Len() != 0 {
			t.Errorf("Strip(%q) = %v, wrote %d", in, err, out.Len())
		}
	}
	jpg := encodeJPEG(t, testImage(8, 8))
	pngb := encodePNG(t, testImage(8, 8))
	for name, in := range map[string][]byte{
		"jpeg cut":       jpg[:len(jpg)/2],
		"jpeg no EOI":    jpg[:len(jpg)-2],
		"jpeg junk":      append(append([]byte(nil), jpg[:20]...), 0x12, 0x34),
		"jpeg short len": {0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x01},
		"png cut":        pngb[:len(pngb)-5],
		"png no IHDR":    append(append([]byte(nil), pngb[:8]...), pngb[33:]...),
		"png bad type":   append(append([]byte(nil), pngb[:12]...), '1', '2', '3', '4'),
	} {
		if _, err := metastrip.Strip(io.Discard, bytes.NewReader(in)); !errors.Is(err, metastrip.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	if metastrip.Sniff([]byte{0xFF, 0xD8, 0xFF, 0xE0}) != metastrip.JPEG || metastrip.Sniff(pngb) != metastrip.PNG || metastrip.Sniff(nil) != metastrip.Unknown {
		t.Error("Sniff")
	}
}

// goImageTestdata returns the JPEG and PNG files of Go's own image tests
// (progressive, CMYK with Adobe APP14, grey, restart markers, all chroma
// subsamplings): real encoders' output, not ours.
func goImageTestdata(t *testing.T) []string {
	root := runtime.GOROOT()
	if out, err := exec.Command("go", "env", "GOROOT").Output(); err == nil {
		root = strings.TrimSpace(string(out))
	}
	var files []string
	for _, pat := range []string{"*.jpeg", "*.png"} {
		m, _ := filepath.Glob(filepath.Join(root, "src", "image", "testdata", pat))
		files = append(files, m...)
	}
	if len(files) < 20 {
		t.Fatalf("found %d images under %s/src/image/testdata", len(files), root)
	}
	return files
}

func TestGoImageTestdata(t *testing.T) {
	for _, f := range goImageTestdata(t) {
		in, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		orig, _, derr := image.Decode(bytes.NewReader(in))
		var out bytes.Buffer
		_, serr := metastrip.Strip(&out, bytes.NewReader(in))
		name := filepath.Base(f)
		if derr != nil {
			// A file Go cannot decode (the truncated ones) may fail.
			continue
		}
		if serr != nil {
			t.Errorf("%s: %v", name, serr)
			continue
		}
		got, _, err := image.Decode(bytes.NewReader(out.Bytes()))
		if err != nil || !samePixels(orig, got) {
			t.Errorf("%s: stripped image decodes differently (%v)", name, err)
		}
	}
}

// TestFlatMemory strips a large JPEG stream whose scan is mostly 0xFF 0x00
// pairs and checks the allocations stay bounded.
func TestFlatMemory(t *testing.T) {
	jpg := encodeJPEG(t, testImage(8, 8))
	sos := bytes.Index(jpg, []byte{0xFF, 0xDA})
	scanStart := sos + 2 + int(binary.BigEndian.Uint16(jpg[sos+2:]))
	head := jpg[:scanStart]
	const size = 32 << 20
	body := io.LimitReader(&repeatReader{pat: []byte{0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD3}}, size)
	src := io.MultiReader(bytes.NewReader(head), body, bytes.NewReader([]byte{0xFF, 0xD9}))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cw := &countWriter{}
	if _, err := metastrip.Strip(cw, src); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if cw.n < size {
		t.Fatalf("wrote %d bytes", cw.n)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 2<<20 {
		t.Fatalf("allocated %d bytes to strip %d", alloc, size)
	}
}

type repeatReader struct {
	pat []byte
	i   int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.pat[r.i]
		r.i = (r.i + 1) % len(r.pat)
	}
	return len(p), nil
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }
