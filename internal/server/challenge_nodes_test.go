package server_test

import (
	"testing"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/identity"
)

// TestChallengeAcrossNodes runs two nodes on one store (two servers on the
// same SQLite file, as nodes share PostgreSQL): a challenge issued by one
// node is answered on the other, and then it is used up on both.
func TestChallengeAcrossNodes(t *testing.T) {
	ts1 := startServer(t, nil)
	ts2 := startServer(t, func(c *config.Config) { c.DataDir = ts1.cfg.DataDir })
	a := ts1.register("alice")
	d := a.devices[0]

	var ch api.ChallengeResponse
	ts1.mustDo("POST", api.PathChallenge, "", api.ChallengeRequest{Handle: "alice", DeviceID: d.id}, &ch)
	req := api.TokenRequest{Handle: "alice", DeviceID: d.id, Challenge: ch.Challenge,
		Signature: d.key.Sign(identity.AuthMessage("alice", d.id, ch.Challenge))}
	var tok api.TokenResponse
	ts2.mustDo("POST", api.PathToken, "", req, &tok)
	ts1.wantErr(401, api.CodeChallengeExpired, "POST", api.PathToken, "", req)
	ts2.wantErr(401, api.CodeChallengeExpired, "POST", api.PathToken, "", req)
	// The token works on either node.
	ts1.mustDo("GET", api.PathKeys, tok.Token, nil, nil)

	// A challenge issued to one device is used up by a request naming
	// another, and does not work for its own device after that.
	ts2.mustDo("POST", api.PathChallenge, "", api.ChallengeRequest{Handle: "alice", DeviceID: d.id}, &ch)
	wrong := api.TokenRequest{Handle: "alice", DeviceID: d.id + 1, Challenge: ch.Challenge,
		Signature: d.key.Sign(identity.AuthMessage("alice", d.id+1, ch.Challenge))}
	ts1.wantErr(401, api.CodeChallengeExpired, "POST", api.PathToken, "", wrong)
	req.Challenge = ch.Challenge
	req.Signature = d.key.Sign(identity.AuthMessage("alice", d.id, ch.Challenge))
	ts1.wantErr(401, api.CodeChallengeExpired, "POST", api.PathToken, "", req)
}

// TestChallengeRateLimit checks that challenges are limited per client
// address, at the floor when registrations are limited tightly.
func TestChallengeRateLimit(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.RegisterRate, c.RegisterBurst = 1, 2 })
	a := ts.register("alice")
	d := a.devices[0]
	n := 0
	for {
		status, e := ts.do("POST", api.PathChallenge, "", api.ChallengeRequest{Handle: "alice", DeviceID: d.id}, nil)
		if status == 429 && e.Code == api.CodeRateLimited {
			break
		}
		if status != 200 {
			t.Fatalf("challenge %d: %d %s", n, status, e.Code)
		}
		if n++; n > 1000 {
			t.Fatal("no rate limit after 1000 challenges")
		}
	}
	// The burst is the floor, 120, and register used one.
	if n < 119 {
		t.Fatalf("rate limited after %d challenges, want at least 119", n)
	}
}
