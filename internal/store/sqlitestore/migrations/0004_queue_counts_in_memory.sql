-- 0004: the queue counts move to the writer's memory (sqlitestore's
-- counts.go: counted from envelopes at Open, kept in step by each write),
-- so Enqueue and Ack no longer update a counter row. The column goes, so
-- that nothing reads a count that is no longer kept.

ALTER TABLE devices DROP COLUMN queued;
