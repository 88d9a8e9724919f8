package pgstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parleychat/parley/internal/pgtest"
	"github.com/parleychat/parley/internal/store"
	"github.com/parleychat/parley/internal/store/storetest"
)

// The tests run against a real PostgreSQL (internal/pgtest): every
// top-level test creates its own database and drops it when it ends; they
// are not skipped when PostgreSQL is missing, they fail.

// testMaxQueue is the queue limit of the conformance suite's stores
// (TestQueueLimitDefault checks the real one).
const testMaxQueue = 50

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func openTest(t testing.TB, dsn string, o Options) *DB {
	t.Helper()
	db, err := OpenOptions(testCtx(t), dsn, slog.New(slog.DiscardHandler), o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestConformance runs the store's conformance suite: one database for
// the run, a new schema for every store the suite opens.
func TestConformance(t *testing.T) {
	dsn := pgtest.Database(t)
	storetest.RunOptions(t, func(t *testing.T) store.Store {
		return openTest(t, pgtest.Schema(t, dsn), Options{MaxQueue: testMaxQueue})
	}, storetest.Options{MaxQueue: testMaxQueue})
}

func mustAccount(t testing.TB, db *DB, handle string, ids ...uint32) {
	t.Helper()
	l := store.DeviceList{Signed: []byte("signed list"), Version: 1}
	for _, id := range ids {
		l.Devices = append(l.Devices, store.Device{ID: id, SigningKey: fmt.Appendf(nil, "key %s %d", handle, id)})
	}
	p := store.Prekeys{
		Signed:     &store.Prekey{ID: 1, Public: []byte("spk"), Signature: []byte("sig")},
		LastResort: &store.Prekey{ID: 2, Public: []byte("pq"), Signature: []byte("sig")},
	}
	if err := db.CreateAccount(testCtx(t), store.Account{Handle: handle, IdentityKey: []byte("ik")}, l, p); err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
}

// oneMessage is a message from sender's device 1 to the given devices.
func oneMessage(sender, id, recipient string, devices ...uint32) []store.Envelope {
	var envs []store.Envelope
	for _, d := range devices {
		envs = append(envs, store.Envelope{
			MessageID: id, Sender: sender, SenderDevice: 1, Recipient: recipient, RecipientDevice: d,
			Ciphertext: make([]byte, 200),
		})
	}
	return envs
}

// TestQueueLimitDefault checks the default limit, store.MaxQueue. It fills
// the queue to one below the limit with one INSERT (and sets the counter
// to match), to spare 10000 commits; then Enqueue takes the last one and
// refuses the next.
func TestQueueLimitDefault(t *testing.T) {
	ctx := testCtx(t)
	db := openTest(t, pgtest.Database(t), Options{})
	mustAccount(t, db, "alice", 1)
	mustAccount(t, db, "bob", 1)
	err := db.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO envelopes
				(recipient, recipient_device, message_id, sender, sender_device, ciphertext, server_time)
			SELECT 'bob', 1, 'm' || i, 'alice', 1, '\x00', now() FROM generate_series(1, $1) AS i`, store.MaxQueue-1); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE devices SET queued = $1 WHERE handle = 'bob' AND id = 1`, store.MaxQueue-1)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Enqueue(ctx, oneMessage("alice", "last", "bob", 1)); err != nil {
		t.Fatalf("Enqueue of envelope number store.MaxQueue: %v", err)
	}
	_, err = db.Enqueue(ctx, oneMessage("alice", "one more", "bob", 1))
	if !errors.Is(err, store.ErrQueueFull) {
		t.Fatalf("Enqueue past store.MaxQueue: %v, want ErrQueueFull", err)
	}
	envs, err := db.Pending(ctx, "bob", 1, 0, 2*store.MaxQueue)
	if err != nil || len(envs) != store.MaxQueue {
		t.Fatalf("Pending: %d envelopes, %v; want %d", len(envs), err, store.MaxQueue)
	}
}

// TestExpireBatches checks that Expire forgets more message ids than one
// batch holds.
func TestExpireBatches(t *testing.T) {
	ctx := testCtx(t)
	db := openTest(t, pgtest.Database(t), Options{MaxQueue: 10 * expireBatch})
	mustAccount(t, db, "alice", 1)
	mustAccount(t, db, "bob", 1)
	const n = 2*expireBatch + 17
	err := db.tx(ctx, func(tx pgx.Tx) error {
		for i := range n {
			m, err := newMessage(oneMessage("alice", fmt.Sprintf("m%d", i), "bob", 1), time.Now())
			if err != nil {
				return err
			}
			if _, err := db.enqueue(ctx, tx, m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	count := func() (c int) {
		if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM dedup`).Scan(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	if err := db.Expire(ctx, time.Now()); err != nil || count() != n {
		t.Fatalf("early Expire: %v, %d ids left, want %d", err, count(), n)
	}
	if err := db.Expire(ctx, time.Now().Add(store.DedupWindow+time.Minute)); err != nil || count() != 0 {
		t.Fatalf("Expire after the window: %v, %d ids left", err, count())
	}
}

// TestReopenMigrations checks that reopening applies nothing twice and
// keeps the data, and that a database from a newer program is refused.
func TestReopenMigrations(t *testing.T) {
	ctx := testCtx(t)
	dsn := pgtest.Database(t)
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustAccount(t, db, "alice", 1)
	db.Close()
	for range 3 {
		db, err = Open(ctx, dsn, nil)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		v, err := db.SchemaVersion(ctx)
		if err != nil || v != len(ms) {
			t.Fatalf("SchemaVersion = %d, %v; want %d", v, err, len(ms))
		}
		var rows int
		if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&rows); err != nil || rows != len(ms) {
			t.Fatalf("schema_migrations has %d rows (%v), want %d", rows, err, len(ms))
		}
		if _, err := db.Account(ctx, "alice"); err != nil {
			t.Fatalf("Account after reopen: %v", err)
		}
		db.Close()
	}

	// A schema version this program does not know: refused.
	db, err = Open(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.pool.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, 'future.sql')`, len(ms)+1); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err := Open(ctx, dsn, nil); err == nil {
		db.Close()
		t.Fatal("Open of a database with a newer schema: no error")
	}
}

func TestMigrationFilesNumbered(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Fatal("no migrations embedded")
	}
}

// TestConcurrentMigration starts three nodes at once on an empty database:
// all open, and every migration is applied once.
func TestConcurrentMigration(t *testing.T) {
	ctx := testCtx(t)
	dsn := pgtest.Database(t)
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	const nodes = 3
	dbs := make([]*DB, nodes)
	errs := make([]error, nodes)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() {
			<-start
			dbs[i], errs[i] = Open(ctx, dsn, nil)
		})
	}
	close(start)
	wg.Wait()
	for i := range nodes {
		if errs[i] != nil {
			t.Fatalf("node %d: Open: %v", i, errs[i])
		}
		defer dbs[i].Close()
	}
	rows, err := dbs[0].pool.Query(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	want := make([]int, len(ms))
	for i := range want {
		want[i] = i + 1
	}
	if !slices.Equal(versions, want) {
		t.Fatalf("schema_migrations versions %v, want %v", versions, want)
	}
	// Every node works on the one schema.
	mustAccount(t, dbs[1], "alice", 1)
	if _, err := dbs[2].Account(ctx, "alice"); err != nil {
		t.Fatalf("Account through another node: %v", err)
	}
}

// TestEnqueueOrderUnderConcurrency has many goroutines (as on several
// nodes) enqueue to one device while a reader pages through it with an
// "after" cursor, as a WebSocket delivery loop does: the reader must see
// every envelope, because an envelope never commits with a seq below one
// the reader has already seen.
func TestEnqueueOrderUnderConcurrency(t *testing.T) {
	ctx := testCtx(t)
	dsn := pgtest.WithParams(t, pgtest.Database(t), "pool_max_conns", "16")
	db := openTest(t, dsn, Options{MaxQueue: 1 << 20})
	const senders, each = 16, 60
	mustAccount(t, db, "bob", 1, 2)
	for i := range senders {
		mustAccount(t, db, fmt.Sprintf("sender%d", i), 1)
	}
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	start := make(chan struct{})
	for i := range senders {
		wg.Go(func() {
			<-start
			for j := range each {
				// To both of bob's devices, and sometimes to device 2
				// only, so messages lock different sets of rows.
				devs := []uint32{1, 2}
				if j%3 == 0 {
					devs = []uint32{2, 1}
				}
				envs := oneMessage(fmt.Sprintf("sender%d", i), fmt.Sprintf("m%d", j), "bob", devs...)
				if _, err := db.Enqueue(ctx, envs); err != nil {
					errs <- err
					return
				}
			}
		})
	}

	// The reader polls with its cursor, as a delivery loop does, until
	// the senders are done and a poll finds nothing new.
	type seen struct {
		seq int64
		key string
	}
	var got []seen
	sendersDone := make(chan struct{})
	readDone := make(chan error, 1)
	go func() {
		after := int64(0)
		for {
			finished := false
			select {
			case <-sendersDone:
				finished = true // everything is committed: one last pass
			default:
			}
			page, err := db.Pending(ctx, "bob", 1, after, 7)
			if err != nil {
				readDone <- err
				return
			}
			for _, e := range page {
				got = append(got, seen{e.Seq, e.Sender + "/" + e.MessageID})
				after = e.Seq
			}
			if finished && len(page) == 0 {
				readDone <- nil
				return
			}
		}
	}()
	close(start)
	wg.Wait()
	close(sendersDone)
	close(errs)
	for err := range errs {
		t.Fatalf("Enqueue: %v", err)
	}
	if err := <-readDone; err != nil {
		t.Fatalf("reader: %v", err)
	}
	// An envelope that committed with a seq below the cursor was skipped.
	if len(got) != senders*each {
		all, _ := db.Pending(ctx, "bob", 1, 0, 1<<20)
		t.Fatalf("the reader saw %d envelopes of %d (the queue holds %d): some committed behind its cursor",
			len(got), senders*each, len(all))
	}
	keys := map[string]bool{}
	for i, s := range got {
		if i > 0 && s.seq <= got[i-1].seq {
			t.Fatalf("seq %d after %d", s.seq, got[i-1].seq)
		}
		if keys[s.key] {
			t.Fatalf("%s delivered twice", s.key)
		}
		keys[s.key] = true
	}
	all, err := db.Pending(ctx, "bob", 1, 0, 1<<20)
	if err != nil || len(all) != len(got) {
		t.Fatalf("queue holds %d (%v), reader saw %d", len(all), err, len(got))
	}
}

// TestQueueCounterAgrees checks, after a mix of sends, acks and a device
// removal, that each device's queue counter equals its rows.
func TestQueueCounterAgrees(t *testing.T) {
	ctx := testCtx(t)
	db := openTest(t, pgtest.Schema(t, pgtest.Database(t)), Options{})
	mustAccount(t, db, "alice", 1)
	mustAccount(t, db, "bob", 1, 2, 3)
	for i := range 20 {
		if _, err := db.Enqueue(ctx, oneMessage("alice", fmt.Sprintf("m%d", i), "bob", 1, 2, 3)); err != nil {
			t.Fatal(err)
		}
	}
	envs, err := db.Pending(ctx, "bob", 2, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []int64
	for _, e := range envs[:7] {
		seqs = append(seqs, e.Seq, e.Seq) // twice: counted once
	}
	if err := db.Ack(ctx, "bob", 2, seqs); err != nil {
		t.Fatal(err)
	}
	var queued, rows int
	for _, d := range []int64{1, 2, 3} {
		if err := db.pool.QueryRow(ctx, `SELECT queued, (SELECT count(*) FROM envelopes WHERE recipient = 'bob' AND recipient_device = $1)
			FROM devices WHERE handle = 'bob' AND id = $1`, d).Scan(&queued, &rows); err != nil {
			t.Fatal(err)
		}
		if queued != rows {
			t.Fatalf("bob/%d: queued counter %d, %d rows", d, queued, rows)
		}
	}
}

// TestDurableSettings checks what a commit's durability rests on, on the
// sessions the store uses: synchronous_commit on (Open sets it), so a
// commit returns only after its WAL is flushed, and fsync on in the
// server. A crash of parleyd after a commit loses nothing (PostgreSQL
// has it); a crash of PostgreSQL is its own WAL recovery's job.
func TestDurableSettings(t *testing.T) {
	ctx := testCtx(t)
	db := openTest(t, pgtest.Database(t), Options{})
	var syncCommit, fsync string
	if err := db.pool.QueryRow(ctx, `SELECT current_setting('synchronous_commit'), current_setting('fsync')`).
		Scan(&syncCommit, &fsync); err != nil {
		t.Fatal(err)
	}
	if syncCommit != "on" || fsync != "on" {
		t.Fatalf("synchronous_commit=%s fsync=%s, want on and on", syncCommit, fsync)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := testCtx(t)
	if _, err := OpenOptions(ctx, pgtest.AdminDSN(), nil, Options{MaxQueue: -1}); err == nil {
		t.Error("Open with a negative MaxQueue: no error")
	}
	// A DSN that does not parse: the message must not quote it (it may
	// hold a password).
	_, err := Open(ctx, "postgres://user:s3cret@host:notaport/db", nil)
	if err == nil {
		t.Error("Open of a bad DSN: no error")
	} else if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error quotes the password: %v", err)
	}
	// Nothing listens on port 1.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if db, err := Open(cctx, "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=5", nil); err == nil {
		db.Close()
		t.Error("Open of an unreachable server: no error")
	}
	// A search_path naming no schema.
	dsn := pgtest.WithParams(t, pgtest.Database(t), "search_path", "no_such_schema")
	if db, err := Open(ctx, dsn, nil); err == nil {
		db.Close()
		t.Error("Open with a search_path of no schema: no error")
	}
}
