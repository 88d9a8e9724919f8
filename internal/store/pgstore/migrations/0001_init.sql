-- 0001: the first schema of the PostgreSQL backend: the same tables as
-- sqlitestore's 0001 and 0002. Handles are stored normalised (lower case).
-- uint32 ids are stored as bigint; the uint64 device list version as
-- bigint, bit for bit (the store compares versions as uint64 in Go).
-- Times are timestamptz (microseconds).

CREATE TABLE accounts (
	handle              text        NOT NULL PRIMARY KEY,
	identity_key        bytea       NOT NULL,
	created             timestamptz NOT NULL,
	device_list         bytea       NOT NULL,
	device_list_version bigint      NOT NULL
);

-- The devices of each account's current device list. queued counts the
-- device's envelopes, so Enqueue checks MaxQueue without counting rows;
-- updating it is also what takes the device's row lock, under which the
-- envelopes' seqs are drawn (see envelopes).
CREATE TABLE devices (
	handle      text        NOT NULL REFERENCES accounts (handle) ON DELETE CASCADE,
	id          bigint      NOT NULL,
	signing_key bytea       NOT NULL,
	created     timestamptz NOT NULL,
	position    integer     NOT NULL,
	queued      integer     NOT NULL DEFAULT 0,
	PRIMARY KEY (handle, id)
);

-- kind: 1 signed X25519 prekey (one per device), 2 last-resort PQ prekey
-- (one per device), 3 one-time X25519 prekey, 4 one-time PQ prekey.
CREATE TABLE prekeys (
	handle    text     NOT NULL,
	device    bigint   NOT NULL,
	kind      smallint NOT NULL,
	id        bigint   NOT NULL,
	public    bytea    NOT NULL,
	signature bytea,
	PRIMARY KEY (handle, device, kind, id),
	FOREIGN KEY (handle, device) REFERENCES devices (handle, id) ON DELETE CASCADE
);

CREATE TABLE tokens (
	hash    bytea       NOT NULL PRIMARY KEY,
	handle  text        NOT NULL,
	device  bigint      NOT NULL,
	expires timestamptz NOT NULL,
	FOREIGN KEY (handle, device) REFERENCES devices (handle, id) ON DELETE CASCADE
);
CREATE INDEX tokens_device ON tokens (handle, device);
CREATE INDEX tokens_expires ON tokens (expires);

-- Auth challenges, single use, so that any node can answer a token request.
CREATE TABLE challenges (
	challenge bytea       NOT NULL PRIMARY KEY,
	handle    text        NOT NULL,
	device    bigint      NOT NULL,
	expires   timestamptz NOT NULL,
	FOREIGN KEY (handle, device) REFERENCES devices (handle, id) ON DELETE CASCADE
);
CREATE INDEX challenges_device ON challenges (handle, device);
CREATE INDEX challenges_expires ON challenges (expires);

-- seq comes from one sequence, never reused (not after an ack, not when a
-- device id is removed and added again), and is drawn while the
-- transaction holds the recipient device's row lock (Enqueue updates
-- devices.queued first). Enqueues to one device therefore draw their seqs
-- in the order they commit, so a reader's "after N" cursor never skips an
-- envelope. CACHE 1 matters: with a per-session cache a later commit could
-- draw a lower value.
CREATE TABLE envelopes (
	seq              bigint      GENERATED ALWAYS AS IDENTITY (CACHE 1) PRIMARY KEY,
	recipient        text        NOT NULL,
	recipient_device bigint      NOT NULL,
	message_id       text        NOT NULL,
	sender           text        NOT NULL,
	sender_device    bigint      NOT NULL,
	ciphertext       bytea       NOT NULL,
	server_time      timestamptz NOT NULL,
	FOREIGN KEY (recipient, recipient_device) REFERENCES devices (handle, id) ON DELETE CASCADE
);
CREATE INDEX envelopes_queue ON envelopes (recipient, recipient_device, seq);

-- Message ids seen, for idempotent Enqueue (kept DedupWindow).
CREATE TABLE dedup (
	sender        text        NOT NULL,
	sender_device bigint      NOT NULL,
	message_id    text        NOT NULL,
	created       timestamptz NOT NULL,
	PRIMARY KEY (sender, sender_device, message_id)
);
CREATE INDEX dedup_created ON dedup (created);

CREATE TABLE links (
	id          text        NOT NULL PRIMARY KEY,
	handle      text        NOT NULL REFERENCES accounts (handle) ON DELETE CASCADE,
	expires     timestamptz NOT NULL,
	join_data   bytea,
	sealed      bytea,
	device_list bytea,
	fetched     boolean     NOT NULL DEFAULT false
);
CREATE INDEX links_expires ON links (expires);
CREATE INDEX links_handle ON links (handle);
