package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"net/http"
	"time"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/devicelist"
	"github.com/parleychat/parley/internal/identity"
	"github.com/parleychat/parley/internal/store"
)

func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) {
	if !s.registerRL.Allow(s.clientAddr(r)) {
		writeError(w, api.CodeRateLimited, "Too many registrations from this address; try again later.")
		return
	}
	var req api.RegisterRequest
	if err := s.decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.register(r.Context(), &req); err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("account registered", "handle", req.Handle, "device", req.DeviceID)
	writeJSON(w, api.RegisterResponse{Handle: req.Handle})
}

// register checks a registration and stores it; it normalises req.Handle.
func (s *Server) register(ctx context.Context, req *api.RegisterRequest) error {
	handle, err := normHandle(req.Handle)
	if err != nil {
		return err
	}
	req.Handle = handle
	if len(req.IdentityKey) != ed25519.PublicKeySize {
		return errorf(api.CodeBadRequest, "identity_key must be a %d-byte Ed25519 public key.", ed25519.PublicKeySize)
	}
	list, err := verifyList(req.DeviceList, req.IdentityKey, handle)
	if err != nil {
		return err
	}
	if list.Version != 1 {
		return errorf(api.CodeBadRequest, "A new account's device list has version 1, not %d.", list.Version)
	}
	if len(list.Devices) != 1 || list.Devices[0].ID != req.DeviceID {
		return errorf(api.CodeBadRequest, "A new account's device list names exactly one device, device_id %d.", req.DeviceID)
	}
	if req.Prekeys.SignedPrekey == nil || req.Prekeys.LastResortPQ == nil {
		return errorf(api.CodeBadRequest, "Registration needs prekeys.signed_prekey and prekeys.last_resort_pq.")
	}
	p, err := checkPrekeys(&req.Prekeys, list.Devices[0].SigningKey)
	if err != nil {
		return err
	}
	var invite []byte
	if s.cfg.Registration == registrationInvite {
		if req.Invite == "" {
			return errorf(api.CodeInviteRequired, "This server registers accounts by invitation: ask its operator for an invite code.")
		}
		invite = InviteHash(req.Invite)
	}
	now := time.Now()
	err = s.store.CreateAccount(ctx,
		store.Account{Handle: handle, IdentityKey: req.IdentityKey, Created: now, Invite: invite},
		store.DeviceList{Signed: req.DeviceList, Version: list.Version, Devices: storeDevices(handle, list, nil)},
		p)
	switch {
	case errors.Is(err, store.ErrHandleTaken):
		return errorf(api.CodeHandleTaken, "The handle @%s is taken.", handle)
	case errors.Is(err, store.ErrInviteInvalid):
		return errorf(api.CodeInviteInvalid, "The invite code is unknown, expired, used up, or for another handle.")
	}
	return err
}

// verifyList verifies a signed device list against the account key and
// requires it to name handle.
func verifyList(signed, accountKey []byte, handle string) (*devicelist.List, error) {
	list, err := devicelist.Verify(signed, ed25519.PublicKey(accountKey))
	if errors.Is(err, devicelist.ErrBadSignature) {
		return nil, errorf(api.CodeBadSignature, "The device list's signature does not verify with the account's identity key.")
	}
	if err != nil {
		return nil, errorf(api.CodeBadRequest, "The device list is malformed (%v).", err)
	}
	if list.Handle != handle {
		return nil, errorf(api.CodeBadRequest, "The device list is for @%s, not @%s.", list.Handle, handle)
	}
	return list, nil
}

// storeDevices converts a verified list for the store, keeping the Created
// time of devices already known in prev.
func storeDevices(handle string, l *devicelist.List, prev []store.Device) []store.Device {
	out := make([]store.Device, 0, len(l.Devices))
	for _, d := range l.Devices {
		created := time.UnixMilli(d.Created)
		for _, p := range prev {
			if p.ID == d.ID {
				created = p.Created
			}
		}
		out = append(out, store.Device{Handle: handle, ID: d.ID, SigningKey: d.SigningKey, Created: created})
	}
	return out
}

// handleDeleteAccount: DELETE /v1/accounts/{handle}. A device of the
// account deletes it, with the account identity key's signature (a stolen
// token alone cannot). Everything the store holds of it goes; every
// delivery connection of its devices closes with "device removed", on
// every node; its PIN backup blob goes too. Files it sent stay until their
// recipients fetched them or they expire.
func (s *Server) handleDeleteAccount(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	handle, err := normHandle(r.PathValue("handle"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if handle != c.handle {
		writeError(w, api.CodeNotFound, "There is no account @"+handle+" for this device to delete.")
		return
	}
	var req api.DeleteAccountRequest
	if err := s.decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	a, err := s.store.Account(r.Context(), handle)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if len(a.IdentityKey) != ed25519.PublicKeySize || !ed25519.Verify(a.IdentityKey, identity.DeleteAccountMessage(handle), req.Signature) {
		writeError(w, api.CodeUnauthorized, "The signature does not verify with the account's identity key.")
		return
	}
	devices, err := s.store.DeleteAccount(r.Context(), handle)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if s.pin.backups != nil {
		if err := s.pin.backups.Delete(r.Context(), handle); err != nil {
			s.log.Warn("deleting the PIN backup of a deleted account", "handle", handle, "err", err)
		}
	}
	s.publish(r.Context(), devicesKey(handle))
	s.log.Info("account deleted", "handle", handle, "devices", devices)
	writeJSON(w, struct{}{})
}

func (s *Server) handleGetAccount(w http.ResponseWriter, r *http.Request) {
	handle, err := normHandle(r.PathValue("handle"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	a, l, err := s.account(r.Context(), handle)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, api.Account{Handle: a.Handle, IdentityKey: a.IdentityKey, DeviceList: l.Signed})
}

// account returns an account and its current device list.
func (s *Server) account(ctx context.Context, handle string) (store.Account, store.DeviceList, error) {
	a, err := s.store.Account(ctx, handle)
	if errors.Is(err, store.ErrNotFound) {
		return a, store.DeviceList{}, errorf(api.CodeNotFound, "There is no account @%s.", handle)
	}
	if err != nil {
		return a, store.DeviceList{}, err
	}
	l, err := s.store.DeviceList(ctx, handle)
	if errors.Is(err, store.ErrNotFound) {
		return a, l, errorf(api.CodeNotFound, "There is no account @%s.", handle)
	}
	return a, l, err
}

func (s *Server) handlePutDeviceList(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	var req api.PutDeviceListRequest
	if err := s.decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	a, cur, err := s.account(r.Context(), c.handle)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	list, err := verifyList(req.DeviceList, a.IdentityKey, c.handle)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	curList, err := devicelist.Verify(cur.Signed, ed25519.PublicKey(a.IdentityKey))
	if err != nil {
		s.fail(w, r, err) // the stored list was verified before it was stored
		return
	}
	if list.Version <= cur.Version {
		s.fail(w, r, staleError(list.Version, cur.Version))
		return
	}
	for _, d := range list.Devices {
		old, ok := curList.Device(d.ID)
		if !ok {
			writeError(w, api.CodeBadRequest, "A device list update may only remove devices; add a device by linking it.")
			return
		}
		if !sameKeys(old, d) {
			writeError(w, api.CodeBadRequest, "A device list update may not change the keys of an existing device.")
			return
		}
	}
	if err := s.replaceDeviceList(r.Context(), c.handle, req.DeviceList, list, cur.Devices); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, api.Account{Handle: a.Handle, IdentityKey: a.IdentityKey, DeviceList: req.DeviceList})
}

func staleError(got, cur uint64) error {
	return errorf(api.CodeStaleDeviceList,
		"The device list has version %d, but the current one has version %d; fetch the current list and sign a newer one.", got, cur)
}

func sameKeys(a, b devicelist.Device) bool {
	return bytes.Equal(a.SigningKey, b.SigningKey) && bytes.Equal(a.DHKey, b.DHKey)
}

// replaceDeviceList installs a verified list, then tells the connections of
// the account's devices (removed ones close themselves).
func (s *Server) replaceDeviceList(ctx context.Context, handle string, signed []byte, list *devicelist.List, prev []store.Device) error {
	removed, err := s.store.ReplaceDeviceList(ctx, handle, store.DeviceList{
		Signed:  signed,
		Version: list.Version,
		Devices: storeDevices(handle, list, prev),
	})
	if errors.Is(err, store.ErrStaleVersion) {
		return errorf(api.CodeStaleDeviceList, "A newer device list was stored meanwhile; fetch it and sign a newer one.")
	}
	if errors.Is(err, store.ErrDeviceExists) {
		return errorf(api.CodeBadRequest, "The device list reuses a device id that is in use.")
	}
	if err != nil {
		return err
	}
	s.log.Info("device list replaced", "handle", handle, "version", list.Version, "removed", removed)
	s.publish(ctx, devicesKey(handle))
	return nil
}
