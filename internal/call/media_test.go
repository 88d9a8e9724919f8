package call

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"
)

var update = flag.Bool("update", false, "rewrite the files in testdata")

func TestOpusSilenceFile(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteOpusSilence(&buf, 50); err != nil {
		t.Fatal(err)
	}
	r := newOggOpusReader(bytes.NewReader(buf.Bytes()))
	n := 0
	var total time.Duration
	for {
		p, err := r.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(p.Data, OpusSilence) {
			t.Fatalf("packet %d: %x", n, p.Data)
		}
		n++
		total += p.Duration
	}
	if n != 50 || total != time.Second {
		t.Fatalf("%d packets, %s", n, total)
	}
}

// A file written by pion's oggwriter (one packet a page) and one with many
// packets a page and a packet across pages read the same.
func TestOggReaderLacing(t *testing.T) {
	var buf bytes.Buffer
	w, err := oggwriter.NewWith(&buf, 48000, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		payload := append([]byte{0xfc}, bytes.Repeat([]byte{byte(i)}, 10*i)...) // CELT 20 ms stereo
		if err := w.WriteRTP(&rtp.Packet{Header: rtp.Header{SequenceNumber: uint16(i), Timestamp: uint32(960 * i)}, Payload: payload}); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	pkts := readAll(t, buf.Bytes())
	if len(pkts) != 10 || len(pkts[9].Data) != 91 {
		t.Fatalf("oggwriter file: %d packets", len(pkts))
	}

	// Hand-made: OpusHead, OpusTags, then a page with three packets of
	// which the last (600 bytes) continues on the next page.
	head := append([]byte("OpusHead"), 1, 2, 0, 0, 0x80, 0xbb, 0, 0, 0, 0, 0)
	tags := append([]byte("OpusTags"), 0, 0, 0, 0, 0, 0, 0, 0)
	big := append([]byte{0xfc}, bytes.Repeat([]byte{7}, 599)...)
	var f bytes.Buffer
	write := func(p *oggPage) {
		b, err := p.marshal()
		if err != nil {
			t.Fatal(err)
		}
		f.Write(b)
	}
	write(&oggPage{HeaderType: oggBOS, Serial: 9, Segments: []uint8{19}, Payload: head})
	write(&oggPage{Serial: 9, Sequence: 1, Segments: []uint8{16}, Payload: tags})
	a, b := []byte{0xfc, 1}, append([]byte{0xfc}, bytes.Repeat([]byte{2}, 254)...) // 255 bytes: lacing 255, 0
	payload := append(append(append([]byte{}, a...), b...), big[:510]...)
	write(&oggPage{Serial: 9, Sequence: 2, Segments: []uint8{2, 255, 0, 255, 255}, Payload: payload})
	write(&oggPage{HeaderType: oggContinued | oggEOS, Serial: 9, Sequence: 3, Segments: []uint8{90}, Payload: big[510:]})
	pkts = readAll(t, f.Bytes())
	if len(pkts) != 3 || !bytes.Equal(pkts[0].Data, a) || !bytes.Equal(pkts[1].Data, b) || !bytes.Equal(pkts[2].Data, big) {
		t.Fatalf("got %d packets", len(pkts))
	}
	if pkts[2].Duration != 20*time.Millisecond {
		t.Fatalf("duration %s", pkts[2].Duration)
	}
}

func readAll(t *testing.T, b []byte) []OpusPacket {
	t.Helper()
	r := newOggOpusReader(bytes.NewReader(b))
	var out []OpusPacket
	for {
		p, err := r.next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
}

func TestOggReaderRejects(t *testing.T) {
	var good bytes.Buffer
	WriteOpusSilence(&good, 3)
	g := good.Bytes()
	for name, b := range map[string][]byte{
		"empty":     nil,
		"not ogg":   []byte("RIFF....WAVEfmt "),
		"truncated": g[:len(g)-2],
		"checksum":  append(append([]byte{}, g[:30]...), append([]byte{g[30] ^ 1}, g[31:]...)...),
		"no head":   g[47:], // starts at the OpusTags page
	} {
		r := newOggOpusReader(bytes.NewReader(b))
		var err error
		for err == nil {
			_, err = r.next()
		}
		if !errors.Is(err, ErrMedia) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestOpusDuration(t *testing.T) {
	for _, tc := range []struct {
		pkt  []byte
		want time.Duration
	}{
		{[]byte{0xf8}, 20 * time.Millisecond},        // CELT FB 20 ms
		{[]byte{0xe0}, 2500 * time.Microsecond},      // CELT FB 2.5 ms
		{[]byte{0x08}, 20 * time.Millisecond},        // SILK NB 20 ms
		{[]byte{0x18}, 60 * time.Millisecond},        // SILK NB 60 ms
		{[]byte{0x78}, 20 * time.Millisecond},        // hybrid FB 20 ms
		{[]byte{0xf9}, 40 * time.Millisecond},        // two frames
		{[]byte{0xfb, 0x03}, 60 * time.Millisecond},  // code 3, three frames
		{[]byte{0xe3, 0x30}, 120 * time.Millisecond}, // 48 × 2.5 ms
	} {
		got, err := opusDuration(tc.pkt)
		if err != nil || got != tc.want {
			t.Errorf("%x: %s %v, want %s", tc.pkt, got, err, tc.want)
		}
	}
	for _, bad := range [][]byte{nil, {0xfb}, {0xfb, 0x00}, {0x1b, 0x03}} {
		if _, err := opusDuration(bad); !errors.Is(err, ErrMedia) {
			t.Errorf("%x: %v", bad, err)
		}
	}
}

func TestVP8IVFFile(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteVP8IVF(&buf, 45, 320, 240); err != nil {
		t.Fatal(err)
	}
	r, h, err := ivfreader.NewWith(bytes.NewReader(buf.Bytes()))
	if err != nil || h.FourCC != "VP80" || h.Width != 320 || h.NumFrames != 45 {
		t.Fatalf("%+v %v", h, err)
	}
	for i := range 45 {
		f, _, err := r.ParseNextFrame()
		if err != nil {
			t.Fatal(err)
		}
		key := f[0]&1 == 0
		if key != (i%30 == 0) {
			t.Fatalf("frame %d: key %v", i, key)
		}
		// RFC 6386 §9.1: the first partition fits in the frame.
		first := int(uint32(f[0])|uint32(f[1])<<8|uint32(f[2])<<16) >> 5
		if f[0]&0x10 == 0 || first >= len(f) {
			t.Fatalf("frame %d: bad tag %x", i, f[:3])
		}
		if key && !bytes.Equal(f[3:6], []byte{0x9d, 0x01, 0x2a}) {
			t.Fatalf("frame %d: no start code", i)
		}
	}
	// The sources read them, looping or not.
	path := filepath.Join(t.TempDir(), "v.ivf")
	os.WriteFile(path, buf.Bytes(), 0o600)
	for _, loop := range []bool{false, true} {
		src, err := openVideo(path, loop)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for ; n < 100; n++ {
			s, err := src.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.duration != time.Second/TestFrameRate {
				t.Fatalf("frame time %s", s.duration)
			}
		}
		src.close()
		if want := map[bool]int{false: 45, true: 100}[loop]; n != want {
			t.Fatalf("loop %v: %d frames, want %d", loop, n, want)
		}
	}
	if _, err := openVideo(filepath.Join(t.TempDir(), "missing.ivf"), false); err == nil {
		t.Fatal("opened a missing file")
	}
	os.WriteFile(path, []byte("DKIF not really"), 0o600)
	if _, err := openVideo(path, false); !errors.Is(err, ErrMedia) {
		t.Fatalf("bad IVF: %v", err)
	}
}

func TestAudioSources(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.ogg")
	var buf bytes.Buffer
	WriteOpusSilence(&buf, 7)
	os.WriteFile(path, buf.Bytes(), 0o600)
	count := func(s source, max int) int {
		n := 0
		for ; n < max; n++ {
			if _, err := s.next(); err != nil {
				if !errors.Is(err, io.EOF) {
					t.Fatal(err)
				}
				break
			}
		}
		s.close()
		return n
	}
	for _, tc := range []struct {
		path string
		loop bool
		want int
	}{{path, false, 7}, {path, true, 200}, {"", false, int(defaultSilence / (20 * time.Millisecond))}, {"", true, 200}} {
		s, err := openAudio(tc.path, tc.loop)
		if err != nil {
			t.Fatal(err)
		}
		if n := count(s, 200); n != tc.want {
			t.Errorf("%q loop %v: %d packets, want %d", tc.path, tc.loop, n, tc.want)
		}
	}
	os.WriteFile(path, []byte("not ogg at all, nope"), 0o600)
	if _, err := openAudio(path, false); !errors.Is(err, ErrMedia) {
		t.Fatalf("bad Ogg: %v", err)
	}
}

// TestTestdata keeps testdata's media files equal to the generators'
// output. Regenerate with go test ./internal/call -run TestTestdata -update
func TestTestdata(t *testing.T) {
	for name, gen := range map[string]func(io.Writer) error{
		"silence-100.ogg": func(w io.Writer) error { return WriteOpusSilence(w, 100) },
		"test-60.ivf":     func(w io.Writer) error { return WriteVP8IVF(w, 60, 320, 240) },
	} {
		var buf bytes.Buffer
		if err := gen(&buf); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, buf.Bytes()) {
			t.Fatalf("%s differs from the generator (run with -update): %v", path, err)
		}
	}
}

func TestFingerprint(t *testing.T) {
	der := selfSigned(t)
	fp, _ := certFingerprint("sha-256", der)
	sdp := "v=0\r\na=group:BUNDLE 0\r\na=fingerprint:sha-256 " + strings.ToLower(fp) + "\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
	if err := checkFingerprint(sdp, der); err != nil {
		t.Fatal(err)
	}
	other := selfSigned(t)
	if err := checkFingerprint(sdp, other); !errors.Is(err, ErrFingerprint) {
		t.Fatalf("another certificate: %v", err)
	}
	tampered := strings.Replace(sdp, strings.ToLower(fp[:2]), "00", 1)
	if strings.HasPrefix(strings.ToLower(fp), "00") {
		tampered = strings.Replace(sdp, "00", "11", 1)
	}
	if err := checkFingerprint(tampered, der); !errors.Is(err, ErrFingerprint) {
		t.Fatalf("tampered fingerprint: %v", err)
	}
	sha1fp, _ := certFingerprint("sha-1", der)
	if err := checkFingerprint("a=fingerprint:sha-1 "+sha1fp+"\r\n", der); !errors.Is(err, ErrFingerprint) {
		t.Fatalf("SHA-1 only: %v", err)
	}
	if err := checkFingerprint("v=0\r\n", der); !errors.Is(err, ErrFingerprint) {
		t.Fatalf("no fingerprint: %v", err)
	}
	if err := checkFingerprint(sdp, nil); !errors.Is(err, ErrFingerprint) {
		t.Fatalf("no certificate: %v", err)
	}
	fp512, _ := certFingerprint("sha-512", der)
	if err := checkFingerprint("a=fingerprint:SHA-512 "+fp512+"\n", der); err != nil {
		t.Fatalf("sha-512: %v", err)
	}
}

func selfSigned(t *testing.T) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "webrtc"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func FuzzOggPage(f *testing.F) {
	var buf bytes.Buffer
	WriteOpusSilence(&buf, 1)
	b := buf.Bytes()
	f.Add(b[:47])   // OpusHead page
	f.Add(b[47:91]) // OpusTags page
	f.Add(b[91:])   // audio page
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseOggPage(b)
		if err != nil {
			return
		}
		again, err := p.marshal()
		if err != nil {
			t.Fatalf("a parsed page does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("round trip changed the bytes:\n%x\n%x", b, again)
		}
	})
}

// TestWriteOggSeeds keeps the fuzz corpus: regenerate with -update.
func TestWriteOggSeeds(t *testing.T) {
	var buf bytes.Buffer
	WriteOpusSilence(&buf, 1)
	b := buf.Bytes()
	for name, seed := range map[string][]byte{"opushead": b[:47], "opustags": b[47:91], "audio": b[91:]} {
		if _, err := parseOggPage(seed); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", seed)
		path := filepath.Join("testdata", "fuzz", "FuzzOggPage", name)
		if *update {
			os.WriteFile(path, []byte(want), 0o644)
		}
		if got, err := os.ReadFile(path); err != nil || string(got) != want {
			t.Fatalf("%s: stale seed (run with -update): %v", path, err)
		}
	}
}
