package server

import (
	"crypto/ed25519"
	"crypto/mlkem"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/identity"
	"github.com/parleychat/parley/internal/store"
)

// Prekey bounds.
const (
	// MaxPrekeysPerUpload bounds each list of one-time keys in one upload.
	MaxPrekeysPerUpload = 200
	// MaxStoredOneTime bounds the one-time keys of each kind a device may
	// keep on the server.
	MaxStoredOneTime = 2000
	x25519Size       = 32
)

// checkPrekeys checks the shape and signatures of an upload against the
// device's signing key and converts it for the store.
func checkPrekeys(p *api.Prekeys, signing ed25519.PublicKey) (store.Prekeys, error) {
	var out store.Prekeys
	if len(p.OneTime) > MaxPrekeysPerUpload || len(p.OneTimePQ) > MaxPrekeysPerUpload {
		return out, errorf(api.CodeBadRequest, "At most %d one-time prekeys of each kind fit in one upload.", MaxPrekeysPerUpload)
	}
	signed := func(name string, kind byte, size int, k *api.SignedPrekey) (*store.Prekey, error) {
		if k.ID == 0 {
			return nil, errorf(api.CodeBadRequest, "%s has id 0; prekey ids are non-zero.", name)
		}
		if len(k.Public) != size {
			return nil, errorf(api.CodeBadRequest, "%s %d has a %d-byte public key, want %d.", name, k.ID, len(k.Public), size)
		}
		if !ed25519.Verify(signing, identity.PrekeyMessage(kind, k.ID, k.Public), k.Signature) {
			return nil, errorf(api.CodeBadSignature, "The signature of %s %d does not verify with the device's signing key.", name, k.ID)
		}
		return &store.Prekey{ID: k.ID, Public: k.Public, Signature: k.Signature}, nil
	}
	var err error
	if p.SignedPrekey != nil {
		if out.Signed, err = signed("signed_prekey", identity.PrekeySigned, x25519Size, p.SignedPrekey); err != nil {
			return out, err
		}
	}
	if p.LastResortPQ != nil {
		if out.LastResort, err = signed("last_resort_pq", identity.PrekeyPQLastResort, mlkem.EncapsulationKeySize768, p.LastResortPQ); err != nil {
			return out, err
		}
	}
	seen := make(map[uint32]bool)
	for _, k := range p.OneTime {
		if k.ID == 0 || seen[k.ID] {
			return out, errorf(api.CodeBadRequest, "one_time prekey ids must be non-zero and distinct (id %d).", k.ID)
		}
		seen[k.ID] = true
		if len(k.Public) != x25519Size {
			return out, errorf(api.CodeBadRequest, "one_time prekey %d has a %d-byte public key, want %d.", k.ID, len(k.Public), x25519Size)
		}
		out.OneTime = append(out.OneTime, store.Prekey{ID: k.ID, Public: k.Public})
	}
	clear(seen)
	for i := range p.OneTimePQ {
		k := &p.OneTimePQ[i]
		if seen[k.ID] {
			return out, errorf(api.CodeBadRequest, "one_time_pq prekey ids must be distinct (id %d).", k.ID)
		}
		seen[k.ID] = true
		sk, err := signed("one_time_pq prekey", identity.PrekeyPQOneTime, mlkem.EncapsulationKeySize768, k)
		if err != nil {
			return out, err
		}
		out.OneTimePQ = append(out.OneTimePQ, *sk)
	}
	return out, nil
}

func (s *Server) handlePutKeys(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	var req api.Prekeys
	if err := s.decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	d, err := s.device(r.Context(), c.handle, c.device)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p, err := checkPrekeys(&req, d.SigningKey)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ot, otpq, err := s.store.PrekeyCounts(r.Context(), c.handle, c.device)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if ot+len(p.OneTime) > MaxStoredOneTime || otpq+len(p.OneTimePQ) > MaxStoredOneTime {
		writeError(w, api.CodeBadRequest, "The server keeps at most "+strconv.Itoa(MaxStoredOneTime)+
			" one-time prekeys of each kind per device; upload fewer.")
		return
	}
	if err := s.store.PutPrekeys(r.Context(), c.handle, c.device, p); err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeCounts(w, r, c)
}

func (s *Server) handleKeyCounts(w http.ResponseWriter, r *http.Request) {
	s.writeCounts(w, r, callerOf(r))
}

func (s *Server) writeCounts(w http.ResponseWriter, r *http.Request, c caller) {
	ot, otpq, err := s.store.PrekeyCounts(r.Context(), c.handle, c.device)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, api.PrekeyCounts{OneTime: ot, OneTimePQ: otpq})
}

func (s *Server) handleBundles(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	if !s.bundleRL.Allow(c.handle) {
		writeError(w, api.CodeRateLimited, "Too many prekey bundle requests from this account; try again later.")
		return
	}
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
	current := make([]uint32, 0, len(l.Devices))
	for _, d := range l.Devices {
		current = append(current, d.ID)
	}
	var ids []uint32
	if q := r.URL.Query().Get("devices"); q != "" {
		for f := range strings.SplitSeq(q, ",") {
			n, err := strconv.ParseUint(strings.TrimSpace(f), 10, 32)
			if err != nil || n == 0 {
				writeError(w, api.CodeBadRequest, "devices is a comma-separated list of device ids, like devices=1,2.")
				return
			}
			id := uint32(n)
			if !slices.Contains(current, id) {
				writeError(w, api.CodeNotFound, "@"+handle+" has no device "+strconv.FormatUint(n, 10)+".")
				return
			}
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	} else {
		for _, id := range current {
			if handle == c.handle && id == c.device {
				continue // a device needs no session with itself
			}
			ids = append(ids, id)
		}
	}
	out := api.Bundles{Handle: handle, IdentityKey: a.IdentityKey, DeviceList: l.Signed, Bundles: []api.Bundle{}}
	for _, id := range ids {
		b, err := s.store.TakeBundle(r.Context(), handle, id)
		if errors.Is(err, store.ErrNoPrekeys) {
			writeError(w, api.CodeNotFound, "Device "+strconv.FormatUint(uint64(id), 10)+" of @"+handle+
				" has not published prekeys yet; try again shortly.")
			return
		}
		if errors.Is(err, store.ErrNotFound) {
			writeError(w, api.CodeNotFound, "@"+handle+" has no device "+strconv.FormatUint(uint64(id), 10)+".")
			return
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		out.Bundles = append(out.Bundles, apiBundle(b))
	}
	writeJSON(w, out)
}

func apiBundle(b store.Bundle) api.Bundle {
	out := api.Bundle{
		DeviceID:     b.DeviceID,
		SignedPrekey: api.SignedPrekey{ID: b.Signed.ID, Public: b.Signed.Public, Signature: b.Signed.Signature},
		PQPrekey:     api.SignedPrekey{ID: b.PQ.ID, Public: b.PQ.Public, Signature: b.PQ.Signature},
		PQLastResort: b.PQLastResort,
	}
	if b.OneTime != nil {
		out.OneTime = &api.OneTimePrekey{ID: b.OneTime.ID, Public: b.OneTime.Public}
	}
	return out
}
