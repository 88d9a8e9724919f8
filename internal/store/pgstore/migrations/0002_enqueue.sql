-- 0002: Enqueue as one server-side function, so that a message costs one
-- round trip and one commit: the statement runs in its own transaction
-- when called outside one. The steps and their order are Enqueue's (see
-- queue.go): remember the message id (a duplicate stops here), count the
-- envelopes into each recipient device's queue in the order given (the
-- caller sorts the devices, so row locks are always taken in one order),
-- then insert the envelopes, which draws their seqs while every
-- recipient's row lock is held. Errors: PY404 a recipient device is not
-- current, PY507 a recipient queue would exceed p_max_queue.

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
	p_times         timestamptz[]
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
	INSERT INTO envelopes (recipient, recipient_device, message_id, sender, sender_device, ciphertext, server_time)
		SELECT u.recipient, u.device, p_message_id, p_sender, p_sender_device, u.ciphertext, u.server_time
		FROM unnest(p_recipients, p_devices, p_ciphertexts, p_times) WITH ORDINALITY
			AS u (recipient, device, ciphertext, server_time, n)
		ORDER BY u.n;
	RETURN false;
END
$$;
