-- 0003: vanishing messages. An envelope may carry the time after which
-- Expire drops it if it is still queued; NULL for ordinary messages, which
-- wait until they are fetched. parley_enqueue gains a thirteenth
-- parameter, the expiry shared by the message's envelopes. The
-- twelve-parameter function of 0002 stays, so nodes not yet upgraded keep
-- working during a rolling upgrade (their envelopes never expire).

ALTER TABLE envelopes ADD COLUMN expires timestamptz;
CREATE INDEX envelopes_expires ON envelopes (expires) WHERE expires IS NOT NULL;

CREATE FUNCTION parley_enqueue(
	p_sender        text,
	p_sender_device bigint,
	p_message_id    text,
	p_now           timestamptz,
	p_max_queue     integer,
	p_lock_handles  text[],     -- recipient devices, sorted by handle then id
	p_lock_ids      bigint[],
	p_lock_counts   integer[],  -- envelopes for each
	p_recipients    text[],     -- the envelopes, in seq order
	p_devices       bigint[],
	p_ciphertexts   bytea[],
	p_times         timestamptz[],
	p_expires       timestamptz -- NULL: the envelopes do not expire
) RETURNS boolean -- true: the message id was stored before; nothing done
LANGUAGE plpgsql AS $$
DECLARE
	q integer;
BEGIN
	INSERT INTO dedup (sender, sender_device, message_id, created)
		VALUES (p_sender, p_sender_device, p_message_id, p_now)
		ON CONFLICT DO NOTHING;
	IF NOT FOUND THEN
		RETURN true;
	END IF;
	FOR i IN 1 .. cardinality(p_lock_handles) LOOP
		UPDATE devices SET queued = queued + p_lock_counts[i]
			WHERE handle = p_lock_handles[i] AND id = p_lock_ids[i]
			RETURNING queued INTO q;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'recipient device %/% is not current', p_lock_handles[i], p_lock_ids[i]
				USING ERRCODE = 'PY404';
		END IF;
		IF q > p_max_queue THEN
			RAISE EXCEPTION 'recipient device %/% has a full queue', p_lock_handles[i], p_lock_ids[i]
				USING ERRCODE = 'PY507';
		END IF;
	END LOOP;
	INSERT INTO envelopes (recipient, recipient_device, message_id, sender, sender_device, ciphertext, server_time, expires)
		SELECT u.recipient, u.device, p_message_id, p_sender, p_sender_device, u.ciphertext, u.server_time, p_expires
		FROM unnest(p_recipients, p_devices, p_ciphertexts, p_times) WITH ORDINALITY
			AS u (recipient, device, ciphertext, server_time, n)
		ORDER BY u.n;
	RETURN false;
END
$$;
