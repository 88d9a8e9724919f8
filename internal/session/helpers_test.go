package session

import (
	"crypto/ecdh"
	"crypto/mlkem"
	"fmt"
	"testing"

	"github.com/parleychat/parley/internal/identity"
	"github.com/parleychat/parley/internal/pqxdh"
)

// keyStore is a pqxdh.Prekeys over a device's generated prekeys.
type keyStore map[uint32]*pqxdh.Prekey

func (s keyStore) get(id uint32, kinds ...byte) (*pqxdh.Prekey, error) {
	p, ok := s[id]
	if !ok {
		return nil, fmt.Errorf("no prekey %d", id)
	}
	for _, k := range kinds {
		if p.Kind == k {
			return p, nil
		}
	}
	return nil, fmt.Errorf("prekey %d has kind %d", id, p.Kind)
}

func (s keyStore) SignedPrekey(id uint32) (*ecdh.PrivateKey, error) {
	p, err := s.get(id, identity.PrekeySigned)
	if err != nil {
		return nil, err
	}
	return p.X25519()
}

func (s keyStore) OneTimePrekey(id uint32) (*ecdh.PrivateKey, error) {
	p, err := s.get(id, identity.PrekeyOneTime)
	if err != nil {
		return nil, err
	}
	return p.X25519()
}

func (s keyStore) PQPrekey(id uint32) (*mlkem.DecapsulationKey768, error) {
	p, err := s.get(id, identity.PrekeyPQOneTime, identity.PrekeyPQLastResort)
	if err != nil {
		return nil, err
	}
	return p.MLKEM()
}

// party is one device of one account.
type party struct {
	account *identity.AccountKey
	device  *identity.DeviceKey
	addr    Address
	keys    keyStore
}

// Prekey ids of a test party.
const (
	spkID  = 11
	otkID  = 12
	pqID   = 13
	lastID = 14
)

func newParty(t testing.TB, handle string, deviceID uint32) *party {
	t.Helper()
	ak, err := identity.NewAccountKey()
	if err != nil {
		t.Fatal(err)
	}
	dk, err := identity.NewDeviceKey()
	if err != nil {
		t.Fatal(err)
	}
	p := &party{account: ak, device: dk, addr: Address{handle, deviceID, ak.Public()}, keys: keyStore{}}
	for _, k := range []struct {
		kind byte
		id   uint32
	}{{identity.PrekeySigned, spkID}, {identity.PrekeyOneTime, otkID}, {identity.PrekeyPQOneTime, pqID}, {identity.PrekeyPQLastResort, lastID}} {
		pk, err := pqxdh.GeneratePrekey(dk, k.kind, k.id)
		if err != nil {
			t.Fatal(err)
		}
		p.keys[k.id] = pk
	}
	return p
}

func (p *party) local() Local   { return Local{p.addr, p.device} }
func (p *party) remote() Remote { return Remote{p.addr, p.device.DHPublic()} }

func (p *party) bundle() *pqxdh.Bundle {
	return &pqxdh.Bundle{
		IdentityDH: p.device.DHPublic(), SigningKey: p.device.SigningPublic(),
		SignedPrekeyID: spkID, SignedPrekey: p.keys[spkID].Public, SignedPrekeySig: p.keys[spkID].Signature,
		OneTimeID: otkID, OneTime: p.keys[otkID].Public,
		PQPrekeyID: pqID, PQPrekey: p.keys[pqID].Public, PQPrekeySig: p.keys[pqID].Signature,
	}
}
