-- 0005: the sealed PIN-backup blobs for internal/backupstore/pgbackups,
-- one row per account, so that every node of a cluster reads and writes
-- the same blobs without a shared folder. A blob is opaque to the server
-- (it opens only with the backup key the realms give back for the right
-- PIN). updated is the database's clock at the last write. SQLite
-- deployments keep the blobs in files (backup_dir) and never use this
-- table; so does a cluster that sets backup_dir explicitly.

CREATE TABLE pin_backups (
	handle  text PRIMARY KEY,
	blob    bytea NOT NULL,
	updated timestamptz NOT NULL
);
