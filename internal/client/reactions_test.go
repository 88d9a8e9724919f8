package client

import (
	"errors"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/content"
)

// TestReactions: each account keeps one reaction per message, the newest,
// on every device of both sides; "" takes it back; a reaction naming a
// message of another conversation, an older one arriving late, and one to
// a deleted message change nothing; deleting a message drops its
// reactions.
func TestReactions(t *testing.T) {
	ctx := testCtx(t)
	srv := newServer(t)
	alice, bob := aliceAndBob(t, srv.URL)
	carol := register(t, srv.URL, "carol")
	a2 := link(t, alice, srv.URL, "alice-2")

	m := send(t, alice, "bob", "lunch?")
	syncAll(t, bob)
	syncAll(t, a2)
	if _, err := bob.React(ctx, m.ID, "👍"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.React(ctx, m.ID, "🍜"); err != nil {
		t.Fatal(err)
	}
	want := func(c *Client, peer string, rs ...Reaction) {
		t.Helper()
		got := messageIn(t, c, peer, m.ID).Reactions
		if len(got) != len(rs) {
			t.Fatalf("%s/%d: reactions %v, want %v", c.Handle(), c.DeviceID(), got, rs)
		}
		for i := range rs {
			if got[i] != rs[i] {
				t.Fatalf("%s/%d: reactions %v, want %v", c.Handle(), c.DeviceID(), got, rs)
			}
		}
	}
	evs := only(syncAll(t, alice), EventReaction)
	if len(evs) != 1 || evs[0].Peer != "bob" || evs[0].Message == nil || len(evs[0].Message.Reactions) != 2 {
		t.Fatalf("alice's reaction events: %s", describe(evs))
	}
	syncAll(t, bob)
	syncAll(t, a2)
	for _, c := range []*Client{alice, a2} {
		want(c, "bob", Reaction{"bob", "👍"}, Reaction{"alice", "🍜"})
	}
	want(bob, "alice", Reaction{"bob", "👍"}, Reaction{"alice", "🍜"})

	// bob changes his mind, then takes it back.
	if _, err := bob.React(ctx, m.ID, "❤️"); err != nil {
		t.Fatal(err)
	}
	syncAll(t, alice)
	want(alice, "bob", Reaction{"alice", "🍜"}, Reaction{"bob", "❤️"})
	if _, err := bob.React(ctx, m.ID, ""); err != nil {
		t.Fatal(err)
	}
	syncAll(t, alice)
	want(alice, "bob", Reaction{"alice", "🍜"})

	// An older reaction of bob's arriving late stays undone.
	late := &content.Content{Kind: content.KindReaction, To: "alice", Refs: [][16]byte{mustID(t, m.ID)}, Text: "👎"}
	sendControl(t, bob, "alice", late, time.Minute)
	syncAll(t, alice)
	want(alice, "bob", Reaction{"alice", "🍜"})

	// carol, a contact too, cannot react to a message of alice's
	// conversation with bob.
	if err := alice.AddContact(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	forged := &content.Content{Kind: content.KindReaction, To: "alice", Refs: [][16]byte{mustID(t, m.ID)}, Text: "😈"}
	sendControl(t, carol, "alice", forged, 0)
	if evs := only(syncAll(t, alice), EventReaction); len(evs) != 0 {
		t.Fatalf("carol's reaction to a message of another conversation: %s", describe(evs))
	}
	want(alice, "bob", Reaction{"alice", "🍜"})

	// Bad reactions, and a deleted message: its reactions go.
	if _, err := alice.React(ctx, m.ID, string(make([]byte, 65))); !errors.Is(err, ErrBadReaction) {
		t.Fatalf("a long reaction: %v", err)
	}
	if err := alice.DeleteForEveryone(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.React(ctx, m.ID, "👍"); err != nil {
		t.Fatal(err) // bob has not heard of the deletion yet
	}
	syncAll(t, alice)
	want(alice, "bob")
	syncAll(t, bob)
	want(bob, "alice")
	if _, err := bob.React(ctx, m.ID, "👍"); !errors.Is(err, ErrUnknownMessage) {
		t.Fatalf("reacting to a deleted message: %v", err)
	}
}
