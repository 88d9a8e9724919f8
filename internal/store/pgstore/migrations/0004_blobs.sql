-- 0004: the metadata of encrypted file blobs for internal/blob/s3store,
-- which keeps their bytes in an S3-compatible bucket. A cluster shares
-- this table, so any node can resume an upload, serve a download, count a
-- quota or expire a blob that another node created. The bytes live in the
-- bucket as segments, one object per append (or per 8 MiB of one): ends
-- lists the end offset of each segment in order, objects its object's name
-- (<id>/<start offset as 16 hex digits>.<8 characters of the append's
-- lease token>). SQLite deployments keep blobs in diskstore and
-- never use this table.

CREATE TABLE blobs (
	id            text PRIMARY KEY,
	owner_handle  text NOT NULL,
	owner_device  bigint NOT NULL,
	size          bigint NOT NULL,
	created_ms    bigint NOT NULL,
	expires_ms    bigint NOT NULL,
	lifetime_ns   bigint NOT NULL,
	ends          bigint[] NOT NULL DEFAULT '{}',
	objects       text[] NOT NULL DEFAULT '{}',
	-- bytes stored (the next append's offset): the last end, kept by the
	-- database so that it cannot disagree with ends
	received      bigint GENERATED ALWAYS AS (COALESCE(ends[cardinality(ends)], 0)) STORED,
	hash_state    bytea,                      -- SHA-256 state after received bytes
	complete      boolean NOT NULL DEFAULT false,
	sha256        bytea,
	pending       jsonb NOT NULL DEFAULT '[]', -- recipients yet to claim, sorted
	claimed       jsonb NOT NULL DEFAULT '[]',
	busy_until    timestamptz NOT NULL DEFAULT '-infinity', -- an append's lease
	busy_token    text NOT NULL DEFAULT ''
);
CREATE INDEX blobs_owner ON blobs (owner_handle);
CREATE INDEX blobs_expires ON blobs (expires_ms);
