package content

import (
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// CallType says what a call signalling message does.
type CallType uint8

// Call signalling types. A caller sends the offer to every device of the
// callee (and, as a copy, to its own other devices); each callee device
// answers with ringing, busy or decline, or takes the call with answer. The
// caller keeps the first answer and tells the callee's devices with
// answered-elsewhere (Device = the device that took it). Hangup ends the
// call from either side, before or after it was answered.
const (
	CallOffer             CallType = 1 // SDP offer (with its DTLS fingerprint)
	CallAnswer            CallType = 2 // SDP answer
	CallICE               CallType = 3 // one trickled ICE candidate
	CallRinging           CallType = 4 // a callee device is ringing
	CallBusy              CallType = 5 // a callee device is in another call
	CallDecline           CallType = 6 // the callee declined
	CallHangup            CallType = 7 // the call ends (or the caller gave up before an answer)
	CallAnsweredElsewhere CallType = 8 // another device (Device) took the call: stop ringing
)

var callTypeNames = [...]string{
	CallOffer: "offer", CallAnswer: "answer", CallICE: "ice", CallRinging: "ringing",
	CallBusy: "busy", CallDecline: "decline", CallHangup: "hangup", CallAnsweredElsewhere: "answered-elsewhere",
}

func (t CallType) valid() bool { return t >= CallOffer && t <= CallAnsweredElsewhere }

// String returns the type's name ("offer", "answered-elsewhere", ...).
func (t CallType) String() string {
	if t.valid() {
		return callTypeNames[t]
	}
	return fmt.Sprintf("call-type-%d", uint8(t))
}

// ParseCallType is the inverse of CallType.String.
func ParseCallType(s string) (CallType, bool) {
	for t, name := range callTypeNames {
		if name != "" && name == s {
			return CallType(t), true
		}
	}
	return 0, false
}

// Media are the kinds of media a call carries (a bit set).
type Media uint8

const (
	MediaAudio Media = 1 << 0
	MediaVideo Media = 1 << 1
	mediaAll         = MediaAudio | MediaVideo
)

// Call is the signalling payload of a KindCall content.
type Call struct {
	ID         [16]byte // call id, random, chosen by the caller; the same in every message of the call
	Type       CallType
	Media      Media  // offer, answer: the media the sender offers
	Device     uint32 // answered-elsewhere: the callee device that took the call; otherwise the device the message is for (0: any)
	SDP        string // offer, answer: the session description
	Candidate  string // ice: the candidate attribute value ("" marks the end of candidates)
	MID        string // ice: the media stream identification of the candidate
	MLineIndex uint16 // ice: the m-line index of the candidate
}

// addCall appends the call section of the encoding: present for KindCall
// only, as
//
//	u8 type || id (16) || u8 media || u32 device || u32-len sdp
//	|| u16-len candidate || u8-len mid || u16 mline_index
func addCall(b *cryptobyte.Builder, k Kind, c *Call) error {
	if k != KindCall {
		if c != nil {
			return fmt.Errorf("%w: a call section on kind %d", ErrMalformed, k)
		}
		return nil
	}
	if c == nil {
		return fmt.Errorf("%w: a call message without its call section", ErrMalformed)
	}
	if !c.Type.valid() {
		return fmt.Errorf("%w: unknown call type %d", ErrMalformed, c.Type)
	}
	if c.Media&^mediaAll != 0 {
		return fmt.Errorf("%w: unknown media flags %#x", ErrMalformed, uint8(c.Media))
	}
	if len(c.Candidate) > 0xffff || len(c.MID) > 0xff || int64(len(c.SDP)) > 0xffffffff {
		return fmt.Errorf("%w: call field too long", ErrMalformed)
	}
	b.AddUint8(uint8(c.Type))
	b.AddBytes(c.ID[:])
	b.AddUint8(uint8(c.Media))
	b.AddUint32(c.Device)
	b.AddUint32LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(c.SDP)) })
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(c.Candidate)) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(c.MID)) })
	b.AddUint16(c.MLineIndex)
	return nil
}

// readCall reads addCall's section for kind k (nothing for other kinds).
func readCall(s *cryptobyte.String, k Kind) (*Call, bool) {
	if k != KindCall {
		return nil, true
	}
	c := new(Call)
	var typ, media uint8
	var sdpLen uint32
	var sdp []byte
	var cand, mid cryptobyte.String
	if !s.ReadUint8(&typ) || !s.CopyBytes(c.ID[:]) || !s.ReadUint8(&media) || !s.ReadUint32(&c.Device) ||
		!s.ReadUint32(&sdpLen) || uint64(sdpLen) > uint64(len(*s)) || !s.ReadBytes(&sdp, int(sdpLen)) ||
		!s.ReadUint16LengthPrefixed(&cand) || !s.ReadUint8LengthPrefixed(&mid) || !s.ReadUint16(&c.MLineIndex) {
		return nil, false
	}
	c.Type, c.Media = CallType(typ), Media(media)
	if !c.Type.valid() || c.Media&^mediaAll != 0 {
		return nil, false
	}
	c.SDP, c.Candidate, c.MID = string(sdp), string(cand), string(mid)
	return c, true
}
