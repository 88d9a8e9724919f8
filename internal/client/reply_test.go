package client

import (
	"errors"
	"testing"
)

// TestReplies: a reply names the message it answers; every device of both
// sides shows it with a quote of that message as it has it now (edited,
// or deleted); a reply to a message of another conversation, or to none,
// is refused.
func TestReplies(t *testing.T) {
	ctx := testCtx(t)
	srv := newServer(t)
	alice, bob := aliceAndBob(t, srv.URL)
	carol := register(t, srv.URL, "carol")
	a2 := link(t, alice, srv.URL, "alice-2")

	q := send(t, bob, "alice", "dinner at 8?")
	syncAll(t, alice)
	syncAll(t, a2)
	r, err := alice.SendReply(ctx, "bob", "yes!", q.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.ReplyTo != q.ID {
		t.Fatalf("SendReply returned %+v", r)
	}
	evs := only(syncAll(t, bob), EventMessage)
	if len(evs) != 1 || evs[0].Message.ReplyTo != q.ID || evs[0].Message.Quote == nil || evs[0].Message.Quote.Text != "dinner at 8?" || evs[0].Message.Quote.From != "bob" {
		t.Fatalf("bob received %s", describe(evs))
	}
	syncAll(t, a2)
	for _, c := range []*Client{alice, a2} {
		h, err := c.History(ctx, "bob", 0)
		if err != nil {
			t.Fatal(err)
		}
		last := h[len(h)-1]
		if last.ReplyTo != q.ID || last.Quote == nil || last.Quote.Text != "dinner at 8?" {
			t.Fatalf("%d's copy of the reply: %+v", c.DeviceID(), last)
		}
	}
	// The quote follows the original: edited, then deleted.
	if _, err := bob.EditMessage(ctx, q.ID, "dinner at 8:30?"); err != nil {
		t.Fatal(err)
	}
	syncAll(t, alice)
	if h, _ := alice.History(ctx, "bob", 0); h[len(h)-1].Quote.Text != "dinner at 8:30?" {
		t.Fatalf("quote after the edit: %+v", h[len(h)-1].Quote)
	}
	if err := bob.DeleteForEveryone(ctx, q.ID); err != nil {
		t.Fatal(err)
	}
	syncAll(t, alice)
	if h, _ := alice.History(ctx, "bob", 0); !h[len(h)-1].Quote.Deleted {
		t.Fatalf("quote after the deletion: %+v", h[len(h)-1].Quote)
	}

	// Only messages of the same conversation.
	other := send(t, carol, "alice", "hello")
	syncAll(t, alice)
	if _, err := alice.SendReply(ctx, "bob", "wrong chat", other.ID); !errors.Is(err, ErrUnknownMessage) {
		t.Fatalf("a reply to carol's message in bob's chat: %v", err)
	}
	if _, err := alice.SendReply(ctx, "bob", "to nothing", "00112233445566778899aabbccddeeff"); !errors.Is(err, ErrUnknownMessage) {
		t.Fatalf("a reply to no message: %v", err)
	}
}
