package clientdb

import (
	"database/sql"
	"errors"
	"time"
)

// migrationReactions is migration 5: reactions to messages, one per
// reacting account and message (peer and msg_id name the message as
// messages does; at is the reaction's sending time, so a late older one
// does not undo a newer).
const migrationReactions = `
CREATE TABLE reactions (
	peer    TEXT NOT NULL,
	msg_id  TEXT NOT NULL,
	reactor TEXT NOT NULL,
	emoji   TEXT NOT NULL,
	at      INTEGER NOT NULL,
	PRIMARY KEY (peer, msg_id, reactor)
);
`

// Reaction is one account's reaction to a message.
type Reaction struct {
	Reactor string
	Emoji   string
	At      time.Time
}

// SetReaction stores reactor's reaction to message msgID of the
// conversation with peer, if it is newer than the one stored (at); an
// empty emoji removes it (the time is kept, so that an older reaction
// arriving later stays undone). It reports whether anything changed.
func (tx *Tx) SetReaction(peer, msgID, reactor, emoji string, at time.Time) (bool, error) {
	var prev int64
	var prevEmoji string
	err := tx.q.QueryRowContext(tx.ctx, `SELECT at, emoji FROM reactions WHERE peer = ? AND msg_id = ? AND reactor = ?`,
		peer, msgID, reactor).Scan(&prev, &prevEmoji)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, wrap("set reaction", err)
	}
	if err == nil && UnixMS(at) <= prev {
		return false, nil
	}
	_, err = tx.q.ExecContext(tx.ctx, `INSERT OR REPLACE INTO reactions (peer, msg_id, reactor, emoji, at) VALUES (?, ?, ?, ?, ?)`,
		peer, msgID, reactor, emoji, UnixMS(at))
	if err != nil {
		return false, wrap("set reaction", err)
	}
	return emoji != prevEmoji, nil
}

// Reactions returns the reactions to the messages of the conversation
// with peer, by message id, each message's oldest first (removed ones left
// out): one query for a whole history.
func (tx *Tx) Reactions(peer string) (map[string][]Reaction, error) {
	rows, err := tx.q.QueryContext(tx.ctx, `SELECT msg_id, reactor, emoji, at FROM reactions WHERE peer = ? AND emoji != '' ORDER BY at, reactor`, peer)
	if err != nil {
		return nil, wrap("reactions", err)
	}
	defer rows.Close()
	out := map[string][]Reaction{}
	for rows.Next() {
		var id string
		var r Reaction
		var at int64
		if err := rows.Scan(&id, &r.Reactor, &r.Emoji, &at); err != nil {
			return nil, wrap("reactions", err)
		}
		r.At = FromUnixMS(at)
		out[id] = append(out[id], r)
	}
	return out, wrap("reactions", rows.Err())
}
