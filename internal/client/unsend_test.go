package client

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/client/clientdb"
	"github.com/parleychat/parley/internal/content"
)

// messageIn returns message id of c's conversation with peer.
func messageIn(t *testing.T, c *Client, peer, id string) Message {
	t.Helper()
	h, err := c.History(testCtx(t), peer, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range h {
		if m.ID == id {
			return m
		}
	}
	t.Fatalf("%s/%d has no message %s with %s", c.Handle(), c.DeviceID(), id, peer)
	return Message{}
}

// kindOf returns the kind and text of message id in c's conversation with
// peer.
func kindOf(t *testing.T, c *Client, peer, id string) (kind, text string) {
	t.Helper()
	m := messageIn(t, c, peer, id)
	return m.Kind, m.Text
}

// TestDeleteForEveryone: a sender deletes their message on every device
// of both sides, its file with it; nobody can delete another person's
// message, not even by sending a deletion by hand; after 24 hours it is
// too late.
func TestDeleteForEveryone(t *testing.T) {
	ctx := testCtx(t)
	srv := newServer(t)
	alice, bob := aliceAndBob(t, srv.URL)
	a2 := link(t, alice, srv.URL, "alice-2")

	oops := send(t, alice, "bob", "oops, wrong chat")
	keep := send(t, alice, "bob", "keep this")
	file := filepath.Join(t.TempDir(), "secret.txt")
	os.WriteFile(file, []byte("not for bob"), 0o600)
	sf, err := alice.SendFile(ctx, "bob", file, FileOptions{Caption: "the file"})
	if err != nil {
		t.Fatal(err)
	}
	syncAll(t, bob)
	syncAll(t, a2)

	if err := bob.DeleteForEveryone(ctx, oops.ID); !errors.Is(err, ErrNotDeletable) {
		t.Fatalf("bob deleting alice's message: %v", err)
	}
	if err := alice.DeleteForEveryone(ctx, "00"); !errors.Is(err, ErrUnknownMessage) {
		t.Fatalf("an unknown id: %v", err)
	}
	for _, id := range []string{oops.ID, sf.Message.ID} {
		if err := alice.DeleteForEveryone(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if k, text := kindOf(t, alice, "bob", oops.ID); k != KindDeleted || text != "" {
		t.Fatalf("alice's copy: %s %q", k, text)
	}
	for _, c := range []*Client{bob, a2} {
		peer := "alice"
		if c == a2 {
			peer = "bob"
		}
		evs := only(syncAll(t, c), EventDeleted)
		if len(evs) != 2 || evs[0].Peer != peer || len(evs[0].Refs) != 1 || evs[0].Refs[0] != oops.ID {
			t.Fatalf("%s/%d: deletion events %s", c.Handle(), c.DeviceID(), describe(evs))
		}
		for _, id := range []string{oops.ID, sf.Message.ID} {
			if k, text := kindOf(t, c, peer, id); k != KindDeleted || text != "" {
				t.Fatalf("%s/%d's copy of %s: %s %q", c.Handle(), c.DeviceID(), id, k, text)
			}
		}
		if k, text := kindOf(t, c, peer, keep.ID); k != KindMessage || text != "keep this" {
			t.Fatalf("%s/%d's other message: %s %q", c.Handle(), c.DeviceID(), k, text)
		}
	}
	// bob's file is gone with its message: nothing left to download.
	if err := bob.DownloadPending(ctx, DownloadOptions{}, func(d Downloaded) { t.Fatalf("bob downloaded %+v", d) }); err != nil {
		t.Fatal(err)
	}

	// A deletion bob writes by hand for alice's message changes nothing.
	forged := &content.Content{Kind: content.KindDelete, To: "alice", Refs: [][16]byte{mustID(t, keep.ID)}}
	sendControl(t, bob, "alice", forged, 0)
	if evs := only(syncAll(t, alice), EventDeleted); len(evs) != 0 {
		t.Fatalf("a forged deletion: %s", describe(evs))
	}
	if k, text := kindOf(t, alice, "bob", keep.ID); k != KindMessage || text != "keep this" {
		t.Fatalf("after a forged deletion alice has %s %q", k, text)
	}

	// A day later it is too late.
	alice.testNow = func() time.Time { return time.Now().Add(unsendWindow + time.Minute) }
	if err := alice.DeleteForEveryone(ctx, keep.ID); !errors.Is(err, ErrNotDeletable) {
		t.Fatalf("after a day: %v", err)
	}
}

func mustID(t *testing.T, id string) [16]byte {
	t.Helper()
	b, ok := parseID(id)
	if !ok {
		t.Fatalf("bad id %q", id)
	}
	return b
}

// sendControl has c send ct to `to` as it sends control messages, with
// its SentAt moved age into the past when age > 0 (an old one arriving
// late).
func sendControl(t *testing.T, c *Client, to string, ct *content.Content, age time.Duration) {
	t.Helper()
	ctx := testCtx(t)
	err := c.db.Update(ctx, func(tx *clientdb.Tx) error {
		if err := queueControl(tx, to, ct); err != nil || age == 0 {
			return err
		}
		ct.SentAt = time.Now().Add(-age).UnixMilli()
		b, err := ct.Marshal()
		if err != nil {
			return err
		}
		o, err := tx.OutboxItem(idString(ct.ID))
		if err != nil {
			return err
		}
		o.Content = b
		return tx.PutOutbox(o)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.flushOutbox(ctx); err != nil {
		t.Fatal(err)
	}
}
