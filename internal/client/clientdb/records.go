package clientdb

import (
	"database/sql"
	"errors"
	"strings"
	"time"
)

// Account is this device's account: the account key seed, the device's
// own keys and the server it talks to.
type Account struct {
	Handle       string
	AccountSeed  []byte // 32 bytes, identity.AccountKeyFromSeed
	DeviceID     uint32
	DeviceKey    []byte // identity.DeviceKey.MarshalBinary
	Server       string
	NextPrekeyID uint32
	Created      time.Time
}

// Account returns the account, or ErrNotFound before registration.
func (tx *Tx) Account() (*Account, error) {
	var a Account
	var created int64
	err := tx.q.QueryRowContext(tx.ctx, `SELECT handle, account_seed, device_id, device_key, server, next_prekey_id, created FROM account WHERE id = 1`).
		Scan(&a.Handle, &a.AccountSeed, &a.DeviceID, &a.DeviceKey, &a.Server, &a.NextPrekeyID, &created)
	if err != nil {
		return nil, wrap("account", err)
	}
	a.Created = FromUnixMS(created)
	return &a, nil
}

// PutAccount stores the account (replacing it).
func (tx *Tx) PutAccount(a *Account) error {
	_, err := tx.q.ExecContext(tx.ctx, `INSERT OR REPLACE INTO account (id, handle, account_seed, device_id, device_key, server, next_prekey_id, created) VALUES (1, ?, ?, ?, ?, ?, ?, ?)`,
		a.Handle, a.AccountSeed, a.DeviceID, a.DeviceKey, a.Server, a.NextPrekeyID, UnixMS(a.Created))
	return wrap("put account", err)
}

// SetServer changes the stored server URL.
func (tx *Tx) SetServer(server string) error {
	_, err := tx.q.ExecContext(tx.ctx, `UPDATE account SET server = ? WHERE id = 1`, server)
	return wrap("set server", err)
}

// AllocPrekeyIDs reserves n consecutive prekey ids and returns the first.
func (tx *Tx) AllocPrekeyIDs(n uint32) (uint32, error) {
	var next uint32
	if err := tx.q.QueryRowContext(tx.ctx, `SELECT next_prekey_id FROM account WHERE id = 1`).Scan(&next); err != nil {
		return 0, wrap("alloc prekey ids", err)
	}
	if next == 0 {
		next = 1
	}
	if uint64(next)+uint64(n) > 1<<32-1 {
		next = 1 // wrap around; ids that old are long used up
	}
	if _, err := tx.q.ExecContext(tx.ctx, `UPDATE account SET next_prekey_id = ? WHERE id = 1`, next+n); err != nil {
		return 0, wrap("alloc prekey ids", err)
	}
	return next, nil
}

// Setting returns a setting's value, or def when unset.
func (tx *Tx) Setting(key, def string) (string, error) {
	var v string
	err := tx.q.QueryRowContext(tx.ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return def, nil
	}
	if err != nil {
		return "", wrap("setting", err)
	}
	return v, nil
}

// PutSetting stores a setting.
func (tx *Tx) PutSetting(key, value string) error {
	_, err := tx.q.ExecContext(tx.ctx, `INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)`, key, value)
	return wrap("put setting", err)
}

// Token returns the cached auth token and its expiry, or ErrNotFound.
func (tx *Tx) Token() (string, time.Time, error) {
	var tok string
	var exp int64
	err := tx.q.QueryRowContext(tx.ctx, `SELECT token, expires FROM auth_token WHERE id = 1`).Scan(&tok, &exp)
	if err != nil {
		return "", time.Time{}, wrap("token", err)
	}
	return tok, FromUnixMS(exp), nil
}

// PutToken caches an auth token.
func (tx *Tx) PutToken(token string, expires time.Time) error {
	_, err := tx.q.ExecContext(tx.ctx, `INSERT OR REPLACE INTO auth_token (id, token, expires) VALUES (1, ?, ?)`, token, UnixMS(expires))
	return wrap("put token", err)
}

// DeleteToken forgets the cached token.
func (tx *Tx) DeleteToken() error {
	_, err := tx.q.ExecContext(tx.ctx, `DELETE FROM auth_token`)
	return wrap("delete token", err)
}

// Prekey is a private prekey with the public half and signature it was
// published with. Kind takes identity.Prekey* values.
type Prekey struct {
	ID        uint32
	Kind      byte
	Private   []byte
	Public    []byte
	Signature []byte
	Created   time.Time // when it was made (millisecond precision); PutPrekey stores now if zero
}

// PutPrekey stores a private prekey.
func (tx *Tx) PutPrekey(p *Prekey) error {
	created := p.Created
	if created.IsZero() {
		created = time.Now()
	}
	_, err := tx.q.ExecContext(tx.ctx, `INSERT OR REPLACE INTO prekeys (id, kind, private, public, signature, created) VALUES (?, ?, ?, ?, ?, ?)`,
		p.ID, p.Kind, p.Private, p.Public, p.Signature, UnixMS(created))
	return wrap("put prekey", err)
}

// Prekey returns the prekey with id, or ErrNotFound.
func (tx *Tx) Prekey(id uint32) (*Prekey, error) {
	p := Prekey{ID: id}
	var created int64
	err := tx.q.QueryRowContext(tx.ctx, `SELECT kind, private, public, signature, created FROM prekeys WHERE id = ?`, id).
		Scan(&p.Kind, &p.Private, &p.Public, &p.Signature, &created)
	if err != nil {
		return nil, wrap("prekey", err)
	}
	p.Created = FromUnixMS(created)
	return &p, nil
}

// PrekeysOfKind returns every prekey of kind, oldest first.
func (tx *Tx) PrekeysOfKind(kind byte) ([]*Prekey, error) {
	rows, err := tx.q.QueryContext(tx.ctx, `SELECT id, kind, private, public, signature, created FROM prekeys WHERE kind = ? ORDER BY created, id`, kind)
	if err != nil {
		return nil, wrap("prekeys", err)
	}
	defer rows.Close()
	var out []*Prekey
	for rows.Next() {
		var p Prekey
		var created int64
		if err := rows.Scan(&p.ID, &p.Kind, &p.Private, &p.Public, &p.Signature, &created); err != nil {
			return nil, wrap("prekeys", err)
		}
		p.Created = FromUnixMS(created)
		out = append(out, &p)
	}
	return out, wrap("prekeys", rows.Err())
}

// DeletePrekey deletes a prekey (a used one-time key).
func (tx *Tx) DeletePrekey(id uint32) error {
	_, err := tx.q.ExecContext(tx.ctx, `DELETE FROM prekeys WHERE id = ?`, id)
	return wrap("delete prekey", err)
}

// Session is a stored session with one remote device. Several may exist
// per device (both sides started one at once); the one used last is the
// one to send with.
type Session struct {
	Handle  string
	Device  uint32
	BaseKey []byte
	State   []byte // session.Session.MarshalBinary
	Used    int64  // ordering: higher was used later
}

// Sessions returns the sessions with a device, most recently used first.
func (tx *Tx) Sessions(handle string, device uint32) ([]*Session, error) {
	rows, err := tx.q.QueryContext(tx.ctx, `SELECT base_key, state, used FROM sessions WHERE handle = ? AND device = ? ORDER BY used DESC`, handle, device)
	if err != nil {
		return nil, wrap("sessions", err)
	}
	defer rows.Close()
	var out []*Session
	for rows.Next() {
		s := Session{Handle: handle, Device: device}
		if err := rows.Scan(&s.BaseKey, &s.State, &s.Used); err != nil {
			return nil, wrap("sessions", err)
		}
		out = append(out, &s)
	}
	return out, wrap("sessions", rows.Err())
}

// SessionDevices returns the devices of handle that have a session.
func (tx *Tx) SessionDevices(handle string) ([]uint32, error) {
	rows, err := tx.q.QueryContext(tx.ctx, `SELECT DISTINCT device FROM sessions WHERE handle = ? ORDER BY device`, handle)
	if err != nil {
		return nil, wrap("session devices", err)
	}
	defer rows.Close()
	var out []uint32
	for rows.Next() {
		var d uint32
		if err := rows.Scan(&d); err != nil {
			return nil, wrap("session devices", err)
		}
		out = append(out, d)
	}
	return out, wrap("session devices", rows.Err())
}

// maxSessionsPerDevice bounds how many old sessions are kept to decrypt
// late messages after both sides started sessions at once.
const maxSessionsPerDevice = 4

// PutSession stores s and marks it the most recently used session with
// its device; sessions beyond the newest few are deleted.
func (tx *Tx) PutSession(s *Session) error {
	var max int64
	if err := tx.q.QueryRowContext(tx.ctx, `SELECT COALESCE(MAX(used), 0) FROM sessions`).Scan(&max); err != nil {
		return wrap("put session", err)
	}
	s.Used = max + 1
	if _, err := tx.q.ExecContext(tx.ctx, `INSERT OR REPLACE INTO sessions (handle, device, base_key, state, used) VALUES (?, ?, ?, ?, ?)`,
		s.Handle, s.Device, s.BaseKey, s.State, s.Used); err != nil {
		return wrap("put session", err)
	}
	_, err := tx.q.ExecContext(tx.ctx, `DELETE FROM sessions WHERE handle = ? AND device = ? AND base_key NOT IN
		(SELECT base_key FROM sessions WHERE handle = ? AND device = ? ORDER BY used DESC LIMIT ?)`,
		s.Handle, s.Device, s.Handle, s.Device, maxSessionsPerDevice)
	return wrap("put session", err)
}

// UpdateSessionState stores a session's new state without changing which
// session is the most recent (for a late message of an older session).
func (tx *Tx) UpdateSessionState(s *Session) error {
	_, err := tx.q.ExecContext(tx.ctx, `UPDATE sessions SET state = ? WHERE handle = ? AND device = ? AND base_key = ?`,
		s.State, s.Handle, s.Device, s.BaseKey)
	return wrap("update session", err)
}

// DeleteSessions deletes every session with handle's device, or with all
// of handle's devices when device is 0.
func (tx *Tx) DeleteSessions(handle string, device uint32) error {
	var err error
	if device == 0 {
		_, err = tx.q.ExecContext(tx.ctx, `DELETE FROM sessions WHERE handle = ?`, handle)
	} else {
		_, err = tx.q.ExecContext(tx.ctx, `DELETE FROM sessions WHERE handle = ? AND device = ?`, handle, device)
	}
	return wrap("delete sessions", err)
}

// Peer is what this device knows about an account (the own one included):
// the identity key pinned on first sight, the latest key the server served,
// and the latest verified device list.
type Peer struct {
	Handle      string
	PinnedKey   []byte
	CurrentKey  []byte
	DeviceList  []byte // signed, verified against CurrentKey
	ListVersion uint64
	Verified    bool
	KeyChanged  bool
	Updated     time.Time
}

// Peer returns the peer with handle, or ErrNotFound.
func (tx *Tx) Peer(handle string) (*Peer, error) {
	p := Peer{Handle: handle}
	var updated int64
	var verified, changed int
	err := tx.q.QueryRowContext(tx.ctx, `SELECT pinned_key, current_key, device_list, list_version, verified, key_changed, updated FROM peers WHERE handle = ?`, handle).
		Scan(&p.PinnedKey, &p.CurrentKey, &p.DeviceList, &p.ListVersion, &verified, &changed, &updated)
	if err != nil {
		return nil, wrap("peer", err)
	}
	p.Verified, p.KeyChanged, p.Updated = verified != 0, changed != 0, FromUnixMS(updated)
	return &p, nil
}

// PutPeer stores p.
func (tx *Tx) PutPeer(p *Peer) error {
	_, err := tx.q.ExecContext(tx.ctx, `INSERT OR REPLACE INTO peers (handle, pinned_key, current_key, device_list, list_version, verified, key_changed, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		p.Handle, p.PinnedKey, p.CurrentKey, p.DeviceList, p.ListVersion, b2i(p.Verified), b2i(p.KeyChanged), UnixMS(time.Now()))
	return wrap("put peer", err)
}

// Contact states.
const (
	StateContact  = "contact"
	StateBlocked  = "blocked"
	StateRejected = "rejected"
)

// Contact is one entry of the contact list.
type Contact struct {
	Handle  string
	State   string
	Updated time.Time
}

// ContactState returns handle's state, or "" when it has none.
func (tx *Tx) ContactState(handle string) (string, error) {
	var s string
	err := tx.q.QueryRowContext(tx.ctx, `SELECT state FROM contacts WHERE handle = ?`, handle).Scan(&s)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return s, wrap("contact state", err)
}

// SetContact sets handle's state; "" deletes the entry.
func (tx *Tx) SetContact(handle, state string) error {
	var err error
	if state == "" {
		_, err = tx.q.ExecContext(tx.ctx, `DELETE FROM contacts WHERE handle = ?`, handle)
	} else {
		_, err = tx.q.ExecContext(tx.ctx, `INSERT OR REPLACE INTO contacts (handle, state, updated) VALUES (?, ?, ?)`, handle, state, UnixMS(time.Now()))
	}
	return wrap("set contact", err)
}

// Contacts returns every contact entry, by handle.
func (tx *Tx) Contacts() ([]Contact, error) {
	rows, err := tx.q.QueryContext(tx.ctx, `SELECT handle, state, updated FROM contacts ORDER BY handle`)
	if err != nil {
		return nil, wrap("contacts", err)
	}
	defer rows.Close()
	var out []Contact
	for rows.Next() {
		var c Contact
		var updated int64
		if err := rows.Scan(&c.Handle, &c.State, &updated); err != nil {
			return nil, wrap("contacts", err)
		}
		c.Updated = FromUnixMS(updated)
		out = append(out, c)
	}
	return out, wrap("contacts", rows.Err())
}

// ClearContacts deletes every contact entry.
func (tx *Tx) ClearContacts() error {
	_, err := tx.q.ExecContext(tx.ctx, `DELETE FROM contacts`)
	return wrap("clear contacts", err)
}

// Status is a message's state. Outgoing messages go Sending → Sent →
// Delivered → Read (Failed if the server refused them); incoming ones are
// Received, then Read. A status only moves forward.
type Status int

// Statuses, ordered.
const (
	StatusFailed    Status = 0
	StatusSending   Status = 1
	StatusSent      Status = 2
	StatusDelivered Status = 3 // outgoing: a device of the peer has it
	StatusReceived  Status = 3 // incoming: not read yet
	StatusRead      Status = 4
)

// Message is one entry of the history.
type Message struct {
	Seq        int64 // local order
	ID         string
	Peer       string // the conversation
	Sender     string
	Device     uint32
	SentAt     time.Time
	ReceivedAt time.Time
	Text       string
	Outgoing   bool
	Status     Status
	Request    bool
	// Kind is the content kind (content.KindText when 0); files.go.
	Kind uint8
	// Timer: a vanishing message's seconds to live once read (sent:
	// once sent); on a timer change (Kind 7), the new timer.
	Timer uint32
	// ExpiresAt is when the message vanishes here; zero: not counting.
	ExpiresAt time.Time
	// EditedAt is when its text was last replaced (the edit's sending
	// time); zero: never. Set by EditMessage only.
	EditedAt time.Time
	// ReplyTo is the id of the message this one answers; "": none.
	ReplyTo string
}

// EditMessage replaces the text of history message seq, as of editedAt.
func (tx *Tx) EditMessage(seq int64, text string, editedAt time.Time) error {
	_, err := tx.q.ExecContext(tx.ctx, `UPDATE messages SET body = ?, edited_at = ? WHERE seq = ?`, text, UnixMS(editedAt), seq)
	return wrap("edit message", err)
}

// InsertMessage stores m and sets m.Seq. inserted is false (and nothing
// changes) if a message with the same peer, sender and id exists.
func (tx *Tx) InsertMessage(m *Message) (inserted bool, err error) {
	return tx.insertMessage(m, nil)
}

// ImportMessages stores messages from another own device's history before
// every message here (their Seqs are below all others, in the order
// given: the history ends where this device's own messages begin), and
// returns how many were new (InsertMessage's rule).
func (tx *Tx) ImportMessages(ms []*Message) (added int, err error) {
	var lo int64
	if err := tx.q.QueryRowContext(tx.ctx, `SELECT COALESCE(MIN(seq), 1) FROM messages`).Scan(&lo); err != nil {
		return 0, wrap("import messages", err)
	}
	next := lo - int64(len(ms))
	for _, m := range ms {
		seq := next
		next++
		ok, err := tx.insertMessage(m, &seq)
		if err != nil {
			return added, err
		}
		if ok {
			added++
		}
	}
	return added, nil
}

// insertMessage is InsertMessage, at seq if not nil.
func (tx *Tx) insertMessage(m *Message, seq *int64) (inserted bool, err error) {
	kind := m.Kind
	if kind == 0 {
		kind = kindText
	}
	res, err := tx.q.ExecContext(tx.ctx, `INSERT OR IGNORE INTO messages (seq, id, peer, sender, device, sent_at, received_at, body, outgoing, status, request, kind, timer, expires_at, reply_to) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		seq, m.ID, m.Peer, m.Sender, m.Device, UnixMS(m.SentAt), UnixMS(m.ReceivedAt), m.Text, b2i(m.Outgoing), int(m.Status), b2i(m.Request),
		kind, m.Timer, UnixMS(m.ExpiresAt), m.ReplyTo)
	if err != nil {
		return false, wrap("insert message", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, wrap("insert message", err)
	}
	if n == 0 {
		return false, nil
	}
	m.Seq, err = res.LastInsertId()
	return true, wrap("insert message", err)
}

const messageCols = `seq, id, peer, sender, device, sent_at, received_at, body, outgoing, status, request, kind, timer, expires_at, edited_at, reply_to`

func scanMessage(sc interface{ Scan(...any) error }) (*Message, error) {
	var m Message
	var sent, recv, expires, edited int64
	var out, req, status int
	if err := sc.Scan(&m.Seq, &m.ID, &m.Peer, &m.Sender, &m.Device, &sent, &recv, &m.Text, &out, &status, &req, &m.Kind, &m.Timer, &expires, &edited, &m.ReplyTo); err != nil {
		return nil, err
	}
	m.SentAt, m.ReceivedAt, m.ExpiresAt, m.EditedAt = FromUnixMS(sent), FromUnixMS(recv), FromUnixMS(expires), FromUnixMS(edited)
	m.Outgoing, m.Request, m.Status = out != 0, req != 0, Status(status)
	return &m, nil
}

func (tx *Tx) messages(query string, args ...any) ([]*Message, error) {
	rows, err := tx.q.QueryContext(tx.ctx, query, args...)
	if err != nil {
		return nil, wrap("messages", err)
	}
	defer rows.Close()
	var out []*Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, wrap("messages", err)
		}
		out = append(out, m)
	}
	return out, wrap("messages", rows.Err())
}

// History returns the last limit messages with peer (all when limit <= 0),
// oldest first.
func (tx *Tx) History(peer string, limit int) ([]*Message, error) {
	if limit <= 0 {
		limit = -1
	}
	ms, err := tx.messages(`SELECT `+messageCols+` FROM messages WHERE peer = ? ORDER BY seq DESC LIMIT ?`, peer, limit)
	if err != nil {
		return nil, err
	}
	for i, j := 0, len(ms)-1; i < j; i, j = i+1, j-1 {
		ms[i], ms[j] = ms[j], ms[i]
	}
	return ms, nil
}

// OutgoingMessage returns an outgoing message by id, or ErrNotFound.
func (tx *Tx) OutgoingMessage(id string) (*Message, error) {
	m, err := scanMessage(tx.q.QueryRowContext(tx.ctx, `SELECT `+messageCols+` FROM messages WHERE id = ? AND outgoing = 1 ORDER BY seq LIMIT 1`, id))
	if err != nil {
		return nil, wrap("outgoing message", err)
	}
	return m, nil
}

// RaiseStatus moves the messages of conversation peer with the given ids
// (outgoing or incoming, as said) to status, if that is forward. It
// returns the ids that changed.
func (tx *Tx) RaiseStatus(peer string, outgoing bool, ids []string, status Status) ([]string, error) {
	var changed []string
	for _, id := range ids {
		res, err := tx.q.ExecContext(tx.ctx, `UPDATE messages SET status = ? WHERE peer = ? AND id = ? AND outgoing = ? AND status < ?`,
			int(status), peer, id, b2i(outgoing), int(status))
		if err != nil {
			return nil, wrap("raise status", err)
		}
		if n, _ := res.RowsAffected(); n > 0 {
			changed = append(changed, id)
		}
	}
	return changed, nil
}

// SetOutgoingStatus sets an outgoing message's status unconditionally
// (Failed → Sending on a retry, or Sending → Failed).
func (tx *Tx) SetOutgoingStatus(id string, status Status) error {
	_, err := tx.q.ExecContext(tx.ctx, `UPDATE messages SET status = ? WHERE id = ? AND outgoing = 1`, int(status), id)
	return wrap("set status", err)
}

// MarkSent moves an outgoing message from Sending or Failed to Sent.
func (tx *Tx) MarkSent(id string) error {
	_, err := tx.q.ExecContext(tx.ctx, `UPDATE messages SET status = ? WHERE id = ? AND outgoing = 1 AND status < ?`, int(StatusSent), id, int(StatusSent))
	return wrap("mark sent", err)
}

// UnreadIDs returns the ids of peer's received messages not yet read
// (request messages included).
func (tx *Tx) UnreadIDs(peer string) ([]string, error) {
	rows, err := tx.q.QueryContext(tx.ctx, `SELECT id FROM messages WHERE peer = ? AND outgoing = 0 AND status < ? ORDER BY seq`, peer, int(StatusRead))
	if err != nil {
		return nil, wrap("unread", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, wrap("unread", err)
		}
		out = append(out, id)
	}
	return out, wrap("unread", rows.Err())
}

// ConversationSummary is one conversation of the list.
type ConversationSummary struct {
	Peer    string
	Last    *Message
	Unread  int
	Request bool // some message is still held as a request
}

// Conversations returns every conversation, latest activity first.
func (tx *Tx) Conversations() ([]ConversationSummary, error) {
	last, err := tx.messages(`SELECT ` + messageCols + ` FROM messages WHERE seq IN (SELECT MAX(seq) FROM messages GROUP BY peer) ORDER BY seq DESC`)
	if err != nil {
		return nil, err
	}
	out := make([]ConversationSummary, 0, len(last))
	for _, m := range last {
		c := ConversationSummary{Peer: m.Peer, Last: m}
		var req int
		err := tx.q.QueryRowContext(tx.ctx, `SELECT COUNT(*) FILTER (WHERE outgoing = 0 AND status < ?), COUNT(*) FILTER (WHERE request = 1) FROM messages WHERE peer = ?`,
			int(StatusRead), m.Peer).Scan(&c.Unread, &req)
		if err != nil {
			return nil, wrap("conversations", err)
		}
		c.Request = req > 0
		out = append(out, c)
	}
	return out, nil
}

// RequestSummary is a handle whose messages are held as a request.
type RequestSummary struct {
	Handle   string
	Messages int
	First    time.Time
}

// Requests returns the handles with request messages, oldest first.
func (tx *Tx) Requests() ([]RequestSummary, error) {
	rows, err := tx.q.QueryContext(tx.ctx, `SELECT peer, COUNT(*), MIN(received_at), MIN(seq) AS first FROM messages WHERE request = 1 GROUP BY peer ORDER BY first`)
	if err != nil {
		return nil, wrap("requests", err)
	}
	defer rows.Close()
	var out []RequestSummary
	for rows.Next() {
		var r RequestSummary
		var first, seq int64
		if err := rows.Scan(&r.Handle, &r.Messages, &first, &seq); err != nil {
			return nil, wrap("requests", err)
		}
		r.First = FromUnixMS(first)
		out = append(out, r)
	}
	return out, wrap("requests", rows.Err())
}

// SetRequest sets or clears the request flag of every message with peer.
func (tx *Tx) SetRequest(peer string, request bool) error {
	_, err := tx.q.ExecContext(tx.ctx, `UPDATE messages SET request = ? WHERE peer = ?`, b2i(request), peer)
	return wrap("set request", err)
}

// DeleteRequestMessages deletes peer's messages still held as a request.
func (tx *Tx) DeleteRequestMessages(peer string) error {
	_, err := tx.q.ExecContext(tx.ctx, `DELETE FROM messages WHERE peer = ? AND request = 1`, peer)
	return wrap("delete requests", err)
}

// Seen reports whether a message id from sender was already received.
func (tx *Tx) Seen(sender, id string) (bool, error) {
	var n int
	err := tx.q.QueryRowContext(tx.ctx, `SELECT COUNT(*) FROM seen WHERE sender = ? AND id = ?`, sender, id).Scan(&n)
	return n > 0, wrap("seen", err)
}

// MarkSeen records a message id from sender as received.
func (tx *Tx) MarkSeen(sender, id string, at time.Time) error {
	_, err := tx.q.ExecContext(tx.ctx, `INSERT OR IGNORE INTO seen (sender, id, at) VALUES (?, ?, ?)`, sender, id, UnixMS(at))
	return wrap("mark seen", err)
}

// PruneSeen forgets ids received before t.
func (tx *Tx) PruneSeen(t time.Time) error {
	_, err := tx.q.ExecContext(tx.ctx, `DELETE FROM seen WHERE at < ?`, UnixMS(t))
	return wrap("prune seen", err)
}

// OutboxItem is a message waiting for the server to accept it: its
// plaintext content, kept until the send succeeds so a retry (after a
// crash, a network error or a device mismatch) sends the same message id.
type OutboxItem struct {
	ID       string // message id
	To       string // SendRequest.To
	Kind     uint8  // content.Kind
	Content  []byte // content.Content.Marshal
	Refs     int    // number of receipt refs, to bound merging
	Attempts int
	Created  time.Time
}

// PutOutbox stores (or replaces) an outbox item.
func (tx *Tx) PutOutbox(o *OutboxItem) error {
	if o.Created.IsZero() {
		o.Created = time.Now()
	}
	_, err := tx.q.ExecContext(tx.ctx, `INSERT OR REPLACE INTO outbox (id, to_handle, kind, content, refs, attempts, created) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		o.ID, o.To, o.Kind, o.Content, o.Refs, o.Attempts, UnixMS(o.Created))
	return wrap("put outbox", err)
}

const outboxCols = `id, to_handle, kind, content, refs, attempts, created`

func scanOutbox(sc interface{ Scan(...any) error }) (*OutboxItem, error) {
	var o OutboxItem
	var created int64
	if err := sc.Scan(&o.ID, &o.To, &o.Kind, &o.Content, &o.Refs, &o.Attempts, &created); err != nil {
		return nil, err
	}
	o.Created = FromUnixMS(created)
	return &o, nil
}

// OutboxItem returns an item by id, or ErrNotFound.
func (tx *Tx) OutboxItem(id string) (*OutboxItem, error) {
	o, err := scanOutbox(tx.q.QueryRowContext(tx.ctx, `SELECT `+outboxCols+` FROM outbox WHERE id = ?`, id))
	if err != nil {
		return nil, wrap("outbox item", err)
	}
	return o, nil
}

// Outbox returns every waiting item, oldest first.
func (tx *Tx) Outbox() ([]*OutboxItem, error) {
	rows, err := tx.q.QueryContext(tx.ctx, `SELECT `+outboxCols+` FROM outbox ORDER BY created, rowid`)
	if err != nil {
		return nil, wrap("outbox", err)
	}
	defer rows.Close()
	var out []*OutboxItem
	for rows.Next() {
		o, err := scanOutbox(rows)
		if err != nil {
			return nil, wrap("outbox", err)
		}
		out = append(out, o)
	}
	return out, wrap("outbox", rows.Err())
}

// MergeableOutbox returns a not yet attempted item of kind to `to` with
// fewer than maxRefs refs, to add a receipt ref to, or ErrNotFound.
func (tx *Tx) MergeableOutbox(to string, kind uint8, maxRefs int) (*OutboxItem, error) {
	o, err := scanOutbox(tx.q.QueryRowContext(tx.ctx, `SELECT `+outboxCols+` FROM outbox WHERE to_handle = ? AND kind = ? AND attempts = 0 AND refs < ? ORDER BY created LIMIT 1`, to, kind, maxRefs))
	if err != nil {
		return nil, wrap("outbox item", err)
	}
	return o, nil
}

// AttemptOutbox counts one more send attempt of an item.
func (tx *Tx) AttemptOutbox(id string) error {
	_, err := tx.q.ExecContext(tx.ctx, `UPDATE outbox SET attempts = attempts + 1 WHERE id = ?`, id)
	return wrap("attempt outbox", err)
}

// DeleteOutbox deletes an item once the server accepted it (or refused it
// for good).
func (tx *Tx) DeleteOutbox(id string) error {
	_, err := tx.q.ExecContext(tx.ctx, `DELETE FROM outbox WHERE id = ?`, id)
	return wrap("delete outbox", err)
}

// SearchMessages returns the messages whose text contains query (case
// folded for ASCII letters; matched as text, so % and _ are ordinary
// characters), in peer's conversation or in all when peer is "", newest
// first, at most limit.
func (tx *Tx) SearchMessages(query, peer string, limit int) ([]*Message, error) {
	esc := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(query)
	q := `SELECT ` + messageCols + ` FROM messages WHERE body LIKE ? ESCAPE '\' AND kind = ?`
	args := []any{"%" + esc + "%", kindText}
	if peer != "" {
		q += ` AND peer = ?`
		args = append(args, peer)
	}
	q += ` ORDER BY seq DESC LIMIT ?`
	args = append(args, limit)
	return tx.messages(q, args...)
}
