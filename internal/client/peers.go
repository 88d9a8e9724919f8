package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/client/clientdb"
	"github.com/parleychat/parley/internal/devicelist"
)

// peer is the verified view of an account (the own one included): the
// key its current device list verifies with, and that list.
type peer struct {
	handle     string
	key        ed25519.PublicKey // the key the server serves now (CurrentKey)
	pinned     ed25519.PublicKey // the key pinned on first sight or by MarkVerified
	list       *devicelist.List
	verified   bool
	keyChanged bool
	updated    time.Time // when it was last stored
}

func peerFromRow(p *clientdb.Peer) (*peer, error) {
	out := &peer{
		handle:     p.Handle,
		key:        ed25519.PublicKey(p.CurrentKey),
		pinned:     ed25519.PublicKey(p.PinnedKey),
		verified:   p.Verified,
		keyChanged: p.KeyChanged,
		updated:    p.Updated,
	}
	if len(p.DeviceList) == 0 {
		return out, nil
	}
	// Stored lists were verified before they were stored; verify again
	// anyway, it is cheap and catches a damaged file.
	l, err := devicelist.Verify(p.DeviceList, out.key)
	if err != nil {
		return nil, fmt.Errorf("client: stored device list of @%s: %w", p.Handle, err)
	}
	out.list = l
	return out, nil
}

// storedPeer returns what is stored about handle, or nil if nothing is.
func (c *Client) storedPeer(ctx context.Context, handle string) (*peer, error) {
	var row *clientdb.Peer
	err := c.db.View(ctx, func(tx *clientdb.Tx) error {
		var err error
		row, err = tx.Peer(handle)
		return err
	})
	if errors.Is(err, clientdb.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return peerFromRow(row)
}

// peerMaxAge is how long a stored account is used before it is fetched
// again (so a key change is noticed even without a device change).
const peerMaxAge = time.Hour

// peer returns handle's verified account, fetching it when nothing (or no
// device list) is stored, or when what is stored is older than peerMaxAge
// (then the stored one is used if the server cannot be reached).
func (c *Client) peer(ctx context.Context, handle string) (*peer, error) {
	p, err := c.storedPeer(ctx, handle)
	if err != nil {
		return nil, err
	}
	if p != nil && p.list != nil {
		if time.Since(p.updated) < peerMaxAge {
			return p, nil
		}
		fresh, err := c.refreshPeer(ctx, handle)
		var ae *APIError
		if err != nil && !errors.As(err, &ae) && !errors.Is(err, ErrRollback) && !errors.Is(err, ErrBadDeviceList) && !errors.Is(err, ErrUnknownHandle) {
			c.log.Info("using the stored device list", "peer", handle, "err", err)
			return p, nil
		}
		return fresh, err
	}
	return c.refreshPeer(ctx, handle)
}

// refreshPeer fetches handle's account and applies it.
func (c *Client) refreshPeer(ctx context.Context, handle string) (*peer, error) {
	var a api.Account
	err := c.call(ctx, http.MethodGet, path(api.PathAccount, handle), nil, &a, true)
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		return nil, fmt.Errorf("%w: @%s", ErrUnknownHandle, handle)
	}
	if err != nil {
		return nil, err
	}
	return c.applyAccount(ctx, handle, a.IdentityKey, a.DeviceList)
}

// applyAccount checks an account's identity key and signed device list as
// the server served them, and stores what they teach:
//
//   - the own account must have the own key;
//   - another account's key is pinned on first sight (TOFU); a different key
//     later is recorded as the current key with KeyChanged set, its
//     sessions are dropped, and a key_changed event is emitted; the pin
//     stays until MarkVerified;
//   - the list must verify with the key and name the handle; a version
//     below the last one seen under the same key is refused (ErrRollback);
//   - sessions with devices no longer listed are deleted.
func (c *Client) applyAccount(ctx context.Context, handle string, identityKey, signed []byte) (*peer, error) {
	me, err := c.self()
	if err != nil {
		return nil, err
	}
	key := ed25519.PublicKey(identityKey)
	if handle == me.handle && !bytes.Equal(key, me.accountKey.Public()) {
		return nil, ErrIdentityMismatch
	}
	if len(key) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: @%s has a malformed identity key", ErrBadDeviceList, handle)
	}
	list, err := devicelist.Verify(signed, key)
	if err != nil {
		return nil, fmt.Errorf("%w: @%s: %w", ErrBadDeviceList, handle, err)
	}
	if list.Handle != handle {
		return nil, fmt.Errorf("%w: the list served for @%s names @%s", ErrBadDeviceList, handle, list.Handle)
	}
	var out *peer
	var changed bool
	err = c.db.Update(ctx, func(tx *clientdb.Tx) error {
		row, err := tx.Peer(handle)
		if errors.Is(err, clientdb.ErrNotFound) {
			row = &clientdb.Peer{Handle: handle, PinnedKey: key, CurrentKey: key, Verified: handle == me.handle}
		} else if err != nil {
			return err
		}
		var old *devicelist.List
		if bytes.Equal(row.CurrentKey, key) {
			if len(row.DeviceList) > 0 {
				if old, err = devicelist.Verify(row.DeviceList, key); err != nil {
					old = nil
				}
			}
			if old != nil && list.Version < old.Version {
				return fmt.Errorf("%w: @%s went from version %d back to %d", ErrRollback, handle, old.Version, list.Version)
			}
			if old != nil && list.Version == old.Version {
				// Nothing new; keep what was verified first, and note
				// that it is current.
				signed = row.DeviceList
				list = old
			}
		} else {
			// A different key than the one seen last: a new identity.
			// Sessions made under the old key are useless now.
			c.log.Warn("identity key changed", "peer", handle)
			row.CurrentKey = key
			row.KeyChanged = !bytes.Equal(row.PinnedKey, key)
			changed = row.KeyChanged
			if err := tx.DeleteSessions(handle, 0); err != nil {
				return err
			}
		}
		if old != nil {
			for _, id := range old.IDs() {
				if _, ok := list.Device(id); !ok {
					if err := tx.DeleteSessions(handle, id); err != nil {
						return err
					}
				}
			}
		}
		row.DeviceList, row.ListVersion = signed, list.Version
		if err := tx.PutPeer(row); err != nil {
			return err
		}
		out, err = peerFromRow(row)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrRollback) {
			return nil, err
		}
		return nil, fmt.Errorf("client: storing @%s's device list: %w", handle, err)
	}
	if changed {
		c.emit(Event{Type: EventKeyChanged, Peer: handle, Detail: "@" + handle + "'s safety number changed"})
	}
	return out, nil
}

// device returns handle's device id from its verified list, refreshing the
// list once if the device is not on it (it may be new).
func (c *Client) device(ctx context.Context, handle string, id uint32) (*peer, devicelist.Device, error) {
	p, err := c.storedPeer(ctx, handle)
	if err != nil {
		return nil, devicelist.Device{}, err
	}
	if p != nil && p.list != nil {
		if d, ok := p.list.Device(id); ok {
			return p, d, nil
		}
	}
	p, err = c.refreshPeer(ctx, handle)
	if err != nil {
		return nil, devicelist.Device{}, err
	}
	if d, ok := p.list.Device(id); ok {
		return p, d, nil
	}
	return nil, devicelist.Device{}, fmt.Errorf("%w: @%s has no device %d", ErrUnknownDevice, handle, id)
}
