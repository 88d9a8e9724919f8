package realm

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/pinbackup"
)

// A recovery-scoped token reads the status and recovers, but never
// registers or deletes: a stranger who obtains one for a handle cannot
// replace or erase that account's backup.
func TestRecoveryScope(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	srv, url := startServer(t, testConfig(t, pub))
	token := func(scope Scope) string {
		s, err := SignToken(priv, Token{Handle: "alice", Realm: srv.ID(), Expires: time.Now().Add(time.Minute), Scope: scope})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// The scope survives signing and verifying; a flipped format byte
	// breaks the signature.
	got, err := VerifyToken(pub, srv.ID(), token(ScopeRecovery), time.Now(), 10*time.Minute)
	if err != nil || got.Scope != ScopeRecovery {
		t.Fatalf("recovery token: %+v, %v", got, err)
	}
	raw, _ := decodeB64(token(ScopeRecovery))
	raw[0] = tokenFormat
	if _, err := VerifyToken(pub, srv.ID(), encodeB64(raw), time.Now(), 10*time.Minute); err == nil {
		t.Fatal("a recovery token turned into an account token still verifies")
	}
	if _, err := SignToken(priv, Token{Handle: "alice", Realm: srv.ID(), Expires: time.Now().Add(time.Minute), Scope: 7}); err == nil {
		t.Fatal("an unknown scope was signed")
	}

	setup := pinbackup.Setup{Realms: []pinbackup.RealmID{srv.ID(), {2}, {3}}, Threshold: 2}
	regs, err := pinbackup.Register(setup, "alice", []byte("1234"), pinbackup.NewBackupKey(), pinbackup.Params{Time: 1, MemoryKiB: 64, Threads: 1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(regs[0])
	if r := call(t, srv, url, "POST", PathRegister, token(ScopeRecovery), "alice", body); r.status != 403 || errCode(t, r) != CodeForbidden {
		t.Fatalf("register with a recovery token: %d %s", r.status, r.body)
	}
	if r := call(t, srv, url, "POST", PathRegister, token(ScopeAccount), "alice", body); r.status != 200 {
		t.Fatalf("register with an account token: %d %s", r.status, r.body)
	}
	if r := call(t, srv, url, "GET", PathStatus, token(ScopeRecovery), "alice", nil); r.status != 200 {
		t.Fatalf("status with a recovery token: %d %s", r.status, r.body)
	}
	ev, _ := json.Marshal(pinbackup.EvaluateRequest{Version: regs[0].Version, Blinded: regs[0].RegistrationKey})
	if r := call(t, srv, url, "POST", PathEvaluate, token(ScopeRecovery), "alice", ev); r.status == 403 || r.status == 401 {
		t.Fatalf("evaluate with a recovery token: %d %s", r.status, r.body)
	}
	if r := call(t, srv, url, "DELETE", PathDelete, token(ScopeRecovery), "alice", nil); r.status != 403 || errCode(t, r) != CodeForbidden {
		t.Fatalf("delete with a recovery token: %d %s", r.status, r.body)
	}
	var st pinbackup.Status
	r := call(t, srv, url, "GET", PathStatus, token(ScopeAccount), "alice", nil)
	if err := json.Unmarshal(r.body, &st); err != nil || st.State != pinbackup.StateRegistered {
		t.Fatalf("the backup did not survive: %s", r.body)
	}
	if r := call(t, srv, url, "DELETE", PathDelete, token(ScopeAccount), "alice", nil); r.status != 200 {
		t.Fatalf("delete with an account token: %d %s", r.status, r.body)
	}
}

func encodeB64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
