-- 0006: invites, for servers that register accounts only with one: the
-- same table as sqlitestore's 0005. hash is the SHA-256 of the code a
-- person types (the code is never stored); handle is the normalised
-- handle the invite is for, '' for any; uses is how many accounts it may
-- still create (bigint, as Go's int; the row is deleted when the last is
-- used, never left at 0, and CreateAccount takes its row lock before
-- using one); expires is NULL for an invite that never expires.

CREATE TABLE invites (
	hash    bytea       NOT NULL PRIMARY KEY CHECK (length(hash) = 32),
	handle  text        NOT NULL DEFAULT '',
	uses    bigint      NOT NULL CHECK (uses >= 1),
	expires timestamptz,
	created timestamptz NOT NULL
);
CREATE INDEX invites_expires ON invites (expires) WHERE expires IS NOT NULL;
