package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/identity"
	"github.com/parleychat/parley/internal/server"
	"github.com/parleychat/parley/internal/store/sqlitestore"
)

func TestHealthAndDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "data")
	ts := startServer(t, func(c *config.Config) { c.DataDir = dir })
	var h api.Health
	ts.mustDo("GET", api.PathHealth, "", nil, &h)
	if h.Status != "ok" || h.Version == "" {
		t.Fatalf("health = %+v", h)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Fatalf("data folder mode %v, want 0700", fi.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(dir, server.DBFile)); err != nil {
		t.Fatal(err)
	}
	ts.wantErr(404, api.CodeNotFound, "GET", "/v1/nothing", "", nil)
	ts.wantErr(404, api.CodeNotFound, "DELETE", api.PathAccounts, "", nil)
}

func TestRegister(t *testing.T) {
	ts := startServer(t, nil)

	// Upper case is normalised.
	a, req := registerRequest(t, "alice")
	req.Handle = "ALice"
	var resp api.RegisterResponse
	ts.mustDo("POST", api.PathAccounts, "", req, &resp)
	if resp.Handle != "alice" {
		t.Fatalf("handle %q", resp.Handle)
	}
	ts.login(a, a.devices[0])
	ts.wantErr(409, api.CodeHandleTaken, "POST", api.PathAccounts, "", req)

	var acct api.Account
	ts.mustDo("GET", "/v1/accounts/ALICE", a.devices[0].token, nil, &acct)
	if acct.Handle != "alice" || !bytes.Equal(acct.IdentityKey, a.key.Public()) || !bytes.Equal(acct.DeviceList, req.DeviceList) {
		t.Fatalf("account = %+v", acct)
	}
	ts.wantErr(404, api.CodeNotFound, "GET", "/v1/accounts/nobody", a.devices[0].token, nil)
	ts.wantErr(400, api.CodeInvalidHandle, "GET", "/v1/accounts/no", a.devices[0].token, nil)

	bad := func(name string, status int, code string, mod func(*api.RegisterRequest)) {
		t.Run(name, func(t *testing.T) {
			_, req := registerRequest(t, "bob")
			mod(&req)
			ts.wantErr(status, code, "POST", api.PathAccounts, "", req)
		})
	}
	bad("short handle", 400, api.CodeInvalidHandle, func(r *api.RegisterRequest) { r.Handle = "ab" })
	bad("long handle", 400, api.CodeInvalidHandle, func(r *api.RegisterRequest) { r.Handle = strings.Repeat("a", 33) })
	bad("handle chars", 400, api.CodeInvalidHandle, func(r *api.RegisterRequest) { r.Handle = "bob-smith" })
	bad("kelvin sign", 400, api.CodeInvalidHandle, func(r *api.RegisterRequest) { r.Handle = "bo\u212a" })
	bad("identity key size", 400, api.CodeBadRequest, func(r *api.RegisterRequest) { r.IdentityKey = r.IdentityKey[:31] })
	bad("list signed by another key", 400, api.CodeBadSignature, func(r *api.RegisterRequest) {
		other, _ := identity.NewAccountKey()
		r.IdentityKey = other.Public()
	})
	bad("list malformed", 400, api.CodeBadRequest, func(r *api.RegisterRequest) { r.DeviceList = []byte("junk") })
	bad("list for another handle", 400, api.CodeBadRequest, func(r *api.RegisterRequest) { r.Handle = "carol" })
	bad("device id differs", 400, api.CodeBadRequest, func(r *api.RegisterRequest) { r.DeviceID++ })
	bad("no signed prekey", 400, api.CodeBadRequest, func(r *api.RegisterRequest) { r.Prekeys.SignedPrekey = nil })
	bad("no last resort", 400, api.CodeBadRequest, func(r *api.RegisterRequest) { r.Prekeys.LastResortPQ = nil })
	bad("bad prekey signature", 400, api.CodeBadSignature, func(r *api.RegisterRequest) { r.Prekeys.SignedPrekey.Signature[0] ^= 1 })
	bad("bad pq signature", 400, api.CodeBadSignature, func(r *api.RegisterRequest) { r.Prekeys.OneTimePQ[0].Signature[5] ^= 1 })
	bad("kinds swapped", 400, api.CodeBadRequest, func(r *api.RegisterRequest) {
		r.Prekeys.SignedPrekey, r.Prekeys.LastResortPQ = r.Prekeys.LastResortPQ, r.Prekeys.SignedPrekey
	})
	bad("prekey id 0", 400, api.CodeBadRequest, func(r *api.RegisterRequest) { r.Prekeys.OneTime[0].ID = 0 })
	bad("duplicate one-time id", 400, api.CodeBadRequest, func(r *api.RegisterRequest) { r.Prekeys.OneTime[1].ID = r.Prekeys.OneTime[0].ID })
	bad("too many one-time", 400, api.CodeBadRequest, func(r *api.RegisterRequest) {
		for i := range server.MaxPrekeysPerUpload {
			r.Prekeys.OneTime = append(r.Prekeys.OneTime, api.OneTimePrekey{ID: uint32(100 + i), Public: make([]byte, 32)})
		}
	})

	t.Run("second version", func(t *testing.T) {
		b, req := registerRequest(t, "bob")
		req.DeviceList = b.signedList(t, 2, b.devices[0])
		ts.wantErr(400, api.CodeBadRequest, "POST", api.PathAccounts, "", req)
	})
	t.Run("unknown field", func(t *testing.T) {
		ts.wantErr(400, api.CodeBadRequest, "POST", api.PathAccounts, "", []byte(`{"handle":"bob","extra":1}`))
	})
	t.Run("trailing data", func(t *testing.T) {
		ts.wantErr(400, api.CodeBadRequest, "POST", api.PathAccounts, "", []byte(`{"handle":"bob"} {}`))
	})
	t.Run("not JSON", func(t *testing.T) {
		ts.wantErr(400, api.CodeBadRequest, "POST", api.PathAccounts, "", []byte(`handle=bob`))
	})
}

func TestBodyLimit(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.MaxBodyBytes = 64 << 10; c.MaxEnvelopeBytes = 1000 })
	big := []byte(`{"handle":"` + strings.Repeat("a", 64<<10) + `"}`)
	ts.wantErr(413, api.CodeTooLarge, "POST", api.PathAccounts, "", big)

	a := ts.register("alice")
	b := ts.register("bob")
	req := sendReq(a, a.devices[0], b, strings.Repeat("x", 1001))
	ts.wantErr(413, api.CodeTooLarge, "POST", api.PathMessages, a.devices[0].token, req)
}

func TestAuth(t *testing.T) {
	ts := startServer(t, nil)
	a := ts.register("alice")
	d := a.devices[0]

	challenge := func() []byte {
		var ch api.ChallengeResponse
		ts.mustDo("POST", api.PathChallenge, "", api.ChallengeRequest{Handle: "alice", DeviceID: d.id}, &ch)
		if len(ch.Challenge) != 32 || ch.ExpiresAt <= time.Now().UnixMilli() {
			t.Fatalf("challenge = %+v", ch)
		}
		return ch.Challenge
	}
	ts.wantErr(404, api.CodeNotFound, "POST", api.PathChallenge, "", api.ChallengeRequest{Handle: "nobody", DeviceID: 1})
	ts.wantErr(404, api.CodeNotFound, "POST", api.PathChallenge, "", api.ChallengeRequest{Handle: "alice", DeviceID: d.id + 1})

	// A wrong signature fails, and uses up the challenge.
	ch := challenge()
	other, _ := identity.NewDeviceKey()
	ts.wantErr(401, api.CodeUnauthorized, "POST", api.PathToken, "", api.TokenRequest{
		Handle: "alice", DeviceID: d.id, Challenge: ch, Signature: other.Sign(identity.AuthMessage("alice", d.id, ch)),
	})
	good := api.TokenRequest{Handle: "alice", DeviceID: d.id, Challenge: ch, Signature: d.key.Sign(identity.AuthMessage("alice", d.id, ch))}
	ts.wantErr(401, api.CodeChallengeExpired, "POST", api.PathToken, "", good)

	// A good signature works once.
	ch = challenge()
	good = api.TokenRequest{Handle: "ALICE", DeviceID: d.id, Challenge: ch, Signature: d.key.Sign(identity.AuthMessage("alice", d.id, ch))}
	var tok api.TokenResponse
	ts.mustDo("POST", api.PathToken, "", good, &tok)
	if tok.ExpiresAt <= time.Now().Add(23*time.Hour).UnixMilli() {
		t.Fatalf("token expires at %d", tok.ExpiresAt)
	}
	ts.wantErr(401, api.CodeChallengeExpired, "POST", api.PathToken, "", good)

	// A signature over another handle's message fails.
	ch = challenge()
	ts.wantErr(401, api.CodeUnauthorized, "POST", api.PathToken, "", api.TokenRequest{
		Handle: "alice", DeviceID: d.id, Challenge: ch, Signature: d.key.Sign(identity.AuthMessage("alicf", d.id, ch)),
	})
	// An invented challenge fails.
	ts.wantErr(401, api.CodeChallengeExpired, "POST", api.PathToken, "", api.TokenRequest{
		Handle: "alice", DeviceID: d.id, Challenge: make([]byte, 32), Signature: make([]byte, 64),
	})

	var counts api.PrekeyCounts
	ts.mustDo("GET", api.PathKeys, tok.Token, nil, &counts)
	for _, bad := range []string{"", "nope", tok.Token + "A", strings.Repeat("A", 43)} {
		ts.wantErr(401, api.CodeUnauthorized, "GET", api.PathKeys, bad, nil)
	}
	// The scheme must be Bearer.
	req, _ := http.NewRequest("GET", ts.url+api.PathKeys, nil)
	req.Header.Set("Authorization", "Basic "+tok.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("Basic auth: %d", resp.StatusCode)
	}
}

func TestChallengeExpires(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.ChallengeTTL = time.Second })
	a := ts.register("alice")
	d := a.devices[0]
	var ch api.ChallengeResponse
	ts.mustDo("POST", api.PathChallenge, "", api.ChallengeRequest{Handle: "alice", DeviceID: d.id}, &ch)
	for time.Now().UnixMilli() <= ch.ExpiresAt {
		time.Sleep(50 * time.Millisecond)
	}
	ts.wantErr(401, api.CodeChallengeExpired, "POST", api.PathToken, "", api.TokenRequest{
		Handle: "alice", DeviceID: d.id, Challenge: ch.Challenge, Signature: d.key.Sign(identity.AuthMessage("alice", d.id, ch.Challenge)),
	})
}

func TestKeysAndBundles(t *testing.T) {
	ts := startServer(t, nil)
	a := ts.register("alice")
	b := ts.register("bob")
	ad, bd := a.devices[0], b.devices[0]

	var counts api.PrekeyCounts
	ts.mustDo("GET", api.PathKeys, ad.token, nil, &counts)
	if counts != (api.PrekeyCounts{OneTime: 2, OneTimePQ: 2}) {
		t.Fatalf("counts after registration = %+v", counts)
	}
	// Upload one more of each; the answer is the new counts.
	ts.mustDo("POST", api.PathKeys, ad.token, prekeys(t, ad, false, 10, 1), &counts)
	if counts != (api.PrekeyCounts{OneTime: 3, OneTimePQ: 3}) {
		t.Fatalf("counts after upload = %+v", counts)
	}
	// Keys signed by another device are refused.
	up := prekeys(t, bd, false, 20, 1)
	ts.wantErr(400, api.CodeBadSignature, "POST", api.PathKeys, ad.token, up)

	// Each fetch consumes one one-time key of each kind, never the same.
	seenOT, seenPQ := map[uint32]bool{}, map[uint32]bool{}
	for i := range 3 {
		var bs api.Bundles
		ts.mustDo("GET", "/v1/keys/alice", bd.token, nil, &bs)
		if bs.Handle != "alice" || !bytes.Equal(bs.IdentityKey, a.key.Public()) || len(bs.DeviceList) == 0 || len(bs.Bundles) != 1 {
			t.Fatalf("bundles = %+v", bs)
		}
		bu := bs.Bundles[0]
		if bu.DeviceID != ad.id || bu.SignedPrekey.ID != 1 || bu.OneTime == nil || bu.PQLastResort {
			t.Fatalf("fetch %d: bundle = %+v", i, bu)
		}
		if seenOT[bu.OneTime.ID] || seenPQ[bu.PQPrekey.ID] {
			t.Fatalf("fetch %d: one-time key handed out twice", i)
		}
		seenOT[bu.OneTime.ID], seenPQ[bu.PQPrekey.ID] = true, true
		if !ed25519Verify(ad, identity.PrekeyPQOneTime, bu.PQPrekey) {
			t.Fatal("PQ prekey signature does not verify")
		}
	}
	ts.mustDo("GET", api.PathKeys, ad.token, nil, &counts)
	if counts != (api.PrekeyCounts{}) {
		t.Fatalf("counts after three fetches = %+v", counts)
	}
	// Then the last-resort key, and no one-time key.
	var bs api.Bundles
	ts.mustDo("GET", "/v1/keys/alice?devices="+itoa(ad.id), bd.token, nil, &bs)
	if bu := bs.Bundles[0]; bu.OneTime != nil || !bu.PQLastResort || bu.PQPrekey.ID != 1 || !ed25519Verify(ad, identity.PrekeyPQLastResort, bu.PQPrekey) {
		t.Fatalf("bundle without one-time keys = %+v", bu)
	}
	// A replaced signed prekey is served from then on.
	up = api.Prekeys{SignedPrekey: signedPrekey(prekey(t, ad, identity.PrekeySigned, 7))}
	ts.mustDo("POST", api.PathKeys, ad.token, up, nil)
	ts.mustDo("GET", "/v1/keys/alice", bd.token, nil, &bs)
	if bs.Bundles[0].SignedPrekey.ID != 7 {
		t.Fatalf("signed prekey id %d after replacing it", bs.Bundles[0].SignedPrekey.ID)
	}

	// Fetching one's own account leaves out the calling device.
	ts.mustDo("GET", "/v1/keys/alice", ad.token, nil, &bs)
	if len(bs.Bundles) != 0 {
		t.Fatalf("own bundles = %+v", bs.Bundles)
	}
	ts.wantErr(404, api.CodeNotFound, "GET", "/v1/keys/alice?devices=12345", bd.token, nil)
	ts.wantErr(400, api.CodeBadRequest, "GET", "/v1/keys/alice?devices=x", bd.token, nil)
	ts.wantErr(404, api.CodeNotFound, "GET", "/v1/keys/nobody", bd.token, nil)
}

func TestSendDeliverAck(t *testing.T) {
	ts := startServer(t, nil)
	a := ts.register("alice")
	b := ts.register("bob")
	ad, bd := a.devices[0], b.devices[0]

	// Nothing queued: drained at once.
	ws := ts.dialWS(bd)
	if envs := ws.readUntilDrained(); len(envs) != 0 {
		t.Fatalf("unexpected envelopes %+v", envs)
	}

	// Live delivery.
	req := sendReq(a, ad, b, "hello")
	var sr api.SendResponse
	ts.mustDo("POST", api.PathMessages, ad.token, req, &sr)
	if sr.MessageID != req.MessageID || sr.Duplicate || sr.ServerTime == 0 {
		t.Fatalf("send response %+v", sr)
	}
	f := ws.mustRead()
	if f.Type != api.FrameEnvelope || string(f.Envelope.Ciphertext) != "hello" || f.Envelope.Sender != "alice" ||
		f.Envelope.SenderDevice != ad.id || f.Envelope.MessageID != req.MessageID || f.Envelope.ServerTime != sr.ServerTime {
		t.Fatalf("frame %+v", f)
	}
	ws.ack(f.Envelope.Seq)

	// Two more while connected; ack only the first, then reconnect.
	m2, m3 := sendReq(a, ad, b, "two"), sendReq(a, ad, b, "three")
	ts.mustDo("POST", api.PathMessages, ad.token, m2, nil)
	ts.mustDo("POST", api.PathMessages, ad.token, m3, nil)
	f2, f3 := ws.mustRead(), ws.mustRead()
	if string(f2.Envelope.Ciphertext) != "two" || string(f3.Envelope.Ciphertext) != "three" || f3.Envelope.Seq <= f2.Envelope.Seq {
		t.Fatalf("frames out of order: %+v %+v", f2.Envelope, f3.Envelope)
	}
	ws.ack(f2.Envelope.Seq)
	ws.close()

	ws = ts.dialWS(bd)
	envs := ws.readUntilDrained()
	if len(envs) != 1 || string(envs[0].Ciphertext) != "three" || envs[0].Seq != f3.Envelope.Seq {
		t.Fatalf("redelivered %+v, want only the unacked third", envs)
	}
	ws.ack(envs[0].Seq)
	ws.close()

	ws = ts.dialWS(bd)
	if envs := ws.readUntilDrained(); len(envs) != 0 {
		t.Fatalf("acked envelopes redelivered: %+v", envs)
	}
	ws.close()

	// Offline delivery: messages queue until bob connects.
	for _, text := range []string{"x", "y"} {
		ts.mustDo("POST", api.PathMessages, ad.token, sendReq(a, ad, b, text), nil)
	}
	ws = ts.dialWS(bd)
	envs = ws.readUntilDrained()
	if len(envs) != 2 || string(envs[0].Ciphertext) != "x" || string(envs[1].Ciphertext) != "y" {
		t.Fatalf("queued %+v", envs)
	}
}

func TestSendValidation(t *testing.T) {
	ts := startServer(t, nil)
	a := ts.register("alice")
	b := ts.register("bob")
	ad := a.devices[0]
	tok := ad.token
	send := func(mod func(*api.SendRequest)) api.SendRequest {
		r := sendReq(a, ad, b, "m")
		mod(&r)
		return r
	}
	ts.wantErr(400, api.CodeBadRequest, "POST", api.PathMessages, tok, send(func(r *api.SendRequest) { r.MessageID = "abc" }))
	ts.wantErr(400, api.CodeBadRequest, "POST", api.PathMessages, tok, send(func(r *api.SendRequest) { r.MessageID = strings.ToUpper(r.MessageID) + "" }))
	ts.wantErr(404, api.CodeNotFound, "POST", api.PathMessages, tok, send(func(r *api.SendRequest) {
		r.To = "nobody"
		r.Envelopes[0].Handle = "nobody"
	}))
	ts.wantErr(400, api.CodeBadRequest, "POST", api.PathMessages, tok, send(func(r *api.SendRequest) { r.Envelopes = nil }))
	ts.wantErr(400, api.CodeBadRequest, "POST", api.PathMessages, tok, send(func(r *api.SendRequest) { r.Envelopes = append(r.Envelopes, r.Envelopes[0]) }))
	ts.wantErr(400, api.CodeBadRequest, "POST", api.PathMessages, tok, send(func(r *api.SendRequest) { r.Envelopes[0].Ciphertext = nil }))
	ts.register("carol")
	ts.wantErr(400, api.CodeBadRequest, "POST", api.PathMessages, tok, send(func(r *api.SendRequest) { r.Envelopes[0].Handle = "carol" }))
	// Upper-case handles in the request are normalised.
	ts.mustDo("POST", api.PathMessages, tok, send(func(r *api.SendRequest) { r.To = "BOB"; r.Envelopes[0].Handle = "Bob" }), nil)
}

func TestIdempotentRetry(t *testing.T) {
	ts := startServer(t, nil)
	a := ts.register("alice")
	b := ts.register("bob")
	ad, bd := a.devices[0], b.devices[0]
	req := sendReq(a, ad, b, "once")
	var r1, r2 api.SendResponse
	ts.mustDo("POST", api.PathMessages, ad.token, req, &r1)
	ts.mustDo("POST", api.PathMessages, ad.token, req, &r2)
	if r1.Duplicate || !r2.Duplicate || r2.MessageID != req.MessageID {
		t.Fatalf("first %+v, retry %+v", r1, r2)
	}
	ws := ts.dialWS(bd)
	envs := ws.readUntilDrained()
	if len(envs) != 1 {
		t.Fatalf("%d deliveries of one message", len(envs))
	}
	// Still a duplicate after delivery and ack.
	ws.ack(envs[0].Seq)
	ws.close()
	r2 = api.SendResponse{}
	ts.mustDo("POST", api.PathMessages, ad.token, req, &r2)
	if !r2.Duplicate {
		t.Fatal("retry after delivery stored again")
	}
	// The same message id from another sender is another message.
	other := sendReq(b, bd, a, "other")
	other.MessageID = req.MessageID
	var r3 api.SendResponse
	ts.mustDo("POST", api.PathMessages, bd.token, other, &r3)
	if r3.Duplicate {
		t.Fatal("another sender's message counted as a duplicate")
	}
}

func TestQueueFull(t *testing.T) {
	cfg := testConfig(t)
	db, err := sqlitestore.OpenOptions(context.Background(), filepath.Join(cfg.DataDir, server.DBFile), nil, sqlitestore.Options{MaxQueue: 2})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.NewWithOptions(cfg, server.Options{Store: db, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ts := runServer(t, srv)
	a := ts.register("alice")
	b := ts.register("bob")
	ad := a.devices[0]
	for range 2 {
		ts.mustDo("POST", api.PathMessages, ad.token, sendReq(a, ad, b, "m"), nil)
	}
	ts.wantErr(507, api.CodeQueueFull, "POST", api.PathMessages, ad.token, sendReq(a, ad, b, "m"))
}

func TestRateLimits(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.RegisterRate, c.RegisterBurst = 1, 2
		c.BundleRate, c.BundleBurst = 1, 2
		c.JoinRate, c.JoinBurst = 1, 2
	})
	a := ts.register("alice")
	b := ts.register("bob")
	_, req := registerRequest(t, "carol")
	ts.wantErr(429, api.CodeRateLimited, "POST", api.PathAccounts, "", req)

	for range 2 {
		ts.mustDo("GET", "/v1/keys/alice", b.devices[0].token, nil, nil)
	}
	ts.wantErr(429, api.CodeRateLimited, "GET", "/v1/keys/alice", b.devices[0].token, nil)
	// Another account has its own budget.
	ts.mustDo("GET", "/v1/keys/bob", a.devices[0].token, nil, nil)

	join := api.JoinLinkRequest{Join: []byte("x")}
	for range 2 {
		ts.wantErr(400, api.CodeBadRequest, "POST", "/v1/links/00000000000000000000000000000000/join", "", join)
	}
	ts.wantErr(429, api.CodeRateLimited, "POST", "/v1/links/00000000000000000000000000000000/join", "", join)
}

func TestGracefulShutdown(t *testing.T) {
	ts := startServer(t, nil)
	a := ts.register("alice")
	b := ts.register("bob")
	ws := ts.dialWS(b.devices[0])
	ws.readUntilDrained()
	ts.mustDo("POST", api.PathMessages, a.devices[0].token, sendReq(a, a.devices[0], b, "before"), nil)
	ws.mustRead()

	// The client keeps reading, as a real one does, so it answers the
	// server's close frame.
	closed := make(chan error, 1)
	go func() {
		var err error
		for err == nil {
			_, err = ws.read()
		}
		closed <- err
	}()
	if err := ts.stop(); err != nil {
		t.Fatalf("Run returned %v", err)
	}
	// The client sees a going-away close.
	err := <-closed
	if websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("WebSocket ended with %v, want StatusGoingAway", err)
	}
	// Nothing listens any more.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.url+api.PathHealth, nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("server still answers after Run returned: %d", resp.StatusCode)
	}

	// A new server on the same data still has the unacked envelope.
	srv, err := server.New(ts.cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ts2 := runServer(t, srv)
	ts2.login(b, b.devices[0])
	ws = ts2.dialWS(b.devices[0])
	if envs := ws.readUntilDrained(); len(envs) != 1 || string(envs[0].Ciphertext) != "before" {
		t.Fatalf("after restart: %+v", envs)
	}
}

func TestRunTwice(t *testing.T) {
	cfg := testConfig(t)
	srv, err := server.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	if srv.Addr().String() != addr.String() {
		t.Fatalf("Addr %v, Listen %v", srv.Addr(), addr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	<-srv.Ready()
	if err := srv.Run(ctx); !errors.Is(err, server.ErrStarted) {
		t.Fatalf("second Run: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return")
	}
	// Close after Run is a no-op; a never-run server's Close releases it.
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	srv2, err := server.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv2.Close(); err != nil {
		t.Fatal(err)
	}
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

func ed25519Verify(d *device, kind byte, k api.SignedPrekey) bool {
	return ed25519.Verify(d.key.SigningPublic(), identity.PrekeyMessage(kind, k.ID, k.Public), k.Signature)
}
