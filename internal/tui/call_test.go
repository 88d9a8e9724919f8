package tui

import (
	"errors"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/parleychat/parley/internal/call"
)

func TestCallBanner(t *testing.T) {
	h := newHarness(t)
	incoming := &call.Call{ID: "c1", Peer: "bob"}
	h.send(callEventMsg{call.Event{Type: call.EventRinging, CallID: "c1", Peer: "bob", Video: true, Call: incoming}})
	h.viewHas("Incoming video call from @bob", "Ctrl-Y answer", "Ctrl-D decline")

	// Another call while this one rings does not replace it (the engine
	// answers busy).
	h.send(callEventMsg{call.Event{Type: call.EventRinging, CallID: "c2", Peer: "carol", Call: &call.Call{ID: "c2"}}})
	h.viewHas("Incoming video call from @bob")

	if cmd := h.send(tea.KeyMsg{Type: tea.KeyCtrlY}); cmd == nil {
		t.Fatal("Ctrl-Y did not answer")
	}
	h.send(callEventMsg{call.Event{Type: call.EventAnswered, CallID: "c1", Peer: "bob"}})
	h.viewHas("Connecting to @bob")
	h.send(callEventMsg{call.Event{Type: call.EventConnected, CallID: "c1", Peer: "bob", Path: &call.Path{Local: "relay", Remote: "host"}}})
	h.now = h.now.Add(65 * time.Second)
	h.viewHas("In a video call with @bob 1m5s (relay ⇄ host)", "Ctrl-D hang up")
	if cmd := h.send(tea.KeyMsg{Type: tea.KeyCtrlD}); cmd == nil {
		t.Fatal("Ctrl-D did not hang up")
	}
	h.send(callEventMsg{call.Event{Type: call.EventEnded, CallID: "c1", Peer: "bob",
		Result: &call.Result{Reason: call.ReasonHangup, Connected: true, Duration: 65 * time.Second}}})
	h.viewHas("Call with @bob ended after 1m5s.")
	if h.m.call.state != "" {
		t.Fatalf("call state %q after the end", h.m.call.state)
	}
	// Without a call, Ctrl-D does nothing call-like.
	if _, _, ok := h.m.callKey(tea.KeyMsg{Type: tea.KeyCtrlD}); ok {
		t.Fatal("Ctrl-D handled without a call")
	}
}

func TestCallEndings(t *testing.T) {
	h := newHarness(t)
	ring := func(id string) {
		h.send(callEventMsg{call.Event{Type: call.EventRinging, CallID: id, Peer: "bob", Call: &call.Call{ID: id}}})
	}
	ring("a")
	h.send(callEventMsg{call.Event{Type: call.EventEnded, CallID: "a", Peer: "bob", Result: &call.Result{Reason: call.ReasonAnsweredElsewhere}}})
	h.viewHas("answered on another of your devices")
	ring("b")
	if cmd := h.send(tea.KeyMsg{Type: tea.KeyCtrlD}); cmd == nil {
		t.Fatal("Ctrl-D did not decline")
	}
	h.send(callEventMsg{call.Event{Type: call.EventEnded, CallID: "b", Peer: "bob", Result: &call.Result{Reason: call.ReasonDeclined}}})
	h.viewHas("Call with @bob: declined.")
	ring("c")
	h.send(callEventMsg{call.Event{Type: call.EventEnded, CallID: "c", Peer: "bob", Result: &call.Result{Reason: call.ReasonFailed, Err: errors.New("ice")}}})
	h.viewHas("The call with @bob failed")
	// A failed attempt to call clears the banner.
	h.m.call = callUI{peer: "bob", state: "calling"}
	h.send(callActionMsg{action: "call", peer: "bob", err: errors.New("no relay")})
	if h.m.call.state != "" {
		t.Fatal("banner kept after a failed call")
	}
	h.viewHas("call @bob failed: no relay")
}
