package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/client/clientdb"
	"github.com/parleychat/parley/internal/devicelist"
	"github.com/parleychat/parley/internal/identity"
	"github.com/parleychat/parley/internal/linking"
)

// linkPoll is the wait asked of the server in one long poll.
const linkPoll = 25 * time.Second

// Devices returns the own account's devices, from the server's current
// signed list when it can be reached (the stored one otherwise).
func (c *Client) Devices(ctx context.Context) ([]Device, error) {
	me, err := c.self()
	if err != nil {
		return nil, err
	}
	p, err := c.refreshPeer(ctx, me.handle)
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) || errors.Is(err, ErrRollback) || errors.Is(err, ErrBadDeviceList) || errors.Is(err, ErrIdentityMismatch) || errors.Is(err, ErrDeviceRemoved) {
			return nil, err
		}
		c.log.Info("showing the stored device list", "err", err)
		if p, err = c.storedPeer(ctx, me.handle); err != nil {
			return nil, err
		}
	}
	out := make([]Device, 0, len(p.list.Devices))
	for _, d := range p.list.Devices {
		out = append(out, Device{ID: d.ID, Name: d.Name, Created: time.UnixMilli(d.Created), Current: d.ID == me.deviceID})
	}
	return out, nil
}

// RemoveDevice removes another device from the account: a new signed
// list without it (version + 1) replaces the server's, which deletes the
// device's queue, keys and tokens; local sessions with it are deleted.
func (c *Client) RemoveDevice(ctx context.Context, id uint32) error {
	me, err := c.self()
	if err != nil {
		return err
	}
	if id == me.deviceID {
		return ErrCurrentDevice
	}
	p, err := c.refreshPeer(ctx, me.handle)
	if err != nil {
		return err
	}
	if _, ok := p.list.Device(id); !ok {
		return fmt.Errorf("%w: %d", ErrUnknownDevice, id)
	}
	next := devicelist.List{Handle: me.handle, Version: p.list.Version + 1}
	for _, d := range p.list.Devices {
		if d.ID != id {
			next.Devices = append(next.Devices, d)
		}
	}
	signed, err := next.Sign(me.accountKey)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if err := c.call(ctx, http.MethodPut, api.PathDeviceList, api.PutDeviceListRequest{DeviceList: signed}, nil, true); err != nil {
		return err
	}
	if _, err := c.applyAccount(ctx, me.handle, me.accountKey.Public(), signed); err != nil {
		return err
	}
	c.log.Info("removed a device", "device", id)
	return nil
}

// LinkNew adds a new device to the account from this one: it creates a
// link, calls show once with the code to type (or scan) on the new device,
// waits for the new device to join (bounded by ctx), checks the join
// against the code, signs the new device list and seals the account to
// the new device.
func (c *Client) LinkNew(ctx context.Context, show func(code string)) (Device, error) {
	return c.LinkNewWith(ctx, show, LinkOptions{})
}

// LinkOptions tune LinkNewWith.
type LinkOptions struct {
	// NoHistory: do not send this device's conversations to the new one
	// (history.go).
	NoHistory bool
	// History, if set, hears how the history went: the messages sent, or
	// why they were not (then the new device starts without them, or gets
	// them when this device next syncs, if the message waits in the
	// outbox).
	History func(messages int, err error)
}

// LinkNewWith is LinkNew with options; by default, once the device is
// added, it sends the new device this device's message history.
func (c *Client) LinkNewWith(ctx context.Context, show func(code string), o LinkOptions) (Device, error) {
	me, err := c.self()
	if err != nil {
		return Device{}, err
	}
	var cl api.CreateLinkResponse
	if err := c.call(ctx, http.MethodPost, api.PathLinks, nil, &cl, true); err != nil {
		return Device{}, err
	}
	var linkID [16]byte
	if b, err := hex.DecodeString(cl.LinkID); err != nil || len(b) != 16 {
		return Device{}, fmt.Errorf("client: the server's link id %q is not 32 hex digits", cl.LinkID)
	} else {
		copy(linkID[:], b)
	}
	code, err := linking.NewCode(linkID)
	if err != nil {
		return Device{}, fmt.Errorf("client: %w", err)
	}
	if show != nil {
		show(code.String())
	}

	var st api.LinkStatus
	for !st.Joined {
		if err := ctx.Err(); err != nil {
			return Device{}, err
		}
		st = api.LinkStatus{}
		if err := c.call(ctx, http.MethodGet, path(api.PathLink, cl.LinkID)+"?wait="+linkPoll.String(), nil, &st, true); err != nil {
			return Device{}, err
		}
	}
	join, err := linking.ParseJoin(st.Join)
	if err != nil {
		return Device{}, fmt.Errorf("%w: %w", ErrLinkVerify, err)
	}
	if err := join.Verify(code); err != nil {
		return Device{}, fmt.Errorf("%w: the joining device does not know the code: %w", ErrLinkVerify, err)
	}

	own, err := c.refreshPeer(ctx, me.handle)
	if err != nil {
		return Device{}, err
	}
	if _, ok := own.list.Device(join.DeviceID); ok || join.DeviceID == 0 {
		return Device{}, fmt.Errorf("%w: the new device's id %d is already in use", ErrLinkVerify, join.DeviceID)
	}
	if len(own.list.Devices) >= devicelist.MaxDevices {
		return Device{}, ErrTooManyDevices
	}
	nd := devicelist.Device{ID: join.DeviceID, SigningKey: join.SigningKey, DHKey: join.DHKey, Name: join.Name, Created: time.Now().UnixMilli()}
	next := devicelist.List{Handle: me.handle, Version: own.list.Version + 1, Devices: append(slices.Clone(own.list.Devices), nd)}
	signed, err := next.Sign(me.accountKey)
	if err != nil {
		return Device{}, fmt.Errorf("%w: %w", ErrLinkVerify, err)
	}

	t := &linking.Transfer{Handle: me.handle, AccountSeed: me.accountKey.Seed(), ReadReceipts: c.ReadReceipts()}
	if err := c.db.View(ctx, func(tx *clientdb.Tx) error {
		t.Contacts, err = contactList(tx)
		return err
	}); err != nil {
		return Device{}, fmt.Errorf("client: %w", err)
	}
	sealed, err := linking.Seal(code, join, t)
	if err != nil {
		return Device{}, fmt.Errorf("client: %w", err)
	}
	if err := c.call(ctx, http.MethodPost, path(api.PathLinkComplete, cl.LinkID), api.CompleteLinkRequest{Sealed: sealed, DeviceList: signed}, nil, true); err != nil {
		return Device{}, err
	}
	if _, err := c.applyAccount(ctx, me.handle, me.accountKey.Public(), signed); err != nil {
		return Device{}, err
	}
	c.log.Info("linked a new device", "device", nd.ID, "name", nd.Name)
	if !o.NoHistory {
		n, err := c.sendHistory(ctx, me, nd.ID)
		if err != nil {
			c.log.Warn("sending the message history to the new device", "device", nd.ID, "err", err)
		}
		if o.History != nil {
			o.History(n, err)
		}
	}
	return Device{ID: nd.ID, Name: nd.Name, Created: time.UnixMilli(nd.Created)}, nil
}

// Link makes this fresh device a device of the account that shows code
// (from LinkNew on one of its devices): it joins with new device keys,
// waits for the sealed account, checks that the new signed device list
// comes from the transferred account key and lists this device with its
// keys, stores the account and uploads prekeys.
func (c *Client) Link(ctx context.Context, code string) error {
	if c.Registered() {
		return ErrAlreadyRegistered
	}
	server, err := c.baseURL()
	if err != nil {
		return err
	}
	lc, err := linking.ParseCode(code)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadLinkCode, err)
	}
	linkID := hex.EncodeToString(lc.LinkID[:])
	dk, err := identity.NewDeviceKey()
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	id := randomDeviceID()
	join, eph, err := linking.NewJoin(lc, dk, id, c.o.DeviceName)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if err := c.call(ctx, http.MethodPost, path(api.PathLinkJoin, linkID), api.JoinLinkRequest{Join: join.Marshal()}, nil, false); err != nil {
		var ae *APIError
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			return fmt.Errorf("%w (%w)", ErrLinkExpired, err)
		}
		return err
	}
	var res api.LinkResult
	for !res.Ready {
		if err := ctx.Err(); err != nil {
			return err
		}
		res = api.LinkResult{}
		if err := c.call(ctx, http.MethodGet, path(api.PathLinkResult, linkID)+"?wait="+linkPoll.String(), nil, &res, false); err != nil {
			return err
		}
	}
	t, err := linking.Open(lc, join, eph, res.Sealed)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrLinkVerify, err)
	}
	h, err := normHandle(t.Handle)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrLinkVerify, err)
	}
	ak, err := identity.AccountKeyFromSeed(t.AccountSeed)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrLinkVerify, err)
	}
	list, err := devicelist.Verify(res.DeviceList, ak.Public())
	if err != nil {
		return fmt.Errorf("%w: the device list is not signed by the account key: %w", ErrLinkVerify, err)
	}
	d, ok := list.Device(id)
	if list.Handle != h || !ok || !bytes.Equal(d.SigningKey, dk.SigningPublic()) || !bytes.Equal(d.DHKey, dk.DHPublic()) {
		return fmt.Errorf("%w: the device list does not name this device with its keys", ErrLinkVerify)
	}

	prekeys, next, err := initialPrekeys(dk, 1)
	if err != nil {
		return err
	}
	dkb, err := dk.MarshalBinary()
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	acct := &clientdb.Account{Handle: h, AccountSeed: ak.Seed(), DeviceID: id, DeviceKey: dkb, Server: server, NextPrekeyID: next, Created: time.Now()}
	err = c.installAccount(ctx, acct, res.DeviceList, prekeys, func(tx *clientdb.Tx) error {
		if err := importContacts(tx, h, t.Contacts); err != nil {
			return err
		}
		v := "off"
		if t.ReadReceipts {
			v = "on"
		}
		if err := tx.PutSetting(settingPrekeysPending, "1"); err != nil {
			return err
		}
		return tx.PutSetting(settingReadReceipts, v)
	})
	if err != nil {
		return err
	}
	// The server must hold the account key the list was signed with.
	if _, err := c.refreshPeer(ctx, h); err != nil {
		return fmt.Errorf("%w: %w", ErrLinkVerify, err)
	}
	if err := c.uploadPendingPrekeys(ctx); err != nil {
		return fmt.Errorf("client: uploading prekeys (the next sync tries again): %w", err)
	}
	c.log.Info("linked this device", "handle", h, "device", id)
	return nil
}
