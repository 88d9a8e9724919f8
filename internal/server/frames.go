package server

import (
	"encoding/base64"
	"encoding/json"
	"strconv"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/store"
)

// The hot WebSocket frames, by hand.
//
// Every delivered envelope is a frame the server encodes, and every ack and
// send a frame it decodes; encoding/json spends its time on reflection,
// and on allocations for what it reads. The frames below are encoded by
// appending into the connection's reused buffer, byte for byte what
// json.Marshal writes (frames_test.go and FuzzAppendFrames compare them),
// and the two hot client frames are decoded by a scanner that accepts a
// strict subset of what json.Unmarshal accepts and yields the same
// api.Frame (FuzzParseFrameFast compares them). What the scanner does
// not accept it leaves to encoding/json: whitespace, escapes, non-ASCII,
// keys in another case or repeated, unknown keys, nulls, negative numbers
// or numbers that could overflow, other frame types. Clients write the
// frames with json.Marshal (or, like parley-load, as json.Marshal would),
// so the fallback is for the unusual.

// appendDeliveryFrame appends deliveryFrame(e) (realmtoken.go) as
// json.Marshal encodes it.
func appendDeliveryFrame(b []byte, e store.Envelope) ([]byte, error) {
	if e.SenderDevice == noticeDevice {
		return appendMarshal(b, deliveryFrame(e)) // rare: a server notice
	}
	b = append(b, `{"type":"envelope","envelope":{"seq":`...)
	b = strconv.AppendInt(b, e.Seq, 10)
	b = append(b, `,"message_id":`...)
	b = appendJSONString(b, e.MessageID)
	b = append(b, `,"sender":`...)
	b = appendJSONString(b, e.Sender)
	b = append(b, `,"sender_device":`...)
	b = strconv.AppendUint(b, uint64(e.SenderDevice), 10)
	b = append(b, `,"ciphertext":`...)
	b = appendJSONBytes(b, e.Ciphertext)
	b = append(b, `,"server_time":`...)
	b = strconv.AppendInt(b, e.ServerTime.UnixMilli(), 10)
	return append(b, "}}"...), nil
}

// appendFrame appends f as json.Marshal encodes it: by hand for the
// answers to sends (FrameSent, FrameError), through encoding/json for the
// rest (the rare frames: drained, device_list, notices).
func appendFrame(b []byte, f api.Frame) ([]byte, error) {
	if f.Envelope != nil || f.Seqs != nil || f.Handle != "" || f.Notice != nil || f.Send != nil ||
		(f.Type != api.FrameSent && f.Type != api.FrameError) {
		return appendMarshal(b, f)
	}
	b = append(b, `{"type":`...)
	b = appendJSONString(b, f.Type)
	if f.ID != 0 {
		b = append(b, `,"id":`...)
		b = strconv.AppendUint(b, f.ID, 10)
	}
	if r := f.Sent; r != nil {
		b = append(b, `,"sent":{"message_id":`...)
		b = appendJSONString(b, r.MessageID)
		b = append(b, `,"server_time":`...)
		b = strconv.AppendInt(b, r.ServerTime, 10)
		if r.Duplicate {
			b = append(b, `,"duplicate":true`...)
		}
		b = append(b, '}')
	}
	if e := f.Error; e != nil {
		b = append(b, `,"error":`...)
		b = appendAPIError(b, e)
	}
	return append(b, '}'), nil
}

// appendAPIError appends e as json.Marshal encodes an api.Error.
func appendAPIError(b []byte, e *api.Error) []byte {
	b = append(b, `{"code":`...)
	b = appendJSONString(b, e.Code)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, e.Message)
	if len(e.Mismatch) > 0 {
		b = append(b, `,"mismatch":[`...)
		for i, m := range e.Mismatch {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"handle":`...)
			b = appendJSONString(b, m.Handle)
			b = append(b, `,"current":`...)
			if m.Current == nil {
				b = append(b, "null"...)
			} else {
				b = appendUint32s(b, m.Current)
			}
			if len(m.Missing) > 0 {
				b = append(b, `,"missing":`...)
				b = appendUint32s(b, m.Missing)
			}
			if len(m.Extra) > 0 {
				b = append(b, `,"extra":`...)
				b = appendUint32s(b, m.Extra)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

func appendUint32s(b []byte, v []uint32) []byte {
	b = append(b, '[')
	for i, x := range v {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, uint64(x), 10)
	}
	return append(b, ']')
}

// appendMarshal appends json.Marshal(v).
func appendMarshal(b []byte, v any) ([]byte, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return b, err
	}
	return append(b, j...), nil
}

// appendJSONString appends s as json.Marshal encodes a string. Strings
// of printable ASCII that json.Marshal leaves unescaped (it escapes '"',
// '\\' and, for HTML, '<', '>' and '&') are copied; any other goes
// through encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			j, _ := json.Marshal(s) // a string always encodes
			return append(b, j...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendJSONBytes appends v as json.Marshal encodes a []byte: standard
// base64 with padding, null for a nil slice.
func appendJSONBytes(b []byte, v []byte) []byte {
	if v == nil {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, v)
	return append(b, '"')
}

// parseFrameFast decodes the common forms of the client's ack and send
// frames: JSON without whitespace, keys exactly as api.Frame names them,
// each at most once, strings of printable ASCII without escapes, numbers
// of digits only. It returns what json.Unmarshal into an api.Frame
// returns, or ok false for anything else: the caller then asks
// encoding/json, which may still accept it.
func parseFrameFast(data []byte) (f api.Frame, ok bool) {
	p := frameParser{b: data}
	if !p.frame(&f) || p.i != len(p.b) {
		return api.Frame{}, false
	}
	return f, true
}

// frameParser scans one frame; every method returns false where the
// input leaves the subset it accepts.
type frameParser struct {
	b []byte
	i int
	// ciphertext spans of the send being read, decoded at its end into
	// one allocation
	spans []ctSpan
}

// ctSpan is the base64 text of envelope env's ciphertext: b[from:to].
type ctSpan struct{ env, from, to int }

// Keys, each seen at most once.
const (
	seenType = 1 << iota
	seenSeqs
	seenID
	seenSend
)

// object reads {"key":value,...}: field reads the value of one key and
// returns the key's bit, or 0 where the key is unknown or its value leaves
// the subset. A key seen twice leaves it too (encoding/json would keep the
// last), and so does an empty object unless empty is true.
func (p *frameParser) object(empty bool, field func(key []byte) (bit int)) bool {
	if !p.next('{') {
		return false
	}
	if empty && p.next('}') {
		return true
	}
	seen := 0
	for {
		key, ok := p.str()
		if !ok || !p.next(':') {
			return false
		}
		bit := field(key)
		if bit == 0 || seen&bit != 0 {
			return false
		}
		seen |= bit
		if p.next('}') {
			return true
		}
		if !p.next(',') {
			return false
		}
	}
}

func (p *frameParser) frame(f *api.Frame) bool {
	return p.object(false, func(key []byte) int {
		switch string(key) {
		case "type":
			v, ok := p.str()
			if !ok {
				return 0
			}
			switch string(v) {
			case api.FrameAck:
				f.Type = api.FrameAck
			case api.FrameSend:
				f.Type = api.FrameSend
			default:
				return 0
			}
			return seenType
		case "seqs":
			if !p.seqs(f) {
				return 0
			}
			return seenSeqs
		case "id":
			v, ok := p.uint(19) // < 10^19 fits a uint64
			if !ok {
				return 0
			}
			f.ID = v
			return seenID
		case "send":
			f.Send = new(api.SendRequest)
			if !p.send(f.Send) {
				return 0
			}
			return seenSend
		}
		return 0
	})
}

func (p *frameParser) seqs(f *api.Frame) bool {
	if !p.next('[') {
		return false
	}
	// Count the elements first: one allocation of the right size.
	n := 0
	if p.i < len(p.b) && p.b[p.i] != ']' {
		n = 1
		for j := p.i; j < len(p.b) && p.b[j] != ']'; j++ {
			if p.b[j] == ',' {
				n++
			}
		}
	}
	f.Seqs = make([]int64, 0, n)
	return p.elements(func() bool {
		v, ok := p.uint(18) // < 10^18 fits an int64
		if ok {
			f.Seqs = append(f.Seqs, int64(v))
		}
		return ok
	})
}

// elements reads the elements of an array whose '[' has been read, each
// with elem, and the closing ']'.
func (p *frameParser) elements(elem func() bool) bool {
	if p.next(']') {
		return true
	}
	for {
		if !elem() {
			return false
		}
		if p.next(']') {
			return true
		}
		if !p.next(',') {
			return false
		}
	}
}

// Keys of a SendRequest.
const (
	seenMessageID = 1 << iota
	seenTo
	seenEnvelopes
	seenExpiresAt
)

func (p *frameParser) send(r *api.SendRequest) bool {
	p.spans = make([]ctSpan, 0, 4)
	return p.object(true, func(key []byte) int {
		switch string(key) {
		case "message_id":
			v, ok := p.str()
			if !ok {
				return 0
			}
			r.MessageID = string(v)
			return seenMessageID
		case "to":
			v, ok := p.str()
			if !ok {
				return 0
			}
			r.To = string(v)
			return seenTo
		case "envelopes":
			if !p.envelopes(r) {
				return 0
			}
			return seenEnvelopes
		case "expires_at":
			v, ok := p.uint(18)
			if !ok {
				return 0
			}
			r.ExpiresAt = int64(v)
			return seenExpiresAt
		}
		return 0
	}) && p.ciphertexts(r)
}

func (p *frameParser) envelopes(r *api.SendRequest) bool {
	if !p.next('[') {
		return false
	}
	r.Envelopes = make([]api.OutgoingEnvelope, 0, 4)
	return p.elements(func() bool {
		r.Envelopes = append(r.Envelopes, api.OutgoingEnvelope{})
		return p.envelope(r, len(r.Envelopes)-1)
	})
}

// Keys of an OutgoingEnvelope.
const (
	seenHandle = 1 << iota
	seenDeviceID
	seenCiphertext
)

func (p *frameParser) envelope(r *api.SendRequest, k int) bool {
	e := &r.Envelopes[k]
	return p.object(true, func(key []byte) int {
		switch string(key) {
		case "handle":
			v, ok := p.str()
			if !ok {
				return 0
			}
			e.Handle = internHandle(r, k, v)
			return seenHandle
		case "device_id":
			v, ok := p.uint(10)
			if !ok || v > 1<<32-1 {
				return 0
			}
			e.DeviceID = uint32(v)
			return seenDeviceID
		case "ciphertext":
			from := p.i + 1
			if _, ok := p.str(); !ok {
				return 0
			}
			p.spans = append(p.spans, ctSpan{env: k, from: from, to: p.i - 1})
			return seenCiphertext
		}
		return 0
	})
}

// internHandle returns v as a string, the same string as an earlier
// handle of the send when it is equal: a send's envelopes name two
// accounts, each several times.
func internHandle(r *api.SendRequest, k int, v []byte) string {
	if string(v) == r.To {
		return r.To
	}
	for _, e := range r.Envelopes[:k] {
		if string(v) == e.Handle {
			return e.Handle
		}
	}
	return string(v)
}

// ciphertexts decodes the ciphertexts of a send's envelopes, as
// encoding/json decodes a []byte (base64.StdEncoding, and an empty
// string to an empty slice), into one allocation.
func (p *frameParser) ciphertexts(r *api.SendRequest) bool {
	total := 0
	for _, s := range p.spans {
		total += base64.StdEncoding.DecodedLen(s.to - s.from)
	}
	buf := make([]byte, total)
	for _, s := range p.spans {
		n, err := base64.StdEncoding.Decode(buf, p.b[s.from:s.to])
		if err != nil {
			return false
		}
		r.Envelopes[s.env].Ciphertext = buf[:n:n]
		buf = buf[n:]
	}
	return true
}

// next consumes c if it comes next.
func (p *frameParser) next(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// str consumes a string of printable ASCII without escapes and returns
// its contents.
func (p *frameParser) str() ([]byte, bool) {
	if !p.next('"') {
		return nil, false
	}
	from := p.i
	for ; p.i < len(p.b); p.i++ {
		switch c := p.b[p.i]; {
		case c == '"':
			p.i++
			return p.b[from : p.i-1], true
		case c < 0x20 || c > 0x7e || c == '\\':
			return nil, false
		}
	}
	return nil, false
}

// uint consumes a JSON number of at most maxDigits digits without sign,
// fraction or exponent.
func (p *frameParser) uint(maxDigits int) (uint64, bool) {
	from := p.i
	var v uint64
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		v = v*10 + uint64(p.b[p.i]-'0')
		p.i++
	}
	n := p.i - from
	if n == 0 || n > maxDigits || (n > 1 && p.b[from] == '0') {
		return 0, false
	}
	// A fraction or an exponent would follow here: not ours.
	if p.i < len(p.b) && (p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		return 0, false
	}
	return v, true
}
