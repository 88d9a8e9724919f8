package server_test

import (
	"encoding/hex"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/identity"
	"github.com/parleychat/parley/internal/linking"
	"github.com/parleychat/parley/internal/server"
)

func (ts *testServer) createLink(by *device) (string, linking.Code) {
	ts.t.Helper()
	var cl api.CreateLinkResponse
	ts.mustDo("POST", api.PathLinks, by.token, nil, &cl)
	raw, err := hex.DecodeString(cl.LinkID)
	if err != nil || len(raw) != 16 || strings.ToLower(cl.LinkID) != cl.LinkID {
		ts.t.Fatalf("link id %q", cl.LinkID)
	}
	code, err := linking.NewCode([16]byte(raw))
	if err != nil {
		ts.t.Fatal(err)
	}
	return cl.LinkID, code
}

// addDevice links a new device to a through by, with the real linking
// cryptography, and signs it in.
func (ts *testServer) addDevice(a *account, by *device) *device {
	t := ts.t
	t.Helper()
	id, code := ts.createLink(by)
	nd := newDevice(t, 1000+randUint32()%100000)
	j, eph, err := linking.NewJoin(code, nd.key, nd.id, "new")
	if err != nil {
		t.Fatal(err)
	}
	ts.mustDo("POST", "/v1/links/"+id+"/join", "", api.JoinLinkRequest{Join: j.Marshal()}, nil)

	var st api.LinkStatus
	ts.mustDo("GET", "/v1/links/"+id+"?wait=10s", by.token, nil, &st)
	if !st.Joined {
		t.Fatal("link not joined")
	}
	got, err := linking.ParseJoin(st.Join)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(code); err != nil {
		t.Fatal(err)
	}
	sealed, err := linking.Seal(code, got, &linking.Transfer{Handle: a.handle, AccountSeed: a.key.Seed()})
	if err != nil {
		t.Fatal(err)
	}
	devs := append(append([]*device(nil), a.devices...), nd)
	list := a.signedList(t, a.version+1, devs...)
	var acct api.Account
	ts.mustDo("POST", "/v1/links/"+id+"/complete", by.token, api.CompleteLinkRequest{Sealed: sealed, DeviceList: list}, &acct)

	var res api.LinkResult
	ts.mustDo("GET", "/v1/links/"+id+"/result?wait=10s", "", nil, &res)
	if !res.Ready {
		t.Fatal("link result not ready")
	}
	tr, err := linking.Open(code, j, eph, res.Sealed)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Handle != a.handle || string(res.DeviceList) != string(list) {
		t.Fatalf("transfer for %q", tr.Handle)
	}
	a.version++
	a.devices = devs
	// A linked device signs in and publishes prekeys like any other.
	ts.login(a, nd)
	ts.mustDo("POST", api.PathKeys, nd.token, prekeys(t, nd, true, 1, 1), nil)
	return nd
}

func TestDeviceMismatch(t *testing.T) {
	ts := startServer(t, nil)
	a := ts.register("alice")
	b := ts.register("bob")
	ad, b1 := a.devices[0], b.devices[0]
	b2 := ts.addDevice(b, b1)
	current := sortedIDs(b1.id, b2.id)

	check := func(name string, from *device, req api.SendRequest, want []api.DeviceMismatch) {
		t.Helper()
		e := ts.wantErr(409, api.CodeDeviceMismatch, "POST", api.PathMessages, from.token, req)
		if !reflect.DeepEqual(e.Mismatch, want) {
			t.Fatalf("%s: mismatch %+v, want %+v", name, e.Mismatch, want)
		}
	}
	env := func(h string, d *device) api.OutgoingEnvelope {
		return api.OutgoingEnvelope{Handle: h, DeviceID: d.id, Ciphertext: []byte("c")}
	}
	req := func(to string, envs ...api.OutgoingEnvelope) api.SendRequest {
		return api.SendRequest{MessageID: newMessageID(), To: to, Envelopes: envs}
	}

	check("missing", ad, req("bob", env("bob", b1)),
		[]api.DeviceMismatch{{Handle: "bob", Current: current, Missing: []uint32{b2.id}}})
	ghost := &device{id: 99}
	check("extra", ad, req("bob", env("bob", b1), env("bob", b2), env("bob", ghost)),
		[]api.DeviceMismatch{{Handle: "bob", Current: current, Extra: []uint32{99}}})
	check("own device missing", b1, req("alice", env("alice", ad)),
		[]api.DeviceMismatch{{Handle: "bob", Current: current, Missing: []uint32{b2.id}}})
	check("self named", b1, req("alice", env("alice", ad), env("bob", b2), env("bob", b1)),
		[]api.DeviceMismatch{{Handle: "bob", Current: current, Extra: []uint32{b1.id}}})
	check("both accounts", b1, req("alice", env("alice", ghost)),
		[]api.DeviceMismatch{
			{Handle: "alice", Current: []uint32{ad.id}, Missing: []uint32{ad.id}, Extra: []uint32{99}},
			{Handle: "bob", Current: current, Missing: []uint32{b2.id}},
		})
	check("note to self names self", b1, req("bob", env("bob", b1), env("bob", b2)),
		[]api.DeviceMismatch{{Handle: "bob", Current: current, Extra: []uint32{b1.id}}})

	// The right sets go through, and each device gets its copy.
	ts.mustDo("POST", api.PathMessages, b1.token, req("bob", env("bob", b2)), nil)
	ts.mustDo("POST", api.PathMessages, b1.token, req("alice", env("alice", ad), env("bob", b2)), nil)
	ts.mustDo("POST", api.PathMessages, ad.token, sendReq(a, ad, b, "to both"), nil)
	for _, d := range []*device{b1, b2} {
		ws := ts.dialWS(d)
		envs := ws.readUntilDrained()
		want := 1
		if d == b2 {
			want = 3
		}
		if len(envs) != want {
			t.Fatalf("device %d got %d envelopes, want %d", d.id, len(envs), want)
		}
		ws.close()
	}
}

func TestDeviceRemoval(t *testing.T) {
	ts := startServer(t, nil)
	a := ts.register("alice")
	b := ts.register("bob")
	ad, b1 := a.devices[0], b.devices[0]
	b2 := ts.addDevice(b, b1)

	ws1 := ts.dialWS(b1)
	ws1.readUntilDrained()
	ws2 := ts.dialWS(b2)
	ws2.readUntilDrained()
	ts.mustDo("POST", api.PathMessages, ad.token, sendReq(a, ad, b, "queued"), nil)
	ws1.mustRead()
	ws2.mustRead() // not acked

	bad := func(name string, status int, code string, list []byte) {
		t.Helper()
		e := ts.wantErr(status, code, "PUT", api.PathDeviceList, b1.token, api.PutDeviceListRequest{DeviceList: list})
		t.Logf("%s: %s", name, e.Message)
	}
	bad("stale", 409, api.CodeStaleDeviceList, b.signedList(t, b.version, b1))
	bad("adds a device", 400, api.CodeBadRequest, b.signedList(t, b.version+1, b1, b2, newDevice(t, 5)))
	changed := &device{id: b2.id, key: newDevice(t, 0).key}
	bad("changes keys", 400, api.CodeBadRequest, b.signedList(t, b.version+1, b1, changed))
	bad("signed by another account", 400, api.CodeBadSignature, a.signedList(t, b.version+1, b1))
	bad("malformed", 400, api.CodeBadRequest, []byte{1, 2, 3})
	forged := *b
	forged.handle = "alice"
	bad("other handle", 400, api.CodeBadRequest, forged.signedList(t, b.version+1, b1))

	var acct api.Account
	list := b.signedList(t, b.version+1, b1)
	ts.mustDo("PUT", api.PathDeviceList, b1.token, api.PutDeviceListRequest{DeviceList: list}, &acct)
	if string(acct.DeviceList) != string(list) {
		t.Fatal("PUT did not answer with the new list")
	}
	b.version++
	b.devices = []*device{b1}

	// The removed device's connection closes, its token stops working.
	var err error
	for err == nil {
		_, err = ws2.read()
	}
	if websocket.CloseStatus(err) != server.CloseDeviceRemoved {
		t.Fatalf("removed device's WebSocket ended with %v", err)
	}
	ts.wantErr(401, api.CodeUnauthorized, "GET", api.PathKeys, b2.token, nil)
	// The remaining device hears that the list changed.
	if f := ws1.mustRead(); f.Type != server.FrameDeviceList || f.Handle != "bob" {
		t.Fatalf("frame %+v, want a device_list hint", f)
	}
	// Sending to the removed device is refused; without it, accepted.
	e := ts.wantErr(409, api.CodeDeviceMismatch, "POST", api.PathMessages, ad.token, api.SendRequest{
		MessageID: newMessageID(), To: "bob", Envelopes: []api.OutgoingEnvelope{
			{Handle: "bob", DeviceID: b1.id, Ciphertext: []byte("c")}, {Handle: "bob", DeviceID: b2.id, Ciphertext: []byte("c")},
		}})
	if len(e.Mismatch) != 1 || !reflect.DeepEqual(e.Mismatch[0].Extra, []uint32{b2.id}) {
		t.Fatalf("mismatch %+v", e.Mismatch)
	}
	ts.mustDo("POST", api.PathMessages, ad.token, sendReq(a, ad, b, "after"), nil)
	// Its prekeys are gone too.
	ts.wantErr(404, api.CodeNotFound, "GET", "/v1/keys/bob?devices="+itoa(b2.id), ad.token, nil)
	// A device may remove itself... but not the last one (lists are non-empty):
	// the device list format itself refuses an empty list.
	var acct2 api.Account
	ts.mustDo("GET", "/v1/accounts/bob", ad.token, nil, &acct2)
	if string(acct2.DeviceList) != string(list) {
		t.Fatal("GET account does not serve the new list")
	}
}

func TestNewestConnectionWins(t *testing.T) {
	ts := startServer(t, nil)
	b := ts.register("bob")
	ws1 := ts.dialWS(b.devices[0])
	ws1.readUntilDrained()
	ws2 := ts.dialWS(b.devices[0])
	ws2.readUntilDrained()
	var err error
	for err == nil {
		_, err = ws1.read()
	}
	if websocket.CloseStatus(err) != server.CloseReplaced {
		t.Fatalf("older connection ended with %v, want CloseReplaced", err)
	}
}

func TestLinking(t *testing.T) {
	ts := startServer(t, nil)
	a := ts.register("alice")
	b := ts.register("bob")
	a1 := a.devices[0]

	id, code := ts.createLink(a1)
	// Before the join: not joined, no result.
	var st api.LinkStatus
	ts.mustDo("GET", "/v1/links/"+id, a1.token, nil, &st)
	if st.Joined {
		t.Fatal("joined before the join")
	}
	var res api.LinkResult
	ts.mustDo("GET", "/v1/links/"+id+"/result", "", nil, &res)
	if res.Ready {
		t.Fatal("result ready before completion")
	}
	// Only the creator sees it.
	ts.wantErr(404, api.CodeNotFound, "GET", "/v1/links/"+id, b.devices[0].token, nil)
	ts.wantErr(400, api.CodeBadRequest, "GET", "/v1/links/"+id+"?wait=soon", a1.token, nil)
	// Completing before anyone joined is refused.
	ts.wantErr(400, api.CodeBadRequest, "POST", "/v1/links/"+id+"/complete", a1.token,
		api.CompleteLinkRequest{Sealed: []byte("s"), DeviceList: a.signedList(t, 2, a1)})

	// A long poll started before the join returns when it happens.
	polled := make(chan api.LinkStatus, 1)
	go func() {
		var st api.LinkStatus
		ts.mustDo("GET", "/v1/links/"+id+"?wait=30s", a1.token, nil, &st)
		polled <- st
	}()
	nd := newDevice(t, 4242)
	j, eph, err := linking.NewJoin(code, nd.key, nd.id, "laptop")
	if err != nil {
		t.Fatal(err)
	}
	ts.wantErr(400, api.CodeBadRequest, "POST", "/v1/links/"+id+"/join", "", api.JoinLinkRequest{Join: []byte("not a join")})
	ts.wantErr(404, api.CodeNotFound, "POST", "/v1/links/ffffffffffffffffffffffffffffffff/join", "", api.JoinLinkRequest{Join: j.Marshal()})
	ts.wantErr(404, api.CodeNotFound, "POST", "/v1/links/xyz/join", "", api.JoinLinkRequest{Join: j.Marshal()})
	// A join with a device id the account already uses is refused.
	clash, _, _ := linking.NewJoin(code, nd.key, a1.id, "clash")
	ts.wantErr(400, api.CodeBadRequest, "POST", "/v1/links/"+id+"/join", "", api.JoinLinkRequest{Join: clash.Marshal()})
	ts.mustDo("POST", "/v1/links/"+id+"/join", "", api.JoinLinkRequest{Join: j.Marshal()}, nil)
	ts.wantErr(409, api.CodeLinkUsed, "POST", "/v1/links/"+id+"/join", "", api.JoinLinkRequest{Join: j.Marshal()})
	st = <-polled
	if !st.Joined || string(st.Join) != string(j.Marshal()) {
		t.Fatalf("long poll = %+v", st)
	}

	sealed, err := linking.Seal(code, j, &linking.Transfer{Handle: "alice", AccountSeed: a.key.Seed()})
	if err != nil {
		t.Fatal(err)
	}
	complete := func(list []byte) api.CompleteLinkRequest {
		return api.CompleteLinkRequest{Sealed: sealed, DeviceList: list}
	}
	other := newDevice(t, nd.id)
	forgedNew := newDevice(t, 77)
	cases := []struct {
		name   string
		status int
		code   string
		list   []byte
	}{
		{"without the joiner", 400, api.CodeBadRequest, a.signedList(t, 2, a1)},
		{"joiner with other keys", 400, api.CodeBadRequest, a.signedList(t, 2, a1, other)},
		{"another device too", 400, api.CodeBadRequest, a.signedList(t, 2, a1, nd, forgedNew)},
		{"drops a device", 400, api.CodeBadRequest, a.signedList(t, 2, nd)},
		{"stale version", 409, api.CodeStaleDeviceList, a.signedList(t, 1, a1, nd)},
		{"signed by another key", 400, api.CodeBadSignature, b.signedList(t, 2, a1, nd)},
	}
	for _, c := range cases {
		ts.wantErr(c.status, c.code, "POST", "/v1/links/"+id+"/complete", a1.token, complete(c.list))
	}
	ts.wantErr(404, api.CodeNotFound, "POST", "/v1/links/"+id+"/complete", b.devices[0].token, complete(a.signedList(t, 2, a1, nd)))

	// The new device waits for the result while the creator completes.
	results := make(chan api.LinkResult, 1)
	go func() {
		var r api.LinkResult
		ts.mustDo("GET", "/v1/links/"+id+"/result?wait=30", "", nil, &r)
		results <- r
	}()
	list := a.signedList(t, 2, a1, nd)
	ts.mustDo("POST", "/v1/links/"+id+"/complete", a1.token, complete(list), nil)
	ts.wantErr(409, api.CodeLinkUsed, "POST", "/v1/links/"+id+"/complete", a1.token, complete(a.signedList(t, 3, a1, nd)))
	res = <-results
	if !res.Ready || string(res.DeviceList) != string(list) {
		t.Fatalf("result = %+v", res)
	}
	tr, err := linking.Open(code, j, eph, res.Sealed)
	if err != nil || tr.Handle != "alice" {
		t.Fatalf("opening the transfer: %v", err)
	}
	// The result is handed out once.
	ts.wantErr(409, api.CodeLinkUsed, "GET", "/v1/links/"+id+"/result", "", nil)

	// The new device signs in and receives messages.
	a.devices = append(a.devices, nd)
	a.version = 2
	ts.login(a, nd)
	ts.mustDo("POST", api.PathKeys, nd.token, prekeys(t, nd, true, 1, 1), nil)
	ts.mustDo("POST", api.PathMessages, b.devices[0].token, sendReq(b, b.devices[0], a, "hi both"), nil)
	ws := ts.dialWS(nd)
	if envs := ws.readUntilDrained(); len(envs) != 1 || string(envs[0].Ciphertext) != "hi both" {
		t.Fatalf("new device got %+v", envs)
	}
}

func TestAuthorization(t *testing.T) {
	ts := startServer(t, nil)
	a := ts.register("alice")
	b := ts.register("bob")
	id, _ := ts.createLink(a.devices[0])

	fill := func(p string) string {
		return strings.NewReplacer("{handle}", "alice", "{id}", id).Replace(p)
	}
	for _, r := range ts.srv.Routes() {
		status, e := ts.do(r.Method, fill(r.Path), "", nil, nil)
		if r.Auth && (status != http.StatusUnauthorized || e.Code != api.CodeUnauthorized) {
			t.Errorf("%s %s without a token: %d %s, want 401", r.Method, r.Path, status, e.Code)
		}
		if !r.Auth && status == http.StatusUnauthorized {
			t.Errorf("%s %s needs no token but answered 401", r.Method, r.Path)
		}
		// An expired or made-up token is the same as none.
		if r.Auth {
			status, _ = ts.do(r.Method, fill(r.Path), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", nil, nil)
			if status != http.StatusUnauthorized {
				t.Errorf("%s %s with an unknown token: %d, want 401", r.Method, r.Path, status)
			}
		}
	}
	if n := len(ts.srv.Routes()); n != 33 { // 17 of the core + GET /v1/turn + 7 blob routes + 8 PIN-backup routes
		t.Errorf("%d routes; update this test's expectations", n)
	}

	// Resources of one account, asked for with another's token.
	bt := b.devices[0].token
	ts.wantErr(404, api.CodeNotFound, "GET", "/v1/links/"+id, bt, nil)
	ts.wantErr(404, api.CodeNotFound, "POST", "/v1/links/"+id+"/complete", bt,
		api.CompleteLinkRequest{Sealed: []byte("s"), DeviceList: b.signedList(t, 2, b.devices[0])})
	// Bob cannot install a list for alice's account: it is checked against
	// bob's account key.
	ts.wantErr(400, api.CodeBadSignature, "PUT", api.PathDeviceList, bt,
		api.PutDeviceListRequest{DeviceList: a.signedList(t, 2, a.devices[0])})
	// Bob cannot upload keys for alice's device: uploads go to the caller's
	// own device and are checked against its signing key.
	ts.wantErr(400, api.CodeBadSignature, "POST", api.PathKeys, bt, prekeys(t, a.devices[0], true, 1, 1))
	// Bob cannot delete alice's account, even with her key's signature.
	ts.wantErr(404, api.CodeNotFound, "DELETE", "/v1/accounts/alice", bt,
		api.DeleteAccountRequest{Signature: a.key.Sign(identity.DeleteAccountMessage("alice"))})
}

func sortedIDs(ids ...uint32) []uint32 {
	out := append([]uint32(nil), ids...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// TestBackPressure shows that at most MaxUnacked envelopes are in flight:
// after the window fills, the next frame is a device-list hint caused
// later, not a queued envelope.
func TestBackPressure(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.MaxUnacked = 3 })
	a := ts.register("alice")
	b := ts.register("bob")
	ad, b1 := a.devices[0], b.devices[0]
	b2 := ts.addDevice(b, b1)
	for i := range 5 {
		ts.mustDo("POST", api.PathMessages, ad.token, sendReq(a, ad, b, "m"+itoa(uint32(i))), nil)
	}
	ws := ts.dialWS(b1)
	var seqs []int64
	for range 3 {
		f := ws.mustRead()
		if f.Type != api.FrameEnvelope {
			t.Fatalf("frame %+v, want an envelope", f)
		}
		seqs = append(seqs, f.Envelope.Seq)
	}
	// b2 removes itself; b1 hears of it before any further envelope.
	ts.mustDo("PUT", api.PathDeviceList, b2.token, api.PutDeviceListRequest{DeviceList: b.signedList(t, b.version+1, b1)}, nil)
	if f := ws.mustRead(); f.Type != server.FrameDeviceList {
		t.Fatalf("frame %+v after a full window, want device_list", f)
	}
	ws.ack(seqs...)
	envs := ws.readUntilDrained()
	if len(envs) != 2 || string(envs[1].Ciphertext) != "m4" {
		t.Fatalf("after the ack: %+v", envs)
	}
}
