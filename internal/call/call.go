package call

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/ivfwriter"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"

	"github.com/parleychat/parley/internal/content"
)

// Call states.
const (
	stateCalling    = "calling"    // outgoing, offer sent
	stateRinging    = "ringing"    // incoming, not answered
	stateConnecting = "connecting" // answered, media not flowing yet
	stateConnected  = "connected"
	stateEnded      = "ended"
)

type command struct {
	kind  string // "answer", "decline", "hangup"
	media Media
	reply chan error
}

// Call is one call of an Engine. Its methods are safe for concurrent use.
type Call struct {
	e        *Engine
	id       [16]byte
	ID       string // hex call id, the same on both sides
	Peer     string
	Outgoing bool

	in        chan Signal
	cmds      chan command
	done      chan struct{}
	pcState   chan webrtc.PeerConnectionState
	inputDone chan string

	stateMu sync.Mutex
	state   string

	// Owned by run (and by Place before run starts).
	media        Media
	offer        string // incoming: the offer's SDP
	remoteSDP    string // the description the peer sent, end-to-end encrypted
	remoteDevice uint32 // the device on the other side (0 until known)
	remoteMedia  content.Media
	pc           *webrtc.PeerConnection
	tracks       map[string]*webrtc.TrackLocalStaticSample
	sources      map[string]source
	pendingICE   []webrtc.ICECandidateInit
	ringing      map[uint32]bool
	inputsLeft   int
	started      time.Time
	connectedAt  time.Time
	sendCancel   context.CancelFunc
	sendWG       sync.WaitGroup

	stats struct {
		audioSent, videoSent, audioSentBytes, videoSentBytes atomic.Int64
		audioRecv, videoRecv, audioRecvBytes, videoRecvBytes atomic.Int64
		videoFrames                                          atomic.Int64
	}
	recMu      sync.Mutex
	recClosed  bool
	recWG      sync.WaitGroup
	recordings []string

	result Result // set before done is closed
}

// Done is closed when the call has ended.
func (c *Call) Done() <-chan struct{} { return c.done }

// Result is how the call ended; valid once Done is closed.
func (c *Call) Result() Result {
	<-c.done
	return c.result
}

// Answer takes an incoming call that rings, sending and recording as m
// says.
func (c *Call) Answer(m Media) error { return c.do(command{kind: "answer", media: m}) }

// Decline refuses an incoming call that rings.
func (c *Call) Decline() error { return c.do(command{kind: "decline"}) }

// Hangup ends the call (declining it if it still rings). Ending a call
// that has ended is not an error.
func (c *Call) Hangup() {
	c.do(command{kind: "hangup"})
}

func (c *Call) do(cmd command) error {
	cmd.reply = make(chan error, 1)
	select {
	case c.cmds <- cmd:
	case <-c.done:
		if cmd.kind == "hangup" {
			return nil
		}
		return fmt.Errorf("%w: the call has ended", ErrState)
	}
	select {
	case err := <-cmd.reply:
		return err
	case <-c.done:
		return nil
	}
}

func (c *Call) setState(s string) {
	c.stateMu.Lock()
	c.state = s
	c.stateMu.Unlock()
}

func (c *Call) getState() string {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	return c.state
}

func (c *Call) active() bool {
	s := c.getState()
	return s != "" && s != stateEnded
}

// deliver queues a received signal for run.
func (c *Call) deliver(s Signal) {
	select {
	case c.in <- s:
	default:
		c.e.log.Warn("call signal queue full; dropping a signal", "call", c.ID, "type", s.Type.String())
	}
}

func (c *Call) emit(ev Event) {
	ev.CallID, ev.Peer = c.ID, c.Peer
	c.e.emit(ev)
}

// signal sends one signal of this call.
func (c *Call) signal(msg *content.Call) error {
	ctx, cancel := context.WithTimeout(context.Background(), signalTimeout)
	defer cancel()
	msg.ID = c.id
	if err := c.e.o.Signaler.SendCall(ctx, c.Peer, msg); err != nil {
		c.e.log.Warn("sending a call signal", "call", c.ID, "type", msg.Type.String(), "err", err)
		return err
	}
	return nil
}

// placeOffer prepares the connection and sends the offer (Place).
func (c *Call) placeOffer(ctx context.Context) error {
	if err := c.newPeer(ctx, c.media); err != nil {
		return err
	}
	offer, err := c.pc.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("call: creating the offer: %w", err)
	}
	sdp, err := c.setLocal(ctx, offer)
	if err != nil {
		return err
	}
	media := content.MediaAudio
	if c.media.Video {
		media |= content.MediaVideo
	}
	c.setState(stateCalling)
	if err := c.signal(&content.Call{Type: content.CallOffer, Media: media, SDP: sdp}); err != nil {
		return fmt.Errorf("call: sending the offer: %w", err)
	}
	c.emit(Event{Type: EventCalling, Video: c.media.Video})
	return nil
}

// setLocal applies a local description and waits (bounded) for candidate
// gathering, so the description carries every candidate (no trickling).
func (c *Call) setLocal(ctx context.Context, d webrtc.SessionDescription) (string, error) {
	gathered := webrtc.GatheringCompletePromise(c.pc)
	if err := c.pc.SetLocalDescription(d); err != nil {
		return "", fmt.Errorf("call: %w", err)
	}
	gctx, cancel := context.WithTimeout(ctx, gatherTimeout)
	defer cancel()
	select {
	case <-gathered:
	case <-gctx.Done():
		c.e.log.Warn("candidate gathering did not finish in time; sending what was gathered", "call", c.ID)
	}
	sdp := c.pc.LocalDescription().SDP
	if c.media.RelayOnly && !strings.Contains(sdp, " typ relay") {
		return "", fmt.Errorf("%w: no relay candidate was gathered (the TURN relay is unreachable or refused the credentials)", ErrNoRelay)
	}
	return sdp, nil
}

// newPeer makes the peer connection with the local tracks and opens the
// inputs.
func (c *Call) newPeer(ctx context.Context, m Media) error {
	c.media = m
	var cfg webrtc.Configuration
	if c.e.o.ICEServers != nil {
		servers, err := c.e.o.ICEServers(ctx)
		if err != nil {
			return fmt.Errorf("call: getting TURN credentials: %w", err)
		}
		cfg.ICEServers = servers
	}
	if m.RelayOnly {
		if !hasTURN(cfg.ICEServers) {
			return ErrNoRelay
		}
		cfg.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	c.sources = map[string]source{}
	audio, err := openAudio(m.AudioIn, m.Loop)
	if err != nil {
		return err
	}
	c.sources["audio"] = audio
	if m.Video || m.VideoIn != "" {
		video, err := openVideo(m.VideoIn, m.Loop)
		if err != nil {
			audio.close()
			return err
		}
		c.sources["video"] = video
	}
	if m.RecordDir != "" {
		if err := os.MkdirAll(m.RecordDir, 0o700); err != nil {
			c.closeSources()
			return fmt.Errorf("call: record folder: %w", err)
		}
	}
	pc, err := c.e.api.NewPeerConnection(cfg)
	if err != nil {
		c.closeSources()
		return fmt.Errorf("call: %w", err)
	}
	c.pc = pc
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		select {
		case c.pcState <- s:
		default:
		}
	})
	pc.OnTrack(c.onTrack)
	c.tracks = map[string]*webrtc.TrackLocalStaticSample{}
	for _, kind := range []string{"audio", "video"} {
		if c.sources[kind] == nil {
			continue
		}
		codec := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}
		if kind == "video" {
			codec = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
		}
		t, err := webrtc.NewTrackLocalStaticSample(codec, kind, "parley")
		if err != nil {
			c.closePeer()
			return fmt.Errorf("call: %w", err)
		}
		sender, err := pc.AddTrack(t)
		if err != nil {
			c.closePeer()
			return fmt.Errorf("call: %w", err)
		}
		go drainRTCP(sender)
		c.tracks[kind] = t
	}
	return nil
}

func hasTURN(servers []webrtc.ICEServer) bool {
	for _, s := range servers {
		for _, u := range s.URLs {
			if strings.HasPrefix(u, "turn:") || strings.HasPrefix(u, "turns:") {
				return true
			}
		}
	}
	return false
}

// drainRTCP reads the RTCP a sender receives, so the interceptors (NACK,
// reports) see it.
func drainRTCP(s *webrtc.RTPSender) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := s.Read(buf); err != nil {
			return
		}
	}
}

func (c *Call) closeSources() {
	for _, s := range c.sources {
		s.close()
	}
	c.sources = nil
}

// closePeer closes the connection and waits for the recorders to finish.
func (c *Call) closePeer() {
	if c.sendCancel != nil {
		c.sendCancel()
	}
	c.sendWG.Wait()
	if c.pc != nil {
		if err := c.pc.Close(); err != nil {
			c.e.log.Debug("closing the peer connection", "call", c.ID, "err", err)
		}
	}
	c.recMu.Lock()
	c.recClosed = true
	c.recMu.Unlock()
	c.recWG.Wait()
	c.closeSources()
}

// run is the call's state machine: signals, commands, connection state
// and timers, one at a time.
func (c *Call) run() {
	var ringC, connC, forC, drainC <-chan time.Time
	stopTimer := func(t **time.Timer) {
		if *t != nil {
			(*t).Stop()
			*t = nil
		}
	}
	var ringT, connT, forT, drainT *time.Timer
	startRing := func() {
		ringT = time.NewTimer(c.e.o.RingTimeout)
		ringC = ringT.C
	}
	startConnect := func() {
		stopTimer(&ringT)
		ringC = nil
		connT = time.NewTimer(c.e.o.ConnectTimeout)
		connC = connT.C
	}
	defer func() {
		stopTimer(&ringT)
		stopTimer(&connT)
		stopTimer(&forT)
		stopTimer(&drainT)
	}()

	if c.Outgoing {
		startRing()
	} else {
		c.setState(stateRinging)
		startRing()
		c.emit(Event{Type: EventRinging, Device: c.remoteDevice, Video: c.remoteMedia&content.MediaVideo != 0, Call: c})
		c.signal(&content.Call{Type: content.CallRinging, Device: c.remoteDevice})
	}

	for c.getState() != stateEnded {
		select {
		case s := <-c.in:
			if c.onSignal(s) {
				startConnect()
			}
		case cmd := <-c.cmds:
			err := c.onCommand(cmd)
			if err == nil && cmd.kind == "answer" {
				startConnect()
			}
			cmd.reply <- err
		case st := <-c.pcState:
			switch st {
			case webrtc.PeerConnectionStateConnected:
				if c.getState() != stateConnecting {
					continue
				}
				stopTimer(&connT)
				connC = nil
				if err := c.onConnected(); err != nil {
					c.end(ReasonFailed, err, true)
					continue
				}
				if c.media.For > 0 {
					forT = time.NewTimer(c.media.For)
					forC = forT.C
				}
			case webrtc.PeerConnectionStateFailed:
				c.end(ReasonFailed, errors.New("call: the connection failed (ICE or DTLS)"), true)
			}
		case kind := <-c.inputDone:
			c.e.log.Debug("input sent", "call", c.ID, "kind", kind)
			if c.inputsLeft--; c.inputsLeft == 0 && c.media.HangupAfterInput {
				// Let the last packets arrive before the hang-up does.
				drainT = time.NewTimer(drainTime)
				drainC = drainT.C
			}
		case <-ringC:
			ringC = nil
			if c.Outgoing {
				c.end(ReasonNoAnswer, nil, true)
			} else {
				c.end(ReasonNoAnswer, nil, false)
			}
		case <-connC:
			c.end(ReasonFailed, errors.New("call: the connection did not come up in time"), true)
		case <-forC:
			c.end(ReasonHangup, nil, true)
		case <-drainC:
			c.end(ReasonHangup, nil, true)
		}
	}
}

// onSignal handles a received signal; it reports whether the call moved
// from ringing or calling to connecting.
func (c *Call) onSignal(s Signal) bool {
	st := c.getState()
	me := c.e.o.DeviceID
	forMe := s.Device == 0 || s.Device == me
	if c.Outgoing {
		if s.Own {
			return false // our other devices' copies of what they sent the callee
		}
		switch s.Type {
		case content.CallRinging:
			if c.ringing == nil {
				c.ringing = map[uint32]bool{}
			}
			if !c.ringing[s.SenderDevice] {
				c.ringing[s.SenderDevice] = true
				c.emit(Event{Type: EventRemoteRinging, Device: s.SenderDevice})
			}
		case content.CallAnswer:
			if st != stateCalling || !forMe {
				return false // another device answered later: our answered-elsewhere stops it
			}
			if err := c.acceptAnswer(s); err != nil {
				c.end(ReasonFailed, err, true)
				return false
			}
			c.setState(stateConnecting)
			c.emit(Event{Type: EventAnswered, Device: s.SenderDevice})
			c.signal(&content.Call{Type: content.CallAnsweredElsewhere, Device: s.SenderDevice})
			return true
		case content.CallDecline:
			if st == stateCalling && forMe {
				// No hang-up: the other callee devices stop ringing on the
				// decline's copy, and a hang-up for every device would
				// count as missed there.
				c.end(ReasonDeclined, nil, false)
			}
		case content.CallBusy:
			if st == stateCalling && forMe {
				c.end(ReasonBusy, nil, true)
			}
		case content.CallHangup:
			if forMe && (st == stateCalling || s.SenderDevice == c.remoteDevice) {
				c.end(ReasonRemoteHangup, nil, false)
			}
		case content.CallICE:
			if forMe && s.SenderDevice == c.remoteDevice {
				c.addICE(s)
			}
		}
		return false
	}
	// Incoming.
	if s.Own {
		// What another device of this account told the caller.
		switch s.Type {
		case content.CallAnswer:
			if st == stateRinging {
				c.emit(Event{Type: EventAnsweredElsewhere, Device: s.SenderDevice})
				c.end(ReasonAnsweredElsewhere, nil, false)
			}
		case content.CallDecline:
			if st == stateRinging {
				c.end(ReasonDeclined, nil, false)
			}
		}
		return false
	}
	if s.SenderDevice != c.remoteDevice {
		return false // the caller's other devices have no part in this call
	}
	switch s.Type {
	case content.CallAnsweredElsewhere:
		if s.Device != me {
			c.emit(Event{Type: EventAnsweredElsewhere, Device: s.Device})
			c.end(ReasonAnsweredElsewhere, nil, false)
		}
	case content.CallHangup:
		if forMe {
			c.end(ReasonRemoteHangup, nil, false)
		}
	case content.CallICE:
		if forMe {
			c.addICE(s)
		}
	}
	return false
}

// acceptAnswer applies the callee's answer (outgoing calls).
func (c *Call) acceptAnswer(s Signal) error {
	c.remoteDevice, c.remoteMedia, c.remoteSDP = s.SenderDevice, s.Media, s.SDP
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: s.SDP}); err != nil {
		return fmt.Errorf("call: the answer: %w", err)
	}
	c.flushICE()
	return nil
}

func (c *Call) addICE(s Signal) {
	mid, idx := s.MID, s.MLineIndex
	cand := webrtc.ICECandidateInit{Candidate: s.Candidate, SDPMid: &mid, SDPMLineIndex: &idx}
	if c.pc == nil || c.pc.RemoteDescription() == nil {
		c.pendingICE = append(c.pendingICE, cand)
		return
	}
	if err := c.pc.AddICECandidate(cand); err != nil {
		c.e.log.Info("ignoring an ICE candidate", "call", c.ID, "err", err)
	}
}

func (c *Call) flushICE() {
	for _, cand := range c.pendingICE {
		if err := c.pc.AddICECandidate(cand); err != nil {
			c.e.log.Info("ignoring an ICE candidate", "call", c.ID, "err", err)
		}
	}
	c.pendingICE = nil
}

func (c *Call) onCommand(cmd command) error {
	st := c.getState()
	switch cmd.kind {
	case "answer":
		if c.Outgoing || st != stateRinging {
			return fmt.Errorf("%w: only a ringing incoming call can be answered", ErrState)
		}
		if err := c.answer(cmd.media); err != nil {
			// Tell the caller only if the answer went out.
			c.end(ReasonFailed, err, c.getState() == stateConnecting)
			return err
		}
		return nil
	case "decline":
		if c.Outgoing || st != stateRinging {
			return fmt.Errorf("%w: only a ringing incoming call can be declined", ErrState)
		}
		c.signal(&content.Call{Type: content.CallDecline, Device: c.remoteDevice})
		c.end(ReasonDeclined, nil, false)
		return nil
	case "hangup":
		if !c.Outgoing && st == stateRinging {
			c.signal(&content.Call{Type: content.CallDecline, Device: c.remoteDevice})
			c.end(ReasonDeclined, nil, false)
			return nil
		}
		c.end(ReasonHangup, nil, true)
	}
	return nil
}

// answer makes the connection for an incoming call and sends the answer.
func (c *Call) answer(m Media) error {
	ctx, cancel := context.WithTimeout(context.Background(), gatherTimeout+signalTimeout)
	defer cancel()
	if c.remoteMedia&content.MediaVideo == 0 {
		m.Video, m.VideoIn = false, "" // the caller offered no video
	}
	if err := c.newPeer(ctx, m); err != nil {
		return err
	}
	c.remoteSDP = c.offer
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: c.offer}); err != nil {
		return fmt.Errorf("call: the offer: %w", err)
	}
	c.flushICE()
	answer, err := c.pc.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("call: creating the answer: %w", err)
	}
	sdp, err := c.setLocal(ctx, answer)
	if err != nil {
		return err
	}
	media := content.MediaAudio
	if c.tracks["video"] != nil {
		media |= content.MediaVideo
	}
	c.setState(stateConnecting)
	if err := c.signal(&content.Call{Type: content.CallAnswer, Media: media, SDP: sdp, Device: c.remoteDevice}); err != nil {
		return fmt.Errorf("call: sending the answer: %w", err)
	}
	c.emit(Event{Type: EventAnswered, Device: c.e.o.DeviceID})
	return nil
}

// onConnected checks the peer's certificate against the fingerprint it
// sent end-to-end encrypted (RFC 8827 §6.5) and starts sending media.
func (c *Call) onConnected() error {
	der, path := c.remoteCertificate()
	if err := checkFingerprint(c.remoteSDP, der); err != nil {
		return err
	}
	c.setState(stateConnected)
	c.connectedAt = time.Now()
	c.emit(Event{Type: EventConnected, Device: c.remoteDevice, Path: path})
	ctx, cancel := context.WithCancel(context.Background())
	c.sendCancel = cancel
	for kind, t := range c.tracks {
		c.inputsLeft++
		c.sendWG.Add(1)
		go c.send(ctx, kind, t, c.sources[kind])
	}
	return nil
}

// remoteCertificate returns the DER certificate the peer presented in the
// DTLS handshake, and the selected candidate pair.
func (c *Call) remoteCertificate() ([]byte, *Path) {
	for _, tr := range c.pc.GetTransceivers() {
		var dt *webrtc.DTLSTransport
		if s := tr.Sender(); s != nil {
			dt = s.Transport()
		}
		if dt == nil && tr.Receiver() != nil {
			dt = tr.Receiver().Transport()
		}
		if dt == nil {
			continue
		}
		var path *Path
		if pair, err := dt.ICETransport().GetSelectedCandidatePair(); err == nil && pair != nil {
			path = &Path{
				Local: pair.Local.Typ.String(), Remote: pair.Remote.Typ.String(),
				LocalAddr:  fmt.Sprintf("%s:%d", pair.Local.Address, pair.Local.Port),
				RemoteAddr: fmt.Sprintf("%s:%d", pair.Remote.Address, pair.Remote.Port),
				Protocol:   pair.Local.Protocol.String(),
			}
		}
		return dt.GetRemoteCertificate(), path
	}
	return nil, nil
}

// send paces the samples of one input onto its track.
func (c *Call) send(ctx context.Context, kind string, t *webrtc.TrackLocalStaticSample, src source) {
	defer c.sendWG.Done()
	sent, bytes := &c.stats.audioSent, &c.stats.audioSentBytes
	if kind == "video" {
		sent, bytes = &c.stats.videoSent, &c.stats.videoSentBytes
	}
	next := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		s, err := src.next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				c.e.log.Warn("reading the media input", "call", c.ID, "kind", kind, "err", err)
			}
			select {
			case c.inputDone <- kind:
			default:
			}
			return
		}
		if err := t.WriteSample(media.Sample{Data: s.data, Duration: s.duration}); err != nil {
			c.e.log.Debug("writing a sample", "call", c.ID, "kind", kind, "err", err)
			return
		}
		sent.Add(1)
		bytes.Add(int64(len(s.data)))
		next = next.Add(s.duration)
		timer.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
	}
}

// onTrack receives (and records) one remote track until the connection
// closes.
func (c *Call) onTrack(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	c.recMu.Lock()
	if c.recClosed {
		c.recMu.Unlock()
		return
	}
	c.recWG.Add(1)
	c.recMu.Unlock()
	defer c.recWG.Done()

	kind := t.Kind().String()
	c.emit(Event{Type: EventTrack, Kind: kind, Device: c.remoteDevice})
	pkts, bytes := &c.stats.audioRecv, &c.stats.audioRecvBytes
	if kind == "video" {
		pkts, bytes = &c.stats.videoRecv, &c.stats.videoRecvBytes
	}
	var w interface {
		WriteRTP(*rtp.Packet) error
		Close() error
	}
	if dir := c.media.RecordDir; dir != "" {
		var err error
		mime := strings.ToLower(t.Codec().MimeType)
		path := filepath.Join(dir, c.ID+"-"+kind)
		switch {
		case mime == strings.ToLower(webrtc.MimeTypeOpus):
			path += ".ogg"
			if err = createPrivate(path); err == nil {
				w, err = oggwriter.New(path, 48000, 2)
			}
		case mime == strings.ToLower(webrtc.MimeTypeVP8):
			path += ".ivf"
			if err = createPrivate(path); err == nil {
				w, err = ivfwriter.New(path, ivfwriter.WithCodec(webrtc.MimeTypeVP8))
			}
		default:
			err = fmt.Errorf("no recorder for %s", mime)
		}
		if err != nil {
			c.e.log.Warn("cannot record a track", "call", c.ID, "kind", kind, "err", err)
			w = nil
		} else {
			c.recMu.Lock()
			c.recordings = append(c.recordings, path)
			c.recMu.Unlock()
		}
	}
	writeErr := false
	for {
		p, _, err := t.ReadRTP()
		if err != nil {
			break
		}
		pkts.Add(1)
		bytes.Add(int64(len(p.Payload)))
		if kind == "video" && p.Marker {
			c.stats.videoFrames.Add(1)
		}
		if w != nil {
			if err := w.WriteRTP(p); err != nil && !writeErr {
				writeErr = true
				c.e.log.Warn("recording a packet", "call", c.ID, "kind", kind, "err", err)
			}
		}
	}
	if w != nil {
		if err := w.Close(); err != nil {
			c.e.log.Warn("closing a recording", "call", c.ID, "kind", kind, "err", err)
		}
	}
}

// end finishes the call: notify says whether to tell the peer (hang-up).
func (c *Call) end(reason string, err error, notify bool) {
	if c.getState() == stateEnded {
		return
	}
	if notify {
		// Device 0 before an answer (every callee device stops ringing and
		// counts a missed call); the offered media tell them what it was.
		media := content.MediaAudio
		if c.media.Video {
			media |= content.MediaVideo
		}
		c.signal(&content.Call{Type: content.CallHangup, Device: c.remoteDevice, Media: media})
	}
	c.setState(stateEnded)
	c.closePeer()
	c.e.remove(c)
	r := Result{Reason: reason, Err: err, Connected: !c.connectedAt.IsZero()}
	if r.Connected {
		r.Duration = time.Since(c.connectedAt)
	}
	r.Stats = Stats{
		AudioSent: c.stats.audioSent.Load(), VideoSent: c.stats.videoSent.Load(),
		AudioSentBytes: c.stats.audioSentBytes.Load(), VideoSentBytes: c.stats.videoSentBytes.Load(),
		AudioRecv: c.stats.audioRecv.Load(), VideoRecv: c.stats.videoRecv.Load(),
		AudioRecvBytes: c.stats.audioRecvBytes.Load(), VideoRecvBytes: c.stats.videoRecvBytes.Load(),
		VideoFramesRecv: c.stats.videoFrames.Load(),
	}
	c.recMu.Lock()
	r.Recordings = append([]string(nil), c.recordings...)
	c.recMu.Unlock()
	c.result = r
	if err != nil {
		c.e.log.Info("call failed", "call", c.ID, "err", err)
	}
	c.emit(Event{Type: EventEnded, Device: c.remoteDevice, Result: &r})
	close(c.done)
}

// createPrivate creates path readable by the user alone, so that the
// recorder, which truncates and reuses it, keeps that mode: a recording is
// as private as the call.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}
