package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/parleychat/parley/internal/devicelist"
	"github.com/parleychat/parley/internal/identity"
)

func TestRequestsAcceptRejectBlock(t *testing.T) {
	srv := newServer(t)
	ctx := testCtx(t)
	alice := register(t, srv.URL, "alice")
	carol := register(t, srv.URL, "carol")
	dave := register(t, srv.URL, "dave")
	erin := register(t, srv.URL, "erin")

	// A stranger's messages are held as a request, without receipts.
	m1 := send(t, carol, "alice", "hi, it's carol")
	send(t, carol, "alice", "we met at the conference")
	evs := syncAll(t, alice)
	msgs := only(evs, EventMessage)
	if len(msgs) != 2 || !msgs[0].Message.Request {
		t.Fatalf("alice's events %s", describe(evs))
	}
	reqs, err := alice.Requests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 1 || reqs[0].Handle != "carol" || reqs[0].Messages != 2 || reqs[0].First.IsZero() {
		t.Errorf("requests %+v", reqs)
	}
	convs, _ := alice.Conversations(ctx)
	if len(convs) != 1 || !convs[0].Request {
		t.Errorf("conversations %+v", convs)
	}
	if evs := syncAll(t, carol); len(only(evs, EventDelivered)) != 0 {
		t.Errorf("a request sent a delivery receipt: %s", describe(evs))
	}
	if h, _ := carol.History(ctx, "alice", 0); h[0].Status != StatusSent {
		t.Errorf("carol's status %q", h[0].Status)
	}

	// Accepting turns the held messages into history; later ones are
	// ordinary and get receipts.
	if err := alice.AcceptRequest(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	if reqs, _ := alice.Requests(ctx); len(reqs) != 0 {
		t.Errorf("requests after accept %+v", reqs)
	}
	h, _ := alice.History(ctx, "carol", 0)
	if len(h) != 2 || h[0].Request || h[0].ID != m1.ID {
		t.Errorf("history after accept %+v", h)
	}
	send(t, carol, "alice", "thanks!")
	evs = syncAll(t, alice)
	if msgs := only(evs, EventMessage); len(msgs) != 1 || msgs[0].Message.Request {
		t.Errorf("after accept %s", describe(evs))
	}
	if evs := syncAll(t, carol); len(only(evs, EventDelivered)) != 1 {
		t.Errorf("no receipt after accept: %s", describe(evs))
	}

	// Rejecting deletes the held messages and drops later ones.
	send(t, dave, "alice", "buy my stuff")
	syncAll(t, alice)
	if err := alice.RejectRequest(ctx, "dave"); err != nil {
		t.Fatal(err)
	}
	if h, _ := alice.History(ctx, "dave", 0); len(h) != 0 {
		t.Errorf("rejected messages kept %+v", h)
	}
	send(t, dave, "alice", "please")
	if evs := syncAll(t, alice); len(evs) != 0 {
		t.Errorf("events from a rejected sender %s", describe(evs))
	}
	if h, _ := alice.History(ctx, "dave", 0); len(h) != 0 {
		t.Errorf("message from a rejected sender stored %+v", h)
	}

	// Blocking a contact drops their messages; unblocking restores them
	// as a contact (they talked before).
	send(t, alice, "erin", "hi erin")
	syncAll(t, erin)
	if err := alice.Block(ctx, "erin"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, "erin", "x"); !errors.Is(err, ErrBlocked) {
		t.Errorf("send to blocked: %v", err)
	}
	send(t, erin, "alice", "hello?")
	if evs := syncAll(t, alice); len(evs) != 0 {
		t.Errorf("events from a blocked sender %s", describe(evs))
	}
	if err := alice.Unblock(ctx, "erin"); err != nil {
		t.Fatal(err)
	}
	send(t, erin, "alice", "unblocked?")
	evs = syncAll(t, alice)
	if msgs := only(evs, EventMessage); len(msgs) != 1 || msgs[0].Message.Request {
		t.Errorf("after unblock %s", describe(evs))
	}
	cs, _ := alice.Contacts(ctx)
	states := map[string]string{}
	for _, c := range cs {
		states[c.Handle] = c.State
	}
	if states["carol"] != "contact" || states["dave"] != "rejected" || states["erin"] != "contact" || len(states) != 3 {
		t.Errorf("contacts %v", states)
	}
	// RemoveContact: the next message is a request again.
	if err := alice.RemoveContact(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	send(t, carol, "alice", "still there?")
	evs = syncAll(t, alice)
	if msgs := only(evs, EventMessage); len(msgs) != 1 || !msgs[0].Message.Request {
		t.Errorf("after remove %s", describe(evs))
	}
	if err := alice.AddContact(ctx, "nobody_here"); !errors.Is(err, ErrUnknownHandle) {
		t.Errorf("add unknown: %v", err)
	}
}

// forgingProxy stands between a client and the real server and, when
// told to, serves a different identity key and device list for one
// handle: a server substituting keys.
type forgingProxy struct {
	*httptest.Server
	mu     sync.Mutex
	handle string
	key    []byte
	list   []byte
}

func newForgingProxy(t *testing.T, target string) *forgingProxy {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &forgingProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.handle == "" || resp.StatusCode != http.StatusOK || resp.Request.Method != http.MethodGet {
			return nil
		}
		path := resp.Request.URL.Path
		if path != "/v1/accounts/"+p.handle && path != "/v1/keys/"+p.handle {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			return err
		}
		m["identity_key"], m["device_list"] = p.key, p.list
		body, _ = json.Marshal(m)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	p.Server = httptest.NewServer(rp)
	t.Cleanup(p.Close)
	return p
}

// forge makes the proxy serve handle with a new identity key and a list,
// signed by it, of the given devices.
func (p *forgingProxy) forge(t *testing.T, handle string, devices []devicelist.Device) {
	k, err := identity.NewAccountKey()
	if err != nil {
		t.Fatal(err)
	}
	l := devicelist.List{Handle: handle, Version: 1, Devices: devices}
	signed, err := l.Sign(k)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.handle, p.key, p.list = handle, k.Public(), signed
}

func TestKeyChange(t *testing.T) {
	srv := newServer(t)
	proxy := newForgingProxy(t, srv.URL)
	ctx := testCtx(t)
	alice := openClient(t, proxy.URL, "", "alice-1")
	if err := alice.Register(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	bob := register(t, srv.URL, "bob")
	if err := bob.AddContact(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	send(t, alice, "bob", "hello")
	syncAll(t, bob)
	before, err := alice.SafetyNumber(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if len(before.Number) != 60 || len(before.QR) == 0 || before.Verified || before.KeyChanged {
		t.Errorf("safety number %+v", before)
	}
	// Both sides compute the same number.
	theirs, err := bob.SafetyNumber(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if theirs.Number != before.Number {
		t.Errorf("numbers differ: %s vs %s", before.Number, theirs.Number)
	}
	if err := alice.MarkVerified(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if cs, _ := alice.Contacts(ctx); !cs[0].Verified || cs[0].KeyChanged {
		t.Errorf("after verify %+v", cs)
	}

	// The server starts serving another key for bob (with bob's device,
	// so bundles still come).
	p, _ := alice.storedPeer(ctx, "bob")
	proxy.forge(t, "bob", p.list.Devices)
	after, err := alice.SafetyNumber(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if !after.KeyChanged || after.Verified || after.Number == before.Number {
		t.Errorf("safety number after the change %+v", after)
	}
	if cs, _ := alice.Contacts(ctx); !cs[0].KeyChanged {
		t.Errorf("contact after the change %+v", cs)
	}
	evs := syncAll(t, alice)
	if kc := only(evs, EventKeyChanged); len(kc) != 1 || kc[0].Peer != "bob" {
		t.Errorf("events %s", describe(evs))
	}
	// Bob was verified: sending stops until the new number is verified.
	if _, err := alice.Send(ctx, "bob", "are you still you?"); !errors.Is(err, ErrKeyChanged) {
		t.Fatalf("send after key change: %v", err)
	}
	if err := alice.MarkVerified(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if sn, _ := alice.SafetyNumber(ctx, "bob"); sn.KeyChanged || !sn.Verified || sn.Number != after.Number {
		t.Errorf("after accepting the new key %+v", sn)
	}
	// Alice now encrypts to the substituted key: the real bob cannot read
	// it and says so, instead of showing anything.
	send(t, alice, "bob", "are you still you?")
	evs = syncAll(t, bob)
	if len(only(evs, EventMessage)) != 0 || len(only(evs, EventDropped)) != 1 {
		t.Errorf("bob's events for a message to a substituted key %s", describe(evs))
	}
	if !strings.Contains(describe(evs), "dropped") {
		t.Errorf("no detail: %s", describe(evs))
	}
}

func TestKeyChangeUnverified(t *testing.T) {
	srv := newServer(t)
	proxy := newForgingProxy(t, srv.URL)
	ctx := testCtx(t)
	alice := openClient(t, proxy.URL, "", "alice-1")
	if err := alice.Register(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	register(t, srv.URL, "bob")
	send(t, alice, "bob", "hello")
	p, _ := alice.storedPeer(ctx, "bob")
	pinned := p.pinned
	proxy.forge(t, "bob", p.list.Devices)
	if sn, _ := alice.SafetyNumber(ctx, "bob"); !sn.KeyChanged {
		t.Errorf("no key change %+v", sn)
	}
	// Not verified before: sending goes on (the warning stays).
	send(t, alice, "bob", "still sending")
	p, _ = alice.storedPeer(ctx, "bob")
	if !bytes.Equal(p.pinned, pinned) || !p.keyChanged {
		t.Errorf("the pin moved without MarkVerified")
	}
}
