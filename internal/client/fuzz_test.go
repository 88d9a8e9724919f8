package client

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/client/clientdb"
	"github.com/parleychat/parley/internal/content"
	"github.com/parleychat/parley/internal/devicelist"
	"github.com/parleychat/parley/internal/identity"
	"github.com/parleychat/parley/internal/pqxdh"
	"github.com/parleychat/parley/internal/session"
)

// receiver is a client with an account and one known peer, set up
// without a server, and frames that peer's device sent to it.
type receiver struct {
	c      *Client
	me     self
	peerID uint32
	frames [][]byte // three frames of one new session
	ids    []string // their message ids
	texts  []string
}

func newReceiver(t testing.TB) *receiver {
	ctx := context.Background()
	c, err := Open(ctx, Options{Home: filepath.Join(t.TempDir(), "home"), Server: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })

	// This device: alice.
	ak, _ := identity.NewAccountKey()
	dk, _ := identity.NewDeviceKey()
	const myID = 7
	mine := devicelist.List{Handle: "alice", Version: 1, Devices: []devicelist.Device{c.ownEntry(dk, myID)}}
	signed, err := mine.Sign(ak)
	if err != nil {
		t.Fatal(err)
	}
	prekeys, next, err := initialPrekeys(dk, 1)
	if err != nil {
		t.Fatal(err)
	}
	dkb, _ := dk.MarshalBinary()
	acct := &clientdb.Account{Handle: "alice", AccountSeed: ak.Seed(), DeviceID: myID, DeviceKey: dkb, Server: c.Server(), NextPrekeyID: next, Created: time.Now()}
	if err := c.installAccount(ctx, acct, signed, prekeys, nil); err != nil {
		t.Fatal(err)
	}
	me, _ := c.self()

	// The peer: bob, one device, a contact.
	bak, _ := identity.NewAccountKey()
	bdk, _ := identity.NewDeviceKey()
	const bobID = 9
	bl := devicelist.List{Handle: "bob", Version: 1, Devices: []devicelist.Device{{ID: bobID, SigningKey: bdk.SigningPublic(), DHKey: bdk.DHPublic(), Name: "b", Created: 1}}}
	bsigned, err := bl.Sign(bak)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.applyAccount(ctx, "bob", bak.Public(), bsigned); err != nil {
		t.Fatal(err)
	}
	if err := c.db.Update(ctx, func(tx *clientdb.Tx) error { return tx.SetContact("bob", clientdb.StateContact) }); err != nil {
		t.Fatal(err)
	}

	// Bob starts a session from alice's published prekeys.
	byKind := map[byte]*pqxdh.Prekey{}
	for _, p := range prekeys {
		if byKind[p.Kind] == nil {
			byKind[p.Kind] = p
		}
	}
	spk, otk, pq := byKind[identity.PrekeySigned], byKind[identity.PrekeyOneTime], byKind[identity.PrekeyPQOneTime]
	b := &pqxdh.Bundle{
		IdentityDH: dk.DHPublic(), SigningKey: dk.SigningPublic(),
		SignedPrekeyID: spk.ID, SignedPrekey: spk.Public, SignedPrekeySig: spk.Signature,
		OneTimeID: otk.ID, OneTime: otk.Public,
		PQPrekeyID: pq.ID, PQPrekey: pq.Public, PQPrekeySig: pq.Signature,
	}
	bobLocal := session.Local{Address: session.Address{Handle: "bob", DeviceID: bobID, IdentityKey: bak.Public()}, Device: bdk}
	aliceRemote := session.Remote{Address: session.Address{Handle: "alice", DeviceID: myID, IdentityKey: ak.Public()}, IdentityDH: dk.DHPublic()}
	s, err := session.Initiate(bobLocal, aliceRemote, b)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{c: c, me: me, peerID: bobID}
	for _, text := range []string{"first", "second", "third"} {
		id := randomID()
		ct := content.Content{Kind: content.KindText, ID: id, SentAt: time.Now().UnixMilli(), To: "alice", Text: text}
		pt, err := ct.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		frame, err := s.Encrypt(pt)
		if err != nil {
			t.Fatal(err)
		}
		r.frames = append(r.frames, frame)
		r.ids = append(r.ids, hex.EncodeToString(id[:]))
		r.texts = append(r.texts, text)
	}
	return r
}

func (r *receiver) receive(id string, frame []byte) ([]Event, error) {
	return r.c.receive(context.Background(), r.me, &api.Envelope{Seq: 1, MessageID: id, Sender: "bob", SenderDevice: r.peerID, Ciphertext: frame})
}

// Frames are read once each, in any order; a tampered, replayed or
// mislabelled frame is dropped with an event, never stored.
func TestReceiveFrames(t *testing.T) {
	r := newReceiver(t)
	// A tampered prekey frame: dropped, and the one-time prekey it names
	// survives (the real frame below needs it).
	bad := append([]byte(nil), r.frames[0]...)
	bad[len(bad)-1] ^= 1
	evs, err := r.receive(r.ids[0], bad)
	if err != nil || len(evs) != 1 || evs[0].Type != EventDropped {
		t.Fatalf("tampered frame: %v %s", err, describe(evs))
	}
	// A frame whose inner id is not the envelope's: dropped, and the
	// session does not move.
	other := hex.EncodeToString(make([]byte, 16))
	evs, err = r.receive(other, r.frames[2])
	if err != nil || len(evs) != 1 || evs[0].Type != EventDropped {
		t.Fatalf("mislabelled frame: %v %s", err, describe(evs))
	}
	// The real ones, out of order.
	for _, i := range []int{1, 0, 2} {
		evs, err = r.receive(r.ids[i], r.frames[i])
		if err != nil || len(evs) != 1 || evs[0].Type != EventMessage || evs[0].Message.Text != r.texts[i] {
			t.Fatalf("frame %d: %v %s", i, err, describe(evs))
		}
	}
	// The same envelope again: nothing (already seen).
	evs, err = r.receive(r.ids[0], r.frames[0])
	if err != nil || len(evs) != 0 {
		t.Errorf("redelivery: %v %s", err, describe(evs))
	}
	// The same frame under a new message id: the ratchet says replay.
	evs, err = r.receive(other, r.frames[1])
	if err != nil || len(evs) != 1 || evs[0].Type != EventReplay {
		t.Errorf("replayed frame under a new id: %v %s", err, describe(evs))
	}
	wantStrings(t, "history", historyTexts(t, r.c, "bob"), "<second", "<first", "<third")
	// The one-time prekey was used and deleted.
	var left int
	r.c.db.View(context.Background(), func(tx *clientdb.Tx) error {
		ps, err := tx.PrekeysOfKind(identity.PrekeyOneTime)
		left = len(ps)
		return err
	})
	if left != prekeyBatch-1 {
		t.Errorf("%d one-time prekeys left, want %d", left, prekeyBatch-1)
	}
}

// FuzzReceive feeds arbitrary envelopes from a known device to the
// receive path: whatever the bytes, it must not fail (every unreadable
// envelope is dropped and acknowledged) and must store only messages it
// reports.
func FuzzReceive(f *testing.F) {
	r := newReceiver(f)
	for i := range r.frames {
		f.Add(r.ids[i], r.frames[i])
	}
	f.Add("00000000000000000000000000000000", []byte{})
	f.Add("zz", []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, id string, frame []byte) {
		before, err := r.c.History(context.Background(), "bob", 0)
		if err != nil {
			t.Fatal(err)
		}
		evs, err := r.receive(id, frame)
		if err != nil {
			t.Fatalf("receive failed instead of dropping: %v", err)
		}
		after, err := r.c.History(context.Background(), "bob", 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(after) - len(before); got != len(only(evs, EventMessage)) {
			t.Fatalf("stored %d messages, reported %s", got, describe(evs))
		}
	})
}

// TestWriteFuzzSeeds refreshes testdata/fuzz/FuzzReceive with frames of a
// fresh session (PARLEY_WRITE_SEEDS=1). Under other keys they exercise
// the paths of well-formed frames that fail to decrypt.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("PARLEY_WRITE_SEEDS") == "" {
		t.Skip("set PARLEY_WRITE_SEEDS=1 to rewrite the seeds")
	}
	r := newReceiver(t)
	dir := filepath.Join("testdata", "fuzz", "FuzzReceive")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, fr := range r.frames {
		body := fmt.Sprintf("go test fuzz v1\nstring(%q)\n[]byte(%q)\n", r.ids[i], fr)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("frame%d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
