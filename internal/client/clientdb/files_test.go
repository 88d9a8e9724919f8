package clientdb

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Every connection deletes securely: freed space is zeroed.
func TestSecureDelete(t *testing.T) {
	db, _ := open(t)
	// Several connections of the pool.
	conns := make([]*sql.Conn, 3)
	for i := range conns {
		c, err := db.sql.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	for _, c := range conns {
		var on int
		if err := c.QueryRowContext(context.Background(), "PRAGMA secure_delete").Scan(&on); err != nil || on != 1 {
			t.Fatalf("secure_delete = %d, %v", on, err)
		}
	}
}

// A version-1 database (before files) gains the new columns and tables,
// and its messages read as text messages that do not vanish.
func TestMigrationFromVersion1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db")
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(migrations[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`PRAGMA user_version = 1`); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`INSERT INTO messages (id, peer, sender, device, sent_at, received_at, body, outgoing, status) VALUES ('m1', 'bob', 'bob', 1, 1, 2, 'old', 0, 3)`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	view(t, db, func(tx *Tx) error {
		h, err := tx.History("bob", 0)
		if err != nil || len(h) != 1 || h[0].Kind != kindText || h[0].Timer != 0 || !h[0].ExpiresAt.IsZero() {
			t.Fatalf("history after migrating: %+v, %v", h, err)
		}
		return nil
	})
}

func TestUploadsAndAttachments(t *testing.T) {
	db, _ := open(t)
	u := &Upload{ID: "u1", Peer: "bob", Source: "/x/a.jpg", SourceSize: 10, SourceMtime: time.UnixMicro(1700000000123456),
		PlainPath: "/h/tmp/u1", PlainSize: 8, Temp: true, Key: bytes.Repeat([]byte{1}, 32), SHA256: bytes.Repeat([]byte{2}, 32),
		Size: 24, MediaType: "image/jpeg", Name: "a.jpg", Caption: "hi", ViewOnce: true}
	update(t, db, func(tx *Tx) error { return tx.PutUpload(u) })
	view(t, db, func(tx *Tx) error {
		got, err := tx.Upload("u1")
		if err != nil || !got.SourceMtime.Equal(u.SourceMtime) || !got.Temp || !got.ViewOnce || got.Caption != "hi" || got.Size != 24 {
			t.Fatalf("upload %+v, %v", got, err)
		}
		all, err := tx.Uploads()
		if err != nil || len(all) != 1 {
			t.Fatalf("uploads %d, %v", len(all), err)
		}
		return nil
	})
	update(t, db, func(tx *Tx) error { return tx.DeleteUpload("u1") })
	view(t, db, func(tx *Tx) error {
		if _, err := tx.Upload("u1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("deleted upload: %v", err)
		}
		return nil
	})

	m := &Message{ID: "m1", Peer: "bob", Sender: "bob", Device: 1, SentAt: time.UnixMilli(5), Text: "caption", Status: StatusReceived, Timer: 60}
	update(t, db, func(tx *Tx) error {
		if _, err := tx.InsertMessage(m); err != nil {
			return err
		}
		return tx.PutAttachment(&Attachment{Msg: m.Seq, BlobID: "b", Key: []byte{1}, SHA256: []byte{2}, Size: 17, PlainSize: 1,
			MediaType: "text/plain", Name: "n.txt", State: AttachPending})
	})
	view(t, db, func(tx *Tx) error {
		as, ms, err := tx.Attachments(AttachPending, AttachSaved)
		if err != nil || len(as) != 1 || ms[0].ID != "m1" || as[0].Name != "n.txt" {
			t.Fatalf("attachments %v %v %v", as, ms, err)
		}
		got, err := tx.MessageByID("m1")
		if err != nil || got.Seq != m.Seq || got.Timer != 60 {
			t.Fatalf("message by id %+v %v", got, err)
		}
		return nil
	})

	// Reading starts the clock of the vanishing message; then it expires.
	now := time.Now()
	update(t, db, func(tx *Tx) error { return tx.StartExpiry("bob", []string{"m1"}, now) })
	view(t, db, func(tx *Tx) error {
		next, err := tx.NextExpiry()
		if err != nil || next.UnixMilli() != now.Add(time.Minute).UnixMilli() {
			t.Fatalf("next expiry %v, %v", next, err)
		}
		if ex, err := tx.Expired(now); err != nil || len(ex) != 0 {
			t.Fatalf("expired too early: %v %v", ex, err)
		}
		ex, err := tx.Expired(now.Add(2 * time.Minute))
		if err != nil || len(ex) != 1 {
			t.Fatalf("expired: %v %v", ex, err)
		}
		return nil
	})
	// A second read does not restart it.
	update(t, db, func(tx *Tx) error { return tx.StartExpiry("bob", []string{"m1"}, now.Add(time.Hour)) })
	update(t, db, func(tx *Tx) error { return tx.DeleteMessage(m.Seq, m.ID) })
	view(t, db, func(tx *Tx) error {
		if _, err := tx.AttachmentOf(m.Seq); !errors.Is(err, ErrNotFound) {
			t.Fatalf("attachment after delete: %v", err)
		}
		if next, err := tx.NextExpiry(); err != nil || !next.IsZero() {
			t.Fatalf("next expiry after delete: %v %v", next, err)
		}
		return nil
	})
}

// After deleting a message and purging the log, no file of the database
// holds its text.
func TestDeletedTextLeavesNoPage(t *testing.T) {
	db, path := open(t)
	secret := []byte("SECRET-TEXT-THAT-MUST-GO-a81f")
	var seq int64
	update(t, db, func(tx *Tx) error {
		m := &Message{ID: "m1", Peer: "bob", Sender: "bob", Device: 1, Text: string(secret), Status: StatusReceived}
		_, err := tx.InsertMessage(m)
		seq = m.Seq
		return err
	})
	for i := range 50 { // more rows, so the page is shared and stays
		update(t, db, func(tx *Tx) error {
			_, err := tx.InsertMessage(&Message{ID: string(rune('a'+i%26)) + "x", Peer: "carol", Sender: "carol", Device: 1, Text: "other text", Status: StatusReceived})
			return err
		})
	}
	if ok, err := db.PurgeWAL(context.Background()); err != nil || !ok {
		t.Fatalf("purge: %v %v", ok, err)
	}
	if b, _ := os.ReadFile(path); !bytes.Contains(b, secret) {
		t.Fatal("the scan does not see the text in the database (control)")
	}
	update(t, db, func(tx *Tx) error { return tx.DeleteMessage(seq, "m1") })
	if ok, err := db.PurgeWAL(context.Background()); err != nil || !ok {
		t.Fatalf("purge: %v %v", ok, err)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if b, _ := os.ReadFile(path + suffix); bytes.Contains(b, secret) {
			t.Errorf("%s still holds the deleted text", filepath.Base(path+suffix))
		}
	}
}
