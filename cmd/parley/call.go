package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/parleychat/parley/internal/call"
	"github.com/parleychat/parley/internal/client"
	"github.com/parleychat/parley/internal/content"
)

const callDetail = `Calls HANDLE (every device of theirs rings) and stays in the call until
it ends. Media comes from files (so bots and tests can call) or built-in
test media: silence for audio, synthetic frames for video.
Flags:
  --video            send video too (from --video-in, else test frames)
  --audio-in FILE    Ogg Opus file to send (default: silence)
  --video-in FILE    IVF file of VP8 frames to send (implies --video)
  --record DIR       write what you receive to DIR (CALLID-audio.ogg, CALLID-video.ivf)
  --for DURATION     hang up this long after the call connects; the inputs loop
  --relay-only       send media only through the server's TURN relay, so the
                     other side never learns your IP address (default: the
                     relay-only setting, see 'parley settings')
  --ring DURATION    give up if nobody answers within DURATION (default 60s)
With input files and no --for, the call hangs up once the files were sent.
Exits 0 if the call connected and ended normally.`

const answerDetail = `Waits for a call from a contact to ring, answers it, and stays in the call
until it ends.
Flags:
  --wait DURATION    give up if no call rings within DURATION (default 60s)
  --record DIR       write what you receive to DIR
  --for DURATION     hang up this long after the call connects
  --relay-only       media only through the server's TURN relay (see 'parley call')
  --video, --audio-in FILE, --video-in FILE: what to send, as for 'parley call'
Exits 0 if a call was answered, connected and ended normally.`

// callFlags are the flags of call and answer.
type callFlags struct {
	video     *bool
	audioIn   *string
	videoIn   *string
	record    *string
	dur       *time.Duration
	relayOnly *bool
	ring      *time.Duration // call: how long to ring
	wait      *time.Duration // answer: how long to wait for a call
}

// parseCallFlags parses the arguments of call or answer.
func (a *app) parseCallFlags(cmd string, args []string) (*callFlags, []string, error) {
	fs := a.flags(cmd)
	f := &callFlags{
		video:     fs.Bool("video", false, "send video"),
		audioIn:   fs.String("audio-in", "", "Ogg Opus `FILE` to send"),
		videoIn:   fs.String("video-in", "", "IVF (VP8) `FILE` to send"),
		record:    fs.String("record", "", "record what is received to `DIR`"),
		dur:       fs.Duration("for", 0, "hang up `DURATION` after connecting"),
		relayOnly: fs.Bool("relay-only", false, "media through the server's TURN relay only"),
		ring:      fs.Duration("ring", call.DefaultRingTimeout, "ring for at most `DURATION`"),
		wait:      fs.Duration("wait", time.Minute, "wait at most `DURATION` for a call"),
	}
	pos, err := parse(fs, cmd, args, -1)
	if err != nil {
		return nil, nil, err
	}
	if *f.dur < 0 || *f.ring <= 0 || *f.wait <= 0 {
		return nil, nil, usagef(cmd, "durations must be positive")
	}
	return f, pos, nil
}

// media turns the flags into what the engine sends and records.
func (f *callFlags) media(c *client.Client) call.Media {
	m := call.Media{
		Video: *f.video || *f.videoIn != "", AudioIn: *f.audioIn, VideoIn: *f.videoIn,
		RecordDir: *f.record, For: *f.dur, RelayOnly: *f.relayOnly || c.RelayOnly(),
	}
	switch {
	case m.For > 0:
		m.Loop = true
	case m.AudioIn != "" || m.VideoIn != "":
		m.HangupAfterInput = true
	default:
		m.Loop = true // until someone hangs up
	}
	return m
}

func cmdCall(ctx context.Context, a *app, args []string) error {
	f, pos, err := a.parseCallFlags("call", args)
	if err != nil {
		return err
	}
	handle, err := a.oneHandle("call", pos)
	if err != nil {
		return err
	}
	c, err := a.openRegistered(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	m := f.media(c)
	s, err := a.startCalls(ctx, c, *f.ring)
	if err != nil {
		return err
	}
	defer s.stop()
	if !a.json {
		how := "voice"
		if m.Video {
			how = "video"
		}
		relay := ""
		if m.RelayOnly {
			relay = ", relay only"
		}
		a.println("Calling @%s (%s%s)…", handle, how, relay)
	}
	cl, err := s.e.Place(ctx, handle, m)
	if err != nil {
		return err
	}
	return a.followCall(ctx, s, cl)
}

func cmdAnswer(ctx context.Context, a *app, args []string) error {
	f, pos, err := a.parseCallFlags("answer", args)
	if err != nil {
		return err
	}
	if err := noArgs("answer", pos); err != nil {
		return err
	}
	c, err := a.openRegistered(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	m := f.media(c)
	m.HangupAfterInput, m.Loop = false, true // the caller decides when it ends, or --for
	wait := *f.wait
	s, err := a.startCalls(ctx, c, call.DefaultRingTimeout)
	if err != nil {
		return err
	}
	defer s.stop()
	if !a.json {
		a.println("Waiting up to %s for a call…", wait)
	}
	timeout := time.After(wait)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout:
			return fmt.Errorf("no call rang within %s", wait)
		case ev := <-s.events:
			a.printCallEvent(ev)
			if ev.Type != call.EventRinging || ev.Call == nil {
				continue
			}
			a.subject = ev.Peer
			if err := ev.Call.Answer(m); err != nil {
				if errors.Is(err, call.ErrState) {
					continue // it stopped ringing meanwhile
				}
				return err
			}
			return a.followCall(ctx, s, ev.Call)
		}
	}
}

// callSession is a client receiving in the background with a call engine.
type callSession struct {
	e      *call.Engine
	events chan call.Event
	stop   func()
}

// startCalls runs the client's receive loop with a call engine, until
// stop; it returns once the delivery stream is up.
func (a *app) startCalls(ctx context.Context, c *client.Client, ring time.Duration) (*callSession, error) {
	s := &callSession{events: make(chan call.Event, 256)}
	o := call.ClientOptions(c)
	o.Logger = a.logger(a.stderr)
	o.RingTimeout = ring
	o.OnEvent = func(ev call.Event) {
		select {
		case s.events <- ev:
		default: // a stuck reader loses events rather than stalling calls
		}
	}
	e, err := call.New(o)
	if err != nil {
		return nil, err
	}
	s.e = e
	rctx, cancel := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	up := make(chan struct{}, 1)
	go func() {
		runErr <- c.Run(rctx, func(ev client.Event) {
			switch ev.Type {
			case client.EventConnected:
				select {
				case up <- struct{}{}:
				default:
				}
				return
			case client.EventDisconnected:
				a.printEvent(ev)
				return
			}
			if sig, ok := call.SignalOf(ev); ok {
				e.Handle(sig)
				return
			}
			a.printEvent(ev)
		})
	}()
	s.stop = func() {
		e.Close()
		cancel()
		<-runErr
	}
	select {
	case <-up:
		return s, nil
	case err := <-runErr:
		cancel()
		e.Close()
		return nil, err
	case <-time.After(requestWait):
		s.stop()
		return nil, errors.New("could not connect to the server's delivery stream")
	case <-ctx.Done():
		s.stop()
		return nil, ctx.Err()
	}
}

// requestWait bounds connecting to the server.
const requestWait = 60 * time.Second

// followCall prints the call's events until it ends; Ctrl-C hangs up.
func (a *app) followCall(ctx context.Context, s *callSession, cl *call.Call) error {
	for {
		select {
		case <-ctx.Done():
			cl.Hangup()
			<-cl.Done()
			a.drainCallEvents(s, cl)
			return nil
		case ev := <-s.events:
			if ev.CallID != cl.ID {
				a.printCallEvent(ev) // another call rang meanwhile (it got "busy")
				continue
			}
			a.printCallEvent(ev)
			if ev.Type == call.EventEnded {
				return callOutcome(ev.Result)
			}
		}
	}
}

// drainCallEvents prints what is left of an interrupted call's events.
func (a *app) drainCallEvents(s *callSession, cl *call.Call) {
	for {
		select {
		case ev := <-s.events:
			a.printCallEvent(ev)
			if ev.CallID == cl.ID && ev.Type == call.EventEnded {
				return
			}
		default:
			return
		}
	}
}

// callOutcome is the command's error for how a call ended.
func callOutcome(r *call.Result) error {
	switch {
	case r.Reason == call.ReasonFailed:
		return fmt.Errorf("the call failed: %v", r.Err)
	case r.Connected:
		return nil
	case r.Reason == call.ReasonDeclined:
		return errors.New("the call was declined")
	case r.Reason == call.ReasonBusy:
		return errors.New("busy: they are in another call")
	case r.Reason == call.ReasonNoAnswer:
		return errors.New("no answer")
	case r.Reason == call.ReasonAnsweredElsewhere:
		return errors.New("the call was answered on another of your devices")
	case r.Reason == call.ReasonRemoteHangup:
		return errors.New("the caller hung up before the call connected")
	}
	return errors.New("the call ended before it connected")
}

// jsonCall is a call engine event in --json output: "type" is "call_"
// followed by the event (call_ringing, call_connected, call_ended, ...).
type jsonCall struct {
	Type       string         `json:"type"`
	CallID     string         `json:"call_id"`
	Peer       string         `json:"peer"`
	Device     uint32         `json:"device,omitempty"`
	Video      bool           `json:"video,omitempty"`
	Kind       string         `json:"kind,omitempty"`
	Path       *jsonCallPath  `json:"path,omitempty"`
	Reason     string         `json:"reason,omitempty"`
	Error      string         `json:"error,omitempty"`
	Connected  *bool          `json:"connected,omitempty"`
	DurationMS int64          `json:"duration_ms,omitempty"`
	Stats      *jsonCallStats `json:"stats,omitempty"`
	Recordings []string       `json:"recordings,omitempty"`
}

type jsonCallPath struct {
	Local      string `json:"local"`
	Remote     string `json:"remote"`
	LocalAddr  string `json:"local_addr"`
	RemoteAddr string `json:"remote_addr"`
	Protocol   string `json:"protocol"`
}

type jsonCallStats struct {
	AudioSent       int64 `json:"audio_sent"`
	VideoSent       int64 `json:"video_sent"`
	AudioSentBytes  int64 `json:"audio_sent_bytes"`
	VideoSentBytes  int64 `json:"video_sent_bytes"`
	AudioRecv       int64 `json:"audio_recv"`
	VideoRecv       int64 `json:"video_recv"`
	AudioRecvBytes  int64 `json:"audio_recv_bytes"`
	VideoRecvBytes  int64 `json:"video_recv_bytes"`
	VideoFramesRecv int64 `json:"video_frames_recv"`
}

func toJSONCall(ev call.Event) jsonCall {
	j := jsonCall{Type: "call_" + ev.Type, CallID: ev.CallID, Peer: ev.Peer, Device: ev.Device, Video: ev.Video, Kind: ev.Kind}
	if p := ev.Path; p != nil {
		j.Path = &jsonCallPath{p.Local, p.Remote, p.LocalAddr, p.RemoteAddr, p.Protocol}
	}
	if r := ev.Result; r != nil {
		j.Reason = r.Reason
		if r.Err != nil {
			j.Error = r.Err.Error()
		}
		connected := r.Connected
		j.Connected = &connected
		j.DurationMS = r.Duration.Milliseconds()
		s := r.Stats
		j.Stats = &jsonCallStats{s.AudioSent, s.VideoSent, s.AudioSentBytes, s.VideoSentBytes,
			s.AudioRecv, s.VideoRecv, s.AudioRecvBytes, s.VideoRecvBytes, s.VideoFramesRecv}
		j.Recordings = r.Recordings
	}
	return j
}

// printCallEvent prints a call engine event: JSON, or a line for a person.
func (a *app) printCallEvent(ev call.Event) {
	if a.json {
		a.printJSON(toJSONCall(ev))
		return
	}
	switch ev.Type {
	case call.EventRemoteRinging:
		a.println("Ringing on a device of @%s…", ev.Peer)
	case call.EventRinging:
		kind := "voice"
		if ev.Video {
			kind = "video"
		}
		a.println("Incoming %s call from @%s.", kind, ev.Peer)
	case call.EventAnswered:
		a.println("Answered.")
	case call.EventAnsweredElsewhere:
		a.println("Answered on another of your devices.")
	case call.EventConnected:
		how := ""
		if p := ev.Path; p != nil {
			how = fmt.Sprintf(" (%s ⇄ %s over %s)", p.Local, p.Remote, p.Protocol)
		}
		a.println("Connected%s.", how)
	case call.EventTrack:
		a.println("Receiving %s.", ev.Kind)
	case call.EventEnded:
		r := ev.Result
		a.println("Call ended: %s%s.", reasonSentence(r.Reason), durationSuffix(r))
		if r.Connected {
			s := r.Stats
			a.println("Sent %d audio packets and %d video frames; received %d audio and %d video packets.",
				s.AudioSent, s.VideoSent, s.AudioRecv, s.VideoRecv)
		}
		if len(r.Recordings) > 0 {
			a.println("Recordings: %s", strings.Join(r.Recordings, ", "))
		}
	}
}

func reasonSentence(reason string) string {
	switch reason {
	case call.ReasonHangup:
		return "you hung up"
	case call.ReasonRemoteHangup:
		return "they hung up"
	case call.ReasonDeclined:
		return "declined"
	case call.ReasonBusy:
		return "busy"
	case call.ReasonNoAnswer:
		return "no answer"
	case call.ReasonAnsweredElsewhere:
		return "answered on another device"
	case call.ReasonFailed:
		return "the connection failed"
	}
	return reason
}

func durationSuffix(r *call.Result) string {
	if !r.Connected {
		return ""
	}
	return " after " + r.Duration.Round(100*time.Millisecond).String()
}

// jsonSignal is a received call signal in `sync --json` output.
type jsonSignal struct {
	Type   string `json:"type"` // "call"
	Signal string `json:"signal"`
	CallID string `json:"call_id"`
	Peer   string `json:"peer"`
	From   string `json:"from"`
	Device uint32 `json:"device"`
	Video  bool   `json:"video,omitempty"`
}

// callJSON returns the --json form of a client call event.
func callJSON(e client.Event) (any, bool) {
	switch {
	case e.Type == client.EventCall && e.Call != nil:
		s := e.Call
		return jsonSignal{Type: "call", Signal: s.Type.String(), CallID: fmt.Sprintf("%x", s.ID), Peer: s.Peer,
			From: s.From, Device: s.SenderDevice, Video: s.Media&content.MediaVideo != 0}, true
	case e.Type == client.EventMissedCall && e.Message != nil:
		j := toJSONMessage(*e.Message)
		j.Type = client.EventMissedCall
		return j, true
	}
	return nil, false
}

// printCallSignal prints a call signal or missed call seen by sync for a
// person.
func (a *app) printCallSignal(e client.Event) {
	switch {
	case e.Type == client.EventMissedCall && e.Message != nil:
		a.println("%s", formatLine(*e.Message, false))
	case e.Type == client.EventCall && e.Call != nil && !e.Call.Own() && e.Call.Type == content.CallOffer:
		a.println("@%s is calling you: run 'parley answer' to take the call.", e.Peer)
	}
}
