package server

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/devicelist"
	"github.com/parleychat/parley/internal/store"
)

// Keys of the fan-out bus: dot-separated tokens of [a-z0-9_], so that a
// NATS bus can use them as subjects under its prefix.
func mailKey(handle string, device uint32) string {
	return "mail." + handle + "." + strconv.FormatUint(uint64(device), 10)
}
func devicesKey(handle string) string { return "devices." + handle }
func linkKey(id string) string        { return "link." + id }

// publish signals key; a failure only delays delivery until the next
// connection, so it is logged, not returned.
func (s *Server) publish(ctx context.Context, key string) {
	if err := s.bus.Publish(context.WithoutCancel(ctx), key); err != nil {
		s.log.Warn("publishing to the fan-out bus", "key", key, "err", err)
	}
}

// validMessageID reports whether id is 32 lower-case hex digits.
func validMessageID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

type deviceRef struct {
	handle string
	id     uint32
}

func (s *Server) handleSend(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	c := callerOf(r)
	var req api.SendRequest
	if err := s.decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	resp, err := s.send(r.Context(), c, &req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.metrics.ObserveSend(start, resp.Duplicate, len(req.Envelopes))
	writeJSON(w, resp)
}

func (s *Server) send(ctx context.Context, c caller, req *api.SendRequest) (*api.SendResponse, error) {
	if !validMessageID(req.MessageID) {
		return nil, errorf(api.CodeBadRequest, "message_id must be 32 lower-case hex digits.")
	}
	to, err := normHandle(req.To)
	if err != nil {
		return nil, err
	}
	if len(req.Envelopes) == 0 {
		return nil, errorf(api.CodeBadRequest, "A message needs at least one envelope.")
	}
	if len(req.Envelopes) > 2*devicelist.MaxDevices {
		return nil, errorf(api.CodeBadRequest, "A message has at most %d envelopes.", 2*devicelist.MaxDevices)
	}
	named := make(map[deviceRef]bool, len(req.Envelopes))
	for i := range req.Envelopes {
		e := &req.Envelopes[i]
		e.Handle = asciiLower(e.Handle)
		if e.Handle != to && e.Handle != c.handle {
			return nil, errorf(api.CodeBadRequest, "Envelope %d is for @%s, who is neither the recipient nor the sender.", i, e.Handle)
		}
		ref := deviceRef{e.Handle, e.DeviceID}
		if named[ref] {
			return nil, errorf(api.CodeBadRequest, "Two envelopes are for device %d of @%s.", e.DeviceID, e.Handle)
		}
		named[ref] = true
		if len(e.Ciphertext) == 0 {
			return nil, errorf(api.CodeBadRequest, "Envelope %d has no ciphertext.", i)
		}
		if len(e.Ciphertext) > s.cfg.MaxEnvelopeBytes {
			return nil, errorf(api.CodeTooLarge, "Envelope %d is %d bytes; the limit is %d.", i, len(e.Ciphertext), s.cfg.MaxEnvelopeBytes)
		}
	}
	if req.ExpiresAt < 0 {
		return nil, errorf(api.CodeBadRequest, "expires_at must be a time in Unix milliseconds, or absent.")
	}
	if err := s.checkDevices(ctx, c, to, named); err != nil {
		return nil, err
	}

	now := time.Now()
	var expires time.Time // a vanishing message: dropped at this time if still queued
	if req.ExpiresAt > 0 {
		expires = time.UnixMilli(req.ExpiresAt)
	}
	envs := make([]store.Envelope, 0, len(req.Envelopes))
	for _, e := range req.Envelopes {
		envs = append(envs, store.Envelope{
			MessageID:       req.MessageID,
			Sender:          c.handle,
			SenderDevice:    c.device,
			Recipient:       e.Handle,
			RecipientDevice: e.DeviceID,
			Ciphertext:      e.Ciphertext,
			ServerTime:      now,
			Expires:         expires,
		})
	}
	dup, err := s.store.Enqueue(ctx, envs)
	switch {
	case errors.Is(err, store.ErrQueueFull):
		return nil, errorf(api.CodeQueueFull, "A recipient device has too many undelivered messages; try again later.")
	case errors.Is(err, store.ErrNotFound):
		// A device list changed between the check and the enqueue.
		if err := s.checkDevices(ctx, c, to, named); err != nil {
			return nil, err
		}
		return nil, errorf(api.CodeDeviceMismatch, "The recipient's devices changed; fetch them and try again.")
	case err != nil:
		return nil, err
	}
	// A duplicate is signalled again: the node that stored the original
	// may have died between its commit and its publish.
	for _, e := range envs {
		s.publish(ctx, mailKey(e.Recipient, e.RecipientDevice))
	}
	return &api.SendResponse{MessageID: req.MessageID, ServerTime: now.UnixMilli(), Duplicate: dup}, nil
}

// checkDevices requires the named devices to be exactly every current
// device of to and of the sender, except the sending device.
func (s *Server) checkDevices(ctx context.Context, c caller, to string, named map[deviceRef]bool) error {
	accounts := []string{to}
	if c.handle != to {
		accounts = append(accounts, c.handle)
	}
	var mismatches []api.DeviceMismatch
	for _, h := range accounts {
		l, err := s.store.DeviceList(ctx, h)
		if errors.Is(err, store.ErrNotFound) {
			return errorf(api.CodeNotFound, "There is no account @%s.", h)
		}
		if err != nil {
			return err
		}
		m := api.DeviceMismatch{Handle: h, Current: []uint32{}}
		for _, d := range l.Devices {
			m.Current = append(m.Current, d.ID)
			want := !(h == c.handle && d.ID == c.device)
			if want && !named[deviceRef{h, d.ID}] {
				m.Missing = append(m.Missing, d.ID)
			}
		}
		for ref := range named {
			if ref.handle != h {
				continue
			}
			if !slices.Contains(m.Current, ref.id) || (h == c.handle && ref.id == c.device) {
				m.Extra = append(m.Extra, ref.id)
			}
		}
		if len(m.Missing) > 0 || len(m.Extra) > 0 {
			slices.Sort(m.Current)
			slices.Sort(m.Missing)
			slices.Sort(m.Extra)
			mismatches = append(mismatches, m)
		}
	}
	if len(mismatches) > 0 {
		return &apiError{api.Error{
			Code:     api.CodeDeviceMismatch,
			Message:  "The envelopes do not match the current devices; see mismatch, fetch the missing devices' bundles and try again.",
			Mismatch: mismatches,
		}}
	}
	return nil
}
