package call

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Test media. No Opus or VP8 encoder is at hand (pion sends and records
// media without decoding it), so the built-in sources and the files in
// testdata are made here:
//
//   - Opus: the 3-byte packet 0xF8 0xFF 0xFE, a 20 ms CELT fullband mono
//     frame that decodes to silence (the packet WebRTC stacks send for
//     silence), one packet per Ogg page, as a recording holds them.
//   - VP8: frames with a correct VP8 frame tag (RFC 6386 §9.1: key or
//     inter frame, shown, first partition size) and, for key frames, the
//     start code and dimensions (§9.2), followed by deterministic filler.
//     They are not decodable pictures; they exercise packetisation
//     (frames of 200 to 1600 bytes span one or two RTP packets), key frame
//     handling and recording.

// OpusSilence is one 20 ms Opus packet of silence.
var OpusSilence = []byte{0xf8, 0xff, 0xfe}

// WriteOpusSilence writes an Ogg Opus file (RFC 7845) of n 20 ms silence
// packets, one per page.
func WriteOpusSilence(w io.Writer, n int) error {
	const serial = 0x5061726c // "Parl"
	head := make([]byte, 19)
	copy(head, "OpusHead")
	head[8] = 1                                   // version
	head[9] = 1                                   // channels
	binary.LittleEndian.PutUint16(head[10:], 312) // pre-skip (6.5 ms at 48 kHz)
	binary.LittleEndian.PutUint32(head[12:], 48000)
	tags := append([]byte("OpusTags"), 0, 0, 0, 0, 0, 0, 0, 0) // empty vendor, no comments
	var seq uint32
	page := func(typ uint8, granule uint64, pkt []byte) error {
		p := &oggPage{HeaderType: typ, Granule: granule, Serial: serial, Sequence: seq, Payload: pkt}
		for rest := len(pkt); ; rest -= oggMaxSegLength {
			if rest < oggMaxSegLength {
				p.Segments = append(p.Segments, uint8(rest))
				break
			}
			p.Segments = append(p.Segments, oggMaxSegLength)
		}
		seq++
		b, err := p.marshal()
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	if err := page(oggBOS, 0, head); err != nil {
		return err
	}
	if err := page(0, 0, tags); err != nil {
		return err
	}
	granule := uint64(0)
	for i := range n {
		granule += 960
		typ := uint8(0)
		if i == n-1 {
			typ = oggEOS
		}
		if err := page(typ, granule, OpusSilence); err != nil {
			return err
		}
	}
	return nil
}

// TestFrameRate is the frame rate of WriteVP8IVF's files.
const TestFrameRate = 30

// WriteVP8IVF writes an IVF file of n VP8 frames of width × height at
// TestFrameRate frames per second; every 30th frame (the first too) is a
// key frame.
func WriteVP8IVF(w io.Writer, n int, width, height uint16) error {
	if width == 0 || height == 0 || width >= 1<<14 || height >= 1<<14 {
		return fmt.Errorf("call: VP8 dimensions %dx%d", width, height)
	}
	h := make([]byte, 32)
	copy(h, "DKIF")
	binary.LittleEndian.PutUint16(h[4:], 0)  // version
	binary.LittleEndian.PutUint16(h[6:], 32) // header length
	copy(h[8:], "VP80")
	binary.LittleEndian.PutUint16(h[12:], width)
	binary.LittleEndian.PutUint16(h[14:], height)
	binary.LittleEndian.PutUint32(h[16:], TestFrameRate) // time base denominator
	binary.LittleEndian.PutUint32(h[20:], 1)             // time base numerator
	binary.LittleEndian.PutUint32(h[24:], uint32(n))
	if _, err := w.Write(h); err != nil {
		return err
	}
	x := uint32(0x9e3779b9)
	for i := range n {
		size := 200 + (i*337)%1400
		f := make([]byte, size)
		key := i%30 == 0
		first := uint32(size - 3) // first partition size: the rest of the frame
		if key {
			first -= 7
		}
		tag := first<<5 | 1<<4 // show_frame, version 0
		if !key {
			tag |= 1 // inter frame
		}
		f[0], f[1], f[2] = byte(tag), byte(tag>>8), byte(tag>>16)
		off := 3
		if key {
			copy(f[3:], []byte{0x9d, 0x01, 0x2a})
			binary.LittleEndian.PutUint16(f[6:], width)
			binary.LittleEndian.PutUint16(f[8:], height)
			off = 10
		}
		for j := off; j < size; j++ {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			f[j] = byte(x)
		}
		fh := make([]byte, 12)
		binary.LittleEndian.PutUint32(fh, uint32(size))
		binary.LittleEndian.PutUint64(fh[4:], uint64(i))
		if _, err := w.Write(fh); err != nil {
			return err
		}
		if _, err := w.Write(f); err != nil {
			return err
		}
	}
	return nil
}
