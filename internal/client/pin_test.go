package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/client/clientdb"
	"github.com/parleychat/parley/internal/content"
	"github.com/parleychat/parley/internal/pinbackup"
	"github.com/parleychat/parley/internal/realm"
	"github.com/parleychat/parley/internal/realm/realmclient"
	"github.com/parleychat/parley/internal/server"
)

// fastPIN registers with cheap Argon2id parameters: the properties under
// test do not depend on them (docs/PROTOCOL-pin.md §8 has the real ones).
var fastPIN = PINOptions{Params: pinbackup.Params{Time: 1, MemoryKiB: 256, Threads: 1}}

// testRealm is a real realm in this process.
type testRealm struct {
	srv  *realm.Server
	url  string
	stop func()
}

// startPINServer runs n realms and a parleyd that names them (threshold t).
func startPINServer(t *testing.T, n, threshold int) (*testServer, []*testRealm) {
	t.Helper()
	dir := t.TempDir()
	cfg := testConfig(dir, "127.0.0.1:0")
	key, err := server.LoadRealmTokenKey(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var realms []*testRealm
	var entries []string
	for range n {
		rc := realm.Defaults()
		rc.Addr = "127.0.0.1:0"
		rc.DataDir = t.TempDir()
		rc.IssuerKey = base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))
		rc.GuessesPerHour, rc.GuessBurst = 1e6, 1000
		rc.RequestsPerMinute, rc.RequestBurst = 1e6, 1000
		srv, err := realm.New(rc, testLogger(t).With("side", "realm"))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Run(ctx) }()
		select {
		case <-srv.Ready():
		case err := <-done:
			t.Fatalf("realm did not start: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("realm did not start in 30s")
		}
		stopped := false
		r := &testRealm{srv: srv, url: "http://" + srv.Addr().String(), stop: func() {
			if stopped {
				return
			}
			stopped = true
			cancel()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Error("realm did not stop in 30s")
			}
		}}
		t.Cleanup(r.stop)
		realms = append(realms, r)
		entries = append(entries, base64.StdEncoding.EncodeToString(srv.PublicKey())+"@"+r.url)
	}
	cfg.Realms = strings.Join(entries, ",")
	cfg.RealmThreshold = threshold
	cfg.RecoverRate, cfg.RecoverBurst = 1e6, 1000
	cfg.RecoverAddrRate, cfg.RecoverAddrBurst = 1e6, 1000
	srv, err := server.New(cfg, testLogger(t).With("side", "server"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("server did not start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("server did not start in 30s")
	}
	ts := &testServer{URL: "http://" + srv.Addr().String(), Addr: srv.Addr().String(), dir: dir, stop: func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("server did not stop in 30s")
		}
	}}
	t.Cleanup(ts.stop)
	return ts, realms
}

func safety(t *testing.T, c *Client, peer string) SafetyNumber {
	t.Helper()
	sn, err := c.SafetyNumber(testCtx(t), peer)
	if err != nil {
		t.Fatal(err)
	}
	return sn
}

// The whole life of a PIN backup in process: set, status, restore on a
// fresh home (same identity, contacts, safety numbers; the other device is
// told), talk, change the PIN, a wrong PIN, a changed realm set, remove.
func TestPINBackupLifecycle(t *testing.T) {
	ts, _ := startPINServer(t, 3, 2)
	ctx := testCtx(t)
	alice, bob := register(t, ts.URL, "alice"), register(t, ts.URL, "bob")
	if err := alice.AddContact(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := bob.AddContact(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := alice.MarkVerified(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetReadReceipts(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetPIN(ctx, []byte("12"), fastPIN); !errors.Is(err, pinbackup.ErrPIN) {
		t.Fatalf("short PIN: %v", err)
	}
	if err := alice.SetPIN(ctx, []byte("2468"), fastPIN); err != nil {
		t.Fatal(err)
	}
	st, err := alice.PINStatus(ctx, PINOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.State != PINSet || st.Holding != 3 || st.Threshold != 2 || st.GuessesLeft != 10 || !st.HasKey || !st.BlobStored || st.BlobStale {
		t.Fatalf("status after set: %+v", st)
	}
	before := safety(t, bob, "alice")

	// A fresh home, the handle and the PIN.
	alice2 := openClient(t, ts.URL, "", "alice-2")
	if err := alice2.Restore(ctx, "alice", []byte("2468"), PINOptions{}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if alice2.Handle() != "alice" || alice2.DeviceID() == alice.DeviceID() || !bytes.Equal(alice2.accountKey.Public(), alice.accountKey.Public()) {
		t.Fatal("restored a different account or the same device")
	}
	contacts, err := alice2.Contacts(ctx)
	if err != nil || len(contacts) != 1 || contacts[0].Handle != "bob" || contacts[0].State != clientdb.StateContact || !contacts[0].Verified {
		t.Fatalf("restored contacts: %+v %v", contacts, err)
	}
	if alice2.ReadReceipts() {
		t.Fatal("read receipts setting not restored")
	}
	if after := safety(t, bob, "alice"); after.Number != before.Number || after.KeyChanged {
		t.Fatalf("bob's safety number with alice changed: %+v -> %+v", before, after)
	}
	if got, want := safety(t, alice2, "bob"), safety(t, alice, "bob"); got.Number != want.Number || got.KeyChanged || !got.Verified {
		t.Fatalf("alice2's safety number with bob: %+v, alice1's %+v", got, want)
	}

	// The old device is told.
	evs := syncAll(t, alice)
	if len(only(evs, EventRecoveryAttempt)) != 1 || len(only(evs, EventDeviceRecovered)) != 1 || only(evs, EventDeviceRecovered)[0].Device != alice2.DeviceID() {
		t.Fatalf("alice's events: %+v", evs)
	}
	if st, err := alice.PINStatus(ctx, PINOptions{}); err != nil || st.LastAttempt.IsZero() {
		t.Fatalf("last attempt not recorded: %+v %v", st, err)
	}
	if again := syncAll(t, alice); len(only(again, EventRecoveryAttempt)) != 0 {
		t.Fatalf("notice delivered twice: %+v", again)
	}

	// Talking goes on, both ways, with the restored device.
	send(t, bob, "alice", "still there?")
	if got := only(syncAll(t, alice2), EventMessage); len(got) != 1 || got[0].Message.Text != "still there?" {
		t.Fatalf("alice2 got %+v", got)
	}
	send(t, alice2, "bob", "yes, new phone")
	if got := only(syncAll(t, bob), EventMessage); len(got) != 1 || got[0].Message.Text != "yes, new phone" {
		t.Fatalf("bob got %+v", got)
	}
	if evs := only(syncAll(t, bob), EventKeyChanged); len(evs) != 0 {
		t.Fatalf("bob saw a key change: %+v", evs)
	}

	// The restored device holds the backup key: it changes the PIN, and
	// the sealed account keeps opening.
	if err := alice2.ChangePIN(ctx, []byte("correct horse"), fastPIN); err != nil {
		t.Fatal(err)
	}
	alice3 := openClient(t, ts.URL, "", "alice-3")
	err = alice3.Restore(ctx, "alice", []byte("2468"), PINOptions{})
	var wrong *realmclient.WrongPINError
	if !errors.As(err, &wrong) || wrong.GuessesLeft != 9 || !errors.Is(err, pinbackup.ErrWrongPIN) {
		t.Fatalf("old PIN: %v", err)
	}
	if alice3.Registered() {
		t.Fatal("a failed restore registered the device")
	}
	if err := alice3.Restore(ctx, "alice", []byte("correct horse"), PINOptions{}); err != nil {
		t.Fatalf("restore with the new PIN: %v", err)
	}

	// A contact added later is in the backup too.
	if err := alice3.AddContact(ctx, "carol"); !errors.Is(err, ErrUnknownHandle) {
		t.Fatalf("adding an unknown contact: %v", err)
	}
	register(t, ts.URL, "carol")
	if err := alice3.AddContact(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	alice4 := openClient(t, ts.URL, "", "alice-4")
	if err := alice4.Restore(ctx, "alice", []byte("correct horse"), PINOptions{}); err != nil {
		t.Fatal(err)
	}
	contacts, _ = alice4.Contacts(ctx)
	if !slices.ContainsFunc(contacts, func(c Contact) bool { return c.Handle == "carol" }) {
		t.Fatalf("carol is not in the refreshed backup: %+v", contacts)
	}

	// A changed realm set is refused until accepted.
	pinned, err := alice.pinnedRealms(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pinned.Realms[0].URL = "http://127.0.0.1:1"
	b, _ := json.Marshal(pinned)
	if err := alice.db.Update(ctx, func(tx *clientdb.Tx) error { return tx.PutSetting(settingPINRealms, string(b)) }); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.PINStatus(ctx, PINOptions{}); !errors.Is(err, ErrRealmsChanged) {
		t.Fatalf("changed realm set: %v", err)
	}
	if _, err := alice.PINStatus(ctx, PINOptions{AcceptRealms: true}); err != nil {
		t.Fatalf("accepted realm set: %v", err)
	}
	if _, err := alice.PINStatus(ctx, PINOptions{}); err != nil {
		t.Fatalf("the accepted set is not pinned: %v", err)
	}

	// Remove: gone at the realms and at the server.
	if err := alice.RemovePIN(ctx, PINOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err = alice.PINStatus(ctx, PINOptions{})
	if err != nil || st.State != PINNone || st.BlobStored || st.HasKey {
		t.Fatalf("status after remove: %+v %v", st, err)
	}
	alice5 := openClient(t, ts.URL, "", "alice-5")
	if err := alice5.Restore(ctx, "alice", []byte("correct horse"), PINOptions{}); !errors.Is(err, pinbackup.ErrNotFound) {
		t.Fatalf("restore after remove: %v", err)
	}
	if err := alice.ChangePIN(ctx, []byte("1357"), fastPIN); !errors.Is(err, ErrNoBackup) {
		t.Fatalf("change without a backup: %v", err)
	}
}

// Ten wrong PINs destroy the backup; the right PIN then fails, saying why,
// and the account's device sees the state and can make a new backup.
func TestPINBackupDestroyed(t *testing.T) {
	ts, realms := startPINServer(t, 3, 2)
	ctx := testCtx(t)
	alice := register(t, ts.URL, "alice")
	if err := alice.SetPIN(ctx, []byte("8642"), fastPIN); err != nil {
		t.Fatal(err)
	}
	stranger := openClient(t, ts.URL, "", "stranger")
	for i := range 10 {
		err := stranger.Restore(ctx, "alice", []byte("0000"), PINOptions{})
		if i < 9 {
			var wrong *realmclient.WrongPINError
			if !errors.As(err, &wrong) || wrong.GuessesLeft != 9-i {
				t.Fatalf("wrong PIN %d: %v", i+1, err)
			}
			continue
		}
		if !errors.Is(err, pinbackup.ErrDestroyed) || !strings.Contains(err.Error(), "last guess") {
			t.Fatalf("tenth wrong PIN: %v", err)
		}
	}
	if err := stranger.Restore(ctx, "alice", []byte("8642"), PINOptions{}); !errors.Is(err, pinbackup.ErrDestroyed) {
		t.Fatalf("the right PIN after ten wrong ones: %v", err)
	}
	if evs := only(syncAll(t, alice), EventRecoveryAttempt); len(evs) != 11 {
		t.Fatalf("alice was told of %d attempts, want 11", len(evs))
	}
	st, err := alice.PINStatus(ctx, PINOptions{})
	if err != nil || st.State != PINDestroyed {
		t.Fatalf("status: %+v %v", st, err)
	}
	if err := alice.SetPIN(ctx, []byte("8642"), fastPIN); err != nil {
		t.Fatalf("a new backup: %v", err)
	}

	// With one realm down, restoring works; with two down it fails before
	// any guess is used.
	realms[2].stop()
	fresh := openClient(t, ts.URL, "", "alice-2")
	if err := fresh.Restore(ctx, "alice", []byte("8642"), PINOptions{}); err != nil {
		t.Fatalf("restore with one realm down: %v", err)
	}
	realms[1].stop()
	other := openClient(t, ts.URL, "", "alice-3")
	err = other.Restore(ctx, "alice", []byte("8642"), PINOptions{})
	if !errors.Is(err, pinbackup.ErrTooFewRealms) || !strings.Contains(err.Error(), "1 of 3 realms answered; 2 are needed") {
		t.Fatalf("restore with two realms down: %v", err)
	}
	// Registering needs every realm.
	if err := fresh.SetPIN(ctx, []byte("8642"), fastPIN); !errors.Is(err, realmclient.ErrIncomplete) {
		t.Fatalf("set with realms down: %v", err)
	}
}

func TestBackupPayloadRoundTrip(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	p := &backupPayload{Handle: "alice", AccountSeed: bytes.Repeat([]byte{1}, 32), ReadReceipts: true, Contacts: []content.Contact{
		{Handle: "bob", State: content.ContactAccepted, IdentityKey: key, Verified: true},
		{Handle: "mallory", State: content.ContactBlocked},
	}}
	b, err := p.marshal()
	if err != nil {
		t.Fatal(err)
	}
	q, err := parseBackupPayload(b)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := q.marshal()
	if !bytes.Equal(again, b) || q.Handle != "alice" || !q.ReadReceipts || len(q.Contacts) != 2 || !q.Contacts[0].Verified || q.Contacts[1].IdentityKey != nil {
		t.Fatalf("round trip: %+v", q)
	}
	for i := range b {
		if _, err := parseBackupPayload(b[:i]); err == nil {
			t.Fatalf("a truncated payload (%d of %d bytes) parses", i, len(b))
		}
	}
	if _, err := parseBackupPayload(append(b, 0)); err == nil {
		t.Fatal("trailing data parses")
	}
}

// FuzzParseBackupPayload: a payload that parses re-encodes to the same
// bytes.
func FuzzParseBackupPayload(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseBackupPayload(b)
		if err != nil {
			return
		}
		again, err := p.marshal()
		if err != nil {
			t.Fatalf("parsed payload does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoded %x, parsed %x", again, b)
		}
	})
}

// TestDeleteAccountWithPIN: deleting an account removes its PIN backup at
// every realm and at the server before the account itself, so nothing of
// it stays; then the home is empty and the handle registers afresh.
func TestDeleteAccountWithPIN(t *testing.T) {
	ts, _ := startPINServer(t, 3, 2)
	ctx := testCtx(t)
	alice := register(t, ts.URL, "alice")
	if err := alice.SetPIN(ctx, []byte("2468"), fastPIN); err != nil {
		t.Fatal(err)
	}
	bob := register(t, ts.URL, "bob")
	send(t, alice, "bob", "before")
	if err := alice.DeleteAccount(ctx); err != nil {
		t.Fatal(err)
	}
	if alice.Registered() {
		t.Fatal("the home still holds an account")
	}
	if h, err := alice.History(ctx, "bob", 0); len(h) != 0 {
		t.Fatalf("the erased home still shows %d messages (%v)", len(h), err)
	}
	if _, err := bob.bundles(ctx, "alice", nil); err == nil {
		t.Fatal("the server still hands out alice's keys")
	}
	// A new account under the handle finds no backup at the realms.
	again := register(t, ts.URL, "alice")
	st, err := again.PINStatus(ctx, PINOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.State != PINNone || st.BlobStored {
		t.Fatalf("after deleting the account: %+v", st)
	}
}
