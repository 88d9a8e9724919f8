package client

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/client/clientdb"
	"github.com/parleychat/parley/internal/devicelist"
	"github.com/parleychat/parley/internal/identity"
	"github.com/parleychat/parley/internal/pqxdh"
)

// Register creates the account handle with this device as its first
// device, on Options.Server.
func (c *Client) Register(ctx context.Context, handle string) error {
	return c.RegisterInvited(ctx, handle, "")
}

// RegisterInvited is Register with an invite code, for a server that
// registers by invitation (ErrInviteRequired without one, ErrInviteInvalid
// for a code it does not take); a server open to all ignores the code.
func (c *Client) RegisterInvited(ctx context.Context, handle, invite string) error {
	if c.Registered() {
		return ErrAlreadyRegistered
	}
	h, err := normHandle(handle)
	if err != nil {
		return err
	}
	server, err := c.baseURL()
	if err != nil {
		return err
	}
	ak, err := identity.NewAccountKey()
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	dk, err := identity.NewDeviceKey()
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	id := randomDeviceID()
	list := devicelist.List{Handle: h, Version: 1, Devices: []devicelist.Device{c.ownEntry(dk, id)}}
	signed, err := list.Sign(ak)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	prekeys, next, err := initialPrekeys(dk, 1)
	if err != nil {
		return err
	}
	req := api.RegisterRequest{
		Handle:      h,
		IdentityKey: ak.Public(),
		DeviceList:  signed,
		DeviceID:    id,
		Prekeys:     uploadForm(prekeys),
		Invite:      invite,
	}
	var resp api.RegisterResponse
	if err := c.call(ctx, http.MethodPost, api.PathAccounts, req, &resp, false); err != nil {
		return err
	}
	if resp.Handle != "" && resp.Handle != h {
		return fmt.Errorf("client: the server registered @%s, not @%s", resp.Handle, h)
	}
	dkb, err := dk.MarshalBinary()
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	acct := &clientdb.Account{Handle: h, AccountSeed: ak.Seed(), DeviceID: id, DeviceKey: dkb, Server: server, NextPrekeyID: next, Created: time.Now()}
	if err := c.installAccount(ctx, acct, signed, prekeys, nil); err != nil {
		return err
	}
	c.log.Info("registered", "handle", h, "device", id)
	return nil
}

// ownEntry is this device's entry in the device list.
func (c *Client) ownEntry(dk *identity.DeviceKey, id uint32) devicelist.Device {
	return devicelist.Device{
		ID:         id,
		SigningKey: dk.SigningPublic(),
		DHKey:      dk.DHPublic(),
		Name:       c.o.DeviceName,
		Created:    time.Now().UnixMilli(),
	}
}

// installAccount stores a new account, its verified own device list and
// this device's prekeys in one transaction, then makes it current.
func (c *Client) installAccount(ctx context.Context, acct *clientdb.Account, signedList []byte, prekeys []*pqxdh.Prekey, extra func(tx *clientdb.Tx) error) error {
	ak, err := identity.AccountKeyFromSeed(acct.AccountSeed)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	list, err := devicelist.Verify(signedList, ak.Public())
	if err != nil {
		return fmt.Errorf("%w: own list: %w", ErrBadDeviceList, err)
	}
	err = c.db.Update(ctx, func(tx *clientdb.Tx) error {
		if _, err := tx.Account(); err == nil {
			return ErrAlreadyRegistered
		}
		if err := tx.PutAccount(acct); err != nil {
			return err
		}
		if err := storePrekeys(tx, prekeys); err != nil {
			return err
		}
		if err := tx.DeleteToken(); err != nil {
			return err
		}
		own := &clientdb.Peer{Handle: acct.Handle, PinnedKey: ak.Public(), CurrentKey: ak.Public(), DeviceList: signedList, ListVersion: list.Version, Verified: true}
		if err := tx.PutPeer(own); err != nil {
			return err
		}
		if extra != nil {
			return extra(tx)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("client: storing the account: %w", err)
	}
	return c.loadAccount(ctx)
}

// randomDeviceID picks a non-zero device id.
func randomDeviceID() uint32 {
	var b [4]byte
	for {
		rand.Read(b[:])
		if id := binary.BigEndian.Uint32(b[:]); id != 0 {
			return id
		}
	}
}

// randomID returns a new 16-byte message id.
func randomID() [16]byte {
	var id [16]byte
	rand.Read(id[:])
	return id
}

// trimServer normalises a server URL.
func trimServer(s string) string { return strings.TrimRight(strings.TrimSpace(s), "/") }
