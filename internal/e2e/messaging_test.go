package e2e

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// registerPair registers alice and bob as each other's contacts.
func registerPair(t *testing.T, srv *server) (alice, bob *device) {
	t.Helper()
	alice, bob = newDevice(t, srv, "alice1"), newDevice(t, srv, "bob1")
	introduce(alice, bob)
	return alice, bob
}

// introduce registers alice and bob (each through its own server) and
// makes each a contact of the other.
func introduce(alice, bob *device) {
	alice.run("register", "alice")
	bob.run("register", "bob")
	alice.run("contacts", "add", "bob")
	bob.run("contacts", "add", "alice")
}

func requireTexts(t *testing.T, who string, got []msg, want ...string) {
	t.Helper()
	if !slices.Equal(texts(got), want) {
		t.Fatalf("%s received %q, want %q", who, texts(got), want)
	}
}

// Two users, three devices, messages both ways while one device is offline;
// every device sees the whole conversation exactly once.
func TestConversationAcrossThreeDevices(t *testing.T) {
	srv := startServer(t, "")
	alice, bob1 := registerPair(t, srv)
	bob2 := link(t, bob1, "bob2")

	// bob2 stays offline while the others talk.
	alice.run("send", "bob", "hello bob")
	got := bob1.sync("")
	requireTexts(t, "bob1", got, "hello bob")
	if got[0].From != "alice" || got[0].ID == "" || got[0].SentAt == "" || got[0].Device == 0 {
		t.Fatalf("bob1's message lacks fields: %+v", got[0])
	}
	bob1.run("send", "alice", "hi alice")
	requireTexts(t, "alice", alice.sync(""), "hi alice")

	// bob2 comes online: alice's message, and bob1's message as a copy.
	got = bob2.sync("")
	requireTexts(t, "bob2", got, "hello bob", "hi alice")
	if got[1].From != "bob" || got[1].Peer != "alice" {
		t.Fatalf("bob2's copy of bob1's message: from %q peer %q, want bob / alice", got[1].From, got[1].Peer)
	}

	// Nothing is delivered twice.
	for _, d := range []*device{alice, bob1, bob2} {
		if again := d.sync(""); len(again) != 0 {
			t.Fatalf("%s received %q again", d.name, texts(again))
		}
	}

	// Live delivery: bob2 is connected when alice sends.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	live := bob2.command(ctx, "sync", "--wait", "4s")
	var liveOut syncBuffer
	live.Stdout = &liveOut
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // let it connect; the message is not lost either way
	alice.run("send", "bob", "are you there?")
	if err := live.Wait(); err != nil {
		t.Fatalf("bob2 sync --wait: %v", err)
	}
	var liveTexts []msg
	for _, m := range parseLines(t, liveOut.String()) {
		if m.Type == "message" {
			liveTexts = append(liveTexts, m)
		}
	}
	requireTexts(t, "bob2 (live)", liveTexts, "are you there?")
	requireTexts(t, "bob1", bob1.sync(""), "are you there?")

	// History on every device holds the whole conversation.
	for _, d := range []*device{bob1, bob2} {
		h := parseLines(t, d.run("history", "alice"))
		if !slices.Equal(texts(h), []string{"hello bob", "hi alice", "are you there?"}) {
			t.Fatalf("%s history: %q", d.name, texts(h))
		}
	}
}

type deviceLine struct {
	ID      uint32 `json:"id"`
	Name    string `json:"name"`
	Current bool   `json:"current"`
}

func devicesOf(t *testing.T, d *device) []deviceLine {
	t.Helper()
	var out []deviceLine
	for _, line := range strings.Split(strings.TrimSpace(d.run("devices", "list")), "\n") {
		var dl deviceLine
		if err := json.Unmarshal([]byte(line), &dl); err != nil {
			t.Fatalf("devices list line %q: %v", line, err)
		}
		out = append(out, dl)
	}
	return out
}

// A sender with a stale view of the recipient's devices is corrected by the
// server and retries: a newly linked device receives, a removed one doesn't.
func TestStaleDeviceListLinkAndRemove(t *testing.T) {
	srv := startServer(t, "")
	alice, bob1 := registerPair(t, srv)
	alice.run("send", "bob", "one")
	requireTexts(t, "bob1", bob1.sync(""), "one")

	// alice knows bob has one device; bob links a second.
	bob2 := link(t, bob1, "bob2")
	if n := len(devicesOf(t, bob1)); n != 2 {
		t.Fatalf("bob1 lists %d devices, want 2", n)
	}
	alice.run("send", "bob", "two")
	requireTexts(t, "bob2", bob2.sync(""), "two")
	requireTexts(t, "bob1", bob1.sync(""), "two")

	// bob1 removes bob2; alice still thinks bob has two devices.
	var bob2ID uint32
	for _, dl := range devicesOf(t, bob2) {
		if dl.Current {
			bob2ID = dl.ID
		}
	}
	if bob2ID == 0 {
		t.Fatal("bob2 does not mark its own device as current")
	}
	bob1.run("devices", "remove", strconv.FormatUint(uint64(bob2ID), 10))
	if n := len(devicesOf(t, bob1)); n != 1 {
		t.Fatalf("after removal bob1 lists %d devices, want 1", n)
	}
	alice.run("send", "bob", "three")
	requireTexts(t, "bob1", bob1.sync(""), "three")
	if out, errOut, err := bob2.try("sync"); err == nil {
		t.Fatalf("removed device bob2 could still sync: %s", out)
	} else if strings.TrimSpace(errOut) == "" {
		t.Fatal("removed device bob2 failed without a message")
	}
}

// Messages from strangers wait in requests; blocking drops what follows.
func TestRequestsAndBlocking(t *testing.T) {
	srv := startServer(t, "")
	bob := newDevice(t, srv, "bob1")
	bob.run("register", "bob")
	carol := newDevice(t, srv, "carol1")
	carol.run("register", "carol")
	mallory := newDevice(t, srv, "mallory1")
	mallory.run("register", "mallory")

	carol.run("send", "bob", "hi, we met at the conference")
	got := bob.sync("")
	requireTexts(t, "bob", got, "hi, we met at the conference")
	if !got[0].Request {
		t.Fatal("a stranger's message was not marked as a request")
	}
	if !strings.Contains(bob.run("requests", "list"), "carol") {
		t.Fatal("requests list does not show carol")
	}
	bob.run("requests", "accept", "carol")
	if strings.Contains(bob.run("requests", "list"), "carol") {
		t.Fatal("carol is still a request after accepting")
	}
	if !strings.Contains(bob.run("contacts", "list"), "carol") {
		t.Fatal("accepting carol did not make her a contact")
	}
	requireTexts(t, "bob's history with carol", parseLines(t, bob.run("history", "carol")), "hi, we met at the conference")

	mallory.run("send", "bob", "buy my stuff")
	requireTexts(t, "bob", bob.sync(""), "buy my stuff")
	bob.run("block", "mallory")
	mallory.run("send", "bob", "buy my stuff, again")
	if got := bob.sync(""); len(got) != 0 {
		t.Fatalf("bob received %q from a blocked sender", texts(got))
	}
	bob.run("unblock", "mallory")
	mallory.run("send", "bob", "please")
	if got := bob.sync(""); len(got) != 1 {
		t.Fatalf("after unblocking, bob received %q, want one message", texts(got))
	}
}

// Both sides compute the same safety number.
func TestSafetyNumbersAgree(t *testing.T) {
	srv := startServer(t, "")
	alice, bob := registerPair(t, srv)
	alice.run("send", "bob", "hi")
	bob.sync("")
	var a, b struct {
		Number string `json:"number"`
	}
	if err := json.Unmarshal([]byte(alice.run("verify", "bob")), &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(bob.run("verify", "alice")), &b); err != nil {
		t.Fatal(err)
	}
	digits := strings.ReplaceAll(a.Number, " ", "")
	if len(digits) != 60 || strings.Trim(digits, "0123456789") != "" {
		t.Fatalf("safety number %q is not 60 digits", a.Number)
	}
	if strings.ReplaceAll(b.Number, " ", "") != digits {
		t.Fatalf("alice sees %s, bob sees %s", a.Number, b.Number)
	}
}
