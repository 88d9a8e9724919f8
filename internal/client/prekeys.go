package client

import (
	"context"
	"crypto/ecdh"
	"crypto/mlkem"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/client/clientdb"
	"github.com/parleychat/parley/internal/identity"
	"github.com/parleychat/parley/internal/pqxdh"
)

// One-time prekey stock: refilled to prekeyBatch when below prekeyLow.
const (
	prekeyBatch = 100
	prekeyLow   = 25
)

// newPrekeys generates n prekeys of kind with ids first, first+1, ...
func newPrekeys(dk *identity.DeviceKey, kind byte, first uint32, n int) ([]*pqxdh.Prekey, error) {
	out := make([]*pqxdh.Prekey, 0, n)
	for i := 0; i < n; i++ {
		p, err := pqxdh.GeneratePrekey(dk, kind, first+uint32(i))
		if err != nil {
			return nil, fmt.Errorf("client: generating prekeys: %w", err)
		}
		out = append(out, p)
	}
	return out, nil
}

func storePrekeys(tx *clientdb.Tx, ps []*pqxdh.Prekey) error {
	for _, p := range ps {
		if err := tx.PutPrekey(&clientdb.Prekey{ID: p.ID, Kind: p.Kind, Private: p.Private, Public: p.Public, Signature: p.Signature}); err != nil {
			return err
		}
	}
	return nil
}

func signedPrekey(p *pqxdh.Prekey) *api.SignedPrekey {
	return &api.SignedPrekey{ID: p.ID, Public: p.Public, Signature: p.Signature}
}

// uploadForm turns generated prekeys into the API's upload.
func uploadForm(ps []*pqxdh.Prekey) api.Prekeys {
	var up api.Prekeys
	for _, p := range ps {
		switch p.Kind {
		case identity.PrekeySigned:
			up.SignedPrekey = signedPrekey(p)
		case identity.PrekeyPQLastResort:
			up.LastResortPQ = signedPrekey(p)
		case identity.PrekeyOneTime:
			up.OneTime = append(up.OneTime, api.OneTimePrekey{ID: p.ID, Public: p.Public})
		case identity.PrekeyPQOneTime:
			up.OneTimePQ = append(up.OneTimePQ, *signedPrekey(p))
		}
	}
	return up
}

// initialPrekeys generates a new device's signed prekey, last-resort PQ
// prekey and one-time prekeys of both kinds, with ids from first on.
func initialPrekeys(dk *identity.DeviceKey, first uint32) ([]*pqxdh.Prekey, uint32, error) {
	var all []*pqxdh.Prekey
	next := first
	for _, k := range []struct {
		kind byte
		n    int
	}{{identity.PrekeySigned, 1}, {identity.PrekeyPQLastResort, 1}, {identity.PrekeyOneTime, prekeyBatch}, {identity.PrekeyPQOneTime, prekeyBatch}} {
		ps, err := newPrekeys(dk, k.kind, next, k.n)
		if err != nil {
			return nil, 0, err
		}
		all = append(all, ps...)
		next += uint32(k.n)
	}
	return all, next, nil
}

// topUpPrekeys refills the server's stock of this device's one-time
// prekeys when either kind runs low.
func (c *Client) topUpPrekeys(ctx context.Context) error {
	me, err := c.self()
	if err != nil {
		return err
	}
	if err := c.uploadPendingPrekeys(ctx); err != nil {
		return err
	}
	var counts api.PrekeyCounts
	if err := c.call(ctx, http.MethodGet, api.PathKeys, nil, &counts, true); err != nil {
		return err
	}
	var n1, n2 int
	if counts.OneTime < prekeyLow {
		n1 = prekeyBatch - counts.OneTime
	}
	if counts.OneTimePQ < prekeyLow {
		n2 = prekeyBatch - counts.OneTimePQ
	}
	if n1 == 0 && n2 == 0 {
		return c.rotateSignedPrekeys(ctx, me)
	}
	var first uint32
	if err := c.db.Update(ctx, func(tx *clientdb.Tx) error {
		var err error
		first, err = tx.AllocPrekeyIDs(uint32(n1 + n2))
		return err
	}); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	ot, err := newPrekeys(me.deviceKey, identity.PrekeyOneTime, first, n1)
	if err != nil {
		return err
	}
	pq, err := newPrekeys(me.deviceKey, identity.PrekeyPQOneTime, first+uint32(n1), n2)
	if err != nil {
		return err
	}
	all := append(ot, pq...)
	// Keep the private halves before the public ones are published.
	if err := c.db.Update(ctx, func(tx *clientdb.Tx) error { return storePrekeys(tx, all) }); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if err := c.call(ctx, http.MethodPost, api.PathKeys, uploadForm(all), nil, true); err != nil {
		return err
	}
	c.log.Info("uploaded one-time prekeys", "x25519", n1, "mlkem", n2)
	return c.rotateSignedPrekeys(ctx, me)
}

// Rotation of the signed prekey and of the last-resort ML-KEM prekey, as
// Signal does it. They are not used up as one-time prekeys are, so a
// device makes a new pair signedPrekeyRotation after it published the
// current one, and publishes it in its place (the server keeps one of each
// kind per device). A replaced pair stays on the device for
// signedPrekeyGrace after its successor was published, so that a first
// message sent from a bundle fetched before the rotation, and queued
// since, still decrypts; then it is deleted, so that someone who later
// seizes the device cannot decrypt recorded first messages older than
// that (docs/PROTOCOL-crypto.md §4).
const (
	signedPrekeyRotation = 2 * 24 * time.Hour
	signedPrekeyGrace    = 30 * 24 * time.Hour
	// prekeyCheck is how often a device that stays connected tops up its
	// one-time prekeys and checks whether to rotate.
	prekeyCheck = time.Hour
)

// settingSignedPublished holds the id of the newest signed prekey the
// server is known to have. Unset on a device from before rotation: its
// newest signed prekey is the one it registered or linked with.
//
// A published pair's Created is the time it was published (restamped
// when the upload succeeded); an unpublished one's, the time it was made.
const settingSignedPublished = "signed_prekey_published"

// rotateSignedPrekeys makes and publishes a new signed prekey and
// last-resort PQ prekey when the published ones are signedPrekeyRotation
// old, publishes the newest pair again if its upload failed before, and
// deletes the pairs replaced more than signedPrekeyGrace ago (also when
// the upload fails: deleting old keys needs no server).
func (c *Client) rotateSignedPrekeys(ctx context.Context, me self) error {
	var signed, lastResort []*clientdb.Prekey
	var published uint32
	err := c.db.Update(ctx, func(tx *clientdb.Tx) error {
		var err error
		if signed, err = tx.PrekeysOfKind(identity.PrekeySigned); err != nil {
			return err
		}
		if lastResort, err = tx.PrekeysOfKind(identity.PrekeyPQLastResort); err != nil {
			return err
		}
		if len(signed) == 0 || len(lastResort) == 0 {
			return errors.New("no signed or last-resort prekey stored")
		}
		newest := signed[len(signed)-1]
		v, err := tx.Setting(settingSignedPublished, "")
		if err != nil {
			return err
		}
		if published = newest.ID; v != "" {
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return fmt.Errorf("setting %s: %w", settingSignedPublished, err)
			}
			published = uint32(n)
		}
		if published != newest.ID || c.now().Sub(newest.Created) < signedPrekeyRotation {
			return nil // not due, or the newest still waits for its upload
		}
		first, err := tx.AllocPrekeyIDs(2)
		if err != nil {
			return err
		}
		for i, kind := range []byte{identity.PrekeySigned, identity.PrekeyPQLastResort} {
			p, err := pqxdh.GeneratePrekey(me.deviceKey, kind, first+uint32(i))
			if err != nil {
				return err
			}
			k := &clientdb.Prekey{ID: p.ID, Kind: p.Kind, Private: p.Private, Public: p.Public, Signature: p.Signature, Created: c.now()}
			if err := tx.PutPrekey(k); err != nil {
				return err
			}
			if kind == identity.PrekeySigned {
				signed = append(signed, k)
			} else {
				lastResort = append(lastResort, k)
			}
		}
		// Recorded explicitly, since unset would now mean the new one.
		return tx.PutSetting(settingSignedPublished, strconv.FormatUint(uint64(published), 10))
	})
	if err != nil {
		return fmt.Errorf("client: rotating the signed prekey: %w", err)
	}
	newS, newL := signed[len(signed)-1], lastResort[len(lastResort)-1]
	var uploadErr error
	if published != newS.ID {
		up := api.Prekeys{
			SignedPrekey: &api.SignedPrekey{ID: newS.ID, Public: newS.Public, Signature: newS.Signature},
			LastResortPQ: &api.SignedPrekey{ID: newL.ID, Public: newL.Public, Signature: newL.Signature},
		}
		uploadErr = c.call(ctx, http.MethodPost, api.PathKeys, up, nil, true)
		if uploadErr == nil {
			newS.Created, newL.Created = c.now(), c.now()
			if err := c.db.Update(ctx, func(tx *clientdb.Tx) error {
				if err := tx.PutPrekey(newS); err != nil {
					return err
				}
				if err := tx.PutPrekey(newL); err != nil {
					return err
				}
				return tx.PutSetting(settingSignedPublished, strconv.FormatUint(uint64(newS.ID), 10))
			}); err != nil {
				return fmt.Errorf("client: %w", err)
			}
			published = newS.ID
			c.log.Info("rotated the signed prekey", "id", newS.ID)
		}
	}
	if err := c.deleteReplacedPrekeys(ctx, published, signed, lastResort); err != nil {
		return err
	}
	return uploadErr // the next check uploads it again
}

// deleteReplacedPrekeys deletes the signed and last-resort prekeys (each
// list oldest first) whose successor was published signedPrekeyGrace ago:
// the successor is published (not newer than the published signed prekey)
// and its Created, the time it was published, is that old.
func (c *Client) deleteReplacedPrekeys(ctx context.Context, published uint32, lists ...[]*clientdb.Prekey) error {
	var publishedAt time.Time
	for _, k := range lists[0] {
		if k.ID == published {
			publishedAt = k.Created
		}
	}
	var expired []uint32
	for _, ks := range lists {
		for i := 0; i+1 < len(ks); i++ {
			next := ks[i+1].Created
			if !next.After(publishedAt) && c.now().Sub(next) >= signedPrekeyGrace {
				expired = append(expired, ks[i].ID)
			}
		}
	}
	if len(expired) == 0 {
		return nil
	}
	return c.db.Update(ctx, func(tx *clientdb.Tx) error {
		for _, id := range expired {
			if err := tx.DeletePrekey(id); err != nil {
				return fmt.Errorf("client: %w", err)
			}
		}
		return nil
	})
}

// txPrekeys looks up this device's private prekeys inside a receive
// transaction and remembers the one-time ones used, to delete them in the
// same transaction.
type txPrekeys struct {
	tx   *clientdb.Tx
	used []uint32
}

var _ pqxdh.Prekeys = (*txPrekeys)(nil)

func (k *txPrekeys) load(id uint32, kinds ...byte) (*clientdb.Prekey, error) {
	p, err := k.tx.Prekey(id)
	if err != nil {
		return nil, fmt.Errorf("%w: %d", pqxdh.ErrUnknownPrekey, id)
	}
	for _, kind := range kinds {
		if p.Kind == kind {
			return p, nil
		}
	}
	return nil, fmt.Errorf("%w: %d has another kind", pqxdh.ErrUnknownPrekey, id)
}

func (k *txPrekeys) SignedPrekey(id uint32) (*ecdh.PrivateKey, error) {
	p, err := k.load(id, identity.PrekeySigned)
	if err != nil {
		return nil, err
	}
	return ecdh.X25519().NewPrivateKey(p.Private)
}

func (k *txPrekeys) OneTimePrekey(id uint32) (*ecdh.PrivateKey, error) {
	p, err := k.load(id, identity.PrekeyOneTime)
	if err != nil {
		return nil, err
	}
	k.used = append(k.used, id)
	return ecdh.X25519().NewPrivateKey(p.Private)
}

func (k *txPrekeys) PQPrekey(id uint32) (*mlkem.DecapsulationKey768, error) {
	p, err := k.load(id, identity.PrekeyPQOneTime, identity.PrekeyPQLastResort)
	if err != nil {
		return nil, err
	}
	if p.Kind == identity.PrekeyPQOneTime {
		k.used = append(k.used, id)
	}
	return mlkem.NewDecapsulationKey768(p.Private)
}

// settingPrekeysPending is "1" while a linked device's first prekeys (its
// signed and last-resort ones included) are not known to be uploaded.
const settingPrekeysPending = "prekeys_pending"

// uploadPendingPrekeys uploads every stored prekey if the first upload of
// a linked device did not happen yet.
func (c *Client) uploadPendingPrekeys(ctx context.Context) error {
	var pending string
	var all []*pqxdh.Prekey
	err := c.db.View(ctx, func(tx *clientdb.Tx) error {
		var err error
		if pending, err = tx.Setting(settingPrekeysPending, "0"); err != nil || pending != "1" {
			return err
		}
		for _, kind := range []byte{identity.PrekeySigned, identity.PrekeyPQLastResort, identity.PrekeyOneTime, identity.PrekeyPQOneTime} {
			ps, err := tx.PrekeysOfKind(kind)
			if err != nil {
				return err
			}
			for _, p := range ps {
				all = append(all, &pqxdh.Prekey{Kind: p.Kind, ID: p.ID, Private: p.Private, Public: p.Public, Signature: p.Signature})
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if pending != "1" {
		return nil
	}
	if err := c.call(ctx, http.MethodPost, api.PathKeys, uploadForm(all), nil, true); err != nil {
		return err
	}
	return c.db.Update(ctx, func(tx *clientdb.Tx) error { return tx.PutSetting(settingPrekeysPending, "0") })
}
