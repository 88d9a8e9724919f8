package server_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/stream"
)

// TestBlobThroughput measures uploads and downloads of a large encrypted
// file through parleyd next to a plain HTTP upload and download of the
// same bytes to a trivial handler, in the same run, on loopback. It only
// reports (no timed assertions) and runs only when asked:
//
//	PARLEY_BLOB_THROUGHPUT=1 go test -run TestBlobThroughput -v ./internal/server
//
// PARLEY_BLOB_THROUGHPUT_MIB sets the plaintext size (default 256).
func TestBlobThroughput(t *testing.T) {
	if os.Getenv("PARLEY_BLOB_THROUGHPUT") != "1" {
		t.Skip("set PARLEY_BLOB_THROUGHPUT=1 to measure")
	}
	mib := int64(256)
	if v := os.Getenv("PARLEY_BLOB_THROUGHPUT_MIB"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			t.Fatalf("PARLEY_BLOB_THROUGHPUT_MIB=%q", v)
		}
		mib = n
	}
	plainSize := mib << 20
	ts := startServer(t, func(c *config.Config) { c.MaxBlobBytes = 1 << 40; c.BlobQuotaBytes = 1 << 40 })
	a := ts.register("alice")
	tok := a.devices[0].token

	// The ciphertext, in a file (streamed: memory stays flat here too).
	dir := t.TempDir()
	key := make([]byte, stream.KeySize)
	rand.Read(key)
	ctPath := filepath.Join(dir, "file.age")
	ctf, err := os.Create(ctPath)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	w, _ := stream.NewWriter(key, io.MultiWriter(ctf, h))
	if _, err := io.Copy(w, io.LimitReader(zeroReader{}, plainSize)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	ctf.Close()
	sum := h.Sum(nil)
	size := stream.EncryptedSize(plainSize)

	// The baseline: a trivial HTTP server on loopback.
	plainDir := t.TempDir()
	plain := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case "PUT": // to a file, fsync'ed, like parleyd's finish
			f, err := os.Create(filepath.Join(plainDir, "up"))
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			io.Copy(f, r.Body)
			f.Sync()
			f.Close()
		case "POST": // to nowhere
			io.Copy(io.Discard, r.Body)
		case "GET":
			f, err := os.Open(ctPath)
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			defer f.Close()
			w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
			io.Copy(w, f)
		}
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go plain.Serve(ln)
	t.Cleanup(func() { plain.Close() })
	plainURL := "http://" + ln.Addr().String()

	client := &http.Client{}
	do := func(method, url, tok string, hdr map[string]string, body io.Reader, n int64) *http.Response {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		t.Cleanup(cancel)
		req, err := http.NewRequestWithContext(ctx, method, url, body)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = n
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		return resp
	}
	drain := func(resp *http.Response, wantStatus int) int64 {
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil || resp.StatusCode != wantStatus {
			t.Fatalf("status %d, %v", resp.StatusCode, err)
		}
		return n
	}
	section := func(f *os.File, off, n int64) io.Reader { return io.NewSectionReader(f, off, n) }
	openCT := func() *os.File {
		f, err := os.Open(ctPath)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}

	// parleyUpload creates a blob and sends it in PATCHes of chunk bytes
	// (or from src, encrypting on the fly, if given), then finishes it.
	parleyUpload := func(chunk int64, encryptOnTheFly bool) string {
		st := ts.createBlob(tok, size)
		if encryptOnTheFly {
			// Encryption and the upload run in two goroutines; 1 MiB buffers
			// on either side of the pipe keep the hand-overs few.
			pr, pw := io.Pipe()
			go func() {
				bw := bufio.NewWriterSize(pw, 1<<20)
				w, _ := stream.NewWriter(key, bw)
				_, err := io.Copy(w, io.LimitReader(zeroReader{}, plainSize))
				if err == nil {
					err = w.Close()
				}
				if err == nil {
					err = bw.Flush()
				}
				pw.CloseWithError(err)
			}()
			body := bufio.NewReaderSize(pr, 1<<20)
			drain(do("PATCH", ts.url+blobPath(st.ID), tok, map[string]string{api.HeaderUploadOffset: "0"}, body, size), 200)
		} else {
			f := openCT()
			for off := int64(0); off < size; off += chunk {
				n := min(chunk, size-off)
				drain(do("PATCH", ts.url+blobPath(st.ID), tok, map[string]string{api.HeaderUploadOffset: strconv.FormatInt(off, 10)}, section(f, off, n), n), 200)
			}
		}
		ts.finishBlob(tok, st.ID, sum)
		return st.ID
	}

	// Every phase runs once per round, phases interleaved, so load from
	// elsewhere on the machine falls on all of them alike.
	type phase struct {
		name   string
		f      func()
		mbps   []float64
		allocs []uint64
	}
	var ids []string
	phases := []*phase{
		{name: "plain upload, handler discards", f: func() {
			drain(do("POST", plainURL, "", nil, section(openCT(), 0, size), size), 200)
		}},
		{name: "plain upload, handler writes a file + fsync", f: func() {
			drain(do("PUT", plainURL, "", nil, section(openCT(), 0, size), size), 200)
		}},
		{name: "parleyd upload, one PATCH + finish", f: func() {
			ids = append(ids, parleyUpload(size, false))
		}},
		{name: "parleyd upload, 32 MiB PATCHes + finish", f: func() {
			ids = append(ids, parleyUpload(32<<20, false))
		}},
		{name: "parleyd upload, encrypting on the fly", f: func() {
			ids = append(ids, parleyUpload(size, true))
		}},
		{name: "plain download", f: func() {
			if n := drain(do("GET", plainURL, "", nil, nil, 0), 200); n != size {
				t.Fatalf("plain download: %d bytes", n)
			}
		}},
		{name: "parleyd download", f: func() {
			if n := drain(do("GET", ts.url+blobPath(ids[0]), tok, nil, nil, 0), 200); n != size {
				t.Fatalf("download: %d bytes", n)
			}
		}},
		{name: "parleyd download, decrypting on the fly", f: func() {
			resp := do("GET", ts.url+blobPath(ids[0]), tok, nil, nil, 0)
			defer resp.Body.Close()
			r, _ := stream.NewReader(key, resp.Body)
			if n, err := io.Copy(io.Discard, r); err != nil || n != plainSize {
				t.Fatalf("decrypting download: %d, %v", n, err)
			}
		}},
	}
	const runs = 5
	for range runs {
		for _, p := range phases {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			p.f()
			d := time.Since(start)
			runtime.ReadMemStats(&after)
			p.mbps = append(p.mbps, float64(size)/d.Seconds()/1e6)
			p.allocs = append(p.allocs, after.TotalAlloc-before.TotalAlloc)
		}
		// Keep one finished blob for the downloads; drop the others.
		for len(ids) > 1 {
			ts.mustDo("DELETE", blobPath(ids[len(ids)-1]), tok, nil, nil)
			ids = ids[:len(ids)-1]
		}
	}
	t.Logf("%d MiB plaintext, %d bytes of ciphertext, %d rounds, loopback, GOMAXPROCS=%d", mib, size, runs, runtime.GOMAXPROCS(0))
	for _, p := range phases {
		slices.Sort(p.mbps)
		slices.Sort(p.allocs)
		t.Logf("%-44s median %5.0f MB/s (min %5.0f, max %5.0f); allocated %s per run (client and server)",
			p.name, p.mbps[len(p.mbps)/2], p.mbps[0], p.mbps[len(p.mbps)-1], fmtBytes(p.allocs[len(p.allocs)/2]))
	}
}

func fmtBytes(n uint64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
