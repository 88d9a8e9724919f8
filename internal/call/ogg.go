package call

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// Ogg (RFC 3533) framing of Ogg Opus files (RFC 7845): just enough to read
// the Opus packets of a file and to write files of our own.

// ErrMedia is wrapped by every error about a malformed media file.
var ErrMedia = errors.New("call: malformed media")

// oggPage is one Ogg page (RFC 3533 §6).
type oggPage struct {
	HeaderType uint8 // 0x01 continued packet, 0x02 first page, 0x04 last page
	Granule    uint64
	Serial     uint32
	Sequence   uint32
	Segments   []uint8 // the lacing values
	Payload    []byte
}

const (
	oggHeaderLen    = 27
	oggContinued    = 0x01
	oggBOS          = 0x02
	oggEOS          = 0x04
	oggMaxSegments  = 255
	oggMaxSegLength = 255
)

var oggCapture = [4]byte{'O', 'g', 'g', 'S'}

// oggCRCTable is the CRC-32 of Ogg: polynomial 0x04c11db7, no reflection,
// initial value 0, no final XOR.
var oggCRCTable = func() (t [256]uint32) {
	for i := range t {
		r := uint32(i) << 24
		for range 8 {
			if r&0x80000000 != 0 {
				r = r<<1 ^ 0x04c11db7
			} else {
				r <<= 1
			}
		}
		t[i] = r
	}
	return t
}()

func oggCRC(crc uint32, b []byte) uint32 {
	for _, c := range b {
		crc = crc<<8 ^ oggCRCTable[byte(crc>>24)^c]
	}
	return crc
}

// marshal encodes the page with its checksum.
func (p *oggPage) marshal() ([]byte, error) {
	if len(p.Segments) > oggMaxSegments {
		return nil, fmt.Errorf("%w: %d segments in a page", ErrMedia, len(p.Segments))
	}
	n := 0
	for _, s := range p.Segments {
		n += int(s)
	}
	if n != len(p.Payload) {
		return nil, fmt.Errorf("%w: lacing values add up to %d, payload is %d bytes", ErrMedia, n, len(p.Payload))
	}
	b := make([]byte, oggHeaderLen, oggHeaderLen+len(p.Segments)+len(p.Payload))
	copy(b, oggCapture[:])
	b[4] = 0 // stream structure version
	b[5] = p.HeaderType
	binary.LittleEndian.PutUint64(b[6:], p.Granule)
	binary.LittleEndian.PutUint32(b[14:], p.Serial)
	binary.LittleEndian.PutUint32(b[18:], p.Sequence)
	b[26] = uint8(len(p.Segments))
	b = append(b, p.Segments...)
	b = append(b, p.Payload...)
	binary.LittleEndian.PutUint32(b[22:], oggCRC(0, b))
	return b, nil
}

// readOggPage reads one page from r, checking its checksum.
func readOggPage(r io.Reader) (*oggPage, []byte, error) {
	h := make([]byte, oggHeaderLen)
	if _, err := io.ReadFull(r, h); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, nil, fmt.Errorf("%w: truncated Ogg page header", ErrMedia)
		}
		return nil, nil, err // io.EOF at a page boundary: the end
	}
	if [4]byte(h[:4]) != oggCapture || h[4] != 0 || h[5]&^(oggContinued|oggBOS|oggEOS) != 0 {
		return nil, nil, fmt.Errorf("%w: not an Ogg page", ErrMedia)
	}
	p := &oggPage{
		HeaderType: h[5],
		Granule:    binary.LittleEndian.Uint64(h[6:]),
		Serial:     binary.LittleEndian.Uint32(h[14:]),
		Sequence:   binary.LittleEndian.Uint32(h[18:]),
		Segments:   make([]uint8, h[26]),
	}
	if _, err := io.ReadFull(r, p.Segments); err != nil {
		return nil, nil, fmt.Errorf("%w: truncated Ogg lacing", ErrMedia)
	}
	n := 0
	for _, s := range p.Segments {
		n += int(s)
	}
	p.Payload = make([]byte, n)
	if _, err := io.ReadFull(r, p.Payload); err != nil {
		return nil, nil, fmt.Errorf("%w: truncated Ogg page", ErrMedia)
	}
	raw := make([]byte, 0, len(h)+len(p.Segments)+n)
	raw = append(append(append(raw, h...), p.Segments...), p.Payload...)
	want := binary.LittleEndian.Uint32(h[22:])
	binary.LittleEndian.PutUint32(raw[22:], 0)
	if oggCRC(0, raw) != want {
		return nil, nil, fmt.Errorf("%w: Ogg page checksum mismatch", ErrMedia)
	}
	binary.LittleEndian.PutUint32(raw[22:], want)
	return p, raw, nil
}

// parseOggPage parses exactly one page from b (the fuzz target's view).
func parseOggPage(b []byte) (*oggPage, error) {
	r := &sliceReader{b: b}
	p, _, err := readOggPage(r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: empty", ErrMedia)
		}
		return nil, err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: data after the page", ErrMedia)
	}
	return p, nil
}

type sliceReader struct{ b []byte }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// OpusPacket is one Opus packet of a file, with its playing time.
type OpusPacket struct {
	Data     []byte
	Duration time.Duration
}

// oggOpusReader reads the audio packets of an Ogg Opus file (RFC 7845):
// the first logical stream only, after its OpusHead and OpusTags packets.
type oggOpusReader struct {
	r       io.Reader
	serial  uint32
	started bool
	headers int      // header packets seen (2 before audio)
	partial []byte   // a packet continued on the next page
	queue   [][]byte // complete packets not yet returned
	eos     bool
}

func newOggOpusReader(r io.Reader) *oggOpusReader { return &oggOpusReader{r: r} }

// maxOpusPacket bounds one packet (RFC 6716 allows 1275 bytes per frame
// and up to 48 frames; anything near this is not a real call's audio).
const maxOpusPacket = 64 << 10

// next returns the next audio packet, or io.EOF at the end of the stream.
func (o *oggOpusReader) next() (OpusPacket, error) {
	for {
		if len(o.queue) > 0 {
			pkt := o.queue[0]
			o.queue = o.queue[1:]
			if o.headers < 2 {
				if err := o.header(pkt); err != nil {
					return OpusPacket{}, err
				}
				continue
			}
			d, err := opusDuration(pkt)
			if err != nil {
				return OpusPacket{}, err
			}
			return OpusPacket{Data: pkt, Duration: d}, nil
		}
		if o.eos {
			return OpusPacket{}, io.EOF
		}
		p, _, err := readOggPage(o.r)
		if errors.Is(err, io.EOF) {
			if o.headers < 2 {
				return OpusPacket{}, fmt.Errorf("%w: no Opus stream", ErrMedia)
			}
			return OpusPacket{}, io.EOF
		}
		if err != nil {
			return OpusPacket{}, err
		}
		if !o.started {
			if p.HeaderType&oggBOS == 0 {
				return OpusPacket{}, fmt.Errorf("%w: the first page does not begin a stream", ErrMedia)
			}
			o.started, o.serial = true, p.Serial
		}
		if p.Serial != o.serial {
			continue // another logical stream (multiplexed): not ours
		}
		if p.HeaderType&oggContinued == 0 {
			o.partial = nil // a continuation was lost: drop the fragment
		}
		o.eos = p.HeaderType&oggEOS != 0
		off := 0
		for _, s := range p.Segments {
			o.partial = append(o.partial, p.Payload[off:off+int(s)]...)
			off += int(s)
			if len(o.partial) > maxOpusPacket {
				return OpusPacket{}, fmt.Errorf("%w: an Opus packet over %d bytes", ErrMedia, maxOpusPacket)
			}
			if s < oggMaxSegLength {
				o.queue = append(o.queue, o.partial)
				o.partial = nil
			}
		}
	}
}

// header checks the OpusHead (RFC 7845 §5.1) and OpusTags (§5.2) packets.
func (o *oggOpusReader) header(pkt []byte) error {
	switch o.headers {
	case 0:
		if len(pkt) < 19 || string(pkt[:8]) != "OpusHead" || pkt[8]&0xf0 != 0 || pkt[9] == 0 {
			return fmt.Errorf("%w: no OpusHead packet: not an Ogg Opus file", ErrMedia)
		}
	case 1:
		if len(pkt) < 8 || string(pkt[:8]) != "OpusTags" {
			return fmt.Errorf("%w: no OpusTags packet", ErrMedia)
		}
	}
	o.headers++
	return nil
}

// opusDuration is the playing time of an Opus packet from its TOC byte
// (RFC 6716 §3.1).
func opusDuration(pkt []byte) (time.Duration, error) {
	if len(pkt) == 0 {
		return 0, fmt.Errorf("%w: empty Opus packet", ErrMedia)
	}
	toc := pkt[0]
	var frame time.Duration // duration of one frame
	cfg := toc >> 3
	switch {
	case cfg < 12: // SILK: 10, 20, 40, 60 ms
		frame = [4]time.Duration{10, 20, 40, 60}[cfg%4] * time.Millisecond
	case cfg < 16: // hybrid: 10, 20 ms
		frame = [2]time.Duration{10, 20}[cfg%2] * time.Millisecond
	default: // CELT: 2.5, 5, 10, 20 ms
		frame = [4]time.Duration{2500, 5000, 10000, 20000}[cfg%4] * time.Microsecond
	}
	frames := 1
	switch toc & 3 {
	case 1, 2:
		frames = 2
	case 3:
		if len(pkt) < 2 || pkt[1]&0x3f == 0 {
			return 0, fmt.Errorf("%w: Opus packet without a frame count", ErrMedia)
		}
		frames = int(pkt[1] & 0x3f)
	}
	d := frame * time.Duration(frames)
	if d > 120*time.Millisecond {
		return 0, fmt.Errorf("%w: Opus packet of %s", ErrMedia, d)
	}
	return d, nil
}
