// Package metastrip removes metadata (EXIF with its GPS position and
// thumbnail, XMP, IPTC, comments, text chunks, timestamps) from JPEG and
// PNG images before they are encrypted and sent, without decoding or
// re-encoding a pixel: it rewrites the file's segments (JPEG) or chunks
// (PNG), keeping only what drawing the image needs. It streams, in memory
// bounded by one JPEG segment (64 KiB) whatever the image size.
//
// What is kept:
//
//   - JPEG: every segment a decoder needs (DQT, DHT, DAC, SOFn, DRI, SOS
//     and the entropy-coded data with its restart markers, DNL, EXP), the
//     JFIF APP0 header (without its thumbnail), APP2 ICC_PROFILE (colour),
//     APP14 Adobe (colour transform of CMYK and YCCK images). All other
//     APPn segments (EXIF, XMP, extended XMP, MPF, FPXR, Photoshop/IPTC,
//     Ducky, ...) and COM comments are dropped, and so is anything after
//     the end-of-image marker (appended second images, vendor trailers).
//   - PNG: the critical chunks (IHDR, PLTE, IDAT, IEND, and any unknown
//     critical one), transparency (tRNS), colour (cHRM, gAMA, iCCP, sBIT,
//     sRGB, cICP, mDCV, cLLI), bKGD, hIST, pHYs, sPLT and the APNG
//     animation chunks (acTL, fcTL, fdAT). All other ancillary chunks are
//     dropped: tEXt, zTXt, iTXt, tIME, eXIf, and private ones. Nothing after
//     IEND is kept.
//
// One value is carried over from the EXIF data: the orientation (tag
// 0x0112), because without it a phone's portrait photo shows sideways. If
// the original has an orientation other than 1, the output has a minimal
// EXIF block (JPEG APP1, PNG eXIf) holding only that tag.
package metastrip

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"slices"
)

// Format is an image file format.
type Format int

// Formats.
const (
	Unknown Format = iota
	JPEG
	PNG
)

func (f Format) String() string {
	switch f {
	case JPEG:
		return "JPEG"
	case PNG:
		return "PNG"
	}
	return "unknown"
}

// Errors.
var (
	// ErrUnsupported: the input is neither JPEG nor PNG (nothing was
	// written).
	ErrUnsupported = errors.New("metastrip: not a JPEG or PNG image")
	// ErrMalformed: the input is not a well-formed JPEG or PNG; the output
	// written so far must be discarded.
	ErrMalformed = errors.New("metastrip: malformed image")
)

// Result describes what Strip did.
type Result struct {
	Format Format
	// Removed names the kinds of metadata dropped, each once, in the order
	// met: "EXIF", "XMP", "APP13", "COM", "JFIF thumbnail", "tEXt",
	// "eXIf", "trailing data", ...
	Removed []string
	// Orientation is the EXIF orientation carried over (2 to 8), or 0.
	Orientation int
}

func (r *Result) removed(kind string) {
	if !slices.Contains(r.Removed, kind) {
		r.Removed = append(r.Removed, kind)
	}
}

var (
	jpegMagic = []byte{0xFF, 0xD8, 0xFF}
	pngMagic  = []byte{0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'}
)

// Sniff returns the format of an image from its first bytes (8 suffice).
func Sniff(head []byte) Format {
	switch {
	case len(head) >= len(pngMagic) && string(head[:len(pngMagic)]) == string(pngMagic):
		return PNG
	case len(head) >= len(jpegMagic) && string(head[:len(jpegMagic)]) == string(jpegMagic):
		return JPEG
	}
	return Unknown
}

// Strip copies the JPEG or PNG image src to dst without its metadata. For
// any other input it returns ErrUnsupported having written nothing (the
// caller decides whether to send such a file as it is). On ErrMalformed
// (or a read or write error) dst holds a partial image to discard.
func Strip(dst io.Writer, src io.Reader) (Result, error) {
	br := bufio.NewReaderSize(src, 64<<10)
	head, _ := br.Peek(len(pngMagic))
	switch Sniff(head) {
	case JPEG:
		return stripJPEG(dst, br)
	case PNG:
		return stripPNG(dst, br)
	}
	return Result{}, ErrUnsupported
}

// StripJPEG is Strip for a JPEG image.
func StripJPEG(dst io.Writer, src io.Reader) (Result, error) {
	return stripJPEG(dst, bufio.NewReaderSize(src, 64<<10))
}

// StripPNG is Strip for a PNG image.
func StripPNG(dst io.Writer, src io.Reader) (Result, error) {
	return stripPNG(dst, bufio.NewReaderSize(src, 64<<10))
}

// eofMalformed turns a premature end of input into ErrMalformed.
func eofMalformed(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return wrap(what + ": unexpected end of the file")
	}
	return err
}

type malformed string

func (m malformed) Error() string { return "metastrip: malformed image: " + string(m) }
func (m malformed) Unwrap() error { return ErrMalformed }

func wrap(s string) error { return malformed(s) }

// orientationEXIF returns the orientation (1 to 8) in a TIFF-structured
// EXIF block (the bytes after "Exif\0\0" in JPEG, the eXIf chunk of PNG):
// tag 0x0112, type SHORT, count 1, in IFD0. 0 if absent or malformed.
func orientationEXIF(tiff []byte) int {
	if len(tiff) < 8 {
		return 0
	}
	var bo binary.ByteOrder
	switch string(tiff[:4]) {
	case "II*\x00":
		bo = binary.LittleEndian
	case "MM\x00*":
		bo = binary.BigEndian
	default:
		return 0
	}
	ifd := int64(bo.Uint32(tiff[4:8]))
	if ifd < 8 || ifd+2 > int64(len(tiff)) {
		return 0
	}
	n := int64(bo.Uint16(tiff[ifd:]))
	for i := range n {
		e := ifd + 2 + i*12
		if e+12 > int64(len(tiff)) {
			return 0
		}
		tag, typ, count := bo.Uint16(tiff[e:]), bo.Uint16(tiff[e+2:]), bo.Uint32(tiff[e+4:])
		if tag != 0x0112 {
			continue
		}
		if typ != 3 || count != 1 {
			return 0
		}
		if v := int(bo.Uint16(tiff[e+8:])); v >= 1 && v <= 8 {
			return v
		}
		return 0
	}
	return 0
}

// minimalEXIF returns a big-endian TIFF block with one IFD holding only
// the orientation.
func minimalEXIF(orientation int) []byte {
	b := []byte{
		'M', 'M', 0, '*', // byte order, magic
		0, 0, 0, 8, // IFD0 at 8
		0, 1, // one entry
		0x01, 0x12, 0, 3, 0, 0, 0, 1, // Orientation, SHORT, count 1
		0, byte(orientation), 0, 0, // value, padded
		0, 0, 0, 0, // no next IFD
	}
	return b
}
