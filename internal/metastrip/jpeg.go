package metastrip

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
)

// JPEG markers (ITU-T T.81, Table B.1).
const (
	mSOI  = 0xD8
	mEOI  = 0xD9
	mSOS  = 0xDA
	mRST0 = 0xD0
	mRST7 = 0xD7
	mTEM  = 0x01
	mAPP0 = 0xE0
	mAPP1 = 0xE1
	mAPP2 = 0xE2
	mAPPE = 0xEE
	mAPPF = 0xEF
	mCOM  = 0xFE
)

// Identifiers at the start of APPn payloads.
var (
	idJFIF = []byte("JFIF\x00")
	idEXIF = []byte("Exif\x00\x00")
	idXMP  = []byte("http://ns.adobe.com/xap/1.0/\x00")
	idXMPX = []byte("http://ns.adobe.com/xmp/extension/\x00")
	idICC  = []byte("ICC_PROFILE\x00")
	idMPF  = []byte("MPF\x00")
	idAdob = []byte("Adobe")
)

// jfifLen is the JFIF APP0 payload without a thumbnail: identifier (5),
// version (2), units (1), densities (2+2), thumbnail size (1+1).
const jfifLen = 14

// stripJPEG rewrites the segments of a JPEG (T.81 Annex B), dropping
// metadata. The entropy-coded data after each SOS is copied as is.
func stripJPEG(dst io.Writer, br *bufio.Reader) (Result, error) {
	res := Result{Format: JPEG}
	bw := bufio.NewWriterSize(dst, 64<<10)
	var soi [2]byte
	if _, err := io.ReadFull(br, soi[:]); err != nil {
		return res, eofMalformed(err, "start of image")
	}
	if soi != [2]byte{0xFF, mSOI} {
		return res, wrap("no JPEG start-of-image marker")
	}
	bw.Write(soi[:])
	payload := make([]byte, 0, 65535)
	wroteEXIF := false
	marker := -1 // a marker already read (ending a scan), or -1
	for {
		m := marker
		marker = -1
		if m < 0 {
			var err error
			if m, err = readMarker(br); err != nil {
				return res, err
			}
		}
		switch {
		case m == mEOI:
			bw.Write([]byte{0xFF, mEOI})
			if _, err := br.ReadByte(); err == nil {
				res.removed("trailing data")
			}
			return res, bw.Flush()
		case m == mSOI:
			return res, wrap("a second start-of-image marker")
		case m >= mRST0 && m <= mRST7 || m == mTEM:
			bw.WriteByte(0xFF) // a marker without length
			bw.WriteByte(byte(m))
			continue
		}
		var lb [2]byte
		if _, err := io.ReadFull(br, lb[:]); err != nil {
			return res, eofMalformed(err, "segment length")
		}
		n := int(binary.BigEndian.Uint16(lb[:]))
		if n < 2 {
			return res, wrap(fmt.Sprintf("segment 0x%02X with length %d", m, n))
		}
		payload = payload[:n-2]
		if _, err := io.ReadFull(br, payload); err != nil {
			return res, eofMalformed(err, "segment")
		}
		keep, out := classifyJPEG(byte(m), payload, &res, &wroteEXIF)
		if keep {
			writeSegment(bw, byte(m), out)
		}
		if m == mSOS {
			next, err := copyScan(bw, br)
			if err != nil {
				return res, err
			}
			marker = next
		}
		if err := bwErr(bw); err != nil {
			return res, err
		}
	}
}

// bwErr reports a sticky write error of bw early (bufio.Writer keeps it).
func bwErr(bw *bufio.Writer) error {
	if bw.Buffered() == 0 {
		return nil
	}
	_, err := bw.Write(nil)
	return err
}

func writeSegment(bw *bufio.Writer, m byte, payload []byte) {
	var h [4]byte
	h[0], h[1] = 0xFF, m
	binary.BigEndian.PutUint16(h[2:], uint16(len(payload)+2))
	bw.Write(h[:])
	bw.Write(payload)
}

// classifyJPEG decides whether a segment stays, and with which payload.
func classifyJPEG(m byte, p []byte, res *Result, wroteEXIF *bool) (bool, []byte) {
	switch {
	case m == mCOM:
		res.removed("COM")
		return false, nil
	case m == mAPP0:
		if bytes.HasPrefix(p, idJFIF) && len(p) >= jfifLen {
			if len(p) > jfifLen || p[12] != 0 || p[13] != 0 {
				res.removed("JFIF thumbnail")
			}
			out := append([]byte(nil), p[:jfifLen]...)
			out[12], out[13] = 0, 0 // no thumbnail
			return true, out
		}
		res.removed("APP0")
		return false, nil
	case m == mAPP1:
		switch {
		case bytes.HasPrefix(p, idEXIF):
			o := orientationEXIF(p[len(idEXIF):])
			if o > 1 && !*wroteEXIF {
				*wroteEXIF = true
				res.Orientation = o
				if !bytes.Equal(p[len(idEXIF):], minimalEXIF(o)) {
					res.removed("EXIF")
				}
				return true, append(append([]byte(nil), idEXIF...), minimalEXIF(o)...)
			}
			res.removed("EXIF")
		case bytes.HasPrefix(p, idXMP), bytes.HasPrefix(p, idXMPX):
			res.removed("XMP")
		default:
			res.removed("APP1")
		}
		return false, nil
	case m == mAPP2:
		if bytes.HasPrefix(p, idICC) {
			return true, p
		}
		if bytes.HasPrefix(p, idMPF) {
			res.removed("MPF")
		} else {
			res.removed("APP2")
		}
		return false, nil
	case m == mAPPE:
		if bytes.HasPrefix(p, idAdob) {
			return true, p
		}
		res.removed("APP14")
		return false, nil
	case m > mAPP2 && m <= mAPPF:
		res.removed(fmt.Sprintf("APP%d", m-mAPP0))
		return false, nil
	}
	return true, p
}

// readMarker reads the next marker between segments: 0xFF, any number of
// 0xFF fill bytes, then the marker code.
func readMarker(br *bufio.Reader) (int, error) {
	b, err := br.ReadByte()
	if err != nil {
		return 0, eofMalformed(err, "marker")
	}
	if b != 0xFF {
		return 0, wrap(fmt.Sprintf("byte 0x%02X where a marker should start", b))
	}
	for {
		b, err = br.ReadByte()
		if err != nil {
			return 0, eofMalformed(err, "marker")
		}
		if b != 0xFF {
			break
		}
	}
	if b == 0x00 {
		return 0, wrap("a stuffed zero byte outside entropy-coded data")
	}
	return int(b), nil
}

// copyScan copies entropy-coded data (T.81 B.1.1.5: 0xFF is followed by a
// stuffed 0x00 or a restart marker inside it) up to the marker that ends
// it, which it returns without writing.
func copyScan(bw *bufio.Writer, br *bufio.Reader) (int, error) {
	for {
		chunk, err := br.ReadSlice(0xFF)
		switch err {
		case nil:
			bw.Write(chunk[:len(chunk)-1])
		case bufio.ErrBufferFull:
			bw.Write(chunk)
			continue
		default:
			return 0, eofMalformed(err, "entropy-coded data")
		}
		// After 0xFF: fill bytes, then 0x00 (a data byte 0xFF), a restart
		// marker (part of the data) or the next marker.
		b, err := br.ReadByte()
		for err == nil && b == 0xFF {
			b, err = br.ReadByte()
		}
		if err != nil {
			return 0, eofMalformed(err, "entropy-coded data")
		}
		if b == 0x00 || b >= mRST0 && b <= mRST7 {
			bw.WriteByte(0xFF)
			bw.WriteByte(b)
			continue
		}
		return int(b), nil
	}
}
