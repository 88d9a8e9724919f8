// Package call is the Go client's call engine: it places and answers
// one-to-one voice and video calls with github.com/pion/webrtc/v4,
// signalling through end-to-end-encrypted messages (content.Call), sending
// Opus audio and VP8 video from files (or built-in test media) and
// recording what it receives.
//
// The offer and answer, and with them the DTLS certificate fingerprints,
// travel only inside the Double Ratchet sessions, so the server cannot
// substitute its own (RFC 8827 §6.5): pion refuses a DTLS peer whose
// certificate does not match the fingerprint of the remote description, and
// the engine checks it once more when the call connects.
//
// The engine knows nothing of the network of messages: a Signaler sends
// signals (client.Client.SendCall), and the application hands every
// received one to Engine.Handle.
package call

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	"github.com/parleychat/parley/internal/content"
	"github.com/parleychat/parley/internal/pionlog"
)

// Errors.
var (
	ErrClosed      = errors.New("call: engine closed")
	ErrNoRelay     = errors.New("call: relay-only needs a TURN relay, and the server offers none")
	ErrFingerprint = errors.New("call: the peer's DTLS certificate does not match the fingerprint it sent end-to-end encrypted")
	ErrState       = errors.New("call: not possible in the call's state")
)

// Signaler sends a call signalling message, end-to-end encrypted, to every
// device of peer and as copies to this account's other devices.
type Signaler interface {
	SendCall(ctx context.Context, peer string, c *content.Call) error
}

// Signal is a received call signalling message.
type Signal struct {
	content.Call
	Peer string // the other party of the call
	Own  bool   // sent by another device of this account (a copy)
	// SenderDevice is the sending device (Call.Device is the device the
	// signal is for, or 0).
	SenderDevice uint32
	ServerTime   time.Time // when the server stored it; zero if unknown
}

// Options configure an Engine.
type Options struct {
	Signaler Signaler
	// DeviceID is this device's id: the callee device that took a call is
	// named in answered-elsewhere.
	DeviceID uint32
	// ICEServers returns the STUN/TURN servers for a call (from the
	// server's GET /v1/turn); nil means none (direct connections only).
	ICEServers func(ctx context.Context) ([]webrtc.ICEServer, error)
	// SettingEngine, if set, configures pion's network use (tests use it
	// to stay on loopback). Certificate fingerprint verification is
	// always on, whatever it says.
	SettingEngine *webrtc.SettingEngine
	// RingTimeout bounds ringing; an incoming offer older than it (by the
	// server's clock) is not rung. 0 uses DefaultRingTimeout.
	RingTimeout time.Duration
	// ConnectTimeout bounds the time from answer to connected. 0 uses
	// DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// OnEvent gets every event, from the engine's goroutines; it must not
	// block.
	OnEvent func(Event)
	Logger  *slog.Logger
}

// Defaults.
const (
	DefaultRingTimeout    = 60 * time.Second
	DefaultConnectTimeout = 30 * time.Second
	gatherTimeout         = 10 * time.Second
	signalTimeout         = 30 * time.Second
	drainTime             = 500 * time.Millisecond
)

// Media says what a device sends and records in a call.
type Media struct {
	Video     bool   // send video (with VideoIn or built-in test frames)
	AudioIn   string // Ogg Opus file to send; "" sends silence
	VideoIn   string // IVF (VP8) file to send; "" sends test frames
	Loop      bool   // start the inputs again when they end
	RecordDir string // write what is received there; "" records nothing
	RelayOnly bool   // gather relay candidates only: the peer never learns this device's addresses
	// For hangs up this long after the call connected; 0: no limit.
	For time.Duration
	// HangupAfterInput hangs up once the (not looping) inputs were sent.
	HangupAfterInput bool
}

// Event types.
const (
	EventCalling           = "calling"            // outgoing: the offer went out
	EventRemoteRinging     = "remote_ringing"     // outgoing: a device of the callee rings (Device)
	EventRinging           = "ringing"            // incoming: this device rings (Call is set: Answer or Decline it)
	EventAnswered          = "answered"           // the call was taken (outgoing: by Device; incoming: here)
	EventAnsweredElsewhere = "answered_elsewhere" // incoming: another device of this account took it; stop ringing
	EventConnected         = "connected"          // media flows (Path says how)
	EventTrack             = "track"              // receiving a track (Kind)
	EventEnded             = "ended"              // the call is over (Result)
)

// Event is something that happened to a call.
type Event struct {
	Type   string
	CallID string
	Peer   string
	Device uint32
	Video  bool   // ringing: the offer includes video
	Kind   string // track: "audio" or "video"
	Path   *Path
	Result *Result
	Call   *Call // ringing: the call to answer
}

// Path is the candidate pair a call's media took.
type Path struct {
	Local, Remote         string // candidate types: "host", "srflx", "prflx", "relay"
	LocalAddr, RemoteAddr string
	Protocol              string // "udp" or "tcp"
}

// Result is how a call ended.
type Result struct {
	Reason     string // Reason*
	Err        error  // for ReasonFailed
	Connected  bool   // media flowed at some point
	Duration   time.Duration
	Stats      Stats
	Recordings []string
}

// End reasons.
const (
	ReasonHangup            = "hangup"             // this side hung up
	ReasonRemoteHangup      = "remote_hangup"      // the peer hung up
	ReasonDeclined          = "declined"           // the callee declined (or, incoming, this account declined on another device)
	ReasonBusy              = "busy"               // the callee is in another call
	ReasonNoAnswer          = "no_answer"          // nobody answered within the ring timeout
	ReasonAnsweredElsewhere = "answered_elsewhere" // another device of this account took it
	ReasonFailed            = "failed"             // the connection failed (Err)
)

// Stats count a call's media.
type Stats struct {
	AudioSent, VideoSent           int64 // Opus packets, VP8 frames
	AudioSentBytes, VideoSentBytes int64
	AudioRecv, VideoRecv           int64 // RTP packets received
	AudioRecvBytes, VideoRecvBytes int64
	VideoFramesRecv                int64 // complete frames (RTP marker bit)
}

// Engine runs the calls of one device.
type Engine struct {
	o   Options
	api *webrtc.API
	log *slog.Logger

	mu     sync.Mutex
	calls  map[[16]byte]*Call
	closed bool
}

// New returns an engine.
func New(o Options) (*Engine, error) {
	if o.Signaler == nil {
		return nil, errors.New("call: Options.Signaler is nil")
	}
	if o.RingTimeout <= 0 {
		o.RingTimeout = DefaultRingTimeout
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.OnEvent == nil {
		o.OnEvent = func(Event) {}
	}
	var se webrtc.SettingEngine
	if o.SettingEngine != nil {
		se = *o.SettingEngine
	}
	// RFC 8827: the certificate must match the fingerprint we got end to
	// end; never let a configuration turn that off.
	se.DisableCertificateFingerprintVerification(false)
	if se.LoggerFactory == nil {
		se.LoggerFactory = pionlog.Factory{Logger: o.Logger.With("component", "webrtc")}
	}
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		return nil, fmt.Errorf("call: %w", err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
		return nil, fmt.Errorf("call: %w", err)
	}
	return &Engine{
		o:     o,
		api:   webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(ir)),
		log:   o.Logger,
		calls: map[[16]byte]*Call{},
	}, nil
}

// Close hangs up every call and waits for them to end.
func (e *Engine) Close() {
	e.mu.Lock()
	e.closed = true
	var calls []*Call
	for _, c := range e.calls {
		calls = append(calls, c)
	}
	e.mu.Unlock()
	for _, c := range calls {
		c.Hangup()
		<-c.Done()
	}
}

// Place calls peer: it sends the offer to every device of peer and returns
// the call; events follow.
func (e *Engine) Place(ctx context.Context, peer string, m Media) (*Call, error) {
	var id [16]byte
	rand.Read(id[:])
	c := e.newCall(id, peer, true)
	c.media = m
	if err := e.add(c); err != nil {
		return nil, err
	}
	if err := c.placeOffer(ctx); err != nil {
		e.remove(c)
		c.closePeer()
		return nil, err
	}
	go c.run()
	return c, nil
}

func (e *Engine) add(c *Call) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	e.calls[c.id] = c
	return nil
}

func (e *Engine) remove(c *Call) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.calls[c.id] == c {
		delete(e.calls, c.id)
	}
}

// busy reports whether a call other than except is in progress.
func (e *Engine) busy(except [16]byte) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for id, c := range e.calls {
		if id != except && c.active() {
			return true
		}
	}
	return false
}

// Handle takes a received signal. It does not block on the network.
func (e *Engine) Handle(s Signal) {
	e.mu.Lock()
	c := e.calls[s.ID]
	closed := e.closed
	e.mu.Unlock()
	if c != nil {
		c.deliver(s)
		return
	}
	if closed || s.Own || s.Type != content.CallOffer {
		return // a call of another device, or one that is over
	}
	if !s.ServerTime.IsZero() && time.Since(s.ServerTime) > e.o.RingTimeout {
		e.log.Info("not ringing for an offer that is too old", "peer", s.Peer, "age", time.Since(s.ServerTime))
		return
	}
	c = e.newCall(s.ID, s.Peer, false)
	c.offer, c.remoteDevice, c.remoteMedia = s.SDP, s.SenderDevice, s.Media
	if e.busy(s.ID) {
		go c.signal(&content.Call{ID: s.ID, Type: content.CallBusy, Device: s.SenderDevice})
		return
	}
	if err := e.add(c); err != nil {
		return
	}
	go c.run()
}

func (e *Engine) newCall(id [16]byte, peer string, outgoing bool) *Call {
	return &Call{
		e: e, id: id, ID: hex.EncodeToString(id[:]), Peer: peer, Outgoing: outgoing,
		in: make(chan Signal, 64), cmds: make(chan command), done: make(chan struct{}),
		pcState: make(chan webrtc.PeerConnectionState, 16), inputDone: make(chan string, 2),
		started: time.Now(),
	}
}

func (e *Engine) emit(ev Event) { e.o.OnEvent(ev) }
