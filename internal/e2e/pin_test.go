package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// PIN backup end to end: three real parley-realm processes, a real
// parleyd naming them, and the parley CLI.

var (
	realmBinOnce sync.Once
	realmBin     string
	realmBinErr  error
)

// buildRealm builds cmd/parley-realm next to the other binaries (TestMain
// removes that folder).
func buildRealm(t *testing.T) string {
	t.Helper()
	realmBinOnce.Do(func() {
		bin := filepath.Join(filepath.Dir(parleydBin), "parley-realm")
		out, err := exec.Command("go", "build", "-o", bin, "../../cmd/parley-realm").CombinedOutput()
		if err != nil {
			realmBinErr = fmt.Errorf("building parley-realm: %v\n%s", err, out)
			return
		}
		realmBin = bin
	})
	if realmBinErr != nil {
		t.Fatal(realmBinErr)
	}
	return realmBin
}

// realmProc is a running parley-realm.
type realmProc struct {
	t      *testing.T
	data   string
	url    string
	key    string // base64 public key
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan error
}

// startRealm starts parley-realm on 127.0.0.1:0 trusting issuer's tokens.
func startRealm(t *testing.T, issuer string, args ...string) *realmProc {
	t.Helper()
	bin := buildRealm(t)
	dir := t.TempDir()
	out, err := exec.Command(bin, "key", "--data", dir).Output()
	if err != nil {
		t.Fatalf("parley-realm key: %v", err)
	}
	r := &realmProc{t: t, data: dir, stderr: &syncBuffer{}, done: make(chan error, 1)}
	for _, line := range strings.Split(string(out), "\n") {
		if k, ok := strings.CutPrefix(line, "public_key "); ok {
			r.key = k
		}
	}
	if r.key == "" {
		t.Fatalf("parley-realm key printed %q", out)
	}
	all := append([]string{"--addr", "127.0.0.1:0", "--data", dir, "--issuer-key", issuer}, args...)
	r.cmd = exec.Command(bin, all...)
	r.cmd.Stderr, r.cmd.Stdout = r.stderr, r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if m := listeningRE.FindStringSubmatch(r.stderr.String()); m != nil {
			r.url = "http://" + m[1]
			break
		}
		select {
		case err := <-r.done:
			t.Fatalf("parley-realm exited before listening: %v\n%s", err, r.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.cmd.Process.Kill()
			t.Fatalf("parley-realm did not report its address within 20s:\n%s", r.stderr.String())
		}
	}
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			r.cmd.Process.Kill()
			<-r.done
		}
		if t.Failed() {
			t.Logf("parley-realm %s log:\n%s", r.url, r.stderr.String())
		}
	})
	return r
}

// stop takes the realm down (SIGTERM, clean exit required).
func (r *realmProc) stop() {
	r.t.Helper()
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Fatalf("parley-realm exited with %v:\n%s", err, r.stderr.String())
		}
	case <-time.After(30 * time.Second):
		r.t.Fatal("parley-realm did not stop within 30s")
	}
}

// startPINDeployment starts three realms and a parleyd naming them (2 of
// 3). realmArgs and serverArgs are extra flags.
func startPINDeployment(t *testing.T, realmArgs, serverArgs []string) (*server, []*realmProc) {
	t.Helper()
	data := t.TempDir()
	out, err := exec.Command(parleydBin, "realm-key", "--data", data).Output()
	if err != nil {
		t.Fatalf("parleyd realm-key: %v", err)
	}
	issuer := strings.TrimSpace(string(out))
	var realms []*realmProc
	var entries []string
	for range 3 {
		r := startRealm(t, issuer, realmArgs...)
		realms = append(realms, r)
		entries = append(entries, r.key+"@"+r.url)
	}
	args := append([]string{"--realms", strings.Join(entries, ","), "--realm-threshold", "2"}, serverArgs...)
	return startServer(t, data, args...), realms
}

// runIn runs parley with stdin and returns stdout, stderr and the error.
func (d *device) runIn(stdin string, args ...string) (string, string, error) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := d.command(ctx, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// lastLine is the last line of out.
func lastLine(out string) string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	return lines[len(lines)-1]
}

// mustRunIn2 is runIn that requires success; it returns stdout and stderr.
func (d *device) mustRunIn2(stdin string, args ...string) (string, string) {
	d.t.Helper()
	out, errOut, err := d.runIn(stdin, args...)
	if err != nil {
		d.t.Fatalf("%s: parley %s: %v\nstdout:\n%s\nstderr:\n%s", d.name, strings.Join(args, " "), err, out, errOut)
	}
	return out, errOut
}

// mustRunIn is runIn that requires success.
func (d *device) mustRunIn(stdin string, args ...string) string {
	d.t.Helper()
	out, errOut, err := d.runIn(stdin, args...)
	if err != nil {
		d.t.Fatalf("%s: parley %s: %v\nstdout:\n%s\nstderr:\n%s", d.name, strings.Join(args, " "), err, out, errOut)
	}
	return out
}

type safetyLine struct {
	Peer       string `json:"peer"`
	Number     string `json:"number"`
	Verified   bool   `json:"verified"`
	KeyChanged bool   `json:"key_changed"`
}

func verifyJSON(t *testing.T, d *device, peer string) safetyLine {
	t.Helper()
	var s safetyLine
	out := d.run("verify", peer)
	if err := json.Unmarshal([]byte(out), &s); err != nil || len(s.Number) != 60 {
		t.Fatalf("%s: verify %s: %q: %v", d.name, peer, out, err)
	}
	return s
}

type pinStatusLine struct {
	RealmKeys   []string `json:"realm_keys"`
	Type        string   `json:"type"`
	State       string   `json:"state"`
	Holding     int      `json:"holding"`
	GuessesLeft int      `json:"guesses_left"`
	BlobStored  bool     `json:"blob_stored"`
	LastAttempt string   `json:"last_recovery_attempt"`
}

func pinStatus(t *testing.T, d *device) pinStatusLine {
	t.Helper()
	var s pinStatusLine
	out := d.run("pin", "status")
	if err := json.Unmarshal([]byte(out), &s); err != nil || s.Type != "pin_status" {
		t.Fatalf("%s: pin status: %q: %v", d.name, out, err)
	}
	return s
}

// Register with a PIN, lose the home folder, restore on a new one, and
// keep talking to an existing contact without a safety-number change;
// restore with one realm down; fail clearly with two down.
func TestPINRestore(t *testing.T) {
	srv, realms := startPINDeployment(t, nil, nil)
	alice := newDevice(t, srv, "alice1")
	bob := newDevice(t, srv, "bob1")

	out := alice.mustRunIn("4826\n", "register", "alice", "--pin-stdin")
	lines := parseLines(t, out)
	if len(lines) != 2 || !strings.Contains(out, `"command":"register"`) || !strings.Contains(out, `"command":"pin set"`) {
		t.Fatalf("register --pin-stdin printed %q", out)
	}
	bob.run("register", "bob")
	alice.run("contacts", "add", "bob")
	bob.run("contacts", "add", "alice")
	alice.run("send", "bob", "before")
	requireTexts(t, "bob", bob.sync(""), "before")
	bob.run("send", "alice", "reply")
	requireTexts(t, "alice", alice.sync(""), "reply")
	alice.run("verify", "bob", "--mark")

	st := pinStatus(t, alice)
	if st.State != "set" || st.Holding != 3 || st.GuessesLeft != 10 || !st.BlobStored {
		t.Fatalf("pin status: %+v", st)
	}
	aliceSees, bobSees := verifyJSON(t, alice, "bob"), verifyJSON(t, bob, "alice")

	// The phone is lost: its home folder is gone.
	if err := os.RemoveAll(alice.home); err != nil {
		t.Fatal(err)
	}
	alice2 := newDevice(t, srv, "alice2")
	_, errOut, err := alice2.runIn("1111\n", "restore", "alice", "--pin-stdin")
	if err == nil || !strings.HasPrefix(errOut, "parley: warning: this home has no realm set pinned; trusting the server's: 2 of [http://") ||
		lastLine(errOut) != "parley: wrong PIN: 9 guesses are left before the backup is destroyed for good" {
		t.Fatalf("restore with a wrong PIN: %v\n%s", err, errOut)
	}
	out = alice2.mustRunIn("4826\n", "restore", "alice", "--pin-stdin")
	var res struct {
		OK     bool   `json:"ok"`
		Handle string `json:"handle"`
		Device uint32 `json:"device"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || !res.OK || res.Handle != "alice" || res.Device == 0 {
		t.Fatalf("restore printed %q", out)
	}

	// Same safety numbers on both sides, no change flagged, the contact
	// still verified on the restored device.
	if got := verifyJSON(t, alice2, "bob"); got.Number != aliceSees.Number || got.KeyChanged || !got.Verified {
		t.Fatalf("alice2 verify bob: %+v, before %+v", got, aliceSees)
	}
	if got := verifyJSON(t, bob, "alice"); got.Number != bobSees.Number || got.KeyChanged {
		t.Fatalf("bob verify alice: %+v, before %+v", got, bobSees)
	}

	// Keep talking, both ways.
	bob.run("send", "alice", "welcome back")
	requireTexts(t, "alice2", alice2.sync(""), "welcome back")
	alice2.run("send", "bob", "new phone, same me")
	bobOut := bob.run("sync")
	requireTexts(t, "bob", onlyMessages(parseLines(t, bobOut)), "new phone, same me")
	for _, m := range parseLines(t, bobOut) {
		if m.Type == "key_changed" || m.Type == "dropped" {
			t.Fatalf("bob saw %+v", m)
		}
	}
	if got := verifyJSON(t, bob, "alice"); got.Number != bobSees.Number || got.KeyChanged {
		t.Fatalf("bob verify alice after talking: %+v", got)
	}

	// A fresh home checks the realms against the keys the old device
	// showed: the wrong keys are refused before the PIN is sent.
	keys := pinStatus(t, alice2).RealmKeys
	if len(keys) != 3 {
		t.Fatalf("realm keys: %q", keys)
	}
	alice3 := newDevice(t, srv, "alice3")
	wrongKeys := strings.Join([]string{keys[1], keys[0], keys[2]}, ",")
	_, errOut, err = alice3.runIn("4826\n", "restore", "alice", "--pin-stdin", "--realm-keys", wrongKeys)
	if err == nil || !strings.HasPrefix(errOut, "parley: refusing to continue: the server names other PIN-backup realms") {
		t.Fatalf("restore with the wrong realm keys: %v\n%s", err, errOut)
	}
	if st := pinStatus(t, alice2); st.GuessesLeft != 10 {
		t.Fatalf("a refused restore used a guess: %+v", st)
	}

	// One realm down: restoring still works (here with the right keys).
	realms[2].stop()
	_, errOut = alice3.mustRunIn2("4826\n", "restore", "alice", "--pin-stdin", "--realm-keys", strings.Join(keys, ","))
	if errOut != "" {
		t.Fatalf("restore with --realm-keys warned: %q", errOut)
	}
	// Two realms down: a clear failure, and no guess is used.
	realms[1].stop()
	alice4 := newDevice(t, srv, "alice4")
	_, errOut, err = alice4.runIn("4826\n", "restore", "alice", "--pin-stdin")
	want := "parley: cannot reach enough PIN-backup realms: 1 of 3 realms answered; 2 are needed; try again later (no guess was used)"
	if err == nil || lastLine(errOut) != want {
		t.Fatalf("restore with two realms down: %v\nstderr %q\nwant   %q", err, errOut, want)
	}
	if _, _, err := alice4.runIn("", "devices"); err == nil {
		t.Fatal("the failed restore left a registered device")
	}
}

func onlyMessages(ms []msg) []msg {
	var out []msg
	for _, m := range ms {
		if m.Type == "message" {
			out = append(out, m)
		}
	}
	return out
}

// Ten wrong PINs, then the right one fails and says why; the account's
// device was told of every attempt, sees the backup destroyed and makes a
// new one.
func TestPINGuessesExhausted(t *testing.T) {
	// Throttling is tested in the realm and server packages; here it would
	// only make the test wait.
	srv, _ := startPINDeployment(t, []string{"--guess-burst", "50", "--request-burst", "500"}, []string{"--recover-burst", "50", "--recover-addr-burst", "50"})
	alice := newDevice(t, srv, "alice1")
	alice.run("register", "alice")
	alice.mustRunIn("7391\n", "pin", "set", "--pin-stdin")

	stranger := newDevice(t, srv, "stranger")
	for i := 1; i <= 10; i++ {
		_, errOut, err := stranger.runIn("0000\n", "restore", "alice", "--pin-stdin")
		if err == nil {
			t.Fatalf("wrong PIN %d restored the account", i)
		}
		want := fmt.Sprintf("parley: wrong PIN: %d guesses are left before the backup is destroyed for good", 10-i)
		switch i {
		case 9:
			want = "parley: wrong PIN: 1 guess is left before the backup is destroyed for good"
		case 10:
			want = "parley: wrong PIN, and that was the last guess: the PIN backup of @alice was destroyed after too many wrong PINs and can no longer be restored; link this device from another device of the account, or set a new PIN there"
		}
		if lastLine(errOut) != want {
			t.Fatalf("wrong PIN %d: stderr %q, want %q", i, errOut, want)
		}
	}
	_, errOut, err := stranger.runIn("7391\n", "restore", "alice", "--pin-stdin")
	want := "parley: the PIN backup of @alice was destroyed after too many wrong PINs and can no longer be restored; link this device from another device of the account, or set a new PIN there\n"
	if err == nil || errOut != want {
		t.Fatalf("the right PIN after ten wrong: %v\nstderr %q\nwant   %q", err, errOut, want)
	}

	// Alice's device was told of each of the 11 attempts.
	out, errOut, err := alice.try("sync")
	if err != nil {
		t.Fatalf("sync: %v\n%s", err, errOut)
	}
	attempts := 0
	for _, m := range parseLines(t, out) {
		if m.Type == "recovery_attempt" {
			attempts++
		}
	}
	if attempts != 11 {
		t.Fatalf("alice was told of %d recovery attempts, want 11:\n%s", attempts, out)
	}
	// A person sees a warning for each.
	st := pinStatus(t, alice)
	if st.State != "destroyed" || st.LastAttempt == "" {
		t.Fatalf("pin status: %+v", st)
	}
	human, humanErr, err := alice.runIn("", "pin", "status", "--json=false")
	if err != nil || !strings.Contains(human, "PIN backup: DESTROYED after too many wrong PINs") || !strings.Contains(human, "Create a new one with 'parley pin set'.") {
		t.Fatalf("pin status for a person: %v\n%s\n%s", err, human, humanErr)
	}

	// A new backup, usable at once.
	alice.mustRunIn("7391\n", "pin", "set", "--pin-stdin")
	if st := pinStatus(t, alice); st.State != "set" || st.GuessesLeft != 10 {
		t.Fatalf("after a new pin set: %+v", st)
	}
	alice2 := newDevice(t, srv, "alice2")
	alice2.mustRunIn("7391\n", "restore", "alice", "--pin-stdin")

	// Removing it deletes it everywhere.
	alice.run("pin", "remove")
	if st := pinStatus(t, alice); st.State != "none" || st.BlobStored {
		t.Fatalf("after pin remove: %+v", st)
	}
	alice3 := newDevice(t, srv, "alice3")
	if _, errOut, err := alice3.runIn("7391\n", "restore", "alice", "--pin-stdin"); err == nil || lastLine(errOut) != "parley: @alice has no PIN backup" {
		t.Fatalf("restore after remove: %v %q", err, errOut)
	}
}

// Neither parleyd's files nor the realms' hold the PIN, the backup key or
// any private key of the account, in any encoding: parleyd keeps a sealed
// blob, each realm its shares.
func TestPINBackupSecretsStayOnDevices(t *testing.T) {
	srv, realms := startPINDeployment(t, nil, nil)
	alice := newDevice(t, srv, "alice1")
	const pin = "PIN-MARKER correct horse battery staple"
	alice.mustRunIn(pin+"\n", "register", "alice", "--pin-stdin")
	bob := newDevice(t, srv, "bob1")
	bob.run("register", "bob")
	alice.run("contacts", "add", "bob")

	secrets := secretsOf(t, alice.home)
	var keyB64 string
	if err := openDB(t, filepath.Join(alice.home, "parley.db")).QueryRow(`SELECT value FROM settings WHERE key = 'pin_backup_key'`).Scan(&keyB64); err != nil {
		t.Fatal(err)
	}
	backupKey, err := base64.StdEncoding.DecodeString(keyB64)
	if err != nil || len(backupKey) != 32 {
		t.Fatalf("backup key %q: %v", keyB64, err)
	}
	secrets["backup key"] = backupKey
	secrets["PIN"] = []byte(pin)

	dirs := map[string]string{"parleyd": srv.data}
	for i, r := range realms {
		dirs[fmt.Sprintf("realm %d", i+1)] = r.data
	}
	for who, dir := range dirs {
		files := serverFiles(t, dir)
		var all []byte
		for _, b := range files {
			all = append(all, b...)
		}
		// The scan sees what is stored: the sealed blob at parleyd, the
		// registration at each realm.
		want := []byte("alice")
		if who == "parleyd" {
			b, err := os.ReadFile(filepath.Join(srv.data, "backups", "alice.backup"))
			if err != nil || len(b) < 41 {
				t.Fatalf("no sealed blob at parleyd: %v", err)
			}
			want = b
		}
		if !bytes.Contains(all, want) {
			t.Fatalf("%s: the scan does not find what it stores: it reads nothing", who)
		}
		for name, s := range secrets {
			for _, form := range [][]byte{s, []byte(base64.StdEncoding.EncodeToString(s)), []byte(fmt.Sprintf("%x", s))} {
				if bytes.Contains(all, form) {
					t.Fatalf("%s's files contain alice's %s", who, name)
				}
			}
		}
	}
}
