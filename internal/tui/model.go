package tui

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/textinput"
	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/parleychat/parley/internal/client"
)

const (
	historyLimit = 500
	// typingEvery is how often "I am typing" is repeated while the user
	// keeps typing; typingIdle without a key stops it.
	typingEvery = 3 * time.Second
	typingIdle  = 5 * time.Second
	// typingShown is how long a peer's typing indicator lasts without a
	// repeat (longer than typingEvery, so it does not flicker).
	typingShown = 6 * time.Second
)

type pane int

const (
	paneList pane = iota
	paneChat
)

// model is the UI state. It holds the client only to capture it in
// commands; Update never calls the client itself.
type model struct {
	ctx  context.Context
	c    *client.Client // nil in tests that do not run commands
	self string
	now  func() time.Time

	width, height int
	focus         pane
	prompting     bool // entering a handle for a new conversation
	prompt        textinput.Model
	input         textinput.Model
	chat          viewport.Model

	convs    []client.Conversation
	selected int               // index in the shown list (see list)
	open     string            // peer of the conversation on the right, "" if none
	draft    string            // a new conversation not yet in convs
	drafts   map[string]string // unsent input per conversation
	history  map[string][]client.Message
	loaded   map[string]bool
	typing   map[string]time.Time // peer -> indicator shown until
	changed  map[string]bool      // peers whose key changed this session

	status    string
	statusErr bool
	offline   bool // the delivery stream is down; Run reconnects

	// Our own typing indicator.
	typingTo     string
	typingSentAt time.Time
	lastKeyAt    time.Time

	convsLoading bool
	convsDirty   bool
	nextTemp     int

	calls *calls // the call engine (call.go); nil in tests without a client
	call  callUI // the call shown in the status line
}

func newModel(ctx context.Context, c *client.Client, self string) model {
	prompt := textinput.New()
	prompt.Prompt = "New conversation with @"
	prompt.Placeholder = "handle"
	prompt.CharLimit = 64

	input := textinput.New()
	input.Prompt = "> "
	input.Placeholder = "Write a message, Enter to send"
	input.CharLimit = 4000

	m := model{
		ctx:     ctx,
		c:       c,
		self:    self,
		now:     time.Now,
		width:   80,
		height:  24,
		prompt:  prompt,
		input:   input,
		chat:    viewport.New(40, 10),
		history: make(map[string][]client.Message),
		loaded:  make(map[string]bool),
		typing:  make(map[string]time.Time),
		changed: make(map[string]bool),
		drafts:  make(map[string]string),
		// Init loads the list; events until then make one more load.
		convsLoading: true,
	}
	m.layout()
	return m
}

func (m model) Init() tea.Cmd {
	return tea.Batch(m.loadConvs(), tick())
}

func tick() tea.Cmd {
	return tea.Tick(time.Second, func(t time.Time) tea.Msg { return tickMsg(t) })
}

// list is the conversation list as shown: the client's list plus the
// draft conversation, if any, on top.
func (m *model) list() []client.Conversation {
	if m.draft == "" || m.indexOf(m.draft) >= 0 {
		return m.convs
	}
	return append([]client.Conversation{{Peer: m.draft}}, m.convs...)
}

func (m *model) indexOf(peer string) int {
	return slices.IndexFunc(m.convs, func(c client.Conversation) bool { return c.Peer == peer })
}

// conv returns the shown conversation with peer.
func (m *model) conv(peer string) (client.Conversation, bool) {
	for _, c := range m.list() {
		if c.Peer == peer {
			return c, true
		}
	}
	return client.Conversation{}, false
}

func (m model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	var cmds []tea.Cmd
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.layout()
		m.refreshChat(true)
		return m, nil

	case tea.KeyMsg:
		return m.key(msg)

	case tickMsg:
		now := time.Time(msg)
		for peer, until := range m.typing {
			if !now.Before(until) {
				delete(m.typing, peer)
			}
		}
		if m.typingTo != "" && now.Sub(m.lastKeyAt) >= typingIdle {
			cmds = append(cmds, m.stopTyping())
		}
		cmds = append(cmds, tick())
		m.refreshChat(false)
		return m, tea.Batch(cmds...)

	case eventMsg:
		return m.event(msg.e)

	case callEventMsg:
		return m.callEvent(msg.ev)

	case callActionMsg:
		return m.callAction(msg)

	case runEndedMsg:
		if msg.err != nil {
			m.setError("disconnected: %v", msg.err)
		}
		return m, nil

	case convsMsg:
		m.convsLoading = false
		if msg.err != nil {
			m.setError("cannot list conversations: %v", msg.err)
			return m, nil
		}
		m.convs = msg.convs
		if m.draft != "" && m.indexOf(m.draft) >= 0 {
			m.draft = ""
		}
		if m.convsDirty {
			m.convsDirty = false
			cmds = append(cmds, m.reloadConvs())
		}
		// Keep the open conversation selected; open the first one if none.
		if i := slices.IndexFunc(m.list(), func(c client.Conversation) bool { return c.Peer == m.open }); m.open != "" && i >= 0 {
			m.selected = i
		} else if len(m.list()) > 0 {
			m.selected = min(m.selected, len(m.list())-1)
			if m.open == "" {
				cmds = append(cmds, m.openSelected())
			}
		}
		m.refreshChat(false)
		return m, tea.Batch(cmds...)

	case historyMsg:
		if msg.err != nil {
			m.setError("cannot load the conversation with @%s: %v", msg.peer, msg.err)
			return m, nil
		}
		m.mergeHistory(msg.peer, msg.msgs)
		m.refreshChat(true)
		return m, nil

	case sentMsg:
		msgs := m.history[msg.peer]
		i := slices.IndexFunc(msgs, func(x client.Message) bool { return x.ID == msg.tempID })
		if msg.err != nil {
			if i >= 0 {
				msgs[i].Status = "failed"
			}
			m.setError("not sent to @%s: %v", msg.peer, msg.err)
		} else if i >= 0 {
			if slices.ContainsFunc(msgs, func(x client.Message) bool { return x.ID == msg.msg.ID }) {
				m.history[msg.peer] = slices.Delete(msgs, i, i+1)
			} else {
				msgs[i] = msg.msg
			}
		}
		m.refreshChat(false)
		return m, m.reloadConvs()

	case actionMsg:
		if msg.err != nil {
			m.setError("%s @%s failed: %v", msg.action, msg.peer, msg.err)
			return m, nil
		}
		switch msg.action {
		case "accept":
			m.setStatus("Accepted @%s: they are now a contact.", msg.peer)
		case "reject":
			m.setStatus("Rejected the request from @%s.", msg.peer)
		case "block":
			m.setStatus("Blocked @%s.", msg.peer)
		case "read":
			// The list's unread counts come from the store.
			return m, m.reloadConvs()
		default:
			return m, nil
		}
		if msg.action != "accept" && m.open == msg.peer {
			m.open = ""
			m.chat.SetContent("")
		}
		return m, m.reloadConvs()
	}

	// Anything else (cursor blinks) goes to the focused input.
	var cmd tea.Cmd
	if m.prompting {
		m.prompt, cmd = m.prompt.Update(msg)
	} else {
		m.input, cmd = m.input.Update(msg)
	}
	return m, cmd
}

func (m model) key(k tea.KeyMsg) (tea.Model, tea.Cmd) {
	if k.String() == "ctrl+c" {
		return m, tea.Batch(m.stopTyping(), tea.Quit)
	}
	if mm, cmd, ok := m.callKey(k); ok {
		return mm, cmd
	}
	if m.status != "" && !m.statusErr {
		m.status = "" // a notice lasts until the next key
	}

	if m.prompting {
		switch k.String() {
		case "esc":
			m.prompting = false
			m.prompt.Blur()
			m.prompt.Reset()
			return m, nil
		case "enter":
			handle := strings.TrimPrefix(strings.TrimSpace(m.prompt.Value()), "@")
			m.prompting = false
			m.prompt.Blur()
			m.prompt.Reset()
			if handle == "" {
				return m, nil
			}
			if m.indexOf(handle) < 0 {
				m.draft = handle
			}
			m.selected = slices.IndexFunc(m.list(), func(c client.Conversation) bool { return c.Peer == handle })
			cmd := m.openSelected()
			return m, tea.Batch(cmd, m.focusChat())
		}
		var cmd tea.Cmd
		m.prompt, cmd = m.prompt.Update(k)
		return m, cmd
	}

	if m.focus == paneList {
		switch k.String() {
		case "q":
			return m, tea.Batch(m.stopTyping(), tea.Quit)
		case "esc":
			m.status = ""
			return m, nil
		case "up", "k":
			if m.selected > 0 {
				m.selected--
				return m, m.openSelected()
			}
			return m, nil
		case "down", "j":
			if m.selected < len(m.list())-1 {
				m.selected++
				return m, m.openSelected()
			}
			return m, nil
		case "tab", "enter", "right", "l":
			if m.open == "" {
				return m, nil
			}
			return m, m.focusChat()
		case "n":
			m.prompting = true
			return m, m.prompt.Focus()
		case "a", "r", "b":
			return m, m.answerRequest(k.String())
		}
		return m, nil
	}

	// Chat pane: the input line has the keys.
	switch k.String() {
	case "tab", "esc":
		m.focus = paneList
		m.input.Blur()
		return m, m.stopTyping()
	case "enter":
		return m.send()
	case "up":
		m.chat.ScrollUp(1)
		return m, nil
	case "down":
		m.chat.ScrollDown(1)
		return m, nil
	case "pgup":
		m.chat.PageUp()
		return m, nil
	case "pgdown":
		m.chat.PageDown()
		return m, nil
	}
	before := m.input.Value()
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(k)
	if m.input.Value() != before {
		return m, tea.Batch(cmd, m.typed())
	}
	return m, cmd
}

func (m *model) focusChat() tea.Cmd {
	m.focus = paneChat
	return m.input.Focus()
}

// openSelected shows the selected conversation, loading its history and
// marking it read.
func (m *model) openSelected() tea.Cmd {
	list := m.list()
	if m.selected < 0 || m.selected >= len(list) {
		return nil
	}
	conv := list[m.selected]
	var cmds []tea.Cmd
	if m.open != conv.Peer {
		cmds = append(cmds, m.stopTyping())
		if m.open != "" {
			m.drafts[m.open] = m.input.Value()
		}
		m.input.SetValue(m.drafts[conv.Peer])
		delete(m.drafts, conv.Peer)
		m.open = conv.Peer
		m.refreshChat(true)
	}
	if !m.loaded[conv.Peer] && conv.Peer != m.draft {
		cmds = append(cmds, m.loadHistory(conv.Peer))
	}
	if conv.Unread > 0 {
		cmds = append(cmds, m.markRead(conv.Peer))
	}
	return tea.Batch(cmds...)
}

func (m *model) answerRequest(key string) tea.Cmd {
	list := m.list()
	if m.selected < 0 || m.selected >= len(list) {
		return nil
	}
	conv := list[m.selected]
	if !conv.Request {
		m.setStatus("@%s is not a message request: a, r and b answer requests.", conv.Peer)
		return nil
	}
	c, ctx, peer := m.c, m.ctx, conv.Peer
	switch key {
	case "a":
		return func() tea.Msg { return actionMsg{action: "accept", peer: peer, err: c.AcceptRequest(ctx, peer)} }
	case "r":
		return func() tea.Msg { return actionMsg{action: "reject", peer: peer, err: c.RejectRequest(ctx, peer)} }
	default:
		return func() tea.Msg { return actionMsg{action: "block", peer: peer, err: c.Block(ctx, peer)} }
	}
}

// send sends the input line to the open conversation. The message shows
// at once as "sending" and is replaced by the client's when the server
// has committed it.
func (m model) send() (tea.Model, tea.Cmd) {
	text := strings.TrimSpace(m.input.Value())
	if text == "" || m.open == "" {
		return m, nil
	}
	m.input.Reset()
	m.nextTemp++
	temp := fmt.Sprintf("pending-%d", m.nextTemp)
	peer := m.open
	m.history[peer] = append(m.history[peer], client.Message{
		ID: temp, Peer: peer, From: m.self, SentAt: m.now(), Text: text, Outgoing: true, Status: "sending",
	})
	m.typingTo = "" // the message itself ends the typing indicator
	m.refreshChat(true)
	c, ctx := m.c, m.ctx
	return m, func() tea.Msg {
		sent, err := c.Send(ctx, peer, text)
		return sentMsg{peer: peer, tempID: temp, msg: sent, err: err}
	}
}

// typed notes a change of the input line and says "typing" to the peer
// at most every typingEvery; an emptied line says "stopped".
func (m *model) typed() tea.Cmd {
	now := m.now()
	m.lastKeyAt = now
	if m.open == "" || m.draft == m.open {
		return nil
	}
	if m.input.Value() == "" {
		return m.stopTyping()
	}
	if m.typingTo == m.open && now.Sub(m.typingSentAt) < typingEvery {
		return nil
	}
	m.typingTo, m.typingSentAt = m.open, now
	return m.sendTyping(m.open, true)
}

func (m *model) stopTyping() tea.Cmd {
	if m.typingTo == "" {
		return nil
	}
	peer := m.typingTo
	m.typingTo = ""
	return m.sendTyping(peer, false)
}

func (m *model) sendTyping(peer string, on bool) tea.Cmd {
	c, ctx := m.c, m.ctx
	return func() tea.Msg {
		return actionMsg{action: "typing", peer: peer, err: c.SendTyping(ctx, peer, on)}
	}
}

func (m *model) markRead(peer string) tea.Cmd {
	if i := m.indexOf(peer); i >= 0 {
		m.convs[i].Unread = 0
	}
	c, ctx := m.c, m.ctx
	return func() tea.Msg { return actionMsg{action: "read", peer: peer, err: c.MarkRead(ctx, peer)} }
}

func (m *model) loadHistory(peer string) tea.Cmd {
	m.loaded[peer] = true
	c, ctx := m.c, m.ctx
	return func() tea.Msg {
		msgs, err := c.History(ctx, peer, historyLimit)
		return historyMsg{peer: peer, msgs: msgs, err: err}
	}
}

func (m *model) loadConvs() tea.Cmd {
	c, ctx := m.c, m.ctx
	return func() tea.Msg {
		convs, err := c.Conversations(ctx)
		return convsMsg{convs: convs, err: err}
	}
}

// reloadConvs fetches the list again, coalescing bursts: while a load is
// running, further requests make one more load when it returns.
func (m *model) reloadConvs() tea.Cmd {
	if m.convsLoading {
		m.convsDirty = true
		return nil
	}
	m.convsLoading = true
	return m.loadConvs()
}

// mergeHistory takes a loaded history (in the client's order) and keeps,
// after it, messages this session added that the load does not have yet
// (pending sends, live arrivals).
func (m *model) mergeHistory(peer string, msgs []client.Message) {
	merged := slices.Clone(msgs)
	for _, old := range m.history[peer] {
		if !slices.ContainsFunc(merged, func(x client.Message) bool { return x.ID == old.ID }) {
			merged = append(merged, old)
		}
	}
	m.history[peer] = merged
	m.loaded[peer] = true
}

func (m model) event(e client.Event) (tea.Model, tea.Cmd) {
	var cmds []tea.Cmd
	switch e.Type {
	case "message":
		if e.Message == nil {
			break
		}
		msg := *e.Message
		peer := msg.Peer
		msgs := m.history[peer]
		if i := slices.IndexFunc(msgs, func(x client.Message) bool { return x.ID == msg.ID }); i >= 0 {
			msgs[i] = msg
		} else {
			m.history[peer] = append(msgs, msg)
		}
		if !msg.Outgoing {
			delete(m.typing, peer)
			if peer == m.open {
				cmds = append(cmds, m.markRead(peer))
			}
		}
		cmds = append(cmds, m.reloadConvs())
	case "delivered", "read":
		msgs := m.history[e.Peer]
		for i := range msgs {
			if msgs[i].Outgoing && slices.Contains(e.Refs, msgs[i].ID) && statusRank(e.Type) > statusRank(msgs[i].Status) {
				msgs[i].Status = e.Type
			}
		}
	case "typing":
		if e.Typing {
			m.typing[e.Peer] = m.now().Add(typingShown)
		} else {
			delete(m.typing, e.Peer)
		}
	case "edited", "reaction":
		if e.Message != nil {
			msgs := m.history[e.Peer]
			if i := slices.IndexFunc(msgs, func(x client.Message) bool { return x.ID == e.Message.ID }); i >= 0 {
				msgs[i].Text, msgs[i].EditedAt, msgs[i].Reactions = e.Message.Text, e.Message.EditedAt, e.Message.Reactions
			}
		}
	case "deleted":
		msgs := m.history[e.Peer]
		for i := range msgs {
			if slices.Contains(e.Refs, msgs[i].ID) {
				msgs[i].Kind, msgs[i].Text, msgs[i].Attachment = client.KindDeleted, "", nil
			}
		}
		cmds = append(cmds, m.reloadConvs())
	case "history":
		cmds = append(cmds, m.reloadConvs())
		if m.open != "" {
			cmds = append(cmds, m.loadHistory(m.open))
		}
	case "contacts":
		cmds = append(cmds, m.reloadConvs())
	case "key_changed":
		m.changed[e.Peer] = true
		m.setError("the safety number with @%s has changed: check it with 'parley verify %s'", e.Peer, e.Peer)
	case "dropped":
		m.setError("a message from @%s could not be read (%s)", e.Peer, e.Detail)
	case "disconnected":
		m.offline = true
		m.setError("offline: %s; reconnecting…", e.Detail)
	case "connected":
		if m.offline && m.statusErr {
			m.status = ""
		}
		m.offline = false
		// Whatever arrived while offline is in the store: refresh.
		cmds = append(cmds, m.reloadConvs())
	}
	m.refreshChat(false)
	return m, tea.Batch(cmds...)
}

func (m *model) setStatus(format string, args ...any) {
	m.status, m.statusErr = fmt.Sprintf(format, args...), false
}

func (m *model) setError(format string, args ...any) {
	for i, a := range args {
		if err, ok := a.(error); ok {
			args[i] = errText(err)
		}
	}
	m.status, m.statusErr = fmt.Sprintf(format, args...), true
}

// errText is an error for the status line: the client's errors are
// sentences already, without their package prefix.
func errText(err error) string {
	return strings.TrimPrefix(err.Error(), "client: ")
}
