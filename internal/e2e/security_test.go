package e2e

import (
	"bytes"
	"database/sql"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/parleychat/parley/internal/devicelist"
	"github.com/parleychat/parley/internal/identity"
)

// openDB opens a SQLite file of a server or client, as a hostile operator
// (or a thief of the disk) would.
func openDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database %s: %v", path, err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func serverDB(t *testing.T, s *server) *sql.DB { return openDB(t, filepath.Join(s.data, "parley.db")) }

// A server that delivers an envelope a second time (a replay) cannot make
// the recipient show the message twice; the session keeps working.
func TestReplayedEnvelopeIsRejected(t *testing.T) {
	srv := startServer(t, "")
	alice, bob := registerPair(t, srv)
	alice.run("send", "bob", "first")
	alice.run("send", "bob", "second")

	// The hostile server keeps copies of bob's envelopes before delivering them.
	db := serverDB(t, srv)
	type row struct {
		recipient, messageID, sender  string
		recipientDevice, senderDevice int64
		ciphertext                    []byte
		serverTime                    int64
	}
	rows, err := db.Query(`SELECT recipient, recipient_device, message_id, sender, sender_device, ciphertext, server_time FROM envelopes WHERE recipient = 'bob' ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	var saved []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.recipient, &r.recipientDevice, &r.messageID, &r.sender, &r.senderDevice, &r.ciphertext, &r.serverTime); err != nil {
			t.Fatal(err)
		}
		saved = append(saved, r)
	}
	rows.Close()
	if len(saved) != 2 {
		t.Fatalf("found %d queued envelopes for bob, want 2", len(saved))
	}
	requireTexts(t, "bob", bob.sync(""), "first", "second")

	// Replay both, in reverse order, under fresh sequence numbers and ids.
	// (The server is stopped while its database is edited: it keeps the
	// ends of connected devices' queues in memory, as the only writer.)
	db.Close()
	srv.stop()
	db = serverDB(t, srv)
	for i := len(saved) - 1; i >= 0; i-- {
		r := saved[i]
		if _, err := db.Exec(`INSERT INTO envelopes (recipient, recipient_device, message_id, sender, sender_device, ciphertext, server_time) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			r.recipient, r.recipientDevice, fmt.Sprintf("%032x", i+1), r.sender, r.senderDevice, r.ciphertext, r.serverTime); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	srv2 := startServer(t, srv.data)
	alice.srv, bob.srv = srv2, srv2
	out := bob.run("sync")
	rejected := 0
	for _, m := range parseLines(t, out) {
		switch m.Type {
		case "message":
			t.Fatalf("a replayed envelope was shown again: %+v", m)
		case "replay", "dropped":
			rejected++
		}
	}
	if rejected != 2 {
		t.Fatalf("bob reported %d rejected envelopes, want 2; output:\n%s", rejected, out)
	}
	// The replays were acknowledged and are gone; the session still works.
	alice.run("send", "bob", "third")
	requireTexts(t, "bob", bob.sync(""), "third")
}

// secretsOf returns every private key a client home holds: the account
// seed, the device keys, and the private prekeys.
func secretsOf(t *testing.T, home string) map[string][]byte {
	t.Helper()
	db := openDB(t, filepath.Join(home, "parley.db"))
	secrets := map[string][]byte{}
	var seed, devKey []byte
	if err := db.QueryRow(`SELECT account_seed, device_key FROM account`).Scan(&seed, &devKey); err != nil {
		t.Fatal(err)
	}
	if len(seed) != 32 || len(devKey) != 64 {
		t.Fatalf("unexpected key sizes %d, %d", len(seed), len(devKey))
	}
	secrets["account seed"] = seed
	secrets["device signing seed"] = devKey[:32]
	secrets["device X25519 key"] = devKey[32:]
	rows, err := db.Query(`SELECT id, kind, private FROM prekeys`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, kind int64
		var priv []byte
		if err := rows.Scan(&id, &kind, &priv); err != nil {
			t.Fatal(err)
		}
		secrets[fmt.Sprintf("prekey %d (kind %d)", id, kind)] = priv
	}
	if len(secrets) < 10 {
		t.Fatalf("found only %d secrets in %s", len(secrets), home)
	}
	return secrets
}

// serverFiles returns the bytes of every file in the server's data folder
// (database, WAL, shared memory).
func serverFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		files[path] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// The server's database holds no message text, no contact list and no
// private key, in any encoding, whatever state it is in.
func TestServerDatabaseHoldsNoPlaintextOrPrivateKeys(t *testing.T) {
	srv := startServer(t, "")
	alice, bob := registerPair(t, srv)
	carol := newDevice(t, srv, "carol1")
	carol.run("register", "carol")
	bob2 := link(t, bob, "bob2")
	bob.run("contacts", "add", "carol") // synced to bob2 end-to-end encrypted

	markers := []string{"PLAINTEXT-MARKER-one-7d1f", "PLAINTEXT-MARKER-two-99ab", "PLAINTEXT-MARKER-three-c3c3"}
	alice.run("send", "bob", markers[0])
	bob.run("send", "alice", markers[1])
	// An undelivered message sits in the queue while we look.
	alice.run("send", "bob", markers[2])
	bob2.sync("")

	secrets := map[string][]byte{}
	for _, d := range []*device{alice, bob, bob2, carol} {
		for name, s := range secretsOf(t, d.home) {
			secrets[d.name+" "+name] = s
		}
	}

	check := func(state string) {
		files := serverFiles(t, srv.data)
		all := bytes.Join(func() [][]byte {
			var bs [][]byte
			for _, b := range files {
				bs = append(bs, b)
			}
			return bs
		}(), nil)
		// The scan must see what the server does store: bob's identity key.
		var idKey []byte
		if err := openDB(t, filepath.Join(bob.home, "parley.db")).QueryRow(`SELECT account_seed FROM account`).Scan(&idKey); err != nil {
			t.Fatal(err)
		}
		ak, err := identity.AccountKeyFromSeed(idKey)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(all, ak.Public()) {
			t.Fatalf("%s: the scan does not find bob's public identity key: it reads nothing", state)
		}
		for _, m := range markers {
			for _, form := range [][]byte{[]byte(m), []byte(strings.ToLower(m)), []byte(base64.StdEncoding.EncodeToString([]byte(m)))} {
				if bytes.Contains(all, form) {
					t.Fatalf("%s: the server's files contain message text %q", state, form)
				}
			}
		}
		for name, s := range secrets {
			for _, form := range [][]byte{s, []byte(base64.StdEncoding.EncodeToString(s)), []byte(fmt.Sprintf("%x", s))} {
				if bytes.Contains(all, form) {
					t.Fatalf("%s: the server's files contain %s", state, name)
				}
			}
		}
	}
	check("running server")
	srv.stop()
	check("stopped server")
}

// A device list the server made up (not signed by the account key) is
// rejected by the sender, who does not encrypt to the server's device.
func TestForgedDeviceListIsRejected(t *testing.T) {
	srv := startServer(t, "")
	alice, bob := registerPair(t, srv)
	alice.run("send", "bob", "hello")
	requireTexts(t, "bob", bob.sync(""), "hello")

	// The server adds a device of its own to bob's account and signs the
	// list with a key of its own. (It is stopped while its database is
	// edited, so that no cache of the honest list survives.)
	srv.stop()
	db := serverDB(t, srv)
	var signed []byte
	var version int64
	if err := db.QueryRow(`SELECT device_list, device_list_version FROM accounts WHERE handle = 'bob'`).Scan(&signed, &version); err != nil {
		t.Fatal(err)
	}
	list, err := devicelist.Parse(signed)
	if err != nil {
		t.Fatal(err)
	}
	evilAccount, _ := identity.NewAccountKey()
	evilDevice, _ := identity.NewDeviceKey()
	list.Version++
	list.Devices = append(list.Devices, devicelist.Device{ID: 666, SigningKey: evilDevice.SigningPublic(), DHKey: evilDevice.DHPublic(), Name: "server", Created: 1})
	forged, err := list.Sign(evilAccount)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE accounts SET device_list = ?, device_list_version = ? WHERE handle = 'bob'`, forged, int64(list.Version)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO devices (handle, id, signing_key, created, position) VALUES ('bob', 666, ?, 1, 1)`, []byte(evilDevice.SigningPublic())); err != nil {
		t.Fatal(err)
	}

	db.Close()
	srv2 := startServer(t, srv.data)
	alice.srv, bob.srv = srv2, srv2
	db = serverDB(t, srv2)

	out, errOut, err := alice.try("send", "bob", "secret for bob only")
	if err == nil {
		t.Fatalf("alice sent to a forged device list: %s", out)
	}
	if !strings.Contains(strings.ToLower(errOut), "device list") && !strings.Contains(strings.ToLower(errOut), "signature") {
		t.Fatalf("the error does not say what is wrong: %q", errOut)
	}
	var queued int
	if err := db.QueryRow(`SELECT count(*) FROM envelopes WHERE recipient = 'bob' AND recipient_device = 666`).Scan(&queued); err != nil {
		t.Fatal(err)
	}
	if queued != 0 {
		t.Fatalf("the server's device received %d envelopes", queued)
	}
}
