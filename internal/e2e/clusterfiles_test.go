package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parleychat/parley/internal/pgtest"
	"github.com/parleychat/parley/internal/s3/s3test"
)

// TestClusterFiles: in a cluster, files live in the shared S3 bucket with
// their metadata in PostgreSQL, so no node owns one. alice's upload goes
// through node 0, which is killed with SIGKILL halfway; alice resumes
// through node 1 from what node 0 had stored; bob downloads through node 1
// a byte-identical file; the bucket never held a byte of plaintext, and
// once bob has the file nothing of it is left.
func TestClusterFiles(t *testing.T) {
	dsn := pgtest.Database(t)
	bucketRoot := t.TempDir()
	bucket := s3test.StartWith(t, s3test.Options{Root: bucketRoot})
	secret := filepath.Join(t.TempDir(), "s3-secret")
	if err := os.WriteFile(secret, []byte(bucket.SecretKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--db", dsn, "--nats", natsURL(), "--nats-prefix", "parleytest." + randomName(),
		"--blob-s3", bucket.Endpoint + "/" + bucket.Bucket, "--blob-s3-region", bucket.Region,
		"--blob-s3-key-id", bucket.AccessKey, "--blob-s3-secret-file", secret}
	node0 := startServer(t, "", args...)
	node1 := startServer(t, "", args...)
	alice := newDevice(t, node0, "alice1")
	bob := newDevice(t, node1, "bob1")
	introduce(alice, bob)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	stored := func() int64 {
		var n int64
		db.QueryRow(ctx, `SELECT COALESCE(MAX(received), -1) FROM blobs`).Scan(&n)
		return n
	}

	const size = 40 << 20
	src, sum := writeTestFile(t, t.TempDir(), "film.bin", size, 5)
	cmd, out := alice.start(ctx, "send", "bob", "--file", src, "--limit-rate", "16M")
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	waitUntil(t, "node 0 to store 8 MiB of the upload", 60*time.Second, func() bool { return stored() >= 8<<20 })
	node0.kill9()
	select {
	case <-exited:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("parley send did not end after its node died:\n%s", out.String())
	}
	atKill := stored()

	// alice's next run goes through node 1. Node 0 died holding the
	// upload's lease, so node 1 answers upload_busy until it runs out (at
	// most s3store.Lease); the client retries, and alice retries the
	// command like a user would.
	alice.srv = node1
	waitUntil(t, "the upload to resume through node 1", 150*time.Second, func() bool {
		_, _, err := alice.try("uploads", "resume")
		return err == nil && len(fileLines(t, alice.run("uploads"))) == 0
	})

	// The storage provider holds ciphertext only: no 32-byte window of the
	// file (sampled every 64 bytes) is in the bucket's folder, where the
	// same scan finds the file itself.
	if found, _ := plaintextIn(t, filepath.Dir(src), src, 64); found == "" {
		t.Fatal("the scan does not find the plaintext in the file itself")
	}
	found, scanned := plaintextIn(t, bucketRoot, src, 64)
	if found != "" {
		t.Fatalf("the bucket holds plaintext: %s", found)
	}
	if scanned < size {
		t.Fatalf("the bucket's folder holds %d bytes, less than the %d-byte file", scanned, size)
	}

	dls := ofType(fileLines(t, bob.run("sync")), "download")
	if len(dls) != 1 || dls[0].Size != size || fileSHA256(t, dls[0].Path) != sum {
		t.Fatalf("bob's download through node 1: %+v", dls)
	}
	var left int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM blobs`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("blob rows left after bob fetched the file: %d, %v", left, err)
	}
	t.Logf("node 0 was killed with %d of %d bytes stored; the upload finished through node 1", atKill, size)
}
