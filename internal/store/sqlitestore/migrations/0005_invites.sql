-- 0005: invites, for servers that register accounts only with one. hash
-- is the SHA-256 of the code a person types (the code is never stored);
-- handle is the normalised handle the invite is for, '' for any; uses is
-- how many accounts it may still create (the row is deleted when the last
-- is used, never left at 0); expires is NULL for an invite that never
-- expires. Times are Unix microseconds, as in every table.

CREATE TABLE invites (
	hash    BLOB    NOT NULL PRIMARY KEY CHECK (length(hash) = 32),
	handle  TEXT    NOT NULL DEFAULT '',
	uses    INTEGER NOT NULL CHECK (uses >= 1),
	expires INTEGER,
	created INTEGER NOT NULL
);
CREATE INDEX invites_expires ON invites (expires) WHERE expires IS NOT NULL;
