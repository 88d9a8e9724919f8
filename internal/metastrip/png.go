package metastrip

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
)

// pngKeep are the ancillary PNG chunks kept (PNG third edition, §11.3, and
// the APNG chunks); every critical chunk is kept too.
var pngKeep = map[string]bool{
	"tRNS": true, "cHRM": true, "gAMA": true, "iCCP": true, "sBIT": true, "sRGB": true,
	"cICP": true, "mDCV": true, "cLLI": true, "mDCv": true, "cLLi": true,
	"bKGD": true, "hIST": true, "pHYs": true, "sPLT": true,
	"acTL": true, "fcTL": true, "fdAT": true,
}

// maxPNGChunk is the largest chunk length PNG allows (2^31-1).
const maxPNGChunk = 1<<31 - 1

// maxEXIFChunk bounds the eXIf chunk read into memory to find the
// orientation; a larger one is dropped unread.
const maxEXIFChunk = 1 << 20

// stripPNG rewrites the chunks of a PNG (PNG §5.3), dropping metadata.
// Kept chunks are copied with their CRC checked.
func stripPNG(dst io.Writer, br *bufio.Reader) (Result, error) {
	res := Result{Format: PNG}
	bw := bufio.NewWriterSize(dst, 64<<10)
	sig := make([]byte, len(pngMagic))
	if _, err := io.ReadFull(br, sig); err != nil {
		return res, eofMalformed(err, "signature")
	}
	if string(sig) != string(pngMagic) {
		return res, wrap("no PNG signature")
	}
	bw.Write(sig)
	first := true
	for {
		var h [8]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return res, eofMalformed(err, "chunk header")
		}
		n := binary.BigEndian.Uint32(h[:4])
		typ := string(h[4:8])
		if n > maxPNGChunk {
			return res, wrap(fmt.Sprintf("chunk %q of %d bytes", typ, n))
		}
		if !validChunkType(h[4:8]) {
			return res, wrap(fmt.Sprintf("chunk type %q", typ))
		}
		if first != (typ == "IHDR") {
			return res, wrap("IHDR is not the first chunk, or appears twice")
		}
		first = false
		critical := h[4]&0x20 == 0
		switch {
		case critical || pngKeep[typ]:
			if err := copyChunk(bw, br, h, int64(n)); err != nil {
				return res, err
			}
		case typ == "eXIf" && n <= maxEXIFChunk:
			if err := exifChunk(bw, br, h, n, &res); err != nil {
				return res, err
			}
		default:
			if _, err := br.Discard(int(n) + 4); err != nil {
				return res, eofMalformed(err, "chunk "+typ)
			}
			res.removed(typ)
		}
		if err := bwErr(bw); err != nil {
			return res, err
		}
		if typ == "IEND" {
			if _, err := br.ReadByte(); err == nil {
				res.removed("trailing data")
			}
			return res, bw.Flush()
		}
	}
}

// validChunkType: four ASCII letters (PNG §5.4).
func validChunkType(t []byte) bool {
	for _, c := range t {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// copyChunk copies a chunk's data and CRC after its header h, checking the
// CRC over type and data.
func copyChunk(bw *bufio.Writer, br *bufio.Reader, h [8]byte, n int64) error {
	bw.Write(h[:])
	crc := crc32.NewIEEE()
	crc.Write(h[4:8])
	if _, err := io.CopyN(io.MultiWriter(bw, crc), br, n); err != nil {
		return eofMalformed(err, "chunk "+string(h[4:8]))
	}
	var c [4]byte
	if _, err := io.ReadFull(br, c[:]); err != nil {
		return eofMalformed(err, "chunk CRC")
	}
	if binary.BigEndian.Uint32(c[:]) != crc.Sum32() {
		return wrap(fmt.Sprintf("chunk %q has a wrong CRC", h[4:8]))
	}
	bw.Write(c[:])
	return nil
}

// exifChunk reads an eXIf chunk and writes, in its place, one holding
// only the orientation if it is not 1.
func exifChunk(bw *bufio.Writer, br *bufio.Reader, h [8]byte, n uint32, res *Result) error {
	data := make([]byte, n+4)
	if _, err := io.ReadFull(br, data); err != nil {
		return eofMalformed(err, "chunk eXIf")
	}
	tiff := data[:n]
	o := orientationEXIF(tiff)
	if o <= 1 || res.Orientation != 0 {
		res.removed("eXIf")
		return nil
	}
	res.Orientation = o
	small := minimalEXIF(o)
	if string(tiff) != string(small) {
		res.removed("eXIf")
	}
	writeChunk(bw, "eXIf", small)
	return nil
}

func writeChunk(bw *bufio.Writer, typ string, data []byte) {
	var h [8]byte
	binary.BigEndian.PutUint32(h[:4], uint32(len(data)))
	copy(h[4:], typ)
	bw.Write(h[:])
	bw.Write(data)
	crc := crc32.NewIEEE()
	crc.Write(h[4:])
	crc.Write(data)
	binary.BigEndian.PutUint32(h[:4], crc.Sum32())
	bw.Write(h[:4])
}
