package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fileLine is a line of `parley --json` output about files.
type fileLine struct {
	Type            string   `json:"type"`
	ID              string   `json:"id"`
	Peer            string   `json:"peer"`
	From            string   `json:"from"`
	Text            string   `json:"text"`
	Kind            string   `json:"kind"`
	Timer           int64    `json:"timer"`
	Name            string   `json:"name"`
	Size            int64    `json:"size"`
	Path            string   `json:"path"`
	ViewOnce        bool     `json:"view_once"`
	Detail          string   `json:"detail"`
	ResumedFrom     int64    `json:"resumed_from"`
	MetadataRemoved []string `json:"metadata_removed"`
	Attachment      *struct {
		Name  string `json:"name"`
		Size  int64  `json:"size"`
		State string `json:"state"`
		Path  string `json:"path"`
		Error string `json:"error"`
	} `json:"attachment"`
}

func fileLines(t *testing.T, out string) []fileLine {
	t.Helper()
	var ls []fileLine
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var l fileLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("not a JSON line: %q: %v", sc.Text(), err)
		}
		ls = append(ls, l)
	}
	return ls
}

// ofType returns the lines of type typ.
func ofType(ls []fileLine, typ string) []fileLine {
	var out []fileLine
	for _, l := range ls {
		if l.Type == typ {
			out = append(out, l)
		}
	}
	return out
}

// writeTestFile writes n pseudo-random bytes (from seed) to dir/name in
// flat memory and returns the path and the SHA-256.
func writeTestFile(t *testing.T, dir, name string, n int64, seed uint64) (string, [32]byte) {
	t.Helper()
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	rng := mrand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 7})
	buf := make([]byte, 1<<20)
	for left := n; left > 0; {
		k := min(left, int64(len(buf)))
		rng.Read(buf[:k])
		f.Write(buf[:k])
		h.Write(buf[:k])
		left -= k
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return p, sum
}

func fileSHA256(t *testing.T, p string) [32]byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// measured is one run of a parley process.
type measured struct {
	out, errOut string
	maxRSS      int64 // bytes, from getrusage
	took        time.Duration
}

// runMeasured runs parley (with --json) with extra environment, bounded
// by limit, and reports its peak memory and duration; a failure fails the
// test. The peak comes from GNU time (/usr/bin/time) when it is installed:
// the rusage of a child Go starts directly also counts this test
// process's own peak, since Go starts children with vfork.
func (d *device) runMeasured(limit time.Duration, env []string, args ...string) measured {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := d.command(ctx, args...)
	cmd.Env = append(cmd.Env, env...)
	timed := false
	if _, err := os.Stat("/usr/bin/time"); err == nil {
		cmd.Args = append([]string{"/usr/bin/time", "-f", "parley-maxrss-kb=%M"}, cmd.Args...)
		cmd.Path, timed = "/usr/bin/time", true
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	m := measured{out: stdout.String(), errOut: stderr.String(), took: time.Since(start)}
	if err != nil {
		d.t.Fatalf("%s: parley %s: %v\nstdout:\n%s\nstderr:\n%s", d.name, strings.Join(args, " "), err, m.out, m.errOut)
	}
	if i := strings.LastIndex(m.errOut, "parley-maxrss-kb="); timed && i >= 0 {
		kb, err := strconv.ParseInt(strings.TrimSpace(m.errOut[i+len("parley-maxrss-kb="):]), 10, 64)
		if err != nil {
			d.t.Fatalf("GNU time's output: %q", m.errOut)
		}
		m.maxRSS = kb << 10
		m.errOut = m.errOut[:i]
	} else if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		m.maxRSS = ru.Maxrss << 10 // KiB on Linux; includes this process's peak (vfork)
	}
	return m
}

// runEnv is run with extra environment.
func (d *device) runEnv(env []string, args ...string) string {
	d.t.Helper()
	return d.runMeasured(60*time.Second, env, args...).out
}

// peakRSS returns a process's peak resident memory (VmHWM), in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// blobDataFiles lists the blob data files (.blob finished, .part
// uploading) in a server's data folder.
func blobDataFiles(t *testing.T, s *server) []string {
	t.Helper()
	var out []string
	for _, pat := range []string{"*.blob", "*.part"} {
		m, err := filepath.Glob(filepath.Join(s.data, "blobs", pat))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m...)
	}
	return out
}

// plaintextIn looks for the plaintext file's bytes in every file under
// dir: it returns where a stride-aligned 32-byte window of the plaintext
// appears ("" if none; with stride s, any run of s+31 plaintext bytes
// would be found), and how many bytes it scanned. It streams both sides,
// so a file of gigabytes needs no more memory than its windows.
func plaintextIn(t *testing.T, dir, plain string, stride int64) (string, int64) {
	t.Helper()
	pf, err := os.Open(plain)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	// The windows by their first 8 bytes, with a bit set in front of the
	// map so that most positions cost one multiplication and one load.
	const setBits = 27
	set := make([]uint64, 1<<(setBits-6))
	slot := func(v uint64) uint64 { return (v * 0x9e3779b97f4a7c15) >> (64 - setBits) }
	windows := map[uint64]int64{}
	var w [32]byte
	br := bufio.NewReaderSize(pf, 1<<20)
	for off := int64(0); ; off += stride {
		if _, err := io.ReadFull(br, w[:]); err != nil {
			break
		}
		v := binary.LittleEndian.Uint64(w[:])
		windows[v] = off
		set[slot(v)>>6] |= 1 << (slot(v) & 63)
		if _, err := br.Discard(int(stride - 32)); err != nil {
			break
		}
	}
	var scanned int64
	found := ""
	buf := make([]byte, 4<<20)
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || found != "" {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		keep := 0 // bytes carried over from the previous block
		var base int64
		for {
			n, rerr := io.ReadFull(f, buf[keep:])
			n += keep
			scanned += int64(n - keep)
			for i := 0; i+32 <= n; i++ {
				v := binary.LittleEndian.Uint64(buf[i:])
				if k := slot(v); set[k>>6]&(1<<(k&63)) == 0 {
					continue
				}
				off, ok := windows[v]
				if !ok {
					continue
				}
				if _, err := pf.ReadAt(w[:], off); err != nil {
					return err
				}
				if bytes.Equal(buf[i:i+32], w[:]) {
					found = fmt.Sprintf("%s at %d holds the file's bytes from %d", p, base+int64(i), off)
					return nil
				}
			}
			if rerr != nil {
				return nil
			}
			keep = min(31, n)
			copy(buf, buf[n-keep:n])
			base += int64(n - keep)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return found, scanned
}

// noPlaintextOnServer requires that the server's data folder (the blob
// folder, the database and its log) holds no plaintext of the file, and
// that the scan would have seen it (a positive control on the file's own
// folder).
func noPlaintextOnServer(t *testing.T, s *server, plain string, stride int64) {
	t.Helper()
	if found, _ := plaintextIn(t, filepath.Dir(plain), plain, stride); found == "" {
		t.Fatal("the scan does not find the plaintext in the file itself")
	}
	found, scanned := plaintextIn(t, s.data, plain, stride)
	if found != "" {
		t.Fatalf("the server's files hold plaintext: %s", found)
	}
	st, err := os.Stat(plain)
	if err != nil {
		t.Fatal(err)
	}
	if scanned < st.Size() {
		t.Fatalf("scanned %d bytes of server files, less than the %d-byte file: the blob is not there", scanned, st.Size())
	}
}

// fileKeyOf reads the key of the file sent as message id from the
// sender's database.
func fileKeyOf(t *testing.T, home, id string) []byte {
	t.Helper()
	var key []byte
	err := openDB(t, filepath.Join(home, "parley.db")).QueryRow(
		`SELECT a.file_key FROM attachments a JOIN messages m ON m.seq = a.msg WHERE m.id = ?`, id).Scan(&key)
	if err != nil || len(key) != 32 {
		t.Fatalf("the file key of %s: %v", id, err)
	}
	return key
}

// serverHolds reports whether any file of the server holds b in raw,
// base64 or hex form.
func serverHolds(t *testing.T, s *server, b []byte) bool {
	t.Helper()
	forms := [][]byte{b, []byte(base64.StdEncoding.EncodeToString(b)), []byte(base64.RawURLEncoding.EncodeToString(b)), []byte(fmt.Sprintf("%x", b))}
	for _, data := range serverFiles(t, s.data) {
		for _, f := range forms {
			if bytes.Contains(data, f) {
				return true
			}
		}
	}
	return false
}

// A file goes from alice to bob through parleyd byte-identical, in flat
// memory; the server never holds a plaintext byte sequence or the key.
// The default size keeps CI fast; PARLEY_E2E_BIG=1 sends 1 GiB and logs
// the memory and time figures.
func TestFileSentAndReceived(t *testing.T) {
	size := int64(64 << 20)
	big := os.Getenv("PARLEY_E2E_BIG") == "1"
	if big {
		size = 1 << 30
	}
	srv := startServer(t, "")
	alice, bob := registerPair(t, srv)
	src, sum := writeTestFile(t, t.TempDir(), "data.bin", size, 1)
	serverBefore := peakRSS(t, srv.cmd.Process.Pid)

	limit := 10 * time.Minute
	sent := alice.runMeasured(limit, nil, "send", "bob", "--file", src, "--caption", "the data")
	ls := fileLines(t, sent.out)
	if len(ls) != 1 || ls[0].Attachment == nil || ls[0].Attachment.Size != size || ls[0].Attachment.State != "sent" {
		t.Fatalf("send printed %s", sent.out)
	}
	id := ls[0].ID
	serverAfterUpload := peakRSS(t, srv.cmd.Process.Pid)

	// On the server: ciphertext only, and never the key.
	stride := max(int64(32), size>>21)
	noPlaintextOnServer(t, srv, src, stride)
	if serverHolds(t, srv, fileKeyOf(t, alice.home, id)) {
		t.Fatal("the server's files hold the file key")
	}

	got := bob.runMeasured(limit, nil, "sync")
	dls := ofType(fileLines(t, got.out), "download")
	if len(dls) != 1 || dls[0].ID != id || dls[0].Path == "" || dls[0].Size != size {
		t.Fatalf("bob's sync printed %s", got.out)
	}
	if !strings.HasPrefix(dls[0].Path, filepath.Join(bob.home, "downloads")+string(filepath.Separator)) {
		t.Fatalf("saved to %s, not the downloads folder", dls[0].Path)
	}
	if fileSHA256(t, dls[0].Path) != sum {
		t.Fatal("the received file is not byte-identical")
	}
	serverPeak := peakRSS(t, srv.cmd.Process.Pid)
	// bob's only device fetched it: the server deleted it at once.
	if f := blobDataFiles(t, srv); len(f) != 0 {
		t.Fatalf("blob files left after every recipient fetched it: %v", f)
	}
	t.Logf("file of %.0f MiB: send %.2fs (%.0f MiB/s end to end, with encryption and hashing), peak RSS of the sending parley %.1f MiB",
		mib(size), sent.took.Seconds(), mib(size)/sent.took.Seconds(), mib(sent.maxRSS))
	t.Logf("sync with download %.2fs (%.0f MiB/s), peak RSS of the receiving parley %.1f MiB",
		got.took.Seconds(), mib(size)/got.took.Seconds(), mib(got.maxRSS))
	t.Logf("parleyd peak RSS (VmHWM): %.1f MiB before the upload, %.1f MiB after it, %.1f MiB after the download",
		mib(serverBefore), mib(serverAfterUpload), mib(serverPeak))
	// Flat memory: nowhere near the file's size (a generous bound that
	// still fails if a whole file were buffered).
	for what, rss := range map[string]int64{"sending parley": sent.maxRSS, "receiving parley": got.maxRSS, "parleyd": serverPeak} {
		if rss > 256<<20 {
			t.Errorf("%s peaked at %.0f MiB for a %.0f MiB file", what, mib(rss), mib(size))
		}
	}
}

// startSend starts `parley send --file` in the background.
func (d *device) start(ctx context.Context, args ...string) (*exec.Cmd, *syncBuffer) {
	d.t.Helper()
	cmd := d.command(ctx, args...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	return cmd, out
}

// partSize returns the size of the (one) unfinished upload on the server,
// or -1.
func partSize(t *testing.T, s *server) int64 {
	m, _ := filepath.Glob(filepath.Join(s.data, "blobs", "*.part"))
	if len(m) != 1 {
		return -1
	}
	st, err := os.Stat(m[0])
	if err != nil {
		return -1
	}
	return st.Size()
}

// killMidUpload waits until the server holds at least atLeast bytes of
// the upload, then kills the uploading parley with SIGKILL.
func killMidUpload(t *testing.T, s *server, cmd *exec.Cmd, out *syncBuffer, atLeast int64) int64 {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for partSize(t, s) < atLeast {
		select {
		case err := <-done:
			t.Fatalf("the upload ended before it could be interrupted: %v\n%s", err, out.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the upload did not reach %d bytes within 60s\n%s", atLeast, out.String())
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-done
	return partSize(t, s)
}

// An upload killed midway (kill -9 of parley) resumes where the server's
// copy ends: once with `parley uploads resume`, once by sending the same
// file again; the file arrives byte-identical.
func TestFileUploadKilledAndResumed(t *testing.T) {
	srv := startServer(t, "")
	alice, bob := registerPair(t, srv)
	const size = 64 << 20
	src, sum := writeTestFile(t, t.TempDir(), "movie.bin", size, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	cmd, out := alice.start(ctx, "send", "bob", "--file", src, "--limit-rate", "16M")
	first := killMidUpload(t, srv, cmd, out, 8<<20)
	ups := fileLines(t, alice.run("uploads"))
	if len(ups) != 1 || ups[0].Type != "upload" || ups[0].Peer != "bob" || ups[0].Size != size {
		t.Fatalf("uploads after the kill: %+v", ups)
	}

	cmd, out = alice.start(ctx, "uploads", "resume", "--limit-rate", "16M")
	second := killMidUpload(t, srv, cmd, out, first+8<<20)
	if second <= first {
		t.Fatalf("the resumed upload did not go on: %d then %d bytes", first, second)
	}

	ls := fileLines(t, alice.run("send", "bob", "--file", src))
	if len(ls) != 1 || ls[0].ID != ups[0].ID || ls[0].ResumedFrom < second-(32<<20) || ls[0].ResumedFrom == 0 {
		t.Fatalf("the second send printed %+v (the server held %d bytes)", ls, second)
	}
	t.Logf("killed at %d and %d bytes of %d; the last run resumed from %d", first, second, size, ls[0].ResumedFrom)
	if left := fileLines(t, alice.run("uploads")); len(left) != 0 {
		t.Fatalf("uploads left: %+v", left)
	}
	dls := ofType(fileLines(t, bob.run("sync")), "download")
	if len(dls) != 1 || fileSHA256(t, dls[0].Path) != sum {
		t.Fatalf("bob's download: %+v", dls)
	}
}

// A byte altered in the stored ciphertext is caught by the recipient with
// a clear error, and nothing is saved under the file's name.
func TestTamperedFileRejected(t *testing.T) {
	srv := startServer(t, "")
	alice, bob := registerPair(t, srv)
	src, _ := writeTestFile(t, t.TempDir(), "contract.pdf", 1<<20, 3)
	id := fileLines(t, alice.run("send", "bob", "--file", src))[0].ID

	blobs := blobDataFiles(t, srv)
	if len(blobs) != 1 || !strings.HasSuffix(blobs[0], ".blob") {
		t.Fatalf("blob files: %v", blobs)
	}
	f, err := os.OpenFile(blobs[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	at := int64(7*65552 + 1000)
	f.ReadAt(b[:], at)
	b[0] ^= 0x01
	f.WriteAt(b[:], at)
	f.Close()

	// The sync receives the message, says which file was not saved and
	// exits 1, so a script learns of it; the next sync has nothing to do.
	out, errOut, err := bob.try("sync")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(errOut, "a file was not saved") {
		t.Fatalf("bob's sync with an altered file: %v, stderr %q; want exit 1 saying a file was not saved", err, errOut)
	}
	ls := fileLines(t, out)
	failed := ofType(ls, "download_failed")
	if len(failed) != 1 || failed[0].ID != id || !strings.Contains(failed[0].Detail, "integrity check") || len(ofType(ls, "download")) != 0 {
		t.Fatalf("bob's sync printed %+v", ls)
	}
	if ls := fileLines(t, bob.run("sync")); len(ls) != 0 {
		t.Fatalf("bob's next sync printed %+v", ls)
	}
	_, errOut, err = bob.try("download", id)
	if err == nil || !strings.Contains(errOut, "the file failed its integrity check: it was altered on the server or on the way, so nothing was saved") {
		t.Fatalf("download of the altered file: %v, %q", err, errOut)
	}
	entries, _ := os.ReadDir(filepath.Join(bob.home, "downloads"))
	if len(entries) != 0 {
		t.Fatalf("the downloads folder holds %v", entries)
	}
	h := fileLines(t, bob.run("history", "alice"))
	if len(h) != 1 || h[0].Attachment == nil || h[0].Attachment.State != "failed" {
		t.Fatalf("history: %+v", h)
	}
}

// A JPEG loses its metadata (here an EXIF block with a GPS marker) on the
// sender's device unless --keep-metadata; the pixels stay.
func TestPhotoMetadataStripped(t *testing.T) {
	srv := startServer(t, "")
	alice, bob := registerPair(t, srv)
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	for x := range 64 {
		for y := range 48 {
			img.Set(x, y, color.RGBA{uint8(x * 4), uint8(y * 5), 128, 255})
		}
	}
	var enc bytes.Buffer
	if err := jpeg.Encode(&enc, img, nil); err != nil {
		t.Fatal(err)
	}
	marker := []byte("GPS-MARKER-48.8584N-2.2945E")
	exif := append([]byte("Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x00\x00\x00\x00\x00"), marker...)
	seg := append([]byte{0xFF, 0xE1, byte((len(exif) + 2) >> 8), byte(len(exif) + 2)}, exif...)
	photo := append(append(append([]byte{}, enc.Bytes()[:2]...), seg...), enc.Bytes()[2:]...)
	src := filepath.Join(t.TempDir(), "holiday.jpg")
	if err := os.WriteFile(src, photo, 0o600); err != nil {
		t.Fatal(err)
	}

	ls := fileLines(t, alice.run("send", "bob", "--file", src))
	if len(ls) != 1 || strings.Join(ls[0].MetadataRemoved, ",") != "EXIF" || ls[0].Attachment.Size >= int64(len(photo)) {
		t.Fatalf("send printed %+v", ls)
	}
	fileLines(t, alice.run("send", "bob", "--file", src, "--keep-metadata"))
	dls := ofType(fileLines(t, bob.run("sync")), "download")
	if len(dls) != 2 {
		t.Fatalf("downloads: %+v", dls)
	}
	stripped, _ := os.ReadFile(dls[0].Path)
	kept, _ := os.ReadFile(dls[1].Path)
	if bytes.Contains(stripped, marker) || !bytes.Equal(kept, photo) {
		t.Fatal("the metadata was not removed, or --keep-metadata changed the file")
	}
	a, _, err := image.Decode(bytes.NewReader(stripped))
	if err != nil {
		t.Fatal(err)
	}
	b, _, _ := image.Decode(bytes.NewReader(photo))
	if a.Bounds() != b.Bounds() || !bytes.Equal(a.(*image.YCbCr).Y, b.(*image.YCbCr).Y) {
		t.Fatal("the stripped photo's pixels differ")
	}
}

// Vanishing messages: after a short timer no device's history, no local
// database page and no file holds the message or its file, and the server
// holds no envelope or blob of them, even for a device that never fetched
// them.
func TestVanishingMessagesLeaveNoTrace(t *testing.T) {
	srv := startServer(t, "", "--expire-interval", "1s")
	alice, bob := registerPair(t, srv)
	bob2 := link(t, bob, "bob2") // never fetches what follows
	short := []string{"PARLEY_MIN_TIMER=1s"}
	const timer = 5 // seconds: bob must fetch within it, before the server drops it

	alice.runEnv(short, "timer", "bob", fmt.Sprint(timer)+"s")
	text := fmt.Sprintf("VANISHING-TEXT-%x", mrand.Uint64())
	fileMarker := fmt.Sprintf("VANISHING-FILE-%x", mrand.Uint64())
	src := filepath.Join(t.TempDir(), "note.txt")
	os.WriteFile(src, bytes.Repeat([]byte(fileMarker+"\n"), 5000), 0o600)
	textID := fileLines(t, alice.run("send", "bob", text))[0].ID
	fileID := fileLines(t, alice.run("send", "bob", "--file", src, "--caption", text+"-caption"))[0].ID
	ids := []string{textID, fileID}

	ls := fileLines(t, bob.run("sync"))
	dls := ofType(ls, "download")
	if len(dls) != 1 || dls[0].ID != fileID {
		t.Fatalf("bob's sync printed %+v (the timer is %ds: was it too slow?)", ls, timer)
	}
	saved := dls[0].Path
	h := fileLines(t, bob.run("history", "alice")) // read: bob's clock starts
	if len(h) != 3 || h[0].Kind != "timer" || h[1].Timer != timer || h[2].Attachment == nil {
		t.Fatalf("bob's history: %+v", h)
	}

	gone := func(d *device, peer string) bool {
		for _, m := range fileLines(t, d.run("history", peer)) {
			if m.ID == textID || m.ID == fileID {
				return false
			}
		}
		return true
	}
	waitUntil(t, "the messages to vanish from alice's history", 30*time.Second, func() bool { return gone(alice, "bob") })
	waitUntil(t, "the messages to vanish from bob's history", 30*time.Second, func() bool { return gone(bob, "alice") })
	if _, err := os.Stat(saved); !os.IsNotExist(err) {
		t.Fatalf("the vanished file is still at %s: %v", saved, err)
	}
	// No file of either home (database, its log, downloads, copies)
	// holds the text, the caption or the file.
	for _, d := range []*device{alice, bob} {
		for p, b := range serverFiles(t, d.home) {
			for _, s := range []string{text, fileMarker} {
				if bytes.Contains(b, []byte(s)) {
					t.Errorf("%s of %s still holds %q", filepath.Base(p), d.name, s)
				}
			}
		}
	}
	// The timer changes stay.
	if h := fileLines(t, bob.run("history", "alice")); len(h) != 1 || h[0].Kind != "timer" {
		t.Fatalf("bob's history after: %+v", h)
	}

	// The server dropped bob2's envelopes and the blob bob2 never fetched.
	db := serverDB(t, srv)
	count := func() int {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM envelopes WHERE message_id IN (?, ?)`, textID, fileID).Scan(&n); err != nil && err != sql.ErrNoRows {
			t.Fatal(err)
		}
		return n
	}
	waitUntil(t, "the server to drop the unfetched envelopes", 30*time.Second, func() bool { return count() == 0 })
	waitUntil(t, "the server to drop the unfetched blob", 30*time.Second, func() bool { return len(blobDataFiles(t, srv)) == 0 })
	for _, m := range fileLines(t, bob2.run("sync")) {
		if m.ID == ids[0] || m.ID == ids[1] {
			t.Fatalf("bob2 received a vanished message: %+v", m)
		}
	}
}
