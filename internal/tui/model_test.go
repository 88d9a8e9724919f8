package tui

import (
	"context"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/parleychat/parley/internal/client"
)

// These tests drive Update with plain messages, as the program would
// deliver them, and read View. They never run the commands Update returns
// that reach the client (the model has none here); internal/tui's
// real-server test does.

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.Local)

type harness struct {
	t   *testing.T
	m   model
	now time.Time
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, now: t0}
	h.m = newModel(context.Background(), nil, "alice")
	h.m.now = func() time.Time { return h.now }
	h.send(tea.WindowSizeMsg{Width: 120, Height: 30})
	return h
}

func (h *harness) send(msg tea.Msg) tea.Cmd {
	h.t.Helper()
	next, cmd := h.m.Update(msg)
	h.m = next.(model)
	return cmd
}

func (h *harness) keys(s string) {
	h.t.Helper()
	for _, r := range s {
		h.send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
	}
}

func (h *harness) key(t tea.KeyType) tea.Cmd { return h.send(tea.KeyMsg{Type: t}) }

func (h *harness) viewHas(want ...string) {
	h.t.Helper()
	v := h.m.View()
	for _, w := range want {
		if !strings.Contains(v, w) {
			h.t.Fatalf("view lacks %q:\n%s", w, v)
		}
	}
}

func (h *harness) viewLacks(notWant ...string) {
	h.t.Helper()
	v := h.m.View()
	for _, w := range notWant {
		if strings.Contains(v, w) {
			h.t.Fatalf("view has %q:\n%s", w, v)
		}
	}
}

func msg(id, peer, from, text string, at time.Time) client.Message {
	return client.Message{ID: id, Peer: peer, From: from, Device: 1, SentAt: at, Text: text,
		Outgoing: from == "alice", Status: map[bool]string{true: "sent", false: "received"}[from == "alice"]}
}

// start loads a list with bob (open, two messages) and carol (a request
// with one unread message).
func (h *harness) start() {
	h.t.Helper()
	cmd := h.send(convsMsg{convs: []client.Conversation{
		{Peer: "bob", Unread: 0},
		{Peer: "carol", Unread: 1, Request: true},
	}})
	if cmd == nil {
		h.t.Fatal("the first list did not load the first conversation")
	}
	if h.m.open != "bob" {
		h.t.Fatalf("open = %q, want bob", h.m.open)
	}
	h.send(historyMsg{peer: "bob", msgs: []client.Message{
		msg("m1", "bob", "bob", "hi alice", t0.Add(-2*time.Minute)),
		msg("m2", "bob", "alice", "hi bob", t0.Add(-time.Minute)),
	}})
}

func TestListAndChat(t *testing.T) {
	h := newHarness(t)
	h.viewHas("Conversations", "none yet", "Press n to start a conversation.")
	h.start()
	h.viewHas("▸ bob", "carol (1) [request]", "@bob", "11:58 bob: hi alice", "11:59 you: hi bob ✓")
	h.viewLacks("carol is typing")
}

func TestSelectRequestMarksReadAndAnswers(t *testing.T) {
	h := newHarness(t)
	h.start()
	if cmd := h.key(tea.KeyDown); cmd == nil {
		t.Fatal("selecting carol did not load her conversation")
	}
	if h.m.open != "carol" {
		t.Fatalf("open = %q, want carol", h.m.open)
	}
	// Opening marked it read at once; the list shows no unread count.
	h.viewHas("▸ carol [request]", "request: a accept · r reject · b block")
	h.viewLacks("carol (1)")
	h.send(historyMsg{peer: "carol", msgs: []client.Message{msg("c1", "carol", "carol", "can we talk?", t0)}})
	h.viewHas("carol: can we talk?")

	if cmd := h.send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("a")}); cmd == nil {
		t.Fatal("a on a request gave no command")
	}
	if cmd := h.send(actionMsg{action: "accept", peer: "carol"}); cmd == nil {
		t.Fatal("accepting did not reload the list")
	}
	h.viewHas("Accepted @carol")
	h.send(convsMsg{convs: []client.Conversation{{Peer: "bob"}, {Peer: "carol"}}})
	h.viewLacks("[request]")

	// a/r/b on a conversation that is not a request only explain.
	if cmd := h.send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("b")}); cmd != nil {
		t.Fatal("b on a contact gave a command")
	}
	h.viewHas("@carol is not a message request")
}

func TestSendShowsStatusMarks(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.key(tea.KeyTab)
	if h.m.focus != paneChat {
		t.Fatal("Tab did not focus the chat")
	}
	h.keys("see you at 5")
	if h.m.typingTo != "bob" {
		t.Fatalf("typing indicator goes to %q, want bob", h.m.typingTo)
	}
	cmd := h.key(tea.KeyEnter)
	if cmd == nil {
		t.Fatal("Enter gave no send command")
	}
	h.viewHas("you: see you at 5 …")
	if h.m.input.Value() != "" {
		t.Fatalf("input not cleared: %q", h.m.input.Value())
	}

	sent := msg("m3", "bob", "alice", "see you at 5", t0)
	h.send(sentMsg{peer: "bob", tempID: "pending-1", msg: sent})
	h.viewHas("you: see you at 5 ✓")
	h.viewLacks("…")

	h.send(eventMsg{client.Event{Type: "delivered", Peer: "bob", Device: 1, Refs: []string{"m3"}}})
	h.viewHas("you: see you at 5 ✓✓")
	h.send(eventMsg{client.Event{Type: "read", Peer: "bob", Device: 1, Refs: []string{"m3", "m2"}}})
	h.viewHas("you: see you at 5 ✓✓ read", "you: hi bob ✓✓ read")
	// A late delivery receipt does not undo "read".
	h.send(eventMsg{client.Event{Type: "delivered", Peer: "bob", Device: 2, Refs: []string{"m3"}}})
	h.viewHas("you: see you at 5 ✓✓ read")
}

func TestDraftsStayWithTheirConversation(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.key(tea.KeyTab)
	h.keys("half a thought")
	h.key(tea.KeyTab)
	h.key(tea.KeyDown) // carol
	if v := h.m.input.Value(); v != "" {
		t.Fatalf("carol's input = %q, want empty", v)
	}
	h.key(tea.KeyUp) // bob again
	if v := h.m.input.Value(); v != "half a thought" {
		t.Fatalf("bob's input = %q, want the draft back", v)
	}
}

func TestSendFailureIsShown(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.key(tea.KeyTab)
	h.keys("hello")
	h.key(tea.KeyEnter)
	h.send(sentMsg{peer: "bob", tempID: "pending-1", err: client.ErrKeyChanged})
	h.viewHas("you: hello ✗ failed", "not sent to @bob")
}

func TestIncomingAndTyping(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.send(eventMsg{client.Event{Type: "typing", Peer: "bob", Device: 1, Typing: true}})
	h.viewHas("bob is typing…", "bob …")

	// Typing expires without a repeat.
	h.now = t0.Add(typingShown + time.Second)
	h.send(tickMsg(h.now))
	h.viewLacks("bob is typing…")

	h.send(eventMsg{client.Event{Type: "typing", Peer: "bob", Typing: true}})
	m := msg("m4", "bob", "bob", "are you there?", h.now)
	if cmd := h.send(eventMsg{client.Event{Type: "message", Message: &m}}); cmd == nil {
		t.Fatal("a message in the open conversation did not mark it read")
	}
	h.viewHas("bob: are you there?")
	h.viewLacks("bob is typing…")

	// A message to a conversation not open only updates the list.
	c := msg("c2", "carol", "carol", "hello?", h.now)
	c.Request = true
	h.send(eventMsg{client.Event{Type: "message", Message: &c}})
	h.viewLacks("hello?")
}

func TestOwnTypingStopsWhenIdle(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.key(tea.KeyTab)
	h.keys("wr")
	if h.m.typingTo != "bob" {
		t.Fatal("typing not started")
	}
	sentAt := h.m.typingSentAt
	h.now = t0.Add(time.Second)
	h.keys("i")
	if h.m.typingSentAt != sentAt {
		t.Fatal("typing repeated within typingEvery")
	}
	h.now = t0.Add(time.Second + typingIdle)
	if cmd := h.send(tickMsg(h.now)); cmd == nil || h.m.typingTo != "" {
		t.Fatal("idle typing was not stopped")
	}
}

func TestNewConversation(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.keys("n")
	if !h.m.prompting {
		t.Fatal("n did not prompt for a handle")
	}
	h.viewHas("New conversation with @")
	h.keys("@dave")
	h.key(tea.KeyEnter)
	if h.m.open != "dave" || h.m.focus != paneChat {
		t.Fatalf("open = %q focus = %v, want dave in the chat", h.m.open, h.m.focus)
	}
	h.viewHas("▸ dave", "@dave", "No messages with @dave yet.")
	// The list from the client now has dave: the draft goes away.
	h.send(convsMsg{convs: []client.Conversation{{Peer: "dave"}, {Peer: "bob"}}})
	if h.m.draft != "" || h.m.selected != 0 {
		t.Fatalf("draft = %q selected = %d", h.m.draft, h.m.selected)
	}
	// Esc cancels a prompt.
	h.key(tea.KeyTab)
	h.keys("n")
	h.key(tea.KeyEsc)
	if h.m.prompting {
		t.Fatal("Esc did not cancel the prompt")
	}
}

func TestKeyChangedWarning(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.send(eventMsg{client.Event{Type: "key_changed", Peer: "bob"}})
	h.viewHas("safety number with @bob has changed", "⚠ safety number changed")
}

func TestQuit(t *testing.T) {
	for _, k := range []tea.KeyMsg{{Type: tea.KeyRunes, Runes: []rune("q")}, {Type: tea.KeyCtrlC}} {
		h := newHarness(t)
		cmd := h.send(k)
		if cmd == nil {
			t.Fatalf("%s: no command", k)
		}
		if _, ok := cmd().(tea.QuitMsg); !ok {
			t.Fatalf("%s did not quit", k)
		}
	}
	// In the chat, q is a letter.
	h := newHarness(t)
	h.start()
	h.key(tea.KeyTab)
	h.keys("q")
	if h.m.input.Value() != "q" {
		t.Fatalf("input = %q", h.m.input.Value())
	}
}

func TestSmallWindow(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.send(tea.WindowSizeMsg{Width: 20, Height: 4})
	_ = h.m.View() // must not panic
	h.send(tea.WindowSizeMsg{Width: 120, Height: 30})
	h.viewHas("bob: hi alice")
}
