package server

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/devicelist"
	"github.com/parleychat/parley/internal/linking"
	"github.com/parleychat/parley/internal/store"
)

// MaxWait bounds the ?wait= of the long-polling link endpoints.
const MaxWait = 30 * time.Second

// parseWait reads ?wait= as a Go duration ("30s") or whole seconds ("30"),
// capped at MaxWait.
func parseWait(r *http.Request) (time.Duration, error) {
	q := r.URL.Query().Get("wait")
	if q == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(q)
	if err != nil {
		n, nerr := strconv.ParseUint(q, 10, 32)
		if nerr != nil {
			return 0, errorf(api.CodeBadRequest, "wait is a duration like 30s.")
		}
		d = time.Duration(n) * time.Second
	}
	if d < 0 {
		return 0, errorf(api.CodeBadRequest, "wait is a duration like 30s.")
	}
	return min(d, MaxWait), nil
}

// waitUntil calls check now and after each signal of key until it reports
// done, wait elapses, the request ends or the server shuts down.
func (s *Server) waitUntil(ctx context.Context, key string, wait time.Duration, check func() (bool, error)) error {
	var sig <-chan struct{}
	if wait > 0 {
		ch, unsub := s.bus.Subscribe(key) // before the first check: no lost signal
		defer unsub()
		sig = ch
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		done, err := check()
		if err != nil || done || wait == 0 {
			return err
		}
		select {
		case <-sig:
		case <-timer.C:
			return nil
		case <-s.shutdown:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// linkID returns the path's link id, or a not_found error.
func linkID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if !validMessageID(id) { // the same shape: 32 lower-case hex digits
		return "", errorf(api.CodeNotFound, "There is no such link.")
	}
	return id, nil
}

// getLink returns a live link; with owner set, only the account's own.
func (s *Server) getLink(ctx context.Context, id, owner string) (store.Link, error) {
	l, err := s.store.Link(ctx, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && owner != "" && l.Handle != owner {
		return store.Link{}, errorf(api.CodeNotFound, "There is no such link, or it has expired.")
	}
	if err != nil {
		return store.Link{}, err
	}
	if !time.Now().Before(l.Expires) {
		return store.Link{}, errorf(api.CodeLinkExpired, "The link has expired; start linking again.")
	}
	return l, nil
}

func (s *Server) handleCreateLink(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	var b [16]byte
	rand.Read(b[:])
	l := store.Link{ID: hex.EncodeToString(b[:]), Handle: c.handle, Expires: time.Now().Add(s.cfg.LinkTTL)}
	if err := s.store.CreateLink(r.Context(), l); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, api.CreateLinkResponse{LinkID: l.ID, ExpiresAt: l.Expires.UnixMilli()})
}

func (s *Server) handleJoinLink(w http.ResponseWriter, r *http.Request) {
	if !s.joinRL.Allow(s.clientAddr(r)) {
		writeError(w, api.CodeRateLimited, "Too many link joins from this address; try again later.")
		return
	}
	if err := s.joinLink(w, r); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, struct{}{})
}

func (s *Server) joinLink(w http.ResponseWriter, r *http.Request) error {
	id, err := linkID(r)
	if err != nil {
		return err
	}
	var req api.JoinLinkRequest
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	j, err := linking.ParseJoin(req.Join)
	if err != nil {
		return errorf(api.CodeBadRequest, "join is not a valid linking join message.")
	}
	l, err := s.getLink(r.Context(), id, "")
	if err != nil {
		return err
	}
	if len(l.Join) > 0 {
		return errorf(api.CodeLinkUsed, "A device has already joined this link.")
	}
	cur, err := s.store.DeviceList(r.Context(), l.Handle)
	if err != nil {
		return err
	}
	if hasDevice(cur, j.DeviceID) {
		return errorf(api.CodeBadRequest, "Device id %d is already in use in this account; pick another.", j.DeviceID)
	}
	err = s.store.JoinLink(r.Context(), id, req.Join)
	switch {
	case errors.Is(err, store.ErrLinkUsed):
		return errorf(api.CodeLinkUsed, "A device has already joined this link.")
	case errors.Is(err, store.ErrNotFound):
		return errorf(api.CodeNotFound, "There is no such link, or it has expired.")
	case err != nil:
		return err
	}
	s.publish(r.Context(), linkKey(id))
	return nil
}

func (s *Server) handleLinkStatus(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	id, err := linkID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	wait, err := parseWait(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var l store.Link
	err = s.waitUntil(r.Context(), linkKey(id), wait, func() (bool, error) {
		var err error
		l, err = s.getLink(r.Context(), id, c.handle)
		return len(l.Join) > 0, err
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, api.LinkStatus{Joined: len(l.Join) > 0, Join: l.Join})
}

func (s *Server) handleCompleteLink(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	resp, err := s.completeLink(w, r, c)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, resp)
}

func (s *Server) completeLink(w http.ResponseWriter, r *http.Request, c caller) (*api.Account, error) {
	ctx := r.Context()
	id, err := linkID(r)
	if err != nil {
		return nil, err
	}
	var req api.CompleteLinkRequest
	if err := s.decode(w, r, &req); err != nil {
		return nil, err
	}
	if len(req.Sealed) == 0 {
		return nil, errorf(api.CodeBadRequest, "sealed is empty.")
	}
	l, err := s.getLink(ctx, id, c.handle)
	if err != nil {
		return nil, err
	}
	if len(l.Join) == 0 {
		return nil, errorf(api.CodeBadRequest, "No device has joined this link yet.")
	}
	if len(l.Sealed) > 0 {
		return nil, errorf(api.CodeLinkUsed, "This link was already completed.")
	}
	j, err := linking.ParseJoin(l.Join)
	if err != nil {
		return nil, err // it parsed when it was stored
	}
	a, cur, err := s.account(ctx, c.handle)
	if err != nil {
		return nil, err
	}
	list, err := verifyList(req.DeviceList, a.IdentityKey, c.handle)
	if err != nil {
		return nil, err
	}
	curList, err := devicelist.Verify(cur.Signed, ed25519.PublicKey(a.IdentityKey))
	if err != nil {
		return nil, err // it was verified when it was stored
	}
	if list.Version <= cur.Version {
		return nil, staleError(list.Version, cur.Version)
	}
	nd, ok := list.Device(j.DeviceID)
	if !ok || !sameKeys(nd, devicelist.Device{SigningKey: j.SigningKey, DHKey: j.DHKey}) {
		return nil, errorf(api.CodeBadRequest,
			"The new device list must include the joining device %d with exactly the keys it joined with.", j.DeviceID)
	}
	if _, ok := curList.Device(j.DeviceID); ok || len(list.Devices) != len(curList.Devices)+1 {
		return nil, errorf(api.CodeBadRequest, "The new device list must add only the joining device.")
	}
	for _, d := range curList.Devices {
		nd, ok := list.Device(d.ID)
		if !ok || !sameKeys(d, nd) {
			return nil, errorf(api.CodeBadRequest, "The new device list must keep every current device (device %d) unchanged.", d.ID)
		}
	}
	if err := s.replaceDeviceList(ctx, c.handle, req.DeviceList, list, cur.Devices); err != nil {
		return nil, err
	}
	err = s.store.CompleteLink(ctx, id, req.Sealed, req.DeviceList)
	switch {
	case errors.Is(err, store.ErrLinkUsed):
		return nil, errorf(api.CodeLinkUsed, "This link was already completed.")
	case errors.Is(err, store.ErrNotFound):
		return nil, errorf(api.CodeLinkExpired, "The link expired while completing; the device list was updated, start linking again.")
	case err != nil:
		return nil, err
	}
	s.log.Info("device linked", "handle", c.handle, "device", j.DeviceID)
	s.publish(ctx, linkKey(id))
	return &api.Account{Handle: a.Handle, IdentityKey: a.IdentityKey, DeviceList: req.DeviceList}, nil
}

func (s *Server) handleLinkResult(w http.ResponseWriter, r *http.Request) {
	id, err := linkID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	wait, err := parseWait(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var ready bool
	err = s.waitUntil(r.Context(), linkKey(id), wait, func() (bool, error) {
		l, err := s.getLink(r.Context(), id, "")
		if err != nil {
			return false, err
		}
		if l.Fetched {
			return false, errorf(api.CodeLinkUsed, "The result of this link was already fetched.")
		}
		ready = len(l.Sealed) > 0
		return ready, nil
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !ready {
		writeJSON(w, api.LinkResult{Ready: false})
		return
	}
	l, err := s.store.FetchLinkResult(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrLinkUsed):
		s.fail(w, r, errorf(api.CodeLinkUsed, "The result of this link was already fetched."))
		return
	case errors.Is(err, store.ErrNotFound):
		s.fail(w, r, errorf(api.CodeNotFound, "There is no such link, or it has expired."))
		return
	case err != nil:
		s.fail(w, r, err)
		return
	}
	writeJSON(w, api.LinkResult{Ready: true, Sealed: l.Sealed, DeviceList: l.DeviceList})
}
