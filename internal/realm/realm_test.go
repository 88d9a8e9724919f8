package realm

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/pinbackup"
	"github.com/parleychat/parley/internal/toprf"
)

func testConfig(t *testing.T, issuer ed25519.PublicKey) Config {
	cfg := Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.IssuerKey = base64.StdEncoding.EncodeToString(issuer)
	return cfg
}

// startServer runs a realm until the test ends.
func startServer(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	srv, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("realm did not stop within 30s")
		}
	})
	select {
	case <-srv.Ready():
	case err := <-done:
		t.Fatalf("realm did not start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("realm did not start within 30s")
	}
	return srv, "http://" + srv.Addr().String()
}

type response struct {
	status int
	body   []byte
}

// call sends one request and checks the response signature.
func call(t *testing.T, srv *Server, url, method, path, token, handle string, body []byte) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	sig, _ := base64.StdEncoding.DecodeString(resp.Header.Get(HeaderSignature))
	if !VerifyResponse(srv.PublicKey(), handle, method, path, body, resp.StatusCode, rb, sig) {
		t.Fatalf("%s %s: response not signed by the realm", method, path)
	}
	return response{resp.StatusCode, rb}
}

func errCode(t *testing.T, r response) string {
	t.Helper()
	var er ErrorResponse
	if err := json.Unmarshal(r.body, &er); err != nil {
		t.Fatalf("not an error response: %s", r.body)
	}
	return er.Error.Code
}

func TestTokens(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	_, other, _ := ed25519.GenerateKey(nil)
	realm := pinbackup.RealmID{1, 2, 3}
	now := time.Now()
	good := Token{Handle: "alice", Realm: realm, Expires: now.Add(5 * time.Minute)}
	tok, err := SignToken(priv, good)
	if err != nil {
		t.Fatal(err)
	}
	got, err := VerifyToken(pub, realm, tok, now, 10*time.Minute)
	if err != nil || got.Handle != "alice" || got.Realm != realm || !got.Expires.Equal(good.Expires.Truncate(time.Millisecond)) {
		t.Fatalf("good token: %+v, %v", got, err)
	}
	bad := map[string]string{}
	bad["other issuer"], _ = SignToken(other, good)
	bad["other realm"], _ = SignToken(priv, Token{Handle: "alice", Realm: pinbackup.RealmID{9}, Expires: good.Expires})
	bad["expired"], _ = SignToken(priv, Token{Handle: "alice", Realm: realm, Expires: now.Add(-time.Second)})
	bad["too long"], _ = SignToken(priv, Token{Handle: "alice", Realm: realm, Expires: now.Add(time.Hour)})
	bad["garbage"] = "not-a-token"
	bad["truncated"] = tok[:len(tok)-4]
	for name, s := range bad {
		if _, err := VerifyToken(pub, realm, s, now, 10*time.Minute); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := SignToken(priv, Token{Handle: "Bad Handle", Realm: realm, Expires: good.Expires}); !errors.Is(err, ErrTokenMalformed) {
		t.Errorf("invalid handle: %v", err)
	}
}

func TestAuthAndThrottle(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	cfg := testConfig(t, pub)
	cfg.GuessesPerHour, cfg.GuessBurst = 1, 2
	srv, url := startServer(t, cfg)
	token := func(h string) string {
		s, err := SignToken(priv, Token{Handle: h, Realm: srv.ID(), Expires: time.Now().Add(time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	// Info is public and matches the key.
	r := call(t, srv, url, "GET", PathInfo, "", "", nil)
	var info Info
	if err := json.Unmarshal(r.body, &info); err != nil || !bytes.Equal(info.PublicKey, srv.PublicKey()) || !bytes.Equal(info.ID, idSlice(srv.ID())) {
		t.Fatalf("info: %s", r.body)
	}

	// No token, a token for another realm, a token from another issuer.
	_, otherIssuer, _ := ed25519.GenerateKey(nil)
	foreign, _ := SignToken(otherIssuer, Token{Handle: "alice", Realm: srv.ID(), Expires: time.Now().Add(time.Minute)})
	elsewhere, _ := SignToken(priv, Token{Handle: "alice", Realm: pinbackup.RealmID{7}, Expires: time.Now().Add(time.Minute)})
	for _, tok := range []string{"", foreign, elsewhere} {
		if r := call(t, srv, url, "GET", PathStatus, tok, "", nil); r.status != 401 || errCode(t, r) != CodeUnauthorized {
			t.Fatalf("status without a valid token: %d %s", r.status, r.body)
		}
	}

	// Register a real registration for alice.
	setup := pinbackup.Setup{Realms: []pinbackup.RealmID{srv.ID(), {2}, {3}}, Threshold: 2}
	regs, err := pinbackup.Register(setup, "alice", []byte("1234"), pinbackup.NewBackupKey(), pinbackup.Params{Time: 1, MemoryKiB: 64, Threads: 1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(regs[0])
	if r := call(t, srv, url, "POST", PathRegister, token("alice"), "alice", body); r.status != 200 {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	// Realm 2's part is refused here (signed for another realm id).
	body2, _ := json.Marshal(regs[1])
	if r := call(t, srv, url, "POST", PathRegister, token("alice"), "alice", body2); r.status != 400 {
		t.Fatalf("another realm's registration: %d %s", r.status, r.body)
	}
	// Unknown fields are refused.
	if r := call(t, srv, url, "POST", PathRegister, token("alice"), "alice", []byte(`{"x":1}`)); r.status != 400 {
		t.Fatalf("unknown field: %d %s", r.status, r.body)
	}

	// A malformed blinded element (the identity) is refused before it counts.
	zero, _ := json.Marshal(pinbackup.EvaluateRequest{Version: regs[0].Version, Blinded: make([]byte, 32)})
	if r := call(t, srv, url, "POST", PathEvaluate, token("alice"), "alice", zero); r.status != 400 {
		t.Fatalf("identity as blinded element: %d %s", r.status, r.body)
	}
	// Guesses are throttled per handle: a burst of 2, then 429.
	_, b, _ := toprf.Blind([]byte("x"))
	ev, _ := json.Marshal(pinbackup.EvaluateRequest{Version: regs[0].Version, Blinded: b.Bytes()})
	for i := range 2 {
		if r := call(t, srv, url, "POST", PathEvaluate, token("alice"), "alice", ev); r.status != 200 {
			t.Fatalf("evaluate %d: %d %s", i, r.status, r.body)
		}
	}
	if r := call(t, srv, url, "POST", PathEvaluate, token("alice"), "alice", ev); r.status != 429 || errCode(t, r) != CodeRateLimited {
		t.Fatalf("third evaluate: %d %s", r.status, r.body)
	}
	// Another handle has its own budget (and nothing registered).
	if r := call(t, srv, url, "POST", PathEvaluate, token("bob"), "bob", ev); r.status != 404 || errCode(t, r) != CodeNotRegistered {
		t.Fatalf("bob: %d %s", r.status, r.body)
	}
	// Neither the malformed nor the throttled attempt counted.
	r = call(t, srv, url, "GET", PathStatus, token("alice"), "alice", nil)
	var st pinbackup.Status
	if err := json.Unmarshal(r.body, &st); err != nil || st.AttemptedGuesses != 2 {
		t.Fatalf("status: %s", r.body)
	}
	// A wrong tag keeps the count; a stale version is refused.
	ul, _ := json.Marshal(pinbackup.UnlockRequest{Version: regs[0].Version, Tag: make([]byte, 32)})
	if r := call(t, srv, url, "POST", PathUnlock, token("alice"), "alice", ul); r.status != 403 || errCode(t, r) != CodeWrongPIN {
		t.Fatalf("wrong tag: %d %s", r.status, r.body)
	}
	stale, _ := json.Marshal(pinbackup.UnlockRequest{Version: make([]byte, 16), Tag: regs[0].UnlockTag})
	if r := call(t, srv, url, "POST", PathUnlock, token("alice"), "alice", stale); r.status != 409 || errCode(t, r) != CodeVersion {
		t.Fatalf("stale version: %d %s", r.status, r.body)
	}
	// The right tag releases the share and resets the count.
	ok, _ := json.Marshal(pinbackup.UnlockRequest{Version: regs[0].Version, Tag: regs[0].UnlockTag})
	r = call(t, srv, url, "POST", PathUnlock, token("alice"), "alice", ok)
	var rel pinbackup.UnlockResponse
	if r.status != 200 || json.Unmarshal(r.body, &rel) != nil || !bytes.Equal(rel.SecretShare, regs[0].SecretShare) {
		t.Fatalf("right tag: %d %s", r.status, r.body)
	}
	r = call(t, srv, url, "GET", PathStatus, token("alice"), "alice", nil)
	if json.Unmarshal(r.body, &st) != nil || st.AttemptedGuesses != 0 {
		t.Fatalf("status after unlock: %s", r.body)
	}
	if r := call(t, srv, url, "GET", "/nope", "", "", nil); r.status != 404 {
		t.Fatalf("unknown path: %d", r.status)
	}
	if !strings.Contains(string(call(t, srv, url, "GET", PathHealth, "", "", nil).body), `"ok"`) {
		t.Fatal("health")
	}
}

func idSlice(id pinbackup.RealmID) []byte { return id[:] }

func TestKeyPersists(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(nil)
	cfg := testConfig(t, pub)
	p1, id1, err := LoadKey(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(srv.PublicKey(), p1) || srv.ID() != id1 {
		t.Fatal("the server did not reuse the key in its folder")
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigLoad(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(nil)
	key := base64.StdEncoding.EncodeToString(pub)
	env := map[string]string{"PARLEY_REALM_ISSUER_KEY": key, "PARLEY_REALM_ADDR": "127.0.0.1:1", "PARLEY_REALM_GUESS_BURST": "3"}
	getenv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg, err := Load([]string{"--addr", "127.0.0.1:9", "--max-token-ttl", "2m"}, getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:9" || cfg.GuessBurst != 3 || cfg.MaxTokenTTL != 2*time.Minute || cfg.IssuerKey != key {
		t.Fatalf("%+v", cfg)
	}
	for _, args := range [][]string{{"--issuer-key", "x"}, {"--addr", "0.0.0.0:80"}, {"--guess-burst", "0"}, {"stray"}} {
		if _, err := Load(args, getenv, io.Discard); !errors.Is(err, ErrInvalid) {
			t.Errorf("%v: %v", args, err)
		}
	}
	if _, err := Load(nil, func(string) (string, bool) { return "", false }, io.Discard); !errors.Is(err, ErrInvalid) {
		t.Errorf("no issuer key: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(cfg.JSON(), &m); err != nil || m["max_token_ttl"] != "2m0s" {
		t.Fatalf("JSON: %s", cfg.JSON())
	}
}

func decodeB64(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }
