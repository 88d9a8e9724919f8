package client

import (
	"errors"
	"testing"

	"github.com/parleychat/parley/internal/content"
)

// Call signals reach every device of the callee and the caller's other
// devices; the history keeps only missed calls.
func TestCallSignals(t *testing.T) {
	srv := newServer(t)
	alice := register(t, srv.URL, "alice")
	alice2 := link(t, alice, srv.URL, "alice-2")
	bob := register(t, srv.URL, "bob")
	bob2 := link(t, bob, srv.URL, "bob-2")
	ctx := testCtx(t)
	for _, c := range []*Client{alice, bob} {
		peer := map[string]string{"alice": "bob", "bob": "alice"}[c.Handle()]
		if err := c.AddContact(ctx, peer); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []*Client{alice, alice2, bob, bob2} {
		syncAll(t, c)
	}

	// Call 1: offered, bob answers on device 1; bob2 sees the copy.
	call1 := [16]byte{1}
	if err := alice.SendCall(ctx, "bob", &content.Call{ID: call1, Type: content.CallOffer, Media: content.MediaAudio, SDP: "v=0 offer"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Client{bob, bob2} {
		calls := only(syncAll(t, c), EventCall)
		if len(calls) != 1 {
			t.Fatalf("%s/%d: %s", c.Handle(), c.DeviceID(), describe(calls))
		}
		s := calls[0].Call
		if s.Type != content.CallOffer || s.ID != call1 || s.SDP != "v=0 offer" || s.Peer != "alice" || s.From != "alice" ||
			s.Own() || s.SenderDevice != alice.DeviceID() || s.ServerTime.IsZero() {
			t.Fatalf("%s/%d got %+v", c.Handle(), c.DeviceID(), s)
		}
	}
	// alice's other device gets the copy of the offer.
	calls := only(syncAll(t, alice2), EventCall)
	if len(calls) != 1 || !calls[0].Call.Own() || calls[0].Call.Peer != "bob" || calls[0].Call.From != "alice" {
		t.Fatalf("alice2: %s %+v", describe(calls), calls)
	}
	if err := bob.SendCall(ctx, "alice", &content.Call{ID: call1, Type: content.CallAnswer, SDP: "v=0 answer", Device: alice.DeviceID()}); err != nil {
		t.Fatal(err)
	}
	calls = only(syncAll(t, bob2), EventCall)
	if len(calls) != 1 || calls[0].Call.Type != content.CallAnswer || !calls[0].Call.Own() || calls[0].Call.SenderDevice != bob.DeviceID() {
		t.Fatalf("bob2: %+v", calls)
	}
	if err := alice.SendCall(ctx, "bob", &content.Call{ID: call1, Type: content.CallHangup}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Client{bob, bob2} {
		evs := syncAll(t, c)
		if len(only(evs, EventMissedCall)) != 0 {
			t.Fatalf("%s/%d: a taken call is missed: %s", c.Handle(), c.DeviceID(), describe(evs))
		}
	}

	// Call 2: a video call nobody answers.
	call2 := [16]byte{2}
	alice.SendCall(ctx, "bob", &content.Call{ID: call2, Type: content.CallOffer, Media: content.MediaAudio | content.MediaVideo, SDP: "v=0"})
	syncAll(t, bob)
	alice.SendCall(ctx, "bob", &content.Call{ID: call2, Type: content.CallHangup})
	// bob2 was offline for both: it still records the miss, once.
	for _, c := range []*Client{bob, bob2} {
		evs := syncAll(t, c)
		missed := only(evs, EventMissedCall)
		if len(missed) != 1 || missed[0].Message.Text != "Missed video call" || missed[0].Peer != "alice" {
			t.Fatalf("%s/%d: %s", c.Handle(), c.DeviceID(), describe(evs))
		}
	}
	wantStrings(t, "bob's history", historyTexts(t, bob, "alice"), "<Missed video call")
	wantStrings(t, "alice's history", historyTexts(t, alice, "bob"))

	// Call 3: bob declines on device 2; device 1 does not record a miss.
	call3 := [16]byte{3}
	alice.SendCall(ctx, "bob", &content.Call{ID: call3, Type: content.CallOffer, Media: content.MediaAudio, SDP: "v=0"})
	syncAll(t, bob)
	syncAll(t, bob2)
	bob2.SendCall(ctx, "alice", &content.Call{ID: call3, Type: content.CallDecline})
	alice.SendCall(ctx, "bob", &content.Call{ID: call3, Type: content.CallHangup})
	syncAll(t, bob2)
	if evs := syncAll(t, bob); len(only(evs, EventMissedCall)) != 0 {
		t.Fatalf("bob: a declined call is missed: %s", describe(evs))
	}
	wantStrings(t, "bob's history", historyTexts(t, bob, "alice"), "<Missed video call")

	// Call 4: bob2 reads the offer in one process and the hang-up in the
	// next: the hang-up alone (device 0, with the offered media) records
	// the miss.
	call4 := [16]byte{4}
	alice.SendCall(ctx, "bob", &content.Call{ID: call4, Type: content.CallOffer, Media: content.MediaAudio | content.MediaVideo, SDP: "v=0"})
	syncAll(t, bob2)
	home := bob2.o.Home
	bob2.Close()
	bob2 = openClient(t, srv.URL, home, "bob-2")
	alice.SendCall(ctx, "bob", &content.Call{ID: call4, Type: content.CallHangup, Media: content.MediaAudio | content.MediaVideo})
	if missed := only(syncAll(t, bob2), EventMissedCall); len(missed) != 1 || missed[0].Message.Text != "Missed video call" {
		t.Fatalf("bob2 after a restart: %s", describe(missed))
	}
	// A hang-up for one device (the call was taken) is no miss.
	call5 := [16]byte{5}
	alice.SendCall(ctx, "bob", &content.Call{ID: call5, Type: content.CallHangup, Device: bob.DeviceID()})
	if missed := only(syncAll(t, bob2), EventMissedCall); len(missed) != 0 {
		t.Fatalf("a hang-up for another device is a miss: %s", describe(missed))
	}
	syncAll(t, bob)

	// Strangers cannot ring; blocked handles cannot be called.
	carol := register(t, srv.URL, "carol")
	carol.AddContact(ctx, "bob")
	if err := carol.SendCall(ctx, "bob", &content.Call{ID: [16]byte{6}, Type: content.CallOffer, SDP: "v=0"}); err != nil {
		t.Fatal(err)
	}
	if evs := syncAll(t, bob); len(only(evs, EventCall)) != 0 {
		t.Fatalf("a stranger's offer rang: %s", describe(evs))
	}
	if err := bob.Block(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	if err := bob.SendCall(ctx, "carol", &content.Call{ID: [16]byte{7}, Type: content.CallOffer}); !errors.Is(err, ErrBlocked) {
		t.Fatalf("calling a blocked handle: %v", err)
	}
	if err := bob.SendCall(ctx, "bob", &content.Call{Type: content.CallOffer}); !errors.Is(err, ErrSelf) {
		t.Fatalf("calling oneself: %v", err)
	}
	if err := bob.SendCall(ctx, "alice", &content.Call{Type: 0}); err == nil {
		t.Fatal("sent a call signal of type 0")
	}
}
