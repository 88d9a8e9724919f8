// Package tui is parley's interactive terminal UI: conversations on the
// left, the open conversation on the right, live updates from the
// client's event stream.
//
// The model is a plain bubbletea model: everything it does to the client
// happens in tea.Cmd functions, and everything it learns arrives as a
// tea.Msg, so tests drive Update with plain messages and read View.
package tui

import (
	"context"
	"errors"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/parleychat/parley/internal/client"
)

// Run shows the terminal UI for c until the user quits or ctx ends. c must
// be registered. It returns ctx's error if ctx ended it.
func Run(ctx context.Context, c *client.Client) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	m := newModel(ctx, c, c.Handle())
	cs, cerr := newCalls(c)
	if cerr != nil {
		return cerr
	}
	m.calls = cs
	p := tea.NewProgram(m, tea.WithAltScreen(), tea.WithContext(ctx))
	cs.attach(p)
	defer cs.close()

	// Live events: the client reconnects by itself until ctx ends; each
	// event becomes a message for Update. Send returns once the program
	// has stopped, so this goroutine never blocks after the UI is gone.
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := c.Run(ctx, func(e client.Event) {
			cs.handle(e)
			p.Send(eventMsg{e})
		})
		if ctx.Err() == nil {
			p.Send(runEndedMsg{err})
		}
	}()

	_, err := p.Run()
	cancel()
	<-done // c.Run has returned: the caller may close c.
	if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		if parent := context.Cause(ctx); parent != nil && !errors.Is(parent, context.Canceled) {
			return parent
		}
		return context.Canceled
	}
	return err
}

// Messages the model receives besides keys and window sizes.
type (
	// eventMsg is one event from client.Run.
	eventMsg struct{ e client.Event }
	// runEndedMsg says client.Run stopped for good (not by quitting).
	runEndedMsg struct{ err error }
	// convsMsg carries a fresh conversation list.
	convsMsg struct {
		convs []client.Conversation
		err   error
	}
	// historyMsg carries a conversation's messages, oldest first.
	historyMsg struct {
		peer string
		msgs []client.Message
		err  error
	}
	// sentMsg answers a send of the pending message tempID.
	sentMsg struct {
		peer   string
		tempID string
		msg    client.Message
		err    error
	}
	// actionMsg answers accept, reject, block, mark-read and typing.
	actionMsg struct {
		action string // "accept", "reject", "block", "read", "typing"
		peer   string
		err    error
	}
	// tickMsg drives expiry of typing indicators, once a second.
	tickMsg time.Time
)

// StatusMark is the mark shown after an outgoing message in status s:
// "…" sending, "✓" sent, "✓✓" delivered, "✓✓ read", "✗ failed".
func StatusMark(s string) string {
	switch s {
	case "sending":
		return "…"
	case "sent":
		return "✓"
	case "delivered":
		return "✓✓"
	case "read":
		return "✓✓ read"
	case "failed":
		return "✗ failed"
	}
	return ""
}

// statusRank orders statuses so receipts never move a message backwards.
func statusRank(s string) int {
	switch s {
	case "sending":
		return 1
	case "sent":
		return 2
	case "delivered":
		return 3
	case "read":
		return 4
	}
	return 0
}
