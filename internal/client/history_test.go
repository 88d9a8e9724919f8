package client

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/client/clientdb"
	"github.com/parleychat/parley/internal/content"
)

// TestLinkSendsHistory: a device linked to an account gets the
// conversations of the device that linked it, end to end encrypted through
// a blob only it may fetch: texts both ways in their order, timer changes,
// message requests and the captions of files (not the files); not
// view-once media or vanishing messages. Messages that arrive after the
// link follow the history. With NoHistory nothing is sent; an altered
// archive is refused and nothing is imported.
func TestLinkSendsHistory(t *testing.T) {
	ctx := testCtx(t)
	srv := newServer(t)
	a1, bob := aliceAndBob(t, srv.URL)
	carol := register(t, srv.URL, "carol")

	send(t, bob, "alice", "hi alice")
	syncAll(t, a1)
	send(t, a1, "bob", "hi bob")
	dir := t.TempDir()
	file := filepath.Join(dir, "notes.txt")
	os.WriteFile(file, []byte("the notes"), 0o600)
	if _, err := a1.SendFile(ctx, "bob", file, FileOptions{Caption: "my notes"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a1.SendFile(ctx, "bob", file, FileOptions{ViewOnce: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := a1.SetTimer(ctx, "bob", time.Hour); err != nil {
		t.Fatal(err)
	}
	send(t, a1, "bob", "this one vanishes")
	send(t, carol, "alice", "a request from carol")
	syncAll(t, a1)

	var sent int
	var sendErr error
	a2 := linkWith(t, a1, srv.URL, "alice-laptop", LinkOptions{History: func(n int, err error) { sent, sendErr = n, err }})
	if sendErr != nil || sent != 5 {
		t.Fatalf("history sent: %d messages, %v; want 5 (the view-once file and the vanishing message stay behind)", sent, sendErr)
	}
	send(t, bob, "alice", "after the link")
	evs := syncAll(t, a2)
	hist := only(evs, EventHistory)
	if len(hist) != 1 || hist[0].Count != 5 || hist[0].Device != a1.DeviceID() {
		t.Fatalf("a2's history events: %s", describe(evs))
	}
	wantStrings(t, "a2's conversation with bob", historyTexts(t, a2, "bob"),
		"<hi alice", ">hi bob", ">[file notes.txt, not transferred] my notes", ">"+TimerText(3600), "<after the link")
	wantStrings(t, "a2's conversation with carol", historyTexts(t, a2, "carol"), "<a request from carol")
	reqs, err := a2.Requests(ctx)
	if err != nil || len(reqs) != 1 || reqs[0].Handle != "carol" {
		t.Fatalf("a2's requests: %+v, %v", reqs, err)
	}
	// The import happens once.
	if evs := syncAll(t, a2); len(only(evs, EventHistory)) != 0 {
		t.Fatalf("a second sync imported again: %s", describe(evs))
	}

	// Without history.
	a3 := linkWith(t, a1, srv.URL, "alice-tablet", LinkOptions{NoHistory: true})
	if evs := syncAll(t, a3); len(only(evs, EventHistory)) != 0 {
		t.Fatalf("NoHistory: a3 got %s", describe(evs))
	}
	if h := historyTexts(t, a3, "bob"); len(h) != 0 {
		t.Fatalf("NoHistory: a3's conversation with bob: %q", h)
	}

	// An archive altered on the server is refused, and nothing imported.
	before := blobFiles(t, srv.dir)
	a4 := linkWith(t, a1, srv.URL, "alice-watch", LinkOptions{})
	var archive string
	for _, f := range blobFiles(t, srv.dir) {
		if !slices.Contains(before, f) {
			archive = f
		}
	}
	if archive == "" {
		t.Fatal("no new blob for a4's history")
	}
	f, err := os.OpenFile(archive, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0xff}, 100)
	f.Close()
	evs = syncAll(t, a4)
	dropped := only(evs, EventDropped)
	if len(only(evs, EventHistory)) != 0 || len(dropped) != 1 || !strings.Contains(dropped[0].Detail, "integrity") {
		t.Fatalf("a4 with an altered archive: %s", describe(evs))
	}
	if h := historyTexts(t, a4, "bob"); len(h) != 0 {
		t.Fatalf("a4's conversation with bob after a refused archive: %q", h)
	}
}

// TestHistoryOnlyFromOwnDevices: a history message from another account
// is ignored; only the account's own devices can hand a device history.
func TestHistoryOnlyFromOwnDevices(t *testing.T) {
	ctx := testCtx(t)
	srv := newServer(t)
	alice, bob := aliceAndBob(t, srv.URL)
	ct := &content.Content{Kind: content.KindHistory, To: "alice", ForDevice: alice.DeviceID(), Attachment: &content.Attachment{
		BlobID: strings.Repeat("A", content.BlobIDSize), Key: make([]byte, content.FileKeySize), SHA256: make([]byte, content.HashSize),
		CiphertextSize: 100, PlaintextSize: 84, MediaType: content.HistoryMediaType, FileName: "history"}}
	sendControl(t, bob, "alice", ct, 0)
	evs := syncAll(t, alice)
	if len(evs) != 0 {
		t.Fatalf("alice's events: %s", describe(evs))
	}
	var pending string
	alice.db.View(ctx, func(tx *clientdb.Tx) error {
		var err error
		pending, err = tx.Setting(settingHistoryPending, "")
		return err
	})
	if pending != "" {
		t.Fatalf("a history from bob was recorded: %s", pending)
	}
	// The same message from an own device is recorded (and, its blob
	// being made up, dropped when imported).
	a2 := link(t, alice, srv.URL, "alice-2")
	ct.ForDevice = a2.DeviceID()
	sendControl(t, alice, "alice", ct, 0)
	evs = syncAll(t, a2)
	if d := only(evs, EventDropped); len(d) != 1 || !strings.Contains(d[0].Detail, "no longer has it") {
		t.Fatalf("a2's events: %s", describe(evs))
	}
}
