package clientdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Content kinds of history rows (the values of content.Kind).
const (
	kindText  = 1
	KindTimer = 7 // a change of the conversation's vanishing timer
)

// migrationFiles is migration 2: files and vanishing messages.
//
// messages gains the content kind, the vanishing timer and the time the
// message vanishes here. attachments holds the file of a message (key,
// hash, where it was saved); uploads an outgoing file until its message is
// sent (so a killed client resumes it); timers each conversation's
// vanishing timer.
const migrationFiles = `
ALTER TABLE messages ADD COLUMN kind INTEGER NOT NULL DEFAULT 1;
ALTER TABLE messages ADD COLUMN timer INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0;
CREATE INDEX messages_expires ON messages (expires_at) WHERE expires_at > 0;
CREATE INDEX messages_id ON messages (id);
CREATE TABLE attachments (
	msg        INTEGER PRIMARY KEY REFERENCES messages (seq) ON DELETE CASCADE,
	blob_id    TEXT NOT NULL,
	file_key   BLOB NOT NULL,
	sha256     BLOB NOT NULL,
	size       INTEGER NOT NULL,
	plain_size INTEGER NOT NULL,
	media_type TEXT NOT NULL,
	name       TEXT NOT NULL,
	view_once  INTEGER NOT NULL,
	state      TEXT NOT NULL,
	path       TEXT NOT NULL DEFAULT '',
	partial    TEXT NOT NULL DEFAULT '',
	error      TEXT NOT NULL DEFAULT '',
	claimed    INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE uploads (
	id            TEXT PRIMARY KEY,
	peer          TEXT NOT NULL,
	source        TEXT NOT NULL,
	source_size   INTEGER NOT NULL,
	source_mtime  INTEGER NOT NULL,
	plain_path    TEXT NOT NULL,
	plain_size    INTEGER NOT NULL,
	temp          INTEGER NOT NULL,
	keep_metadata INTEGER NOT NULL,
	file_key      BLOB NOT NULL,
	sha256        BLOB NOT NULL,
	size          INTEGER NOT NULL,
	blob_id       TEXT NOT NULL DEFAULT '',
	media_type    TEXT NOT NULL,
	name          TEXT NOT NULL,
	caption       TEXT NOT NULL,
	view_once     INTEGER NOT NULL,
	created       INTEGER NOT NULL
);
CREATE TABLE timers (
	peer    TEXT PRIMARY KEY,
	seconds INTEGER NOT NULL,
	set_at  INTEGER NOT NULL
);
`

// Attachment states.
const (
	AttachPending  = "pending"  // not downloaded yet (or a download to resume: Partial)
	AttachSaved    = "saved"    // downloaded and checked: Path
	AttachFailed   = "failed"   // the download failed for good (Error)
	AttachOpened   = "opened"   // view-once media that was opened: the file is gone
	AttachSent     = "sent"     // sent from this device: the file is the user's own
	AttachRelease  = "release"  // view-once media sent from another own device: tell the server, never download
	AttachReleased = "released" // the same, told
)

// Attachment is the file of a history message.
type Attachment struct {
	Msg       int64 // the message's Seq
	BlobID    string
	Key       []byte
	SHA256    []byte
	Size      int64 // ciphertext bytes
	PlainSize int64
	MediaType string
	Name      string
	ViewOnce  bool
	State     string
	Path      string // the file parley wrote (saved, or view-once waiting to be opened)
	Partial   string // a download in progress
	Error     string
	Claimed   bool // the server was told this device is done with the blob
}

const attachmentCols = `msg, blob_id, file_key, sha256, size, plain_size, media_type, name, view_once, state, path, partial, error, claimed`

func scanAttachment(sc interface{ Scan(...any) error }) (*Attachment, error) {
	var a Attachment
	var viewOnce, claimed int
	if err := sc.Scan(&a.Msg, &a.BlobID, &a.Key, &a.SHA256, &a.Size, &a.PlainSize, &a.MediaType, &a.Name,
		&viewOnce, &a.State, &a.Path, &a.Partial, &a.Error, &claimed); err != nil {
		return nil, err
	}
	a.ViewOnce, a.Claimed = viewOnce != 0, claimed != 0
	return &a, nil
}

// PutAttachment stores (or replaces) a message's attachment.
func (tx *Tx) PutAttachment(a *Attachment) error {
	_, err := tx.q.ExecContext(tx.ctx, `INSERT OR REPLACE INTO attachments (`+attachmentCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		a.Msg, a.BlobID, a.Key, a.SHA256, a.Size, a.PlainSize, a.MediaType, a.Name, b2i(a.ViewOnce), a.State,
		a.Path, a.Partial, a.Error, b2i(a.Claimed))
	return wrap("put attachment", err)
}

// AttachmentOf returns the attachment of the message with Seq msg, or
// ErrNotFound.
func (tx *Tx) AttachmentOf(msg int64) (*Attachment, error) {
	a, err := scanAttachment(tx.q.QueryRowContext(tx.ctx, `SELECT `+attachmentCols+` FROM attachments WHERE msg = ?`, msg))
	if err != nil {
		return nil, wrap("attachment", err)
	}
	return a, nil
}

// MessageByID returns the newest history message with id (a message id
// is the same on every device; ids are random, so one id is one message),
// or ErrNotFound.
func (tx *Tx) MessageByID(id string) (*Message, error) {
	m, err := scanMessage(tx.q.QueryRowContext(tx.ctx, `SELECT `+messageCols+` FROM messages WHERE id = ? ORDER BY seq DESC LIMIT 1`, id))
	if err != nil {
		return nil, wrap("message", err)
	}
	return m, nil
}

// Attachments returns the attachments in one of the states, oldest message
// first, with their messages.
func (tx *Tx) Attachments(states ...string) ([]*Attachment, []*Message, error) {
	if len(states) == 0 {
		return nil, nil, nil
	}
	q := `SELECT a.msg FROM attachments a WHERE a.state IN (?` + strings.Repeat(", ?", len(states)-1) + `) ORDER BY a.msg`
	args := make([]any, len(states))
	for i, s := range states {
		args[i] = s
	}
	return tx.attachments(q, args...)
}

// AttachmentsToDo returns the attachments a device still has work on:
// pending downloads, view-once media sent from another own device to
// release, and saved files whose server was not told yet; oldest first.
func (tx *Tx) AttachmentsToDo() ([]*Attachment, []*Message, error) {
	return tx.attachments(`SELECT msg FROM attachments WHERE state IN (?, ?) OR (state = ? AND claimed = 0) ORDER BY msg`,
		AttachPending, AttachRelease, AttachSaved)
}

// attachments runs a query of attachment message seqs and loads each.
func (tx *Tx) attachments(q string, args ...any) ([]*Attachment, []*Message, error) {
	rows, err := tx.q.QueryContext(tx.ctx, q, args...)
	if err != nil {
		return nil, nil, wrap("attachments", err)
	}
	var seqs []int64
	for rows.Next() {
		var s int64
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return nil, nil, wrap("attachments", err)
		}
		seqs = append(seqs, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, wrap("attachments", err)
	}
	var as []*Attachment
	var ms []*Message
	for _, s := range seqs {
		a, err := tx.AttachmentOf(s)
		if err != nil {
			return nil, nil, err
		}
		m, err := scanMessage(tx.q.QueryRowContext(tx.ctx, `SELECT `+messageCols+` FROM messages WHERE seq = ?`, s))
		if err != nil {
			return nil, nil, wrap("attachments", err)
		}
		as, ms = append(as, a), append(ms, m)
	}
	return as, ms, nil
}

// Upload is an outgoing file on its way: kept from the first byte
// encrypted until its message is queued, so that a killed client resumes
// the upload where the server's copy ends.
type Upload struct {
	ID           string // the message id it will be sent with
	Peer         string
	Source       string // the file the user named (absolute)
	SourceSize   int64
	SourceMtime  time.Time
	PlainPath    string // what is encrypted: Source, or a copy without metadata
	PlainSize    int64
	Temp         bool // PlainPath is a copy in the home, removed when done
	KeepMetadata bool
	Key          []byte
	SHA256       []byte // of the whole ciphertext
	Size         int64  // ciphertext bytes
	BlobID       string // "" until the server created the blob
	MediaType    string
	Name         string
	Caption      string
	ViewOnce     bool
	Created      time.Time
}

const uploadCols = `id, peer, source, source_size, source_mtime, plain_path, plain_size, temp, keep_metadata, file_key, sha256, size, blob_id, media_type, name, caption, view_once, created`

func scanUpload(sc interface{ Scan(...any) error }) (*Upload, error) {
	var u Upload
	var mtime, created int64
	var temp, keep, viewOnce int
	if err := sc.Scan(&u.ID, &u.Peer, &u.Source, &u.SourceSize, &mtime, &u.PlainPath, &u.PlainSize, &temp, &keep,
		&u.Key, &u.SHA256, &u.Size, &u.BlobID, &u.MediaType, &u.Name, &u.Caption, &viewOnce, &created); err != nil {
		return nil, err
	}
	u.SourceMtime, u.Created = time.UnixMicro(mtime), FromUnixMS(created)
	u.Temp, u.KeepMetadata, u.ViewOnce = temp != 0, keep != 0, viewOnce != 0
	return &u, nil
}

// PutUpload stores (or replaces) an upload.
func (tx *Tx) PutUpload(u *Upload) error {
	if u.Created.IsZero() {
		u.Created = time.Now()
	}
	_, err := tx.q.ExecContext(tx.ctx, `INSERT OR REPLACE INTO uploads (`+uploadCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.Peer, u.Source, u.SourceSize, u.SourceMtime.UnixMicro(), u.PlainPath, u.PlainSize, b2i(u.Temp), b2i(u.KeepMetadata),
		u.Key, u.SHA256, u.Size, u.BlobID, u.MediaType, u.Name, u.Caption, b2i(u.ViewOnce), UnixMS(u.Created))
	return wrap("put upload", err)
}

// Upload returns an upload by id, or ErrNotFound.
func (tx *Tx) Upload(id string) (*Upload, error) {
	u, err := scanUpload(tx.q.QueryRowContext(tx.ctx, `SELECT `+uploadCols+` FROM uploads WHERE id = ?`, id))
	if err != nil {
		return nil, wrap("upload", err)
	}
	return u, nil
}

// Uploads returns every unfinished upload, oldest first.
func (tx *Tx) Uploads() ([]*Upload, error) {
	rows, err := tx.q.QueryContext(tx.ctx, `SELECT `+uploadCols+` FROM uploads ORDER BY created, id`)
	if err != nil {
		return nil, wrap("uploads", err)
	}
	defer rows.Close()
	var out []*Upload
	for rows.Next() {
		u, err := scanUpload(rows)
		if err != nil {
			return nil, wrap("uploads", err)
		}
		out = append(out, u)
	}
	return out, wrap("uploads", rows.Err())
}

// DeleteUpload forgets an upload.
func (tx *Tx) DeleteUpload(id string) error {
	_, err := tx.q.ExecContext(tx.ctx, `DELETE FROM uploads WHERE id = ?`, id)
	return wrap("delete upload", err)
}

// Timer returns a conversation's vanishing timer in seconds (0: off) and
// the sender's time of the change that set it.
func (tx *Tx) Timer(peer string) (seconds uint32, setAt time.Time, err error) {
	var at int64
	err = tx.q.QueryRowContext(tx.ctx, `SELECT seconds, set_at FROM timers WHERE peer = ?`, peer).Scan(&seconds, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, wrap("timer", err)
	}
	return seconds, FromUnixMS(at), nil
}

// PutTimer sets a conversation's vanishing timer.
func (tx *Tx) PutTimer(peer string, seconds uint32, setAt time.Time) error {
	_, err := tx.q.ExecContext(tx.ctx, `INSERT OR REPLACE INTO timers (peer, seconds, set_at) VALUES (?, ?, ?)`, peer, seconds, UnixMS(setAt))
	return wrap("put timer", err)
}

// StartExpiry starts the clock of the received vanishing messages of
// conversation peer with the given ids that were not counting yet: each
// vanishes its timer after now.
func (tx *Tx) StartExpiry(peer string, ids []string, now time.Time) error {
	for _, id := range ids {
		_, err := tx.q.ExecContext(tx.ctx, `UPDATE messages SET expires_at = ? + timer * 1000
			WHERE peer = ? AND id = ? AND outgoing = 0 AND kind = ? AND timer > 0 AND expires_at = 0`,
			UnixMS(now), peer, id, kindText)
		if err != nil {
			return wrap("start expiry", err)
		}
	}
	return nil
}

// Expired returns the messages whose time to vanish has come (expires_at
// <= now).
func (tx *Tx) Expired(now time.Time) ([]*Message, error) {
	return tx.messages(`SELECT `+messageCols+` FROM messages WHERE expires_at > 0 AND expires_at <= ? ORDER BY seq`, UnixMS(now))
}

// NextExpiry returns when the next message vanishes, or zero if none is
// counting.
func (tx *Tx) NextExpiry() (time.Time, error) {
	var at sql.NullInt64
	if err := tx.q.QueryRowContext(tx.ctx, `SELECT MIN(expires_at) FROM messages WHERE expires_at > 0`).Scan(&at); err != nil {
		return time.Time{}, wrap("next expiry", err)
	}
	return FromUnixMS(at.Int64), nil
}

// DeleteMessage deletes a history message with its attachment row and any
// outbox item with its id (a vanishing message that never left). Files
// are the caller's to remove.
func (tx *Tx) DeleteMessage(seq int64, id string) error {
	if _, err := tx.q.ExecContext(tx.ctx, `DELETE FROM attachments WHERE msg = ?`, seq); err != nil {
		return wrap("delete message", err)
	}
	if _, err := tx.q.ExecContext(tx.ctx, `DELETE FROM reactions WHERE msg_id = ?`, id); err != nil {
		return wrap("delete message", err)
	}
	if _, err := tx.q.ExecContext(tx.ctx, `DELETE FROM messages WHERE seq = ?`, seq); err != nil {
		return wrap("delete message", err)
	}
	_, err := tx.q.ExecContext(tx.ctx, `DELETE FROM outbox WHERE id = ?`, id)
	return wrap("delete message", err)
}

// Tombstone empties the history message seq (id) of its text, timer and
// attachment row, sets its kind to kind, and drops an outbox item with its
// id (a message deleted before it left). Files are the caller's to remove.
func (tx *Tx) Tombstone(seq int64, id string, kind uint8) error {
	if _, err := tx.q.ExecContext(tx.ctx, `DELETE FROM attachments WHERE msg = ?`, seq); err != nil {
		return wrap("tombstone", err)
	}
	if _, err := tx.q.ExecContext(tx.ctx, `DELETE FROM reactions WHERE msg_id = ?`, id); err != nil {
		return wrap("tombstone", err)
	}
	if _, err := tx.q.ExecContext(tx.ctx, `UPDATE messages SET body = '', kind = ?, timer = 0, expires_at = 0 WHERE seq = ?`, kind, seq); err != nil {
		return wrap("tombstone", err)
	}
	_, err := tx.q.ExecContext(tx.ctx, `DELETE FROM outbox WHERE id = ?`, id)
	return wrap("tombstone", err)
}

// PurgeWAL copies the write-ahead log into the database and truncates it
// to zero bytes, so that pages of deleted rows (which secure_delete zeroes
// in the database file) do not survive as old copies in the log. It
// reports false when another connection kept it from completing (retry
// later).
func (db *DB) PurgeWAL(ctx context.Context) (bool, error) {
	var busy, logFrames, done int
	if err := db.sql.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &done); err != nil {
		return false, fmt.Errorf("clientdb: checkpoint: %w", err)
	}
	return busy == 0, nil
}

// HistoryExport returns every text message and timer change, oldest
// first, each with its attachment (nil if it has none), for a device just
// linked (internal/client/history.go).
func (tx *Tx) HistoryExport() ([]*Message, []*Attachment, error) {
	ms, err := tx.messages(`SELECT `+messageCols+` FROM messages WHERE kind IN (?, ?) ORDER BY seq`, kindText, KindTimer)
	if err != nil {
		return nil, nil, err
	}
	as := make([]*Attachment, len(ms))
	rows, err := tx.q.QueryContext(tx.ctx, `SELECT `+attachmentCols+` FROM attachments`)
	if err != nil {
		return nil, nil, wrap("attachments", err)
	}
	defer rows.Close()
	bySeq := map[int64]*Attachment{}
	for rows.Next() {
		a, err := scanAttachment(rows)
		if err != nil {
			return nil, nil, wrap("attachments", err)
		}
		bySeq[a.Msg] = a
	}
	if err := rows.Err(); err != nil {
		return nil, nil, wrap("attachments", err)
	}
	for i, m := range ms {
		as[i] = bySeq[m.Seq]
	}
	return ms, as, nil
}
