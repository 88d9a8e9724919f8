package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/parleychat/parley/internal/client/clientdb"
)

// maxSearchResults bounds what Search returns.
const maxSearchResults = 200

// Search returns the messages on this device whose text contains query
// (ASCII letters without regard to case), in the conversation with peer
// or in all when peer is "", newest first, at most 200. It reads only
// this device's database: the server holds no text to search.
func (c *Client) Search(ctx context.Context, query, peer string) ([]Message, error) {
	if query == "" {
		return nil, errors.New("client: nothing to search for")
	}
	h := ""
	if peer != "" {
		var err error
		if h, err = normHandle(peer); err != nil {
			return nil, err
		}
	}
	var out []Message
	err := c.db.View(ctx, func(tx *clientdb.Tx) error {
		rows, err := tx.SearchMessages(query, h, maxSearchResults)
		if err != nil {
			return err
		}
		out = make([]Message, len(rows))
		for i, r := range rows {
			out[i] = messageFromRow(r)
		}
		if err := addQuotes(tx, out); err != nil {
			return err
		}
		return addReactions(tx, out)
	})
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return out, nil
}
