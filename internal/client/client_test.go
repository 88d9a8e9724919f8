package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestRegister(t *testing.T) {
	srv := newServer(t)
	home := filepath.Join(t.TempDir(), "home")
	c := openClient(t, srv.URL, home, "laptop")
	if c.Registered() || c.Handle() != "" || c.DeviceID() != 0 {
		t.Fatal("a fresh home is registered")
	}
	if _, err := c.Send(testCtx(t), "bob", "hi"); !errors.Is(err, ErrNotRegistered) {
		t.Errorf("send before registering: %v", err)
	}
	if err := c.Register(testCtx(t), "no"); !errors.Is(err, ErrInvalidHandle) {
		t.Errorf("short handle: %v", err)
	}
	if err := c.Register(testCtx(t), "@Alice"); err != nil {
		t.Fatal(err)
	}
	if !c.Registered() || c.Handle() != "alice" || c.DeviceID() == 0 {
		t.Fatalf("after register: %v %q %d", c.Registered(), c.Handle(), c.DeviceID())
	}
	if err := c.Register(testCtx(t), "alice2"); !errors.Is(err, ErrAlreadyRegistered) {
		t.Errorf("second register: %v", err)
	}
	other := openClient(t, srv.URL, "", "phone")
	if err := other.Register(testCtx(t), "alice"); !errors.Is(err, ErrHandleTaken) {
		t.Errorf("taken handle: %v", err)
	}
	var ae *APIError
	if err := other.Register(testCtx(t), "alice"); !errors.As(err, &ae) || ae.Status != 409 {
		t.Errorf("taken handle is not an APIError 409: %v", err)
	}

	// Home and database modes.
	for p, want := range map[string]os.FileMode{home: 0o700, filepath.Join(home, DBFile): 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}

	// Reopened without a server URL, the stored one is used.
	id := c.DeviceID()
	c.Close()
	c2, err := Open(testCtx(t), Options{Home: home})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if c2.Handle() != "alice" || c2.DeviceID() != id || c2.Server() != srv.URL {
		t.Errorf("reopened: %q %d %q", c2.Handle(), c2.DeviceID(), c2.Server())
	}
	devs, err := c2.Devices(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 1 || devs[0].ID != id || !devs[0].Current || devs[0].Name != "laptop" {
		t.Errorf("devices %+v", devs)
	}
	if _, err := c2.Send(testCtx(t), "nobody_here", "hi"); !errors.Is(err, ErrUnknownHandle) {
		t.Errorf("send to unknown handle: %v", err)
	}
	if _, err := c2.Send(testCtx(t), "alice", "hi"); !errors.Is(err, ErrSelf) {
		t.Errorf("send to self: %v", err)
	}
}

func TestSendReceiveBothWays(t *testing.T) {
	srv := newServer(t)
	alice, bob := aliceAndBob(t, srv.URL)
	ctx := testCtx(t)

	m := send(t, alice, "bob", "hello bob")
	if m.Status != StatusSent || !m.Outgoing || m.From != "alice" || m.Peer != "bob" || len(m.ID) != 32 {
		t.Errorf("sent message %+v", m)
	}
	evs := syncAll(t, bob)
	msgs := only(evs, EventMessage)
	if len(msgs) != 1 {
		t.Fatalf("bob's events %s", describe(evs))
	}
	got := msgs[0].Message
	if got.Text != "hello bob" || got.ID != m.ID || got.From != "alice" || got.Peer != "alice" || got.Outgoing || got.Request || got.Status != StatusReceived || got.Device != alice.DeviceID() {
		t.Errorf("bob got %+v", got)
	}
	// Bob's Sync sent a delivery receipt.
	evs = syncAll(t, alice)
	if d := only(evs, EventDelivered); len(d) != 1 || d[0].Peer != "bob" || len(d[0].Refs) != 1 || d[0].Refs[0] != m.ID {
		t.Errorf("alice's events after delivery %s", describe(evs))
	}
	h, _ := alice.History(ctx, "bob", 0)
	if len(h) != 1 || h[0].Status != StatusDelivered {
		t.Errorf("alice's history %+v", h)
	}

	convs, err := bob.Conversations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(convs) != 1 || convs[0].Peer != "alice" || convs[0].Unread != 1 || convs[0].Request || convs[0].Last.Text != "hello bob" {
		t.Errorf("bob's conversations %+v", convs)
	}
	if err := bob.MarkRead(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	convs, _ = bob.Conversations(ctx)
	if convs[0].Unread != 0 {
		t.Errorf("unread after MarkRead: %d", convs[0].Unread)
	}
	evs = syncAll(t, alice)
	if r := only(evs, EventRead); len(r) != 1 || r[0].Refs[0] != m.ID {
		t.Errorf("alice's events after read %s", describe(evs))
	}
	h, _ = alice.History(ctx, "bob", 0)
	if h[0].Status != StatusRead {
		t.Errorf("status after read receipt %q", h[0].Status)
	}

	// And back, several in a row.
	for _, s := range []string{"hi alice", "how are you", "?"} {
		send(t, bob, "alice", s)
	}
	evs = syncAll(t, alice)
	wantStrings(t, "alice receives", texts(evs), "hi alice", "how are you", "?")
	wantStrings(t, "alice's history", historyTexts(t, alice, "bob"), ">hello bob", "<hi alice", "<how are you", "<?")
	wantStrings(t, "bob's history", historyTexts(t, bob, "alice"), "<hello bob", ">hi alice", ">how are you", ">?")
	// Alice made bob a contact by writing to him, so bob gets receipts.
	evs = syncAll(t, bob)
	n := 0
	for _, ev := range only(evs, EventDelivered) {
		n += len(ev.Refs)
	}
	if n != 3 {
		t.Errorf("bob's delivery receipts for %d messages, want 3: %s", n, describe(evs))
	}
	cs, _ := alice.Contacts(ctx)
	if len(cs) != 1 || cs[0].Handle != "bob" || cs[0].State != "contact" {
		t.Errorf("alice's contacts %+v", cs)
	}

	// Typing.
	if err := bob.SendTyping(ctx, "alice", true); err != nil {
		t.Fatal(err)
	}
	evs = syncAll(t, alice)
	if ty := only(evs, EventTyping); len(ty) != 1 || !ty[0].Typing || ty[0].Peer != "bob" {
		t.Errorf("typing events %s", describe(evs))
	}

	// Read receipts off: bob reads, alice hears nothing.
	send(t, alice, "bob", "one more")
	syncAll(t, bob)
	if err := bob.SetReadReceipts(ctx, false); err != nil {
		t.Fatal(err)
	}
	if bob.ReadReceipts() {
		t.Error("read receipts still on")
	}
	if err := bob.MarkRead(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	evs = syncAll(t, alice)
	if r := only(evs, EventRead); len(r) != 0 {
		t.Errorf("read receipt sent while off: %s", describe(evs))
	}
	h, _ = bob.History(ctx, "alice", 1)
	if h[0].Status != StatusRead {
		t.Errorf("bob's own read state %q", h[0].Status)
	}
}

// Both sides start a session at once; each accepts the other's, and the
// conversation goes on over whichever session was used last.
func TestSimultaneousSessions(t *testing.T) {
	srv := newServer(t)
	ctx := testCtx(t)
	alice := register(t, srv.URL, "alice")
	bob := register(t, srv.URL, "bob")
	for _, c := range []*Client{alice, bob} {
		other := "bob"
		if c == bob {
			other = "alice"
		}
		if err := c.AddContact(ctx, other); err != nil {
			t.Fatal(err)
		}
	}
	send(t, alice, "bob", "a1")
	send(t, bob, "alice", "b1")
	wantStrings(t, "bob receives", texts(syncAll(t, bob)), "a1")
	wantStrings(t, "alice receives", texts(syncAll(t, alice)), "b1")
	for i := 0; i < 3; i++ {
		send(t, alice, "bob", "a")
		send(t, bob, "alice", "b")
		wantStrings(t, "bob receives", texts(syncAll(t, bob)), "a")
		wantStrings(t, "alice receives", texts(syncAll(t, alice)), "b")
	}
	for _, c := range []*Client{alice, bob} {
		for _, ev := range syncAll(t, c) {
			if ev.Type == EventDropped || ev.Type == EventReplay {
				t.Errorf("%s: %s", c.Handle(), describe([]Event{ev}))
			}
		}
	}
}

// Sends from several goroutines while Run receives: every message is
// read by the other side (no message key is used twice).
func TestConcurrentSendsWhileRunning(t *testing.T) {
	srv := newServer(t)
	ctx := testCtx(t)
	alice, bob := aliceAndBob(t, srv.URL)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	events := make(chan Event, 1000)
	runDone := make(chan error, 1)
	go func() { runDone <- alice.Run(runCtx, func(ev Event) { events <- ev }) }()

	const senders, each = 3, 5
	var wg sync.WaitGroup
	for g := 0; g < senders; g++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := alice.Send(ctx, "bob", fmt.Sprintf("a%d-%d", g, i)); err != nil {
					t.Error(err)
				}
			}
		}()
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := bob.Send(ctx, "alice", fmt.Sprintf("b%d-%d", g, i)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	got := map[string]bool{}
	for len(got) < senders*each {
		select {
		case ev := <-events:
			switch ev.Type {
			case EventMessage:
				got[ev.Message.Text] = true
			case EventDropped, EventReplay:
				t.Errorf("alice: %s", describe([]Event{ev}))
			}
		case <-ctx.Done():
			t.Fatalf("alice received %d of %d", len(got), senders*each)
		}
	}
	stop()
	<-runDone
	evs := syncAll(t, bob)
	if n := len(only(evs, EventMessage)); n != senders*each {
		t.Errorf("bob received %d of %d: %s", n, senders*each, describe(evs))
	}
	if n := len(only(evs, EventDropped)) + len(only(evs, EventReplay)); n != 0 {
		t.Errorf("bob dropped %d", n)
	}
}
