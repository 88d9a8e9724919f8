-- 0001: the first schema. Times are Unix microseconds (UTC). Handles are
-- stored normalised (lower case). uint32 ids and the uint64 device list
-- version are stored as INTEGER (the version bit-for-bit as int64).

CREATE TABLE accounts (
	handle              TEXT    NOT NULL PRIMARY KEY,
	identity_key        BLOB    NOT NULL,
	created             INTEGER NOT NULL,
	device_list         BLOB    NOT NULL,
	device_list_version INTEGER NOT NULL
);

-- The devices of each account's current device list. queued counts the
-- device's envelopes, so Enqueue checks MaxQueue without counting rows.
CREATE TABLE devices (
	handle      TEXT    NOT NULL REFERENCES accounts (handle) ON DELETE CASCADE,
	id          INTEGER NOT NULL,
	signing_key BLOB    NOT NULL,
	created     INTEGER NOT NULL,
	position    INTEGER NOT NULL,
	queued      INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (handle, id)
);

-- kind: 1 signed X25519 prekey (one per device), 2 last-resort PQ prekey
-- (one per device), 3 one-time X25519 prekey, 4 one-time PQ prekey.
CREATE TABLE prekeys (
	handle    TEXT    NOT NULL,
	device    INTEGER NOT NULL,
	kind      INTEGER NOT NULL,
	id        INTEGER NOT NULL,
	public    BLOB    NOT NULL,
	signature BLOB,
	PRIMARY KEY (handle, device, kind, id),
	FOREIGN KEY (handle, device) REFERENCES devices (handle, id) ON DELETE CASCADE
);

CREATE TABLE tokens (
	hash    BLOB    NOT NULL PRIMARY KEY,
	handle  TEXT    NOT NULL,
	device  INTEGER NOT NULL,
	expires INTEGER NOT NULL,
	FOREIGN KEY (handle, device) REFERENCES devices (handle, id) ON DELETE CASCADE
);
CREATE INDEX tokens_device ON tokens (handle, device);
CREATE INDEX tokens_expires ON tokens (expires);

-- AUTOINCREMENT: a seq is never reused, even after the newest envelope is
-- acknowledged, so a device's "after" cursor never skips a new envelope.
CREATE TABLE envelopes (
	seq              INTEGER PRIMARY KEY AUTOINCREMENT,
	recipient        TEXT    NOT NULL,
	recipient_device INTEGER NOT NULL,
	message_id       TEXT    NOT NULL,
	sender           TEXT    NOT NULL,
	sender_device    INTEGER NOT NULL,
	ciphertext       BLOB    NOT NULL,
	server_time      INTEGER NOT NULL,
	FOREIGN KEY (recipient, recipient_device) REFERENCES devices (handle, id) ON DELETE CASCADE
);
CREATE INDEX envelopes_queue ON envelopes (recipient, recipient_device, seq);

-- Message ids seen, for idempotent Enqueue (kept DedupWindow). WITHOUT
-- ROWID: the key is the table, one B-tree fewer to write per message.
CREATE TABLE dedup (
	sender        TEXT    NOT NULL,
	sender_device INTEGER NOT NULL,
	message_id    TEXT    NOT NULL,
	created       INTEGER NOT NULL,
	PRIMARY KEY (sender, sender_device, message_id)
) WITHOUT ROWID;
CREATE INDEX dedup_created ON dedup (created);

CREATE TABLE links (
	id          TEXT    NOT NULL PRIMARY KEY,
	handle      TEXT    NOT NULL REFERENCES accounts (handle) ON DELETE CASCADE,
	expires     INTEGER NOT NULL,
	join_data   BLOB,
	sealed      BLOB,
	device_list BLOB,
	fetched     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX links_expires ON links (expires);
CREATE INDEX links_handle ON links (handle);
