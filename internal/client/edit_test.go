package client

import (
	"errors"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/content"
)

// TestEditMessage: a sender corrects their message on every device of both
// sides, where it shows as edited; a later edit wins even if an earlier
// one arrives after it; nobody can edit another person's message, not
// even by sending an edit by hand; deleted messages and messages older
// than a day cannot be edited.
func TestEditMessage(t *testing.T) {
	ctx := testCtx(t)
	srv := newServer(t)
	alice, bob := aliceAndBob(t, srv.URL)
	a2 := link(t, alice, srv.URL, "alice-2")

	typo := send(t, alice, "bob", "see you at 8pn")
	syncAll(t, bob)
	syncAll(t, a2)

	if _, err := bob.EditMessage(ctx, typo.ID, "mine now"); !errors.Is(err, ErrNotEditable) {
		t.Fatalf("bob editing alice's message: %v", err)
	}
	m, err := alice.EditMessage(ctx, typo.ID, "see you at 8pm")
	if err != nil {
		t.Fatal(err)
	}
	if m.Text != "see you at 8pm" || m.EditedAt.IsZero() {
		t.Fatalf("EditMessage returned %+v", m)
	}
	for _, c := range []*Client{bob, a2} {
		peer := map[*Client]string{bob: "alice", a2: "bob"}[c]
		evs := only(syncAll(t, c), EventEdited)
		if len(evs) != 1 || evs[0].Message == nil || evs[0].Message.Text != "see you at 8pm" || evs[0].Message.EditedAt.IsZero() {
			t.Fatalf("%s/%d: edit events %s", c.Handle(), c.DeviceID(), describe(evs))
		}
		if _, text := kindOf(t, c, peer, typo.ID); text != "see you at 8pm" {
			t.Fatalf("%s/%d has %q", c.Handle(), c.DeviceID(), text)
		}
	}

	// Two edits; the older one is delivered again afterwards (as a lost
	// answer would make happen): the newer text stays.
	if _, err := alice.EditMessage(ctx, typo.ID, "see you at 8:30pm"); err != nil {
		t.Fatal(err)
	}
	syncAll(t, bob)
	stale := &content.Content{Kind: content.KindEdit, To: "bob", Refs: [][16]byte{mustID(t, typo.ID)}, Text: "see you at 8pm"}
	sendControl(t, alice, "bob", stale, time.Minute)
	if evs := only(syncAll(t, bob), EventEdited); len(evs) != 0 {
		t.Fatalf("a stale edit was applied: %s", describe(evs))
	}
	if _, text := kindOf(t, bob, "alice", typo.ID); text != "see you at 8:30pm" {
		t.Fatalf("after a stale edit bob has %q", text)
	}

	// An edit bob writes by hand for alice's message changes nothing.
	forged := &content.Content{Kind: content.KindEdit, To: "alice", Refs: [][16]byte{mustID(t, typo.ID)}, Text: "forged"}
	sendControl(t, bob, "alice", forged, 0)
	syncAll(t, alice)
	if _, text := kindOf(t, alice, "bob", typo.ID); text != "see you at 8:30pm" {
		t.Fatalf("after a forged edit alice has %q", text)
	}

	// Deleted, or a day old: too late.
	gone := send(t, alice, "bob", "never mind")
	if err := alice.DeleteForEveryone(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.EditMessage(ctx, gone.ID, "back"); !errors.Is(err, ErrNotEditable) {
		t.Fatalf("editing a deleted message: %v", err)
	}
	alice.testNow = func() time.Time { return time.Now().Add(unsendWindow + time.Minute) }
	if _, err := alice.EditMessage(ctx, typo.ID, "later"); !errors.Is(err, ErrNotEditable) {
		t.Fatalf("after a day: %v", err)
	}
}
