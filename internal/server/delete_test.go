package server_test

import (
	"testing"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/identity"
	"github.com/parleychat/parley/internal/server"
)

// TestDeleteAccount: a device deletes its account with the account key's
// signature, not with its token alone, and not another account; then its
// connection closes, its token stops working, others see no account, and
// the handle registers afresh with an empty queue.
func TestDeleteAccount(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.register("alice")
	bob := ts.register("bob")
	ws := ts.dialWS(alice.devices[0])
	ws.readUntilDrained()
	ts.mustDo("POST", api.PathMessages, bob.devices[0].token, sendReq(bob, bob.devices[0], alice, "queued"), nil)
	ws.mustRead()

	del := func(who *device, handle string, sig []byte) (int, api.Error) {
		return ts.do("DELETE", "/v1/accounts/"+handle, who.token, api.DeleteAccountRequest{Signature: sig}, nil)
	}
	good := alice.key.Sign(identity.DeleteAccountMessage("alice"))
	if st, e := del(alice.devices[0], "alice", nil); st != 401 || e.Code != api.CodeUnauthorized {
		t.Fatalf("without a signature: %d %s", st, e.Code)
	}
	if st, e := del(alice.devices[0], "alice", bob.key.Sign(identity.DeleteAccountMessage("alice"))); st != 401 || e.Code != api.CodeUnauthorized {
		t.Fatalf("signed by another account's key: %d %s", st, e.Code)
	}
	if st, e := del(alice.devices[0], "alice", alice.key.Sign(identity.DeleteAccountMessage("bob"))); st != 401 || e.Code != api.CodeUnauthorized {
		t.Fatalf("a signature for another handle: %d %s", st, e.Code)
	}
	if st, e := del(bob.devices[0], "alice", good); st != 404 || e.Code != api.CodeNotFound {
		t.Fatalf("bob deleting alice: %d %s", st, e.Code)
	}
	if st, e := del(&device{}, "alice", good); st != 401 || e.Code != api.CodeUnauthorized {
		t.Fatalf("without a token: %d %s", st, e.Code)
	}
	ts.mustDo("GET", "/v1/accounts/alice", bob.devices[0].token, nil, nil) // still there

	if st, e := del(alice.devices[0], "alice", good); st != 200 {
		t.Fatalf("delete: %d %s: %s", st, e.Code, e.Message)
	}
	var err error
	for err == nil {
		_, err = ws.read()
	}
	if websocket.CloseStatus(err) != server.CloseDeviceRemoved {
		t.Fatalf("the deleted account's WebSocket ended with %v", err)
	}
	ts.wantErr(401, api.CodeUnauthorized, "GET", api.PathKeys, alice.devices[0].token, nil)
	ts.wantErr(404, api.CodeNotFound, "GET", "/v1/accounts/alice", bob.devices[0].token, nil)
	ts.wantErr(404, api.CodeNotFound, "GET", "/v1/keys/alice", bob.devices[0].token, nil)

	// The handle is free; the new account starts empty.
	again := ts.register("alice")
	ws2 := ts.dialWS(again.devices[0])
	if fs := ws2.readUntilDrained(); len(fs) != 0 {
		t.Fatalf("the new alice got %d frames before drained: %+v", len(fs), fs)
	}
}
