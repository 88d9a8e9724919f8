package tui

import (
	"fmt"
	"sync"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/parleychat/parley/internal/call"
	"github.com/parleychat/parley/internal/client"
)

// Calls in the terminal UI: an incoming call rings in the status line
// (Ctrl-Y answers, Ctrl-D declines); c or v in the conversation list calls
// the open conversation's peer (voice or video); Ctrl-D hangs up. A
// terminal has no microphone or camera: the UI sends the call engine's
// built-in media (silence, test frames) and records nothing; it is there
// to take, refuse and end calls, and to see them ring.

// calls connects the UI to a call engine.
type calls struct {
	e  *call.Engine
	mu sync.Mutex
	p  *tea.Program
}

// newCalls makes the call engine of client c; its events go to the
// program attached later.
func newCalls(c *client.Client) (*calls, error) {
	cs := &calls{}
	o := call.ClientOptions(c)
	o.OnEvent = func(ev call.Event) {
		cs.mu.Lock()
		p := cs.p
		cs.mu.Unlock()
		if p != nil {
			go p.Send(callEventMsg{ev}) // never block the engine on the UI
		}
	}
	e, err := call.New(o)
	if err != nil {
		return nil, err
	}
	cs.e = e
	return cs, nil
}

func (cs *calls) attach(p *tea.Program) {
	cs.mu.Lock()
	cs.p = p
	cs.mu.Unlock()
}

// handle passes a client event's call signal to the engine.
func (cs *calls) handle(e client.Event) {
	if s, ok := call.SignalOf(e); ok {
		cs.e.Handle(s)
	}
}

// close hangs up and stops the engine.
func (cs *calls) close() { cs.e.Close() }

// Messages of calls.
type (
	// callEventMsg is an event of the call engine.
	callEventMsg struct{ ev call.Event }
	// callActionMsg answers placing, answering, declining or hanging up.
	callActionMsg struct {
		action string // "call", "answer", "decline", "hangup"
		peer   string
		c      *call.Call
		err    error
	}
)

// callUI is the call shown in the status line.
type callUI struct {
	cur       *call.Call
	id        string
	peer      string
	state     string // "incoming", "calling", "ringing", "connecting", "connected"; "" no call
	video     bool
	path      string
	connected time.Time
}

// callKey handles the call keys; ok reports whether k was one.
func (m model) callKey(k tea.KeyMsg) (model, tea.Cmd, bool) {
	switch k.String() {
	case "ctrl+y":
		if m.call.state == "incoming" && m.call.cur != nil {
			return m, m.callDo("answer", m.call.peer, m.call.cur), true
		}
	case "ctrl+d":
		if m.call.cur != nil && m.call.state == "incoming" {
			return m, m.callDo("decline", m.call.peer, m.call.cur), true
		}
		if m.call.cur != nil {
			return m, m.callDo("hangup", m.call.peer, m.call.cur), true
		}
	case "c", "v":
		if m.focus != paneList || m.prompting || m.open == "" {
			return m, nil, false
		}
		if m.call.state != "" {
			m.setError("already in a call with @%s", m.call.peer)
			return m, nil, true
		}
		if m.calls == nil {
			m.setError("calls are not available here")
			return m, nil, true
		}
		m.call = callUI{peer: m.open, state: "calling", video: k.String() == "v"}
		return m, m.placeCall(m.open, k.String() == "v"), true
	}
	return m, nil, false
}

func (m *model) media(video bool) call.Media {
	med := call.Media{Video: video, Loop: true}
	if m.c != nil {
		med.RelayOnly = m.c.RelayOnly()
	}
	return med
}

func (m *model) placeCall(peer string, video bool) tea.Cmd {
	ctx, cs, med := m.ctx, m.calls, m.media(video)
	return func() tea.Msg {
		c, err := cs.e.Place(ctx, peer, med)
		return callActionMsg{action: "call", peer: peer, c: c, err: err}
	}
}

func (m *model) callDo(action, peer string, c *call.Call) tea.Cmd {
	med := m.media(false)
	return func() tea.Msg {
		var err error
		switch action {
		case "answer":
			err = c.Answer(med)
		case "decline":
			err = c.Decline()
		case "hangup":
			c.Hangup()
		}
		return callActionMsg{action: action, peer: peer, c: c, err: err}
	}
}

// callAction applies the answer of a call command.
func (m model) callAction(msg callActionMsg) (tea.Model, tea.Cmd) {
	if msg.err != nil {
		if msg.action == "call" {
			m.call = callUI{}
		}
		m.setError("%s @%s failed: %v", msg.action, msg.peer, msg.err)
		return m, nil
	}
	if msg.action == "call" && msg.c != nil && m.call.state == "calling" && m.call.cur == nil {
		m.call.cur, m.call.id = msg.c, msg.c.ID
	}
	return m, nil
}

// callEvent applies an event of the call engine.
func (m model) callEvent(ev call.Event) (tea.Model, tea.Cmd) {
	mine := m.call.id != "" && ev.CallID == m.call.id
	switch ev.Type {
	case call.EventRinging:
		if m.call.state != "" {
			break // the engine answers busy
		}
		m.call = callUI{cur: ev.Call, id: ev.CallID, peer: ev.Peer, state: "incoming", video: ev.Video}
	case call.EventCalling:
		if m.call.state == "calling" && m.call.id == "" && ev.Peer == m.call.peer {
			m.call.id = ev.CallID
		}
	case call.EventRemoteRinging:
		if mine {
			m.call.state = "ringing"
		}
	case call.EventAnswered:
		if mine {
			m.call.state = "connecting"
		}
	case call.EventConnected:
		if mine {
			m.call.state, m.call.connected = "connected", m.now()
			if p := ev.Path; p != nil {
				m.call.path = p.Local + " ⇄ " + p.Remote
			}
		}
	case call.EventEnded:
		if !mine {
			break
		}
		r := ev.Result
		switch {
		case r.Reason == call.ReasonAnsweredElsewhere:
			m.setStatus("The call from @%s was answered on another of your devices.", ev.Peer)
		case r.Connected:
			m.setStatus("Call with @%s ended after %s.", ev.Peer, r.Duration.Round(time.Second))
		case r.Reason == call.ReasonFailed:
			m.setError("The call with @%s failed: %v", ev.Peer, r.Err)
		default:
			m.setStatus("Call with @%s: %s.", ev.Peer, callReason(r.Reason))
		}
		m.call = callUI{}
	}
	return m, nil
}

func callReason(r string) string {
	switch r {
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
	}
	return r
}

var callStyle = lipgloss.NewStyle().Foreground(lipgloss.Color("42")).Bold(true)

// callBanner is the status line of a call in progress, "" without one.
func (m *model) callBanner() string {
	kind := "voice"
	if m.call.video {
		kind = "video"
	}
	switch m.call.state {
	case "incoming":
		return callStyle.Render(fmt.Sprintf("📞 Incoming %s call from @%s", kind, m.call.peer)) + " · Ctrl-Y answer · Ctrl-D decline"
	case "calling":
		return callStyle.Render(fmt.Sprintf("Calling @%s…", m.call.peer)) + " · Ctrl-D hang up"
	case "ringing":
		return callStyle.Render(fmt.Sprintf("Ringing @%s…", m.call.peer)) + " · Ctrl-D hang up"
	case "connecting":
		return callStyle.Render(fmt.Sprintf("Connecting to @%s…", m.call.peer)) + " · Ctrl-D hang up"
	case "connected":
		d := m.now().Sub(m.call.connected).Round(time.Second)
		via := ""
		if m.call.path != "" {
			via = " (" + m.call.path + ")"
		}
		return callStyle.Render(fmt.Sprintf("In a %s call with @%s %s%s", kind, m.call.peer, d, via)) + " · Ctrl-D hang up"
	}
	return ""
}
