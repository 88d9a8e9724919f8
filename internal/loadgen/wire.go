package loadgen

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strconv"

	"github.com/parleychat/parley/internal/api"
)

// The WebSocket frames of the hot path are written and read here without
// encoding/json's reflection: the tool shares the machine's cores with
// parleyd, and what it spends per message is taken from the server.
// Anything the fast reader does not recognise is decoded by encoding/json.

// frameIn is the part of a server frame the tool reads. decodeFrame fills
// it as json.Unmarshal would (FuzzDecodeFrame checks that).
type frameIn struct {
	Type     string      `json:"type"`
	ID       uint64      `json:"id"`
	Envelope *envelopeIn `json:"envelope"`
	Error    *api.Error  `json:"error"`
}

type envelopeIn struct {
	Seq        int64  `json:"seq"`
	MessageID  string `json:"message_id"`
	Ciphertext []byte `json:"ciphertext"`
}

// frameReader decodes frames into reused memory. One per receive loop.
type frameReader struct {
	f   frameIn
	env envelopeIn
	ct  []byte // ciphertext, reused
	sc  frameScanner
}

// decode reads data into r.f (valid until the next call).
func (r *frameReader) decode(data []byte) (*frameIn, error) {
	r.f = frameIn{}
	r.env = envelopeIn{Ciphertext: r.ct[:0]}
	if r.sc.scan(data, &r.f, &r.env) {
		if r.f.Envelope != nil {
			r.ct = r.env.Ciphertext
		}
		return &r.f, nil
	}
	r.f = frameIn{}
	if err := json.Unmarshal(data, &r.f); err != nil {
		return nil, err
	}
	return &r.f, nil
}

// frameScanner is a strict reader of the subset of JSON parleyd writes:
// one object; strings of printable ASCII without escapes; the keys of
// frameIn and envelopeIn at most once each, in any order, with values of
// their type; other keys with any value of that subset. For anything else
// (an "error" member, escapes, non-ASCII, null where a value is read,
// keys that differ from a field's name only in case) it gives up and the
// caller decodes with encoding/json.
type frameScanner struct {
	b []byte
	i int
}

const maxScanDepth = 32

func (s *frameScanner) scan(data []byte, f *frameIn, env *envelopeIn) bool {
	s.b, s.i = data, 0
	var seen [3]bool
	ok := s.object(func(key []byte) bool {
		switch {
		case string(key) == "type":
			if !first(&seen[0]) {
				return false
			}
			v, ok := s.str()
			switch string(v) { // the known types without an allocation
			case api.FrameEnvelope:
				f.Type = api.FrameEnvelope
			case api.FrameSent:
				f.Type = api.FrameSent
			case api.FrameDrained:
				f.Type = api.FrameDrained
			default:
				f.Type = string(v)
			}
			return ok
		case string(key) == "id":
			if !first(&seen[1]) {
				return false
			}
			n, ok := s.uint()
			f.ID = n
			return ok
		case string(key) == "envelope":
			if !first(&seen[2]) {
				return false
			}
			f.Envelope = env
			return s.envelope(env)
		case foldsTo(key, "type", "id", "envelope", "error"):
			return false
		}
		return s.skip(1)
	})
	if !ok {
		return false
	}
	s.ws()
	return s.i == len(s.b)
}

func (s *frameScanner) envelope(env *envelopeIn) bool {
	var seen [3]bool
	return s.object(func(key []byte) bool {
		switch {
		case string(key) == "seq":
			if !first(&seen[0]) {
				return false
			}
			n, ok := s.int()
			env.Seq = n
			return ok
		case string(key) == "message_id":
			if !first(&seen[1]) {
				return false
			}
			v, ok := s.str()
			env.MessageID = string(v)
			return ok
		case string(key) == "ciphertext":
			if !first(&seen[2]) {
				return false
			}
			v, ok := s.str()
			if !ok {
				return false
			}
			n := base64.StdEncoding.DecodedLen(len(v))
			dst := env.Ciphertext[:0]
			if cap(dst) < n {
				dst = make([]byte, n)
			}
			m, err := base64.StdEncoding.Decode(dst[:n], v)
			if err != nil {
				return false
			}
			env.Ciphertext = dst[:m]
			return true
		case foldsTo(key, "seq", "message_id", "ciphertext"):
			return false
		}
		return s.skip(2)
	})
}

// foldsTo reports whether key equals one of names ignoring case (as
// encoding/json matches keys); exact matches were taken before.
func foldsTo(key []byte, names ...string) bool {
	for _, n := range names {
		if bytes.EqualFold(key, []byte(n)) {
			return true
		}
	}
	return false
}

func (s *frameScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// object reads {"key": value, ...}, calling member with the reader at
// each value.
func (s *frameScanner) object(member func(key []byte) bool) bool {
	if empty, ok := s.begin('{', '}'); !ok || empty {
		return ok
	}
	for {
		s.ws()
		key, ok := s.str()
		if !ok {
			return false
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return false
		}
		s.i++
		s.ws()
		if !member(key) {
			return false
		}
		if more, ok := s.next('}'); !ok || !more {
			return ok
		}
	}
}

// begin reads the opening bracket of an object or array and reports
// whether the closing one follows at once.
func (s *frameScanner) begin(open, close byte) (empty, ok bool) {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != open {
		return false, false
	}
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == close {
		s.i++
		return true, true
	}
	return false, true
}

// next reads what follows a member or element: a comma (more follow) or
// the closing bracket.
func (s *frameScanner) next(close byte) (more, ok bool) {
	s.ws()
	if s.i >= len(s.b) {
		return false, false
	}
	switch s.b[s.i] {
	case ',':
		s.i++
		return true, true
	case close:
		s.i++
		return false, true
	}
	return false, false
}

// str reads a string of printable ASCII without escapes and returns its
// contents (a slice of the input).
func (s *frameScanner) str() ([]byte, bool) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false
	}
	start := s.i + 1
	for j := start; j < len(s.b); j++ {
		c := s.b[j]
		switch {
		case c == '"':
			s.i = j + 1
			return s.b[start:j], true
		case c < 0x20 || c >= 0x7f || c == '\\':
			return nil, false
		}
	}
	return nil, false
}

// number reads a JSON number and returns its text.
func (s *frameScanner) number() ([]byte, bool) {
	start := s.i
	b := s.b
	i := s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return nil, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return nil, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return nil, false
		}
	}
	s.i = i
	return b[start:i], true
}

func (s *frameScanner) uint() (uint64, bool) {
	t, ok := s.number()
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(string(t), 10, 64) // no allocation: the conversion is not kept
	return n, err == nil
}

func (s *frameScanner) int() (int64, bool) {
	t, ok := s.number()
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(string(t), 10, 64)
	return n, err == nil
}

// skip reads any value of the subset, nested at most maxScanDepth deep.
func (s *frameScanner) skip(depth int) bool {
	if depth > maxScanDepth || s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '"':
		_, ok := s.str()
		return ok
	case c == '{':
		return s.object(func([]byte) bool { return s.skip(depth + 1) })
	case c == '[':
		if empty, ok := s.begin('[', ']'); !ok || empty {
			return ok
		}
		for {
			s.ws()
			if !s.skip(depth + 1) {
				return false
			}
			if more, ok := s.next(']'); !ok || !more {
				return ok
			}
		}
	case c == 't':
		return s.lit("true")
	case c == 'f':
		return s.lit("false")
	case c == 'n':
		return s.lit("null")
	default:
		_, ok := s.number()
		return ok
	}
}

func (s *frameScanner) lit(w string) bool {
	if len(s.b)-s.i < len(w) || string(s.b[s.i:s.i+len(w)]) != w {
		return false
	}
	s.i += len(w)
	return true
}

// appendAckFrame appends {"type":"ack","seqs":[...]}.
func appendAckFrame(b []byte, seqs []int64) []byte {
	b = append(b, `{"type":"ack","seqs":[`...)
	for i, q := range seqs {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, q, 10)
	}
	return append(b, "]}"...)
}

// outEnvelope is one envelope of a send: the device it is for.
type outEnvelope struct {
	handle string
	id     uint32
}

// appendSendRequest appends the JSON of an api.SendRequest whose
// envelopes all carry ct.
func appendSendRequest(b []byte, messageID, to string, envs []outEnvelope, ct []byte) []byte {
	b = append(b, `{"message_id":`...)
	b = appendString(b, messageID)
	b = append(b, `,"to":`...)
	b = appendString(b, to)
	b = append(b, `,"envelopes":[`...)
	// The ciphertext's base64 is the same in every envelope: encode it
	// once and copy it.
	var b64 []byte
	for i, e := range envs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"handle":`...)
		b = appendString(b, e.handle)
		b = append(b, `,"device_id":`...)
		b = strconv.AppendUint(b, uint64(e.id), 10)
		b = append(b, `,"ciphertext":"`...)
		if b64 == nil {
			start := len(b)
			b = base64.StdEncoding.AppendEncode(b, ct)
			b64 = b[start:]
		} else {
			b = append(b, b64...)
		}
		b = append(b, `"}`...)
	}
	return append(b, "]}"...)
}

// appendSendFrame appends {"type":"send","id":id,"send":<request>}.
func appendSendFrame(b []byte, id uint64, messageID, to string, envs []outEnvelope, ct []byte) []byte {
	b = append(b, `{"type":"send","id":`...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, `,"send":`...)
	b = appendSendRequest(b, messageID, to, envs, ct)
	return append(b, '}')
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// first marks *seen and reports whether it was unmarked: a key given twice
// leaves the fast path (encoding/json would keep the last value).
func first(seen *bool) bool {
	if *seen {
		return false
	}
	*seen = true
	return true
}
