package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/client/clientdb"
	"github.com/parleychat/parley/internal/identity"
)

// DeleteAccount deletes this device's account: first its PIN backup at
// the realms and the server, if it has one (an error there stops it, so
// no share is left behind unnoticed), then the account at the server,
// signed with the account identity key: every device of it is signed out
// and its queues are emptied, and the handle is free again. Then it erases
// this device's database (messages, contacts, keys), so the home holds no
// account; files saved to the downloads folder stay. No Run or Sync may be
// running.
func (c *Client) DeleteAccount(ctx context.Context) error {
	me, err := c.self()
	if err != nil {
		return err
	}
	key, err := c.backupKey(ctx)
	if err != nil {
		return err
	}
	if key != nil {
		if err := c.RemovePIN(ctx, PINOptions{}); err != nil {
			return fmt.Errorf("client: removing the PIN backup first: %w", err)
		}
	}
	sig := me.accountKey.Sign(identity.DeleteAccountMessage(me.handle))
	if err := c.call(ctx, http.MethodDelete, path(api.PathAccount, me.handle), api.DeleteAccountRequest{Signature: sig}, nil, true); err != nil {
		return err
	}
	c.log.Info("deleted the account", "handle", me.handle)
	return c.erase(ctx)
}

// erase replaces the database with an empty one.
func (c *Client) erase(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	name := filepath.Join(c.o.Home, DBFile)
	var errs []error
	errs = append(errs, c.db.Close())
	for _, f := range []string{name, name + "-wal", name + "-shm"} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	db, err := clientdb.Open(ctx, name)
	if err != nil {
		errs = append(errs, err)
	} else {
		c.db = db
	}
	c.acct, c.accountKey, c.deviceKey = nil, nil, nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("client: the account is deleted, but erasing this device's database failed: %w", err)
	}
	return nil
}
