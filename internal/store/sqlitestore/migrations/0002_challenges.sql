-- 0002: auth challenges move from the server's memory to the store, so a
-- token request may reach another node than the challenge request. A
-- challenge is single use (TakeChallenge deletes it) and goes with its
-- device.

CREATE TABLE challenges (
	challenge BLOB    NOT NULL PRIMARY KEY,
	handle    TEXT    NOT NULL,
	device    INTEGER NOT NULL,
	expires   INTEGER NOT NULL,
	FOREIGN KEY (handle, device) REFERENCES devices (handle, id) ON DELETE CASCADE
);
CREATE INDEX challenges_device ON challenges (handle, device);
CREATE INDEX challenges_expires ON challenges (expires);
