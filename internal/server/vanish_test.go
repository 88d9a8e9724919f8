package server_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/config"
)

// The envelopes of a vanishing message that nobody fetched are dropped by
// the expiry sweep once the time the sender declared has passed; other
// messages stay queued.
func TestVanishingEnvelopesExpire(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.ExpireInterval = time.Second })
	alice, bob := ts.register("alice"), ts.register("bob")

	bad := sendReq(alice, alice.devices[0], bob, "x")
	bad.ExpiresAt = -1
	ts.wantErr(http.StatusBadRequest, api.CodeBadRequest, "POST", api.PathMessages, alice.devices[0].token, bad)

	vanishing := sendReq(alice, alice.devices[0], bob, "gone soon")
	vanishing.ExpiresAt = time.Now().Add(500 * time.Millisecond).UnixMilli()
	ts.mustDo("POST", api.PathMessages, alice.devices[0].token, vanishing, nil)
	kept := sendReq(alice, alice.devices[0], bob, "kept")
	ts.mustDo("POST", api.PathMessages, alice.devices[0].token, kept, nil)

	deadline := time.Now().Add(20 * time.Second)
	for {
		w := ts.dialWS(bob.devices[0])
		envs := w.readUntilDrained()
		w.close()
		var ids []string
		for _, e := range envs {
			ids = append(ids, e.MessageID)
		}
		if len(ids) == 1 && ids[0] == kept.MessageID {
			return
		}
		if len(ids) != 2 {
			t.Fatalf("bob's queue holds %v, want the kept message (and the vanishing one until the sweep)", ids)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the vanishing message is still queued 20s after its time: %v", ids)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
