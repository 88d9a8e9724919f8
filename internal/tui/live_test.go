package tui

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/parleychat/parley/internal/client"
	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/server"
)

// loop is a small stand-in for the bubbletea runtime: it runs the model's
// commands in goroutines, feeds their messages (and the client's live
// events) back into Update, and lets the test wait for the view to show
// something. Timer-driven messages (ticks, cursor blinks) are dropped, so
// it never spins.
type loop struct {
	t    *testing.T
	ctx  context.Context
	m    model
	msgs chan tea.Msg
}

func newLoop(ctx context.Context, t *testing.T, c *client.Client) *loop {
	l := &loop{t: t, ctx: ctx, msgs: make(chan tea.Msg, 256)}
	l.m = newModel(ctx, c, c.Handle())
	l.update(tea.WindowSizeMsg{Width: 120, Height: 30})
	l.run(l.m.loadConvs())
	go func() {
		err := c.Run(ctx, func(e client.Event) { l.post(eventMsg{e}) })
		if ctx.Err() == nil {
			l.post(runEndedMsg{err})
		}
	}()
	return l
}

func (l *loop) post(msg tea.Msg) {
	select {
	case l.msgs <- msg:
	case <-l.ctx.Done():
	}
}

// run executes cmd (and the commands of a batch) in the background.
func (l *loop) run(cmd tea.Cmd) {
	if cmd == nil {
		return
	}
	go func() {
		msg := cmd()
		if batch, ok := msg.(tea.BatchMsg); ok {
			for _, c := range batch {
				l.run(c)
			}
			return
		}
		switch msg.(type) {
		case eventMsg, runEndedMsg, convsMsg, historyMsg, sentMsg, actionMsg:
			l.post(msg)
		}
	}()
}

func (l *loop) update(msg tea.Msg) {
	next, cmd := l.m.Update(msg)
	l.m = next.(model)
	l.run(cmd)
}

func (l *loop) keys(s string) {
	for _, r := range s {
		l.update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
	}
}

// waitView processes messages until the view contains every want.
func (l *loop) waitView(want ...string) {
	l.t.Helper()
	l.waitFor(func(v string) string {
		for _, w := range want {
			if !strings.Contains(v, w) {
				return "a view with " + w
			}
		}
		return ""
	})
}

// waitFor processes messages until check finds nothing missing ("").
func (l *loop) waitFor(check func(view string) (missing string)) {
	l.t.Helper()
	for {
		v := l.m.View()
		missing := check(v)
		if missing == "" {
			return
		}
		select {
		case msg := <-l.msgs:
			if e, ok := msg.(runEndedMsg); ok && e.err != nil {
				l.t.Fatalf("client.Run ended: %v", e.err)
			}
			l.update(msg)
		case <-l.ctx.Done():
			l.t.Fatalf("never got %s:\n%s", missing, v)
		}
	}
}

func startServer(ctx context.Context, t *testing.T) string {
	cfg := config.Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = filepath.Join(t.TempDir(), "server")
	srv, err := server.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	addr, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(sctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Error("server:", err)
		}
	})
	return "http://" + addr.String()
}

func newClient(ctx context.Context, t *testing.T, serverURL, handle string) *client.Client {
	c, err := client.Open(ctx, client.Options{Home: filepath.Join(t.TempDir(), handle), Server: serverURL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Register(ctx, handle); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestLive runs alice's UI against a real server while bob uses the
// client library: requests, live messages, typing, sending from the UI
// and the receipts coming back.
func TestLive(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url := startServer(ctx, t)
	alice := newClient(ctx, t, url, "alice")
	bob := newClient(ctx, t, url, "bob")
	carol := newClient(ctx, t, url, "carol")

	if err := alice.AddContact(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := bob.AddContact(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Send(ctx, "alice", "waiting for you"); err != nil {
		t.Fatal(err)
	}

	l := newLoop(ctx, t, alice)
	// The backlog arrives over Run; bob's conversation opens and shows it.
	l.waitView("▸ bob", "bob: waiting for you")

	// A request from a stranger is marked in the list.
	if _, err := carol.Send(ctx, "alice", "hello stranger"); err != nil {
		t.Fatal(err)
	}
	l.waitView("carol (1) [request]")

	// bob types, then writes: both show live.
	if err := bob.SendTyping(ctx, "alice", true); err != nil {
		t.Fatal(err)
	}
	l.waitView("bob is typing…")
	if _, err := bob.Send(ctx, "alice", "are you there?"); err != nil {
		t.Fatal(err)
	}
	l.waitView("bob: are you there?")

	// alice answers from the UI; bob receives it and his device's receipts
	// come back as ✓✓ and read.
	l.update(tea.KeyMsg{Type: tea.KeyTab})
	l.keys("yes, here")
	l.update(tea.KeyMsg{Type: tea.KeyEnter})
	l.waitView("you: yes, here ✓")

	got := make(chan string, 4)
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	go bob.Run(sctx, func(e client.Event) {
		if e.Type == "message" && e.Message != nil && e.Message.Peer == "alice" {
			got <- e.Message.Text
		}
	})
waitBob:
	for {
		select {
		case text := <-got:
			if text == "yes, here" {
				break waitBob
			}
		case <-ctx.Done():
			t.Fatal("bob never got alice's message")
		}
	}
	l.waitView("you: yes, here ✓✓")
	if err := bob.MarkRead(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	l.waitView("you: yes, here ✓✓ read")

	// alice accepts carol's request from the list.
	l.update(tea.KeyMsg{Type: tea.KeyTab})
	for l.m.open != "carol" {
		l.update(tea.KeyMsg{Type: tea.KeyDown})
		if l.m.selected == len(l.m.list())-1 && l.m.open != "carol" {
			t.Fatalf("carol not in the list:\n%s", l.m.View())
		}
	}
	l.waitView("carol: hello stranger")
	l.keys("a")
	l.waitView("Accepted @carol")
	l.waitFor(func(v string) string {
		if !strings.Contains(v, "▸ carol") || strings.Contains(v, "[request]") {
			return "carol selected and no longer a request"
		}
		return ""
	})
}
