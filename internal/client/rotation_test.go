package client

import (
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/client/clientdb"
	"github.com/parleychat/parley/internal/identity"
)

// signedPrekeyIDs returns the ids of c's stored signed and last-resort
// prekeys, oldest first, and the id it records as published.
func signedPrekeyIDs(t *testing.T, c *Client) (signed, lastResort []uint32, published string) {
	t.Helper()
	err := c.db.View(testCtx(t), func(tx *clientdb.Tx) error {
		for kind, out := range map[byte]*[]uint32{identity.PrekeySigned: &signed, identity.PrekeyPQLastResort: &lastResort} {
			ks, err := tx.PrekeysOfKind(kind)
			if err != nil {
				return err
			}
			for _, k := range ks {
				*out = append(*out, k.ID)
			}
		}
		var err error
		published, err = tx.Setting(settingSignedPublished, "")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return signed, lastResort, published
}

// servedPrekey is the id of the signed prekey the server hands out for c's
// device, as another client fetches and verifies it.
func servedPrekey(t *testing.T, other, c *Client) uint32 {
	t.Helper()
	handle := c.Handle()
	bs, err := other.bundles(testCtx(t), handle, []uint32{c.DeviceID()})
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 1 {
		t.Fatalf("%d bundles for %s, want 1", len(bs), handle)
	}
	return bs[0].bundle.SignedPrekey.ID
}

// TestSignedPrekeyRotation: a device replaces its signed and last-resort
// prekeys every signedPrekeyRotation, the server hands out the new ones
// (signed as the device list says), a first message sent from a bundle
// fetched before the rotation still decrypts, and the old pair is deleted
// signedPrekeyGrace after its successor was published, not before, and
// not while the successor's upload keeps failing.
func TestSignedPrekeyRotation(t *testing.T) {
	ts := newServer(t)
	alice, bob := aliceAndBob(t, ts.URL)
	carol := register(t, ts.URL, "carol")
	if err := carol.AddContact(testCtx(t), "alice"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	clock := start
	alice.testNow = func() time.Time { return clock }

	s0, l0, pub := signedPrekeyIDs(t, alice)
	if len(s0) != 1 || len(l0) != 1 || pub != "" {
		t.Fatalf("after registering: signed %v, last resort %v, published %q; want one each, unset", s0, l0, pub)
	}
	if s := servedPrekey(t, carol, alice); s != s0[0] {
		t.Fatalf("served signed prekey %d, want %d", s, s0[0])
	}

	// A day later nothing rotates.
	clock = start.Add(24 * time.Hour)
	syncAll(t, alice)
	if s, _, _ := signedPrekeyIDs(t, alice); len(s) != 1 {
		t.Fatalf("rotated after a day: signed %v", s)
	}

	// bob starts a session from the registered bundle; alice is offline.
	send(t, bob, "alice", "sent before the rotation")

	// Three days later alice rotates before she reads bob's message, and
	// still decrypts it with the replaced key.
	clock = start.Add(3 * 24 * time.Hour)
	wantStrings(t, "alice's messages", texts(only(syncAll(t, alice), EventMessage)), "sent before the rotation")
	s1, l1, pub := signedPrekeyIDs(t, alice)
	if len(s1) != 2 || len(l1) != 2 || pub != strconv.FormatUint(uint64(s1[1]), 10) {
		t.Fatalf("after the rotation: signed %v, last resort %v, published %q", s1, l1, pub)
	}
	// The server hands out the new signed prekey, and carol's client
	// checks its signature against alice's device list.
	if s := servedPrekey(t, carol, alice); s != s1[1] {
		t.Fatalf("served signed prekey %d, want the new %d", s, s1[1])
	}
	send(t, carol, "alice", "sent after the rotation")
	wantStrings(t, "alice's messages", texts(only(syncAll(t, alice), EventMessage)), "sent after the rotation")

	// 29 days after the rotation the old pair is still kept (and a new
	// one made, since the current one is 29 days old)...
	clock = start.Add((3 + 29) * 24 * time.Hour)
	syncAll(t, alice)
	s2, l2, _ := signedPrekeyIDs(t, alice)
	if len(s2) != 3 || s2[0] != s0[0] || len(l2) != 3 || l2[0] != l0[0] {
		t.Fatalf("29 days after the rotation: signed %v, last resort %v; want the first pair kept and a third", s2, l2)
	}
	// ...and 30.5 days after it, the first pair is gone; the second,
	// replaced a day and a half ago, stays.
	clock = start.Add((3*24 + 30*24 + 12) * time.Hour)
	syncAll(t, alice)
	s3, l3, _ := signedPrekeyIDs(t, alice)
	if len(s3) != 2 || s3[0] != s1[1] || len(l3) != 2 || l3[0] != l1[1] {
		t.Fatalf("30.5 days after the rotation: signed %v, last resort %v; want %v, %v", s3, l3, s2[1:], l2[1:])
	}
	err := alice.db.View(testCtx(t), func(tx *clientdb.Tx) error {
		_, err := tx.Prekey(s0[0])
		return err
	})
	if !errors.Is(err, clientdb.ErrNotFound) {
		t.Fatalf("the first signed prekey after its grace: %v, want ErrNotFound", err)
	}

	// With the server down, a rotation is made but not published. Pairs
	// replaced long ago still go on time (deleting needs no server), but
	// the published pair stays while its successor is unpublished,
	// however long that takes, and no further pair is made meanwhile.
	ts.stop()
	me, err := alice.self()
	if err != nil {
		t.Fatal(err)
	}
	clock = start.Add(100 * 24 * time.Hour)
	if err := alice.rotateSignedPrekeys(testCtx(t), me); err == nil {
		t.Fatal("rotating with the server down: no error")
	}
	s4, _, pub := signedPrekeyIDs(t, alice)
	if len(s4) != 2 || s4[0] != s3[1] || pub != strconv.FormatUint(uint64(s3[1]), 10) {
		t.Fatalf("after a failed upload: signed %v, published %q; want %d and a new one, %d published", s4, pub, s3[1], s3[1])
	}
	clock = start.Add(140 * 24 * time.Hour)
	if err := alice.rotateSignedPrekeys(testCtx(t), me); err == nil {
		t.Fatal("rotating with the server down: no error")
	}
	s5, _, pub := signedPrekeyIDs(t, alice)
	if !slices.Equal(s5, s4) || pub != strconv.FormatUint(uint64(s4[0]), 10) {
		t.Fatalf("40 days into failed uploads: signed %v, published %q; want %v, %d published", s5, pub, s4, s4[0])
	}

	// Back online, the waiting pair is published, and the pair it
	// replaces is kept for the grace from now, not from when the new one
	// was made.
	ts = startServer(t, ts.dir, ts.Addr)
	syncAll(t, alice)
	s6, _, pub := signedPrekeyIDs(t, alice)
	if len(s6) != 2 || s6[1] != s5[1] || pub != strconv.FormatUint(uint64(s5[1]), 10) {
		t.Fatalf("after the retry: signed %v, published %q; want %v, %d published", s6, pub, s5, s5[1])
	}
	if s := servedPrekey(t, carol, alice); s != s5[1] {
		t.Fatalf("served signed prekey %d, want %d", s, s5[1])
	}
	clock = start.Add((140 + 29) * 24 * time.Hour)
	syncAll(t, alice)
	if s7, _, _ := signedPrekeyIDs(t, alice); len(s7) != 3 || s7[0] != s5[0] {
		t.Fatalf("29 days after the retry: signed %v; want %d kept and a new one", s7, s5[0])
	}
	clock = start.Add((140*24 + 30*24 + 12) * time.Hour)
	syncAll(t, alice)
	if s8, _, _ := signedPrekeyIDs(t, alice); len(s8) != 2 || s8[0] != s5[1] {
		t.Fatalf("30.5 days after the retry: signed %v; want %d gone", s8, s5[0])
	}
	send(t, bob, "alice", "after the retry")
	wantStrings(t, "alice's messages", texts(only(syncAll(t, alice), EventMessage)), "after the retry")
}
