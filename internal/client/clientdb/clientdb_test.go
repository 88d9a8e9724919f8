package clientdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func open(t *testing.T) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "parley.db")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

func update(t *testing.T, db *DB, fn func(tx *Tx) error) {
	t.Helper()
	if err := db.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

func view(t *testing.T, db *DB, fn func(tx *Tx) error) {
	t.Helper()
	if err := db.View(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

func TestOpenModeAndMigrations(t *testing.T) {
	db, path := open(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	var v int
	if err := db.sql.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != SchemaVersion() {
		t.Errorf("user_version %d, want %d", v, SchemaVersion())
	}
	var mode string
	if err := db.sql.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode %q", mode)
	}
	// Reopening applies nothing twice.
	update(t, db, func(tx *Tx) error { return tx.PutSetting("k", "v") })
	for _, suffix := range []string{"-wal", "-shm"} {
		if fi, err := os.Stat(path + suffix); err == nil && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", suffix, fi.Mode().Perm())
		}
	}
	db.Close()
	db2, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	view(t, db2, func(tx *Tx) error {
		v, err := tx.Setting("k", "")
		if v != "v" {
			t.Errorf("setting after reopen: %q", v)
		}
		return err
	})
	// A newer schema is refused.
	if _, err := db2.sql.Exec(fmt.Sprintf("PRAGMA user_version = %d", SchemaVersion()+1)); err != nil {
		t.Fatal(err)
	}
	db2.Close()
	if _, err := Open(context.Background(), path); !errors.Is(err, ErrNewer) {
		t.Errorf("open newer schema: %v, want ErrNewer", err)
	}
}

func TestAccountAndSettings(t *testing.T) {
	db, _ := open(t)
	view(t, db, func(tx *Tx) error {
		if _, err := tx.Account(); !errors.Is(err, ErrNotFound) {
			t.Errorf("account before put: %v", err)
		}
		v, err := tx.Setting("read_receipts", "on")
		if v != "on" {
			t.Errorf("default setting %q", v)
		}
		return err
	})
	a := &Account{Handle: "alice", AccountSeed: bytes.Repeat([]byte{1}, 32), DeviceID: 7, DeviceKey: bytes.Repeat([]byte{2}, 64), Server: "http://x", NextPrekeyID: 1, Created: time.UnixMilli(1000)}
	update(t, db, func(tx *Tx) error { return tx.PutAccount(a) })
	update(t, db, func(tx *Tx) error {
		first, err := tx.AllocPrekeyIDs(100)
		if err != nil {
			return err
		}
		second, err := tx.AllocPrekeyIDs(5)
		if first != 1 || second != 101 {
			t.Errorf("alloc: %d, %d", first, second)
		}
		return err
	})
	view(t, db, func(tx *Tx) error {
		got, err := tx.Account()
		if err != nil {
			return err
		}
		if got.Handle != "alice" || got.DeviceID != 7 || !bytes.Equal(got.AccountSeed, a.AccountSeed) || got.NextPrekeyID != 106 || !got.Created.Equal(a.Created) {
			t.Errorf("account %+v", got)
		}
		return nil
	})
	exp := time.UnixMilli(time.Now().Add(time.Hour).UnixMilli())
	update(t, db, func(tx *Tx) error { return tx.PutToken("tok", exp) })
	view(t, db, func(tx *Tx) error {
		tok, e, err := tx.Token()
		if tok != "tok" || !e.Equal(exp) {
			t.Errorf("token %q %v", tok, e)
		}
		return err
	})
	update(t, db, func(tx *Tx) error { return tx.DeleteToken() })
	view(t, db, func(tx *Tx) error {
		if _, _, err := tx.Token(); !errors.Is(err, ErrNotFound) {
			t.Errorf("token after delete: %v", err)
		}
		return nil
	})
}

func TestUpdateRollsBack(t *testing.T) {
	db, _ := open(t)
	boom := errors.New("boom")
	err := db.Update(context.Background(), func(tx *Tx) error {
		if err := tx.SetContact("bob", StateContact); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("update: %v", err)
	}
	view(t, db, func(tx *Tx) error {
		s, err := tx.ContactState("bob")
		if s != "" {
			t.Errorf("rolled back contact is %q", s)
		}
		return err
	})
}

func TestPrekeys(t *testing.T) {
	db, _ := open(t)
	update(t, db, func(tx *Tx) error {
		for i := uint32(1); i <= 3; i++ {
			if err := tx.PutPrekey(&Prekey{ID: i, Kind: byte(i % 2), Private: []byte{byte(i)}, Public: []byte{byte(i + 10)}}); err != nil {
				return err
			}
		}
		return tx.DeletePrekey(3)
	})
	view(t, db, func(tx *Tx) error {
		p, err := tx.Prekey(1)
		if err != nil {
			return err
		}
		if p.Kind != 1 || !bytes.Equal(p.Private, []byte{1}) || !bytes.Equal(p.Public, []byte{11}) {
			t.Errorf("prekey %+v", p)
		}
		if _, err := tx.Prekey(3); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted prekey: %v", err)
		}
		odd, err := tx.PrekeysOfKind(1)
		if len(odd) != 1 || odd[0].ID != 1 {
			t.Errorf("of kind 1: %v", odd)
		}
		return err
	})
}

func TestSessions(t *testing.T) {
	db, _ := open(t)
	update(t, db, func(tx *Tx) error {
		for i := 0; i < 6; i++ {
			if err := tx.PutSession(&Session{Handle: "bob", Device: 1, BaseKey: []byte{byte(i)}, State: []byte{byte(i)}}); err != nil {
				return err
			}
		}
		return tx.PutSession(&Session{Handle: "bob", Device: 2, BaseKey: []byte{9}, State: []byte{9}})
	})
	view(t, db, func(tx *Tx) error {
		ss, err := tx.Sessions("bob", 1)
		if err != nil {
			return err
		}
		if len(ss) != maxSessionsPerDevice {
			t.Fatalf("%d sessions kept, want %d", len(ss), maxSessionsPerDevice)
		}
		if ss[0].BaseKey[0] != 5 || ss[len(ss)-1].BaseKey[0] != 2 {
			t.Errorf("order: first %v last %v", ss[0].BaseKey, ss[len(ss)-1].BaseKey)
		}
		devs, err := tx.SessionDevices("bob")
		if len(devs) != 2 {
			t.Errorf("devices %v", devs)
		}
		return err
	})
	// Updating an old session's state does not make it the current one;
	// PutSession does.
	update(t, db, func(tx *Tx) error {
		if err := tx.UpdateSessionState(&Session{Handle: "bob", Device: 1, BaseKey: []byte{3}, State: []byte{33}}); err != nil {
			return err
		}
		ss, _ := tx.Sessions("bob", 1)
		if ss[0].BaseKey[0] != 5 {
			t.Errorf("current after update: %v", ss[0].BaseKey)
		}
		if err := tx.PutSession(&Session{Handle: "bob", Device: 1, BaseKey: []byte{2}, State: []byte{22}}); err != nil {
			return err
		}
		ss, _ = tx.Sessions("bob", 1)
		if ss[0].BaseKey[0] != 2 || ss[0].State[0] != 22 {
			t.Errorf("current after put: %v", ss[0])
		}
		return nil
	})
	update(t, db, func(tx *Tx) error { return tx.DeleteSessions("bob", 1) })
	view(t, db, func(tx *Tx) error {
		devs, err := tx.SessionDevices("bob")
		if len(devs) != 1 || devs[0] != 2 {
			t.Errorf("devices after delete: %v", devs)
		}
		return err
	})
	update(t, db, func(tx *Tx) error { return tx.DeleteSessions("bob", 0) })
	view(t, db, func(tx *Tx) error {
		devs, err := tx.SessionDevices("bob")
		if len(devs) != 0 {
			t.Errorf("devices after delete all: %v", devs)
		}
		return err
	})
}

func TestPeersAndContacts(t *testing.T) {
	db, _ := open(t)
	p := &Peer{Handle: "bob", PinnedKey: []byte{1}, CurrentKey: []byte{2}, DeviceList: []byte{3}, ListVersion: 4, Verified: true, KeyChanged: true}
	update(t, db, func(tx *Tx) error { return tx.PutPeer(p) })
	view(t, db, func(tx *Tx) error {
		got, err := tx.Peer("bob")
		if err != nil {
			return err
		}
		if !bytes.Equal(got.PinnedKey, []byte{1}) || !bytes.Equal(got.CurrentKey, []byte{2}) || got.ListVersion != 4 || !got.Verified || !got.KeyChanged {
			t.Errorf("peer %+v", got)
		}
		if _, err := tx.Peer("carol"); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown peer: %v", err)
		}
		return nil
	})
	update(t, db, func(tx *Tx) error {
		for h, s := range map[string]string{"bob": StateContact, "carol": StateBlocked, "dave": StateRejected} {
			if err := tx.SetContact(h, s); err != nil {
				return err
			}
		}
		return tx.SetContact("dave", "")
	})
	view(t, db, func(tx *Tx) error {
		cs, err := tx.Contacts()
		if len(cs) != 2 || cs[0].Handle != "bob" || cs[1].State != StateBlocked {
			t.Errorf("contacts %+v", cs)
		}
		return err
	})
	if err := db.Update(context.Background(), func(tx *Tx) error { return tx.SetContact("eve", "friend") }); err == nil {
		t.Error("an unknown state was stored")
	}
	update(t, db, func(tx *Tx) error { return tx.ClearContacts() })
	view(t, db, func(tx *Tx) error {
		cs, err := tx.Contacts()
		if len(cs) != 0 {
			t.Errorf("after clear %+v", cs)
		}
		return err
	})
}

func TestMessages(t *testing.T) {
	db, _ := open(t)
	now := time.UnixMilli(time.Now().UnixMilli())
	msgs := []*Message{
		{ID: "01", Peer: "bob", Sender: "alice", Device: 1, SentAt: now, ReceivedAt: now, Text: "hi bob", Outgoing: true, Status: StatusSending},
		{ID: "02", Peer: "bob", Sender: "bob", Device: 5, SentAt: now, ReceivedAt: now, Text: "hi alice", Status: StatusReceived},
		{ID: "03", Peer: "carol", Sender: "carol", Device: 6, SentAt: now, ReceivedAt: now, Text: "hello?", Status: StatusReceived, Request: true},
		{ID: "04", Peer: "carol", Sender: "carol", Device: 6, SentAt: now, ReceivedAt: now, Text: "anyone?", Status: StatusReceived, Request: true},
		{ID: "05", Peer: "bob", Sender: "bob", Device: 5, SentAt: now, ReceivedAt: now, Text: "there?", Status: StatusReceived},
	}
	update(t, db, func(tx *Tx) error {
		for _, m := range msgs {
			ok, err := tx.InsertMessage(m)
			if err != nil {
				return err
			}
			if !ok || m.Seq == 0 {
				t.Errorf("insert %s: %v seq %d", m.ID, ok, m.Seq)
			}
		}
		// The same (peer, sender, id) is stored once; the same id from
		// another sender is a different message.
		dup := *msgs[1]
		if ok, err := tx.InsertMessage(&dup); ok || err != nil {
			t.Errorf("duplicate insert: %v %v", ok, err)
		}
		other := *msgs[1]
		other.Sender, other.Outgoing = "alice", true
		if ok, err := tx.InsertMessage(&other); !ok || err != nil {
			t.Errorf("same id from another sender: %v %v", ok, err)
		}
		return nil
	})
	view(t, db, func(tx *Tx) error {
		h, err := tx.History("bob", 0)
		if err != nil {
			return err
		}
		if len(h) != 4 || h[0].ID != "01" || h[3].Sender != "alice" {
			t.Errorf("history %v", h)
		}
		h, _ = tx.History("bob", 2)
		if len(h) != 2 || h[0].ID != "05" {
			t.Errorf("history limit 2: first %v", h[0])
		}
		if h[0].Text != "there?" || !h[0].SentAt.Equal(now) {
			t.Errorf("fields %+v", h[0])
		}
		return nil
	})
	update(t, db, func(tx *Tx) error {
		if err := tx.MarkSent("01"); err != nil {
			return err
		}
		ch, err := tx.RaiseStatus("bob", true, []string{"01", "zz"}, StatusRead)
		if len(ch) != 1 {
			t.Errorf("raised %v", ch)
		}
		// Backwards is ignored.
		ch, _ = tx.RaiseStatus("bob", true, []string{"01"}, StatusDelivered)
		if len(ch) != 0 {
			t.Errorf("lowered %v", ch)
		}
		// A receipt from carol cannot touch bob's conversation.
		ch, _ = tx.RaiseStatus("carol", true, []string{"01"}, StatusRead)
		if len(ch) != 0 {
			t.Errorf("cross-conversation raise %v", ch)
		}
		return err
	})
	view(t, db, func(tx *Tx) error {
		m, err := tx.OutgoingMessage("01")
		if err != nil {
			return err
		}
		if m.Status != StatusRead {
			t.Errorf("status %v", m.Status)
		}
		un, _ := tx.UnreadIDs("bob")
		if len(un) != 2 {
			t.Errorf("unread %v", un)
		}
		cs, err := tx.Conversations()
		if err != nil {
			return err
		}
		if len(cs) != 2 || cs[0].Peer != "bob" || cs[0].Unread != 2 || cs[0].Request || cs[1].Unread != 2 || !cs[1].Request {
			t.Errorf("conversations %+v %+v", cs[0], cs[1])
		}
		rs, err := tx.Requests()
		if len(rs) != 1 || rs[0].Handle != "carol" || rs[0].Messages != 2 || !rs[0].First.Equal(now) {
			t.Errorf("requests %+v", rs)
		}
		return err
	})
	update(t, db, func(tx *Tx) error {
		if _, err := tx.RaiseStatus("bob", false, []string{"02", "05"}, StatusRead); err != nil {
			return err
		}
		return tx.SetRequest("carol", false)
	})
	view(t, db, func(tx *Tx) error {
		un, _ := tx.UnreadIDs("bob")
		rs, err := tx.Requests()
		if len(un) != 0 || len(rs) != 0 {
			t.Errorf("after read/accept: unread %v requests %v", un, rs)
		}
		return err
	})
	update(t, db, func(tx *Tx) error {
		if err := tx.SetRequest("carol", true); err != nil {
			return err
		}
		return tx.DeleteRequestMessages("carol")
	})
	view(t, db, func(tx *Tx) error {
		h, err := tx.History("carol", 0)
		if len(h) != 0 {
			t.Errorf("rejected request kept %v", h)
		}
		return err
	})
}

func TestSeenAndOutbox(t *testing.T) {
	db, _ := open(t)
	old := time.Now().Add(-time.Hour)
	update(t, db, func(tx *Tx) error {
		if err := tx.MarkSeen("bob", "aa", old); err != nil {
			return err
		}
		if err := tx.MarkSeen("bob", "aa", time.Now()); err != nil { // again: no error
			return err
		}
		return tx.MarkSeen("bob", "bb", time.Now())
	})
	view(t, db, func(tx *Tx) error {
		for _, c := range []struct {
			sender, id string
			want       bool
		}{{"bob", "aa", true}, {"carol", "aa", false}, {"bob", "cc", false}} {
			got, err := tx.Seen(c.sender, c.id)
			if err != nil {
				return err
			}
			if got != c.want {
				t.Errorf("seen(%s,%s) = %v", c.sender, c.id, got)
			}
		}
		return nil
	})
	update(t, db, func(tx *Tx) error { return tx.PruneSeen(old.Add(time.Minute)) })
	view(t, db, func(tx *Tx) error {
		a, _ := tx.Seen("bob", "aa")
		b, err := tx.Seen("bob", "bb")
		if a || !b {
			t.Errorf("after prune: aa %v bb %v", a, b)
		}
		return err
	})

	update(t, db, func(tx *Tx) error {
		if err := tx.PutOutbox(&OutboxItem{ID: "m1", To: "bob", Kind: 1, Content: []byte("x")}); err != nil {
			return err
		}
		return tx.PutOutbox(&OutboxItem{ID: "r1", To: "bob", Kind: 2, Content: []byte("y"), Refs: 1})
	})
	update(t, db, func(tx *Tx) error {
		o, err := tx.MergeableOutbox("bob", 2, 50)
		if err != nil {
			return err
		}
		if o.ID != "r1" {
			t.Errorf("mergeable %v", o.ID)
		}
		if _, err := tx.MergeableOutbox("bob", 2, 1); !errors.Is(err, ErrNotFound) {
			t.Errorf("full item mergeable: %v", err)
		}
		if err := tx.AttemptOutbox("r1"); err != nil {
			return err
		}
		if _, err := tx.MergeableOutbox("bob", 2, 50); !errors.Is(err, ErrNotFound) {
			t.Errorf("attempted item mergeable: %v", err)
		}
		return nil
	})
	view(t, db, func(tx *Tx) error {
		all, err := tx.Outbox()
		if len(all) != 2 || all[0].ID != "m1" || all[1].Attempts != 1 {
			t.Errorf("outbox %+v", all)
		}
		return err
	})
	update(t, db, func(tx *Tx) error { return tx.DeleteOutbox("m1") })
	view(t, db, func(tx *Tx) error {
		if _, err := tx.OutboxItem("m1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted item: %v", err)
		}
		return nil
	})
}

// Two handles on one file (two processes of the same device) serialise
// their read-modify-write transactions: no increment is lost.
func TestUpdateSerialisesWriters(t *testing.T) {
	db1, path := open(t)
	db2, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	update(t, db1, func(tx *Tx) error { return tx.PutSetting("n", "0") })
	var wg sync.WaitGroup
	const per = 25
	for _, db := range []*DB{db1, db2, db1, db2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				err := db.Update(context.Background(), func(tx *Tx) error {
					v, err := tx.Setting("n", "0")
					if err != nil {
						return err
					}
					var n int
					fmt.Sscan(v, &n)
					return tx.PutSetting("n", fmt.Sprint(n+1))
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	view(t, db1, func(tx *Tx) error {
		v, err := tx.Setting("n", "")
		if v != fmt.Sprint(4*per) {
			t.Errorf("counter %s, want %d", v, 4*per)
		}
		return err
	})
}
