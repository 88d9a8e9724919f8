-- 0003: vanishing messages. An envelope may carry the time (Unix
-- microseconds) after which Expire drops it if it is still queued; NULL
-- for ordinary messages, which wait until they are fetched.

ALTER TABLE envelopes ADD COLUMN expires INTEGER;
CREATE INDEX envelopes_expires ON envelopes (expires) WHERE expires IS NOT NULL;
