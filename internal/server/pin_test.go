package server_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/devicelist"
	"github.com/parleychat/parley/internal/identity"
	"github.com/parleychat/parley/internal/pinbackup"
	"github.com/parleychat/parley/internal/realm"
)

// withRealms configures n realms (keys only: these tests never call them).
func withRealms(t *testing.T, n int) (func(*config.Config), []ed25519.PublicKey) {
	var keys []ed25519.PublicKey
	var entries []string
	for i := range n {
		pub, _, err := ed25519.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, pub)
		entries = append(entries, base64.StdEncoding.EncodeToString(pub)+"@http://127.0.0.1:1/realm"+string(rune('a'+i)))
	}
	return func(c *config.Config) {
		c.Realms = strings.Join(entries, ",")
		c.RecoverRate, c.RecoverBurst = 1e6, 1000
		c.RecoverAddrRate, c.RecoverAddrBurst = 1e6, 1000
	}, keys
}

func sealedBlob(t *testing.T, handle string, pt []byte) []byte {
	b, err := pinbackup.SealBlob(pinbackup.NewBackupKey(), handle, pt)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPINNotConfigured(t *testing.T) {
	ts := startServer(t, nil)
	var set api.RealmSet
	ts.mustDo("GET", api.PathRealms, "", nil, &set)
	if len(set.Realms) != 0 || set.Threshold != 0 {
		t.Fatalf("realms without configuration: %+v", set)
	}
	alice := ts.register("alice")
	ts.wantErr(404, api.CodeNotFound, "POST", api.PathRealmToken, alice.devices[0].token, nil)
	ts.wantErr(404, api.CodeNotFound, "POST", api.PathRealmTokenRecover, "", api.RecoverTokensRequest{Handle: "alice"})
	ts.wantErr(404, api.CodeNotFound, "PUT", api.PathBackup, alice.devices[0].token, api.PutBackupRequest{Blob: []byte{1}})
}

func TestRealmTokens(t *testing.T) {
	mod, keys := withRealms(t, 3)
	ts := startServer(t, mod)
	var set api.RealmSet
	ts.mustDo("GET", api.PathRealms, "", nil, &set)
	if len(set.Realms) != 3 || set.Threshold != 2 || len(set.TokenKey) != ed25519.PublicKeySize {
		t.Fatalf("realm set: %+v", set)
	}
	for i, r := range set.Realms {
		id := pinbackup.RealmIDFromKey(keys[i])
		if !bytes.Equal(r.PublicKey, keys[i]) || !bytes.Equal(r.ID, id[:]) || !strings.HasSuffix(r.URL, "/realm"+string(rune('a'+i))) {
			t.Fatalf("realm %d: %+v", i, r)
		}
	}
	issuer := ed25519.PublicKey(set.TokenKey)
	alice := ts.register("alice")
	ts.wantErr(401, api.CodeUnauthorized, "POST", api.PathRealmToken, "", nil)

	var toks api.RealmTokens
	ts.mustDo("POST", api.PathRealmToken, alice.devices[0].token, nil, &toks)
	if len(toks.Tokens) != 3 || toks.BackupToken != "" {
		t.Fatalf("account tokens: %+v", toks)
	}
	for i, tok := range toks.Tokens {
		id := pinbackup.RealmIDFromKey(keys[i])
		got, err := realm.VerifyToken(issuer, id, tok.Token, time.Now(), 10*time.Minute)
		if err != nil || got.Handle != "alice" || got.Scope != realm.ScopeAccount || !bytes.Equal(tok.RealmID, id[:]) {
			t.Fatalf("account token %d: %+v %v", i, got, err)
		}
		if _, err := realm.VerifyToken(issuer, pinbackup.RealmIDFromKey(keys[(i+1)%3]), tok.Token, time.Now(), 10*time.Minute); err == nil {
			t.Fatalf("token %d verifies at another realm", i)
		}
	}

	// Recovery tokens: anyone may ask; they have the recovery scope.
	ts.wantErr(404, api.CodeNotFound, "POST", api.PathRealmTokenRecover, "", api.RecoverTokensRequest{Handle: "nobody"})
	ts.wantErr(400, api.CodeInvalidHandle, "POST", api.PathRealmTokenRecover, "", api.RecoverTokensRequest{Handle: "a b"})
	var rec api.RealmTokens
	ts.mustDo("POST", api.PathRealmTokenRecover, "", api.RecoverTokensRequest{Handle: "Alice"}, &rec)
	if len(rec.Tokens) != 3 || rec.BackupToken == "" {
		t.Fatalf("recovery tokens: %+v", rec)
	}
	for i, tok := range rec.Tokens {
		got, err := realm.VerifyToken(issuer, pinbackup.RealmIDFromKey(keys[i]), tok.Token, time.Now(), 10*time.Minute)
		if err != nil || got.Handle != "alice" || got.Scope != realm.ScopeRecovery {
			t.Fatalf("recovery token %d: %+v %v", i, got, err)
		}
	}

	// Alice's device is told, durably: the notice waits in its queue and
	// goes once acknowledged.
	ws := ts.dialWS(alice.devices[0])
	f := ws.mustRead()
	if f.Type != api.FrameNotice || f.Notice == nil || f.Notice.Kind != api.NoticeRecoveryAttempt || f.Notice.Seq == 0 ||
		time.Since(time.UnixMilli(f.Notice.Time)) > time.Hour {
		t.Fatalf("first frame: %+v", f)
	}
	if f := ws.mustRead(); f.Type != api.FrameDrained {
		t.Fatalf("after the notice: %+v", f)
	}
	ws.ack(f.Notice.Seq)
	ws.close()
	ws = ts.dialWS(alice.devices[0])
	if env := ws.readUntilDrained(); len(env) != 0 {
		t.Fatalf("redelivered: %+v", env)
	}
	ws.close()
}

func TestRecoveryThrottle(t *testing.T) {
	mod, _ := withRealms(t, 3)
	ts := startServer(t, func(c *config.Config) {
		mod(c)
		c.RecoverRate, c.RecoverBurst = 1, 2         // per hour
		c.RecoverAddrRate, c.RecoverAddrBurst = 1, 4 // every request counts here, refused ones too
	})
	ts.register("alice")
	ts.register("bob")
	for range 2 {
		ts.mustDo("POST", api.PathRealmTokenRecover, "", api.RecoverTokensRequest{Handle: "alice"}, nil)
	}
	ts.wantErr(429, api.CodeRateLimited, "POST", api.PathRealmTokenRecover, "", api.RecoverTokensRequest{Handle: "alice"})
	// Per handle: bob still gets tokens, until the address runs out.
	ts.mustDo("POST", api.PathRealmTokenRecover, "", api.RecoverTokensRequest{Handle: "bob"}, nil)
	e := ts.wantErr(429, api.CodeRateLimited, "POST", api.PathRealmTokenRecover, "", api.RecoverTokensRequest{Handle: "bob"})
	if !strings.Contains(e.Message, "address") {
		t.Fatalf("address limit: %q", e.Message)
	}
}

func TestBackupBlob(t *testing.T) {
	mod, _ := withRealms(t, 3)
	ts := startServer(t, mod)
	alice, bob := ts.register("alice"), ts.register("bob")
	tok := alice.devices[0].token
	ts.wantErr(404, api.CodeNotFound, "GET", "/v1/backup/alice", tok, nil)
	ts.wantErr(400, api.CodeBadRequest, "PUT", api.PathBackup, tok, api.PutBackupRequest{Blob: []byte{1, 2, 3}})
	ts.wantErr(400, api.CodeBadRequest, "PUT", api.PathBackup, tok, api.PutBackupRequest{Blob: make([]byte, 2<<20)})
	ts.wantErr(401, api.CodeUnauthorized, "PUT", api.PathBackup, "", api.PutBackupRequest{Blob: sealedBlob(t, "alice", nil)})
	blob := sealedBlob(t, "alice", []byte("the account"))
	ts.mustDo("PUT", api.PathBackup, tok, api.PutBackupRequest{Blob: blob}, nil)

	var b api.Backup
	ts.mustDo("GET", "/v1/backup/alice", tok, nil, &b)
	if !bytes.Equal(b.Blob, blob) || b.Updated == 0 {
		t.Fatalf("own backup: %d bytes, updated %d", len(b.Blob), b.Updated)
	}
	ts.wantErr(403, api.CodeForbidden, "GET", "/v1/backup/alice", bob.devices[0].token, nil)
	ts.wantErr(401, api.CodeUnauthorized, "GET", "/v1/backup/alice", "", nil)

	// A recovery's backup token reads alice's blob, and only alice's.
	var rec api.RealmTokens
	ts.mustDo("POST", api.PathRealmTokenRecover, "", api.RecoverTokensRequest{Handle: "alice"}, &rec)
	b = api.Backup{}
	ts.mustDo("GET", "/v1/backup/alice", rec.BackupToken, nil, &b)
	if !bytes.Equal(b.Blob, blob) {
		t.Fatal("the backup token read another blob")
	}
	ts.wantErr(401, api.CodeUnauthorized, "GET", "/v1/backup/bob", rec.BackupToken, nil)
	// A realm token is not a backup token.
	ts.wantErr(401, api.CodeUnauthorized, "GET", "/v1/backup/alice", rec.Tokens[0].Token, nil)

	ts.mustDo("DELETE", api.PathBackup, tok, nil, nil)
	ts.wantErr(404, api.CodeNotFound, "GET", "/v1/backup/alice", tok, nil)
}

func TestRecoverDevice(t *testing.T) {
	mod, _ := withRealms(t, 3)
	ts := startServer(t, mod)
	alice := ts.register("alice")
	ts.register("bob")
	old := alice.devices[0]

	challenge := func(handle string) []byte {
		var ch api.ChallengeResponse
		ts.mustDo("POST", api.PathRecoverChallenge, "", api.RecoverChallengeRequest{Handle: handle}, &ch)
		return ch.Challenge
	}
	ts.wantErr(404, api.CodeNotFound, "POST", api.PathRecoverChallenge, "", api.RecoverChallengeRequest{Handle: "nobody"})
	ch := challenge("alice")
	sign := func(k *identity.AccountKey, handle string, ch, list []byte) api.RecoverDeviceRequest {
		return api.RecoverDeviceRequest{Handle: handle, Challenge: ch, DeviceList: list, Signature: k.Sign(identity.RecoveryMessage(handle, ch, list))}
	}

	// Reading the account needs the account key.
	stranger, _ := identity.NewAccountKey()
	ts.wantErr(401, api.CodeUnauthorized, "POST", api.PathRecoverDevice, "", sign(stranger, "alice", ch, nil))
	var acct api.Account
	ts.mustDo("POST", api.PathRecoverDevice, "", sign(alice.key, "alice", ch, nil), &acct)
	if !bytes.Equal(acct.IdentityKey, alice.key.Public()) {
		t.Fatal("wrong identity key")
	}
	list, err := devicelist.Verify(acct.DeviceList, alice.key.Public())
	if err != nil || list.Version != 1 || len(list.Devices) != 1 {
		t.Fatalf("device list: %+v %v", list, err)
	}
	// Challenges are bound to the handle and cannot be forged.
	ts.wantErr(401, api.CodeChallengeExpired, "POST", api.PathRecoverDevice, "", sign(alice.key, "alice", challenge("bob"), nil))
	forged := bytes.Clone(ch)
	forged[10] ^= 1
	ts.wantErr(401, api.CodeChallengeExpired, "POST", api.PathRecoverDevice, "", sign(alice.key, "alice", forged, nil))

	// The old device listens while the new one joins.
	ws := ts.dialWS(old)
	if env := ws.readUntilDrained(); len(env) != 0 {
		t.Fatalf("queued before: %+v", env)
	}

	nd := newDevice(t, old.id+1)
	next := alice.signedList(t, 2, old, nd)
	// A list that changes an existing device's keys is refused.
	changed := alice.signedList(t, 2, newDevice(t, old.id), nd)
	ts.wantErr(400, api.CodeBadRequest, "POST", api.PathRecoverDevice, "", sign(alice.key, "alice", ch, changed))
	// The signature covers the list.
	bad := sign(alice.key, "alice", ch, nil)
	bad.DeviceList = next
	ts.wantErr(401, api.CodeUnauthorized, "POST", api.PathRecoverDevice, "", bad)
	req := sign(alice.key, "alice", ch, next)
	ts.mustDo("POST", api.PathRecoverDevice, "", req, &acct)
	ts.wantErr(409, api.CodeStaleDeviceList, "POST", api.PathRecoverDevice, "", req) // a replay

	// The old device learns of it: the device list hint and a notice.
	var sawNotice, sawList bool
	for !sawNotice || !sawList {
		f := ws.mustRead()
		switch f.Type {
		case api.FrameNotice:
			if f.Notice.Kind != api.NoticeDeviceRecovered || f.Notice.Device != nd.id {
				t.Fatalf("notice: %+v", f.Notice)
			}
			sawNotice = true
			ws.ack(f.Notice.Seq)
		case "device_list":
			sawList = true
		default:
			t.Fatalf("unexpected frame %+v", f)
		}
	}
	ws.close()

	// The new device signs in with its own key and uploads its prekeys.
	alice.devices = append(alice.devices, nd)
	ts.login(alice, nd)
	ts.mustDo("POST", api.PathKeys, nd.token, prekeys(t, nd, true, 1, 2), nil)
	var bundles api.Bundles
	ts.mustDo("GET", "/v1/keys/alice", old.token, nil, &bundles)
	if len(bundles.Bundles) != 1 || bundles.Bundles[0].DeviceID != nd.id { // the caller's own bundle is left out
		t.Fatalf("bundles: %+v", bundles.Bundles)
	}
	if status, _ := ts.do("GET", "/v1/keys", nd.token, nil, nil); status != http.StatusOK {
		t.Fatalf("new device's key counts: %d", status)
	}
}
