package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parleychat/parley/internal/pgtest"
)

// PIN backup in a cluster: two parleyd nodes on one PostgreSQL and NATS,
// each with its own data folder (no shared backup_dir), three realms. alice
// sets her PIN through node 0; her phone is lost; she restores through
// node 1, which reads the sealed blob node 0 stored in PostgreSQL, and
// keeps her contact and its verified mark.
func TestClusterPINRestore(t *testing.T) {
	dsn := pgtest.Database(t)
	prefix := "parleytest." + randomName()
	data0 := t.TempDir()
	out, err := exec.Command(parleydBin, "realm-key", "--data", data0).Output()
	if err != nil {
		t.Fatalf("parleyd realm-key: %v", err)
	}
	issuer := strings.TrimSpace(string(out))
	var entries []string
	for range 3 {
		r := startRealm(t, issuer)
		entries = append(entries, r.key+"@"+r.url)
	}
	args := []string{"--db", dsn, "--nats", natsURL(), "--nats-prefix", prefix,
		"--realms", strings.Join(entries, ","), "--realm-threshold", "2",
		"--realm-token-key-file", filepath.Join(data0, "realm-token.key")}
	nodes := []*server{startServer(t, data0, args...), startServer(t, "", args...)}
	for i, n := range nodes {
		if !strings.Contains(n.stderr.String(), "backups=postgresql") {
			t.Fatalf("node %d does not keep the backups in PostgreSQL:\n%s", i, n.stderr.String())
		}
	}

	alice := newDevice(t, nodes[0], "alice1")
	bob := newDevice(t, nodes[1], "bob1")
	alice.mustRunIn("4826\n", "register", "alice", "--pin-stdin")
	bob.run("register", "bob")
	alice.run("contacts", "add", "bob")
	bob.run("contacts", "add", "alice")
	alice.run("send", "bob", "before")
	requireTexts(t, "bob", bob.sync(""), "before")
	alice.run("verify", "bob", "--mark")
	if st := pinStatus(t, alice); st.State != "set" || !st.BlobStored {
		t.Fatalf("pin status through node 0: %+v", st)
	}
	aliceSees := verifyJSON(t, alice, "bob")

	// The blob is a row of the shared database, not a file of either node.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var size int
	if err := conn.QueryRow(ctx, `SELECT length(blob) FROM pin_backups WHERE handle = 'alice'`).Scan(&size); err != nil || size < 41 {
		t.Fatalf("alice's row in pin_backups: %d bytes, %v", size, err)
	}
	for i, n := range nodes {
		if _, err := os.Stat(filepath.Join(n.data, "backups")); err == nil {
			t.Fatalf("node %d has a backups folder", i)
		}
	}

	// The phone is lost; alice restores through node 1.
	if err := os.RemoveAll(alice.home); err != nil {
		t.Fatal(err)
	}
	alice2 := newDevice(t, nodes[1], "alice2")
	alice2.mustRunIn("4826\n", "restore", "alice", "--pin-stdin")
	if got := verifyJSON(t, alice2, "bob"); got.Number != aliceSees.Number || got.KeyChanged || !got.Verified {
		t.Fatalf("alice2 verify bob: %+v, before %+v", got, aliceSees)
	}
	bob.run("send", "alice", "welcome back")
	requireTexts(t, "alice2", alice2.sync(""), "welcome back")

	// Removed through node 1, gone for node 0 too.
	alice2.run("pin", "remove")
	alice3 := newDevice(t, nodes[0], "alice3")
	if _, errOut, err := alice3.runIn("4826\n", "restore", "alice", "--pin-stdin"); err == nil || lastLine(errOut) != "parley: @alice has no PIN backup" {
		t.Fatalf("restore through node 0 after remove through node 1: %v %q", err, errOut)
	}
}
