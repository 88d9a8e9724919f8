package server_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/backupstore"
	"github.com/parleychat/parley/internal/backupstore/pgbackups"
	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/pgtest"
	"github.com/parleychat/parley/internal/server"
	"github.com/parleychat/parley/internal/store/pgstore/pgstoretest"
)

// Where parleyd keeps the sealed PIN-backup blobs: in PostgreSQL when db
// is postgres:// and backup_dir is unset, in files otherwise.

// logBuffer collects a server's log while also passing it to t.Log.
type logBuffer struct {
	t  *testing.T
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.b.Write(p)
	l.mu.Unlock()
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startLogged is startServer with cfg as given and the log kept.
func startLogged(t *testing.T, cfg config.Config) (*testServer, *logBuffer) {
	t.Helper()
	lb := &logBuffer{t: t}
	srv, err := server.New(cfg, slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	ts := runServer(t, srv)
	ts.cfg = cfg
	return ts, lb
}

// pgConfig is a node on the PostgreSQL schema dsn with realms, its own
// data folder and the deployment's realm token key file.
func pgConfig(t *testing.T, dsn, keyFile string, realms func(*config.Config)) config.Config {
	cfg := testConfig(t)
	cfg.DB = dsn
	cfg.RealmTokenKeyFile = keyFile
	realms(&cfg)
	return cfg
}

func testCtx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// Two nodes on one PostgreSQL, each with its own data folder: a blob put
// through one is read, by the account's device and by a recovery's backup
// token, and deleted through the other. Neither writes a backup file.
func TestBackupBlobPostgresTwoNodes(t *testing.T) {
	dsn := pgtest.Schema(t, pgtest.Database(t))
	realms, _ := withRealms(t, 3)
	keyFile := filepath.Join(t.TempDir(), "realm-token.key")
	a, logA := startLogged(t, pgConfig(t, dsn, keyFile, realms))
	b, _ := startLogged(t, pgConfig(t, dsn, keyFile, realms))
	if !strings.Contains(logA.String(), "backups=postgresql") {
		t.Fatalf("node a does not say it keeps the backups in PostgreSQL:\n%s", logA.String())
	}

	alice := a.register("alice")
	tok := alice.devices[0].token
	b.wantErr(404, api.CodeNotFound, "GET", "/v1/backup/alice", tok, nil)
	blob := sealedBlob(t, "alice", []byte("the account"))
	a.mustDo("PUT", api.PathBackup, tok, api.PutBackupRequest{Blob: blob}, nil)

	var got api.Backup
	b.mustDo("GET", "/v1/backup/alice", tok, nil, &got)
	if !bytes.Equal(got.Blob, blob) || got.Updated == 0 {
		t.Fatalf("through node b: %d bytes, updated %d", len(got.Blob), got.Updated)
	}
	var rec api.RealmTokens
	a.mustDo("POST", api.PathRealmTokenRecover, "", api.RecoverTokensRequest{Handle: "alice"}, &rec)
	got = api.Backup{}
	b.mustDo("GET", "/v1/backup/alice", rec.BackupToken, nil, &got)
	if !bytes.Equal(got.Blob, blob) {
		t.Fatal("the backup token read another blob through node b")
	}

	// A replacement through b is what a reads.
	blob2 := sealedBlob(t, "alice", []byte("the account, later"))
	b.mustDo("PUT", api.PathBackup, tok, api.PutBackupRequest{Blob: blob2}, nil)
	a.mustDo("GET", "/v1/backup/alice", tok, nil, &got)
	if !bytes.Equal(got.Blob, blob2) {
		t.Fatal("node a reads the old blob after a replacement through node b")
	}
	b.mustDo("DELETE", api.PathBackup, tok, nil, nil)
	a.wantErr(404, api.CodeNotFound, "GET", "/v1/backup/alice", tok, nil)

	for _, ts := range []*testServer{a, b} {
		if _, err := os.Stat(filepath.Join(ts.cfg.DataDir, server.BackupDir)); err == nil {
			t.Errorf("%s has a backup folder", ts.cfg.DataDir)
		}
	}
}

// A node that kept its blobs in <data_dir>/backups and now runs on
// PostgreSQL copies them into the table at its first start, once: the
// table's newer blob wins, the files stay, and a later start does not
// bring back a blob deleted since. With backup_dir set explicitly, the
// node keeps using the files.
func TestBackupImportToPostgres(t *testing.T) {
	ctx := testCtx(t)
	dsn := pgtest.Schema(t, pgtest.Database(t))
	realms, _ := withRealms(t, 3)
	keyFile := filepath.Join(t.TempDir(), "realm-token.key")
	cfg := pgConfig(t, dsn, keyFile, realms)
	dir := filepath.Join(cfg.DataDir, server.BackupDir)

	files, err := backupstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	aliceBlob, bobOld, bobNew := sealedBlob(t, "alice", []byte("alice")), sealedBlob(t, "bob", []byte("old")), sealedBlob(t, "bob", []byte("new"))
	for h, b := range map[string][]byte{"alice": aliceBlob, "bob": bobOld} {
		if err := files.Put(ctx, h, b); err != nil {
			t.Fatal(err)
		}
	}
	_, aliceTime, err := files.Get(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	// bob already stored a newer blob through a node on PostgreSQL.
	if err := pgbackups.New(pgstoretest.Pool(t, dsn)).Put(ctx, "bob", bobNew); err != nil {
		t.Fatal(err)
	}

	ts, log := startLogged(t, cfg)
	if !strings.Contains(log.String(), `msg="PIN backups copied from files into PostgreSQL"`) ||
		!strings.Contains(log.String(), "imported=1 skipped=1") {
		t.Fatalf("the start does not log the import:\n%s", log.String())
	}
	alice, bob := ts.register("alice"), ts.register("bob")
	var got api.Backup
	ts.mustDo("GET", "/v1/backup/alice", alice.devices[0].token, nil, &got)
	if !bytes.Equal(got.Blob, aliceBlob) || got.Updated != aliceTime.UnixMilli() {
		t.Fatalf("alice's imported blob: %d bytes at %d, want %d bytes at %d", len(got.Blob), got.Updated, len(aliceBlob), aliceTime.UnixMilli())
	}
	ts.mustDo("GET", "/v1/backup/bob", bob.devices[0].token, nil, &got)
	if !bytes.Equal(got.Blob, bobNew) {
		t.Fatal("the import replaced bob's newer blob")
	}

	// alice removes her backup; a restart does not bring it back.
	ts.mustDo("DELETE", api.PathBackup, alice.devices[0].token, nil, nil)
	if err := ts.stop(); err != nil {
		t.Fatal(err)
	}
	ts, log = startLogged(t, cfg)
	if strings.Contains(log.String(), "PIN backups copied") {
		t.Fatalf("the second start imported again:\n%s", log.String())
	}
	ts.wantErr(404, api.CodeNotFound, "GET", "/v1/backup/alice", alice.devices[0].token, nil)
	if hs, err := files.Handles(); err != nil || strings.Join(hs, ",") != "alice,bob" {
		t.Fatalf("the files after the import: %q, %v", hs, err)
	}
	if note, err := os.ReadFile(filepath.Join(dir, server.BackupImportMarker)); err != nil || !strings.Contains(string(note), "1 copied, 1 skipped") {
		t.Fatalf("import marker: %q, %v", note, err)
	}
	if err := ts.stop(); err != nil {
		t.Fatal(err)
	}

	// backup_dir named explicitly: the files, as before.
	cfg.BackupDir = dir
	ts, log = startLogged(t, cfg)
	if !strings.Contains(log.String(), "backups="+dir) {
		t.Fatalf("the node does not say it keeps the backups in %s:\n%s", dir, log.String())
	}
	ts.mustDo("GET", "/v1/backup/alice", alice.devices[0].token, nil, &got)
	if !bytes.Equal(got.Blob, aliceBlob) {
		t.Fatal("with backup_dir set, alice's file is not what the node serves")
	}
	ts.mustDo("GET", "/v1/backup/bob", bob.devices[0].token, nil, &got)
	if !bytes.Equal(got.Blob, bobOld) {
		t.Fatal("with backup_dir set, bob's file is not what the node serves")
	}
}
