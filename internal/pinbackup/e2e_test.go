package pinbackup_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/pinbackup"
	"github.com/parleychat/parley/internal/realm"
	"github.com/parleychat/parley/internal/realm/realmclient"
)

// fast are Argon2id parameters for tests that do not measure time; the
// properties under test do not depend on them.
var fast = pinbackup.Params{Time: 1, MemoryKiB: 256, Threads: 1}

// testRealm is one real realm server on 127.0.0.1:0 with its own folder.
type testRealm struct {
	srv    *realm.Server
	dir    string
	url    string
	cancel context.CancelFunc
	done   chan error
}

func (r *testRealm) stop(t testing.TB) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("realm stopped with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("realm did not stop within 30s")
	}
}

// deployment is n realms trusting one parleyd token key, a client for
// them, and that key.
type deployment struct {
	realms []*testRealm
	set    realmclient.Set
	issuer ed25519.PrivateKey
	client *realmclient.Client
}

func startRealms(t testing.TB, n, threshold int, tweak func(*realm.Config)) *deployment {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	d := &deployment{issuer: priv, set: realmclient.Set{Threshold: threshold}}
	for range n {
		cfg := realm.Defaults()
		cfg.Addr = "127.0.0.1:0"
		cfg.DataDir = t.TempDir()
		cfg.IssuerKey = base64.StdEncoding.EncodeToString(pub)
		cfg.GuessesPerHour, cfg.GuessBurst = 1e6, 1000
		cfg.RequestsPerMinute, cfg.RequestBurst = 1e6, 1000
		if tweak != nil {
			tweak(&cfg)
		}
		srv, err := realm.New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		r := &testRealm{srv: srv, dir: cfg.DataDir, cancel: cancel, done: make(chan error, 1)}
		go func() { r.done <- srv.Run(ctx) }()
		select {
		case <-srv.Ready():
		case err := <-r.done:
			t.Fatalf("realm did not start: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("realm did not start within 30s")
		}
		r.url = "http://" + srv.Addr().String()
		t.Cleanup(func() { r.stop(t) })
		d.realms = append(d.realms, r)
		d.set.Realms = append(d.set.Realms, realmclient.Realm{URL: r.url, PublicKey: srv.PublicKey()})
	}
	c, err := realmclient.New(d.set, d.tokens, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.client = c
	return d
}

// tokens plays parleyd: a five-minute token for the handle at the realm.
func (d *deployment) tokens(_ context.Context, handle string, id pinbackup.RealmID) (string, error) {
	return realm.SignToken(d.issuer, realm.Token{Handle: handle, Realm: id, Expires: time.Now().Add(5 * time.Minute)})
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestEndToEnd(t *testing.T) {
	d := startRealms(t, 3, 2, nil)
	ctx := ctxT(t)
	key := pinbackup.NewBackupKey()
	if err := d.client.Register(ctx, "alice", []byte("1379"), key, fast, 0); err != nil {
		t.Fatal(err)
	}

	got, err := d.client.Recover(ctx, "alice", []byte("1379"))
	if err != nil || !bytes.Equal(got, key) {
		t.Fatalf("recover with all realms: %v", err)
	}

	// One realm down: two of three still recover.
	d.realms[0].stop(t)
	got, err = d.client.Recover(ctx, "alice", []byte("1379"))
	if err != nil || !bytes.Equal(got, key) {
		t.Fatalf("recover with one realm down: %v", err)
	}

	// Two down: a clear error, and no guess was spent.
	d.realms[1].stop(t)
	_, err = d.client.Recover(ctx, "alice", []byte("1379"))
	if !errors.Is(err, pinbackup.ErrTooFewRealms) || !strings.Contains(err.Error(), "1 of 3 realms answered; 2 are needed") {
		t.Fatalf("recover with two realms down: %v", err)
	}
	t.Logf("two realms down: %v", err)
	st := d.client.Statuses(ctx, "alice")
	if st[2].Status == nil || st[2].Status.AttemptedGuesses != 0 {
		t.Fatalf("the live realm counted a guess: %+v", st[2].Status)
	}
}

func TestWrongPINsDestroyTheBackup(t *testing.T) {
	d := startRealms(t, 3, 2, nil)
	ctx := ctxT(t)
	key := pinbackup.NewBackupKey()
	if err := d.client.Register(ctx, "bob", []byte("2580"), key, fast, 0); err != nil {
		t.Fatal(err)
	}
	// What realm 0 keeps, to look for in its file after destruction.
	dbFile := filepath.Join(d.realms[0].dir, realm.DBFile)
	row := readRow(t, dbFile, "bob")

	for i := 1; i <= pinbackup.DefaultAllowedGuesses; i++ {
		_, err := d.client.Recover(ctx, "bob", []byte(fmt.Sprintf("%04d", i)))
		if i < pinbackup.DefaultAllowedGuesses {
			var wp *realmclient.WrongPINError
			if !errors.As(err, &wp) || !errors.Is(err, pinbackup.ErrWrongPIN) || wp.GuessesLeft != pinbackup.DefaultAllowedGuesses-i {
				t.Fatalf("wrong PIN %d: %v", i, err)
			}
			continue
		}
		if !errors.Is(err, pinbackup.ErrDestroyed) {
			t.Fatalf("wrong PIN %d (the last guess): %v", i, err)
		}
		t.Logf("last wrong PIN: %v", err)
	}
	// Deleted for good: secure_delete overwrote the row in the file.
	raw, err := os.ReadFile(dbFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, col := range []string{"key_share", "unlock_tag", "secret_share", "sealed_secret", "secret_commitment", "public_share_sig"} {
		if bytes.Contains(raw, row[col].([]byte)) {
			t.Errorf("after destruction, realm 0's file still contains the %s", col)
		}
	}
	if rows := readRows(t, dbFile, "registrations"); len(rows) != 0 {
		t.Errorf("after destruction, registrations holds %d rows", len(rows))
	}
	_, err = d.client.Recover(ctx, "bob", []byte("2580"))
	if !errors.Is(err, pinbackup.ErrDestroyed) || !strings.Contains(err.Error(), "destroyed") {
		t.Fatalf("right PIN after ten wrong ones: %v", err)
	}
	t.Logf("right PIN afterwards: %v", err)
	for i, st := range d.client.Statuses(ctx, "bob") {
		if st.Status == nil || st.Status.State != pinbackup.StateDestroyed {
			t.Fatalf("realm %d: %+v", i, st.Status)
		}
	}
	// A new registration starts afresh.
	if err := d.client.Register(ctx, "bob", []byte("2580"), key, fast, 0); err != nil {
		t.Fatal(err)
	}
	if got, err := d.client.Recover(ctx, "bob", []byte("2580")); err != nil || !bytes.Equal(got, key) {
		t.Fatalf("after registering again: %v", err)
	}
}

func TestCorrectPINResetsCounters(t *testing.T) {
	d := startRealms(t, 3, 2, nil)
	ctx := ctxT(t)
	key := pinbackup.NewBackupKey()
	if err := d.client.Register(ctx, "carol", []byte("9753"), key, fast, 0); err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		for i := 1; i < pinbackup.DefaultAllowedGuesses; i++ {
			if _, err := d.client.Recover(ctx, "carol", []byte("0000")); !errors.Is(err, pinbackup.ErrWrongPIN) {
				t.Fatalf("round %d, wrong PIN %d: %v", round, i, err)
			}
		}
		for _, st := range d.client.Statuses(ctx, "carol") {
			if st.Status.AttemptedGuesses != pinbackup.DefaultAllowedGuesses-1 {
				t.Fatalf("round %d: attempted %d", round, st.Status.AttemptedGuesses)
			}
		}
		if got, err := d.client.Recover(ctx, "carol", []byte("9753")); err != nil || !bytes.Equal(got, key) {
			t.Fatalf("round %d, right PIN on the last guess: %v", round, err)
		}
		for _, st := range d.client.Statuses(ctx, "carol") {
			if st.Status.AttemptedGuesses != 0 {
				t.Fatalf("round %d: the right PIN left %d attempts counted", round, st.Status.AttemptedGuesses)
			}
		}
	}
}

func TestDeleteAndChangePIN(t *testing.T) {
	d := startRealms(t, 3, 2, nil)
	ctx := ctxT(t)
	key := pinbackup.NewBackupKey()
	if err := d.client.Register(ctx, "dave", []byte("1111"), key, fast, 0); err != nil {
		t.Fatal(err)
	}
	// Changing the PIN is registering the same key again.
	if err := d.client.Register(ctx, "dave", []byte("correct horse"), key, fast, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := d.client.Recover(ctx, "dave", []byte("1111")); !errors.Is(err, pinbackup.ErrWrongPIN) {
		t.Fatalf("old PIN: %v", err)
	}
	if got, err := d.client.Recover(ctx, "dave", []byte("correct horse")); err != nil || !bytes.Equal(got, key) {
		t.Fatalf("new PIN: %v", err)
	}
	if err := d.client.Delete(ctx, "dave"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.client.Recover(ctx, "dave", []byte("correct horse")); !errors.Is(err, pinbackup.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	// Another account's token cannot touch dave's backup: the handle is
	// the token's.
	if err := d.client.Register(ctx, "dave", []byte("1111"), key, fast, 0); err != nil {
		t.Fatal(err)
	}
	if err := d.client.Delete(ctx, "mallory"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.client.Recover(ctx, "dave", []byte("1111")); err != nil {
		t.Fatalf("mallory's delete reached dave: %v", err)
	}
}

func TestPinnedKeys(t *testing.T) {
	d := startRealms(t, 3, 2, nil)
	ctx := ctxT(t)
	// A client that pinned another key for realm 0 rejects its answers.
	set := d.set
	set.Realms = append([]realmclient.Realm(nil), d.set.Realms...)
	other, _, _ := ed25519.GenerateKey(nil)
	set.Realms[0].PublicKey = other
	c, err := realmclient.New(set, func(ctx context.Context, h string, id pinbackup.RealmID) (string, error) {
		// parleyd would issue for the id the client asks; realm 0 refuses
		// a token for the wrong id, and its refusal is not signed with
		// the pinned key either.
		return d.tokens(ctx, h, id)
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Register(ctx, "erin", []byte("1234"), pinbackup.NewBackupKey(), fast, 0)
	if !errors.Is(err, realmclient.ErrBadSignature) {
		t.Fatalf("register with a wrongly pinned realm: %v", err)
	}
	info, err := realmclient.FetchInfo(ctx, nil, d.realms[1].url)
	if err != nil || !bytes.Equal(info.PublicKey, d.set.Realms[1].PublicKey) {
		t.Fatalf("info: %v", err)
	}
}
