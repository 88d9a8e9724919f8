package call

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
)

// sample is one unit of media to send: an Opus packet or a VP8 frame.
type sample struct {
	data     []byte
	duration time.Duration
}

// source yields samples until io.EOF.
type source interface {
	next() (sample, error)
	close() error
}

// openAudio opens the audio to send: an Ogg Opus file, or built-in
// silence (path ""). With loop, the file starts again at its end, and the
// silence never ends; without, a file is played once and silence lasts
// defaultSilence.
func openAudio(path string, loop bool) (source, error) {
	if path == "" {
		n := -1
		if !loop {
			n = int(defaultSilence / (20 * time.Millisecond))
		}
		return &silence{left: n}, nil
	}
	open := func() (io.ReadCloser, error) { return os.Open(path) }
	f, err := open()
	if err != nil {
		return nil, fmt.Errorf("call: audio input: %w", err)
	}
	s := &oggSource{open: open, f: f, r: newOggOpusReader(f), loop: loop, path: path}
	// Check the headers now, so a wrong file fails before the call.
	first, err := s.r.next()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("call: audio input %s: %w", path, err)
	}
	s.first = &first
	return s, nil
}

// defaultSilence is how long the built-in audio lasts when not looping.
const defaultSilence = 2 * time.Second

type silence struct{ left int }

func (s *silence) next() (sample, error) {
	if s.left == 0 {
		return sample{}, io.EOF
	}
	if s.left > 0 {
		s.left--
	}
	return sample{data: OpusSilence, duration: 20 * time.Millisecond}, nil
}

func (s *silence) close() error { return nil }

type oggSource struct {
	open  func() (io.ReadCloser, error)
	f     io.ReadCloser
	r     *oggOpusReader
	first *OpusPacket
	loop  bool
	path  string
	sent  int // packets returned since the file was opened
}

func (s *oggSource) next() (sample, error) {
	if s.first != nil {
		p := *s.first
		s.first = nil
		s.sent++
		return sample{p.Data, p.Duration}, nil
	}
	p, err := s.r.next()
	if errors.Is(err, io.EOF) && s.loop && s.sent > 0 {
		s.f.Close()
		if s.f, err = s.open(); err != nil {
			return sample{}, fmt.Errorf("call: audio input: %w", err)
		}
		s.r, s.sent = newOggOpusReader(s.f), 0
		p, err = s.r.next()
	}
	if err != nil {
		if !errors.Is(err, io.EOF) {
			err = fmt.Errorf("call: audio input %s: %w", s.path, err)
		}
		return sample{}, err
	}
	s.sent++
	return sample{p.Data, p.Duration}, nil
}

func (s *oggSource) close() error { return s.f.Close() }

// openVideo opens the video to send: an IVF file of VP8 frames, or
// built-in test frames (path ""), looping like openAudio.
func openVideo(path string, loop bool) (source, error) {
	open := func() (io.ReadCloser, error) { return os.Open(path) }
	if path == "" {
		var buf bytes.Buffer
		n := 2 * TestFrameRate
		if err := WriteVP8IVF(&buf, n, 320, 240); err != nil {
			return nil, err
		}
		b := buf.Bytes()
		open = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
		path = "(built-in test frames)"
	}
	s := &ivfSource{open: open, loop: loop, path: path}
	if err := s.reopen(); err != nil {
		return nil, err
	}
	return s, nil
}

type ivfSource struct {
	open  func() (io.ReadCloser, error)
	f     io.ReadCloser
	r     *ivfreader.IVFReader
	frame time.Duration
	loop  bool
	path  string
	sent  int
}

func (s *ivfSource) reopen() error {
	if s.f != nil {
		s.f.Close()
	}
	f, err := s.open()
	if err != nil {
		return fmt.Errorf("call: video input: %w", err)
	}
	r, h, err := ivfreader.NewWith(f)
	if err != nil {
		f.Close()
		return fmt.Errorf("call: video input %s: %w: %w", s.path, ErrMedia, err)
	}
	if h.FourCC != "VP80" {
		f.Close()
		return fmt.Errorf("call: video input %s: %w: codec %q is not VP8", s.path, ErrMedia, h.FourCC)
	}
	if h.TimebaseDenominator == 0 || h.TimebaseNumerator == 0 {
		f.Close()
		return fmt.Errorf("call: video input %s: %w: no time base", s.path, ErrMedia)
	}
	s.frame = time.Duration(float64(time.Second) * float64(h.TimebaseNumerator) / float64(h.TimebaseDenominator))
	if s.frame < time.Millisecond || s.frame > time.Second {
		f.Close()
		return fmt.Errorf("call: video input %s: %w: frame time %s", s.path, ErrMedia, s.frame)
	}
	s.f, s.r, s.sent = f, r, 0
	return nil
}

func (s *ivfSource) next() (sample, error) {
	frame, _, err := s.r.ParseNextFrame()
	if errors.Is(err, io.EOF) && s.loop && s.sent > 0 {
		if err := s.reopen(); err != nil {
			return sample{}, err
		}
		frame, _, err = s.r.ParseNextFrame()
	}
	if errors.Is(err, io.EOF) {
		return sample{}, io.EOF
	}
	if err != nil {
		return sample{}, fmt.Errorf("call: video input %s: %w: %w", s.path, ErrMedia, err)
	}
	s.sent++
	return sample{frame, s.frame}, nil
}

func (s *ivfSource) close() error { return s.f.Close() }
