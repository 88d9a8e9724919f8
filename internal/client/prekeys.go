package client

import (
	"context"
	"crypto/ecdh"
	"crypto/mlkem"
	"fmt"
	"net/http"

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
		return nil
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
	return nil
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
