package client

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/client/clientdb"
)

// link links a new device (home "", a fresh one) to existing's account
// and returns it.
func link(t testing.TB, existing *Client, url, name string) *Client {
	t.Helper()
	return linkWith(t, existing, url, name, LinkOptions{})
}

// linkWith is link with LinkNewWith's options.
func linkWith(t testing.TB, existing *Client, url, name string, o LinkOptions) *Client {
	t.Helper()
	ctx := testCtx(t)
	nd := openClient(t, url, "", name)
	codes := make(chan string, 1)
	type result struct {
		d   Device
		err error
	}
	done := make(chan result, 1)
	go func() {
		d, err := existing.LinkNewWith(ctx, func(code string) { codes <- code }, o)
		done <- result{d, err}
	}()
	var code string
	select {
	case code = <-codes:
	case r := <-done:
		t.Fatalf("LinkNew ended before showing a code: %v", r.err)
	case <-ctx.Done():
		t.Fatal("no link code")
	}
	if err := nd.Link(ctx, code); err != nil {
		t.Fatalf("Link: %v", err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("LinkNew: %v", r.err)
	}
	if r.d.ID != nd.DeviceID() || r.d.Name != name {
		t.Errorf("LinkNew returned %+v, new device is %d", r.d, nd.DeviceID())
	}
	return nd
}

func TestLinkedDevices(t *testing.T) {
	srv := newServer(t)
	ctx := testCtx(t)
	a1 := register(t, srv.URL, "alice")
	bob := register(t, srv.URL, "bob")
	carol := register(t, srv.URL, "carol")
	if err := bob.AddContact(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	// Bob and alice talk before alice links a second device, so bob has
	// alice's one-device list cached.
	send(t, a1, "bob", "before linking")
	syncAll(t, bob)
	syncAll(t, a1)
	if err := a1.Block(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	if err := a1.SetReadReceipts(ctx, false); err != nil {
		t.Fatal(err)
	}

	a2 := link(t, a1, srv.URL, "alice-phone")
	if a2.Handle() != "alice" || !a2.Registered() || a2.DeviceID() == a1.DeviceID() {
		t.Fatalf("linked device: %q %d", a2.Handle(), a2.DeviceID())
	}
	// The transfer carried contacts and settings.
	cs, _ := a2.Contacts(ctx)
	if len(cs) != 2 || cs[0].Handle != "bob" || cs[0].State != "contact" || cs[1].Handle != "carol" || cs[1].State != "blocked" {
		t.Errorf("linked device's contacts %+v", cs)
	}
	if a2.ReadReceipts() {
		t.Error("read receipt setting not transferred")
	}
	for _, c := range []*Client{a1, a2} {
		devs, err := c.Devices(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(devs) != 2 {
			t.Fatalf("devices %+v", devs)
		}
		for _, d := range devs {
			if d.Current != (d.ID == c.DeviceID()) {
				t.Errorf("device %d current=%v on %d", d.ID, d.Current, c.DeviceID())
			}
		}
	}

	// Bob still has alice's old list: the server says device_mismatch,
	// bob refreshes (verifying the new list) and sends again.
	send(t, bob, "alice", "after linking")
	for _, c := range []*Client{a1, a2} {
		evs := syncAll(t, c)
		wantStrings(t, "alice's devices receive", texts(evs), "after linking")
	}
	// Carol is blocked on both devices: dropped silently.
	send(t, carol, "alice", "let me in")
	for _, c := range []*Client{a1, a2} {
		evs := syncAll(t, c)
		if len(evs) != 0 {
			t.Errorf("events from a blocked sender: %s", describe(evs))
		}
	}

	// A message from one own device shows on the other as outgoing.
	send(t, a2, "bob", "from the phone")
	evs := syncAll(t, a1)
	if msgs := only(evs, EventMessage); len(msgs) != 1 || !msgs[0].Message.Outgoing || msgs[0].Message.Peer != "bob" || msgs[0].Message.Device != a2.DeviceID() {
		t.Errorf("sync copy on a1: %s", describe(evs))
	}
	wantStrings(t, "a1's history", historyTexts(t, a1, "bob"), ">before linking", "<after linking", ">from the phone")
	// a2 got a1's history when it was linked (history.go).
	wantStrings(t, "a2's history", historyTexts(t, a2, "bob"), ">before linking", "<after linking", ">from the phone")
	evs = syncAll(t, bob)
	wantStrings(t, "bob receives", texts(evs), "from the phone")

	// Reading on one device marks read on the other (read receipts are off,
	// so bob hears nothing).
	if err := a1.MarkRead(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	evs = syncAll(t, a2)
	if r := only(evs, EventRead); len(r) != 1 || r[0].Peer != "bob" {
		t.Errorf("read sync on a2: %s", describe(evs))
	}
	if convs, _ := a2.Conversations(ctx); len(convs) != 1 || convs[0].Unread != 0 {
		t.Errorf("a2's conversations after read sync %+v", convs)
	}

	// A contact change on one device reaches the other.
	if err := a2.Unblock(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	evs = syncAll(t, a1)
	if len(only(evs, EventContacts)) != 1 {
		t.Errorf("contact sync events %s", describe(evs))
	}
	cs, _ = a1.Contacts(ctx)
	if len(cs) != 1 || cs[0].Handle != "bob" {
		t.Errorf("a1's contacts after the phone unblocked carol %+v", cs)
	}

	// A third device, linked while a2 is offline.
	a3 := link(t, a1, srv.URL, "alice-tablet")
	send(t, bob, "alice", "three devices")
	for _, s := range []string{"offline 1", "offline 2"} {
		send(t, bob, "alice", s)
	}
	for _, c := range []*Client{a1, a3} {
		evs := syncAll(t, c)
		wantStrings(t, "online devices receive", texts(evs), "three devices", "offline 1", "offline 2")
	}
	evs = syncAll(t, a2) // a2 comes back
	wantStrings(t, "the offline device receives later", texts(evs), "three devices", "offline 1", "offline 2")

	// Removing a device: bob's next send names it, the server says it is
	// extra, bob refreshes and drops its session.
	if err := a1.RemoveDevice(ctx, a1.DeviceID()); !errors.Is(err, ErrCurrentDevice) {
		t.Errorf("removing the current device: %v", err)
	}
	if err := a1.RemoveDevice(ctx, 12345); !errors.Is(err, ErrUnknownDevice) {
		t.Errorf("removing an unknown device: %v", err)
	}
	if err := a1.RemoveDevice(ctx, a3.DeviceID()); err != nil {
		t.Fatal(err)
	}
	if devs, _ := a1.Devices(ctx); len(devs) != 2 {
		t.Errorf("devices after removal %+v", devs)
	}
	send(t, bob, "alice", "after removal")
	for _, c := range []*Client{a1, a2} {
		evs := syncAll(t, c)
		wantStrings(t, "remaining devices receive", texts(evs), "after removal")
	}
	var sessions []uint32
	bob.db.View(ctx, func(tx *clientdb.Tx) error {
		var err error
		sessions, err = tx.SessionDevices("alice")
		return err
	})
	for _, d := range sessions {
		if d == a3.DeviceID() {
			t.Error("bob kept a session with the removed device")
		}
	}
	if _, err := trySync(t, a3); !errors.Is(err, ErrDeviceRemoved) {
		t.Errorf("removed device syncs: %v", err)
	}
	// Run gives up on a removed device instead of retrying forever.
	if err := a3.Run(ctx, nil); !errors.Is(err, ErrDeviceRemoved) {
		t.Errorf("removed device runs: %v", err)
	}
}

func TestLinkErrors(t *testing.T) {
	srv := newServer(t)
	ctx := testCtx(t)
	a1 := register(t, srv.URL, "alice")
	nd := openClient(t, srv.URL, "", "new")
	if err := nd.Link(ctx, "not a code"); !errors.Is(err, ErrBadLinkCode) {
		t.Errorf("bad code: %v", err)
	}
	if err := a1.Link(ctx, "x"); !errors.Is(err, ErrAlreadyRegistered) {
		t.Errorf("link on a registered device: %v", err)
	}
	// LinkNew gives up when its context ends.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	shown := 0
	if _, err := a1.LinkNew(short, func(string) { shown++ }); err == nil {
		t.Error("LinkNew without a joiner succeeded")
	}
	if shown != 1 {
		t.Errorf("code shown %d times", shown)
	}
}

func TestDeviceListRollback(t *testing.T) {
	srv := newServer(t)
	ctx := testCtx(t)
	a1 := register(t, srv.URL, "alice")
	bob := register(t, srv.URL, "bob")
	var v1 api.Account
	if err := bob.call(ctx, "GET", path(api.PathAccount, "alice"), nil, &v1, true); err != nil {
		t.Fatal(err)
	}
	link(t, a1, srv.URL, "phone")
	if _, err := bob.refreshPeer(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	// The server now serves the old, validly signed version 1.
	if _, err := bob.applyAccount(ctx, "alice", v1.IdentityKey, v1.DeviceList); !errors.Is(err, ErrRollback) {
		t.Errorf("rolled-back list: %v", err)
	}
	p, _ := bob.storedPeer(ctx, "alice")
	if p.list.Version != 2 || len(p.list.Devices) != 2 {
		t.Errorf("stored list after a rollback attempt: v%d %d devices", p.list.Version, len(p.list.Devices))
	}
	// A list signed by another key for the pinned key is refused.
	if _, err := bob.applyAccount(ctx, "alice", p.key, []byte("garbage")); !errors.Is(err, ErrBadDeviceList) {
		t.Errorf("garbage list: %v", err)
	}
	// The own account must keep the own key.
	if _, err := a1.applyAccount(ctx, "alice", p.key[:31], v1.DeviceList); !errors.Is(err, ErrIdentityMismatch) {
		t.Errorf("own key changed: %v", err)
	}
}
