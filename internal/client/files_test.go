package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/server"
)

// contactPair registers alice and bob and makes each the other's contact.
func contactPair(t *testing.T, url string) (alice, bob *Client) {
	t.Helper()
	alice, bob = register(t, url, "alice"), register(t, url, "bob")
	if err := alice.AddContact(testCtx(t), "bob"); err != nil {
		t.Fatal(err)
	}
	if err := bob.AddContact(testCtx(t), "alice"); err != nil {
		t.Fatal(err)
	}
	return alice, bob
}

func writeRandomFile(t *testing.T, dir, name string, n int) (string, []byte) {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p, b
}

// downloads runs DownloadPending and returns the outcomes.
func downloads(t *testing.T, c *Client, o DownloadOptions) []Downloaded {
	t.Helper()
	var out []Downloaded
	if err := c.DownloadPending(testCtx(t), o, func(d Downloaded) { out = append(out, d) }); err != nil {
		t.Fatal(err)
	}
	return out
}

// blobFiles lists the data files in a server's blob folder.
func blobFiles(t *testing.T, dataDir string) []string {
	t.Helper()
	var out []string
	for _, ext := range []string{"*.blob", "*.part"} {
		m, err := filepath.Glob(filepath.Join(dataDir, server.BlobDir, ext))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m...)
	}
	return out
}

func TestSendFileRoundTrip(t *testing.T) {
	ts := newServer(t)
	alice, bob := contactPair(t, ts.URL)
	src, want := writeRandomFile(t, t.TempDir(), "report.bin", 3*65536+123)

	var last Progress
	sent, err := alice.SendFile(testCtx(t), "bob", src, FileOptions{Caption: "the report", Progress: func(p Progress) { last = p }})
	if err != nil {
		t.Fatal(err)
	}
	if sent.ResumedFrom != 0 || sent.Stripped {
		t.Fatalf("sent %+v", sent)
	}
	if last.Phase != "uploading" || last.Done != last.Total || last.Total != int64(len(want))+4*16 {
		t.Fatalf("last progress %+v", last)
	}
	m := sent.Message
	if m.Attachment == nil || m.Attachment.Name != "report.bin" || m.Attachment.State != AttachmentSent || m.Text != "the report" {
		t.Fatalf("sent message %+v, attachment %+v", m, m.Attachment)
	}

	evs := syncAll(t, bob)
	msgs := only(evs, EventMessage)
	if len(msgs) != 1 || msgs[0].Message.Attachment == nil || msgs[0].Message.Attachment.State != AttachmentPending {
		t.Fatalf("bob got %s", describe(evs))
	}
	dir := t.TempDir()
	got := downloads(t, bob, DownloadOptions{Dir: dir})
	if len(got) != 1 || got[0].Err != nil || got[0].Path != filepath.Join(dir, "report.bin") {
		t.Fatalf("downloads %+v", got)
	}
	b, err := os.ReadFile(got[0].Path)
	if err != nil || !bytes.Equal(b, want) {
		t.Fatalf("the received file differs (%d bytes, %v)", len(b), err)
	}
	// Done: the only recipient fetched it, so the server deleted it.
	if f := blobFiles(t, ts.dir); len(f) != 0 {
		t.Fatalf("blob files left: %v", f)
	}
	h, err := bob.History(testCtx(t), "alice", 0)
	if err != nil || len(h) != 1 || h[0].Attachment.State != AttachmentSaved || h[0].Attachment.Path != got[0].Path {
		t.Fatalf("history %+v, %v", h, err)
	}
	// Downloading again returns the saved file; a second copy elsewhere
	// is not made.
	d, err := bob.Download(testCtx(t), m.ID, DownloadOptions{})
	if err != nil || d.Path != got[0].Path {
		t.Fatalf("Download again: %+v, %v", d, err)
	}
	if _, err := bob.Download(testCtx(t), hex.EncodeToString(make([]byte, 16)), DownloadOptions{}); !errors.Is(err, ErrNoAttachment) {
		t.Fatalf("Download of an unknown id: %v", err)
	}
}

func TestSendEmptyFileAndNameClash(t *testing.T) {
	ts := newServer(t)
	alice, bob := contactPair(t, ts.URL)
	src, _ := writeRandomFile(t, t.TempDir(), "empty.txt", 0)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "empty.txt"), []byte("already here"), 0o600)
	if _, err := alice.SendFile(testCtx(t), "bob", src, FileOptions{}); err != nil {
		t.Fatal(err)
	}
	syncAll(t, bob)
	got := downloads(t, bob, DownloadOptions{Dir: dir})
	if len(got) != 1 || got[0].Err != nil || got[0].Path != filepath.Join(dir, "empty (2).txt") {
		t.Fatalf("downloads %+v", got)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "empty.txt")); err != nil || string(b) != "already here" {
		t.Fatal("an existing file was replaced")
	}
	if st, err := os.Stat(got[0].Path); err != nil || st.Size() != 0 {
		t.Fatalf("%v %v", st, err)
	}
}

// A byte flipped in the stored ciphertext is caught: the download fails
// with ErrTampered and nothing is saved, not even under a temporary name.
func TestTamperedBlobIsRejected(t *testing.T) {
	ts := newServer(t)
	alice, bob := contactPair(t, ts.URL)
	src, _ := writeRandomFile(t, t.TempDir(), "secret.bin", 5*65536)
	if _, err := alice.SendFile(testCtx(t), "bob", src, FileOptions{}); err != nil {
		t.Fatal(err)
	}
	files := blobFiles(t, ts.dir)
	if len(files) != 1 {
		t.Fatalf("blob files %v", files)
	}
	f, err := os.OpenFile(files[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var one [1]byte
	f.ReadAt(one[:], 3*65552+77)
	one[0] ^= 0x20
	f.WriteAt(one[:], 3*65552+77)
	f.Close()

	syncAll(t, bob)
	dir := t.TempDir()
	got := downloads(t, bob, DownloadOptions{Dir: dir})
	if len(got) != 1 || !errors.Is(got[0].Err, ErrTampered) {
		t.Fatalf("downloads %+v", got)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("the download folder holds %v", entries)
	}
	h, _ := bob.History(testCtx(t), "alice", 0)
	if len(h) != 1 || h[0].Attachment.State != AttachmentFailed || !strings.Contains(h[0].Attachment.Error, "integrity") {
		t.Fatalf("history %+v", h[0].Attachment)
	}
}

// An upload cut off midway resumes from what the server kept.
func TestUploadResumes(t *testing.T) {
	ts := newServer(t)
	alice, bob := contactPair(t, ts.URL)
	src, want := writeRandomFile(t, t.TempDir(), "big.bin", 6<<20)

	ctx, cancel := context.WithCancel(testCtx(t))
	_, err := alice.SendFile(ctx, "bob", src, FileOptions{RateLimit: 4 << 20, Progress: func(p Progress) {
		if p.Phase == "uploading" && p.Done > 2<<20 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted SendFile: %v", err)
	}
	ups, err := alice.Uploads(testCtx(t))
	if err != nil || len(ups) != 1 || ups[0].Path != src {
		t.Fatalf("uploads %+v, %v", ups, err)
	}
	sent, err := alice.SendFile(testCtx(t), "bob", src, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sent.ResumedFrom < 1<<20 || sent.Message.ID != ups[0].ID {
		t.Fatalf("resumed from %d, message %s (upload %s)", sent.ResumedFrom, sent.Message.ID, ups[0].ID)
	}
	if ups, _ := alice.Uploads(testCtx(t)); len(ups) != 0 {
		t.Fatalf("uploads left: %+v", ups)
	}
	syncAll(t, bob)
	got := downloads(t, bob, DownloadOptions{Dir: t.TempDir()})
	if len(got) != 1 || got[0].Err != nil {
		t.Fatalf("downloads %+v", got)
	}
	if b, _ := os.ReadFile(got[0].Path); !bytes.Equal(b, want) {
		t.Fatal("the resumed file differs")
	}
}

// A download cut off midway resumes from the chunks it kept.
func TestDownloadResumes(t *testing.T) {
	ts := newServer(t)
	alice, bob := contactPair(t, ts.URL)
	src, want := writeRandomFile(t, t.TempDir(), "big.bin", 5<<20+999)
	sent, err := alice.SendFile(testCtx(t), "bob", src, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	syncAll(t, bob)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(testCtx(t))
	_, err = bob.Download(ctx, sent.Message.ID, DownloadOptions{Dir: dir, RateLimit: 4 << 20, Progress: func(p Progress) {
		if p.Done > 2<<20 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted Download: %v", err)
	}
	partial := filepath.Join(dir, ".parley-"+sent.Message.ID+".part")
	st, err := os.Stat(partial)
	if err != nil || st.Size() < 1<<20 {
		t.Fatalf("partial file: %v, %v", st, err)
	}
	var first int64 = -1
	d, err := bob.Download(testCtx(t), sent.Message.ID, DownloadOptions{Dir: dir, Progress: func(p Progress) {
		if first < 0 {
			first = p.Done
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if first < 1<<20 {
		t.Fatalf("the resumed download started at byte %d", first)
	}
	if b, _ := os.ReadFile(d.Path); !bytes.Equal(b, want) {
		t.Fatal("the resumed download differs")
	}
	if _, err := os.Stat(partial); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the partial file is still there: %v", err)
	}
}

func TestViewOnce(t *testing.T) {
	ts := newServer(t)
	alice, bob := contactPair(t, ts.URL)
	src, want := writeRandomFile(t, t.TempDir(), "look.bin", 70000)
	sent, err := alice.SendFile(testCtx(t), "bob", src, FileOptions{ViewOnce: true})
	if err != nil {
		t.Fatal(err)
	}
	syncAll(t, bob)
	dir := t.TempDir()
	got := downloads(t, bob, DownloadOptions{Dir: dir})
	if len(got) != 1 || got[0].Err != nil || got[0].Path != "" || !got[0].ViewOnce {
		t.Fatalf("downloads %+v", got)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatal("view-once media went to the downloads folder")
	}
	var buf bytes.Buffer
	if _, err := bob.Open(testCtx(t), sent.Message.ID, &buf, DownloadOptions{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatal("view-once media differs")
	}
	if _, err := bob.Open(testCtx(t), sent.Message.ID, io.Discard, DownloadOptions{}); !errors.Is(err, ErrOpened) {
		t.Fatalf("second Open: %v", err)
	}
	h, _ := bob.History(testCtx(t), "alice", 0)
	if len(h) != 1 || h[0].Attachment.State != AttachmentOpened {
		t.Fatalf("history %+v", h[0].Attachment)
	}
	if entries, _ := os.ReadDir(filepath.Join(bob.o.Home, mediaDir)); len(entries) != 0 {
		t.Fatalf("media folder still holds %v", entries)
	}
}

func TestTimerAndVanishing(t *testing.T) {
	ts := newServer(t)
	open := func(handle string) *Client {
		c, err := Open(testCtx(t), Options{Home: filepath.Join(t.TempDir(), handle), Server: ts.URL, DeviceName: handle,
			Logger: testLogger(t), MinTimer: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.Register(testCtx(t), handle); err != nil {
			t.Fatal(err)
		}
		return c
	}
	alice, bob := open("alice"), open("bob")
	if err := bob.AddContact(testCtx(t), "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SetTimer(testCtx(t), "bob", 500*time.Millisecond); !errors.Is(err, ErrTimerRange) {
		t.Fatalf("a timer below the minimum: %v", err)
	}
	if _, err := alice.SetTimer(testCtx(t), "bob", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	m := send(t, alice, "bob", "this will vanish")
	if m.Timer != 2*time.Second || m.ExpiresAt.IsZero() {
		t.Fatalf("sent %+v", m)
	}
	evs := syncAll(t, bob)
	if d, _ := bob.Timer(testCtx(t), "alice"); d != 2*time.Second {
		t.Fatalf("bob's timer is %v (events %s)", d, describe(evs))
	}
	h, _ := bob.History(testCtx(t), "alice", 0)
	if len(h) != 2 || h[0].Kind != KindTimer || h[1].Timer != 2*time.Second || !h[1].ExpiresAt.IsZero() {
		t.Fatalf("bob's history %+v", h)
	}
	if err := bob.MarkRead(testCtx(t), "alice"); err != nil {
		t.Fatal(err)
	}
	h, _ = bob.History(testCtx(t), "alice", 0)
	if h[1].ExpiresAt.IsZero() {
		t.Fatal("reading did not start the clock")
	}
	time.Sleep(2100 * time.Millisecond)
	for _, c := range []*Client{alice, bob} {
		if _, err := c.Sweep(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	for name, c := range map[string]*Client{"alice": alice, "bob": bob} {
		peer := map[string]string{"alice": "bob", "bob": "alice"}[name]
		h, _ := c.History(testCtx(t), peer, 0)
		if len(h) != 1 || h[0].Kind != KindTimer {
			t.Fatalf("%s's history after the timer: %+v", name, h)
		}
		db, err := os.ReadFile(filepath.Join(c.o.Home, DBFile))
		if err != nil {
			t.Fatal(err)
		}
		wal, _ := os.ReadFile(filepath.Join(c.o.Home, DBFile+"-wal"))
		if bytes.Contains(db, []byte("this will vanish")) || bytes.Contains(wal, []byte("this will vanish")) {
			t.Fatalf("%s's database files still hold the text", name)
		}
	}
	// Either side may turn it off.
	if _, err := bob.SetTimer(testCtx(t), "alice", 0); err != nil {
		t.Fatal(err)
	}
	syncAll(t, alice)
	if d, _ := alice.Timer(testCtx(t), "bob"); d != 0 {
		t.Fatalf("alice's timer is %v after bob turned it off", d)
	}
	if m := send(t, alice, "bob", "stays"); m.Timer != 0 {
		t.Fatalf("%+v", m)
	}
}

func TestSafeFileName(t *testing.T) {
	for in, want := range map[string]string{
		"photo.jpg":              "photo.jpg",
		"../../etc/passwd":       "passwd",
		`C:\Users\x\doc.pdf`:     "doc.pdf",
		".bashrc":                "bashrc",
		"..":                     "file",
		"":                       "file",
		"a\x00b\nc.txt":          "abc.txt",
		"evil\u202egpj.exe":      "evilgpj.exe",
		"what?.txt":              "what_.txt",
		strings.Repeat("é", 300): strings.Repeat("é", 100),
	} {
		if got := SafeFileName(in); got != want {
			t.Errorf("SafeFileName(%q) = %q, want %q", in, got, want)
		}
	}
}

// With several devices: every device of the recipient fetches the file,
// the sender's other device gets a copy too (but never view-once media,
// which it only releases), and the blob is deleted once all are done.
func TestFilesAcrossDevices(t *testing.T) {
	ts := newServer(t)
	alice, bob := contactPair(t, ts.URL)
	alice2 := link(t, alice, ts.URL, "alice-2")
	bob2 := link(t, bob, ts.URL, "bob-2")
	syncAll(t, alice2)
	syncAll(t, bob2)
	src, want := writeRandomFile(t, t.TempDir(), "shared.bin", 200000)
	if _, err := alice.SendFile(testCtx(t), "bob", src, FileOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendFile(testCtx(t), "bob", src, FileOptions{ViewOnce: true}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Client{bob, bob2, alice2} {
		syncAll(t, c)
		got := downloads(t, c, DownloadOptions{Dir: t.TempDir()})
		var saved []Downloaded
		for _, d := range got {
			if d.Err != nil {
				t.Fatalf("%s/%d: %v", c.Handle(), c.DeviceID(), d.Err)
			}
			if d.Path != "" {
				saved = append(saved, d)
			}
		}
		wantN := 2 // the file, and view-once media kept privately
		if c == alice2 {
			wantN = 1 // the copy of the file; the view-once media is only released
		}
		if len(got) != wantN || len(saved) != 1 {
			t.Fatalf("%s/%d downloaded %+v", c.Handle(), c.DeviceID(), got)
		}
		if b, _ := os.ReadFile(saved[0].Path); !bytes.Equal(b, want) {
			t.Fatalf("%s/%d: the file differs", c.Handle(), c.DeviceID())
		}
	}
	// bob and bob2 fetched both; alice2 fetched the file and released the
	// view-once media: every recipient is done, so both blobs are gone.
	if f := blobFiles(t, ts.dir); len(f) != 0 {
		t.Fatalf("blob files left: %v", f)
	}
	h, _ := alice2.History(testCtx(t), "bob", 0)
	if len(h) != 2 || h[1].Attachment == nil || !h[1].Attachment.ViewOnce || h[1].Attachment.State != AttachmentSent {
		t.Fatalf("alice2's history: %+v", h)
	}
}

// A timer change reaches the changer's other devices too; a message read
// on one device starts its clock on the account's other devices.
func TestTimerAcrossDevices(t *testing.T) {
	ts := newServer(t)
	alice, bob := contactPair(t, ts.URL)
	alice2 := link(t, alice, ts.URL, "alice-2")
	bob2 := link(t, bob, ts.URL, "bob-2")
	syncAll(t, alice2)
	syncAll(t, bob2)
	if _, err := alice.SetTimer(testCtx(t), "bob", time.Hour); err != nil {
		t.Fatal(err)
	}
	syncAll(t, alice2)
	if d, _ := alice2.Timer(testCtx(t), "bob"); d != time.Hour {
		t.Fatalf("alice2's timer: %v", d)
	}
	h, _ := alice2.History(testCtx(t), "bob", 0)
	if len(h) != 1 || h[0].Kind != KindTimer || !h[0].Outgoing || h[0].Text != "set the timer to 1h" {
		t.Fatalf("alice2's history: %+v", h)
	}
	// A message from alice2 carries the timer it learned.
	m := send(t, alice2, "bob", "hello")
	if m.Timer != time.Hour {
		t.Fatalf("alice2 sent %+v", m)
	}
	syncAll(t, bob)
	syncAll(t, bob2)
	if err := bob.MarkRead(testCtx(t), "alice"); err != nil {
		t.Fatal(err)
	}
	syncAll(t, bob2)
	h, _ = bob2.History(testCtx(t), "alice", 0)
	if len(h) != 2 || h[1].Text != "hello" || h[1].ExpiresAt.IsZero() || time.Until(h[1].ExpiresAt) > time.Hour {
		t.Fatalf("bob2's history: %+v", h)
	}
}
