package pinbackup

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"
)

// cheap are Argon2id parameters for tests that do not measure anything.
var cheap = Params{Time: 1, MemoryKiB: 64, Threads: 1}

func testSetup(t *testing.T, n, th int) Setup {
	t.Helper()
	s := Setup{Threshold: th}
	for range n {
		pub, _, _ := ed25519.GenerateKey(nil)
		s.Realms = append(s.Realms, RealmIDFromKey(pub))
	}
	return s
}

// memRealm is the realm's protocol logic without storage or HTTP.
type memRealm struct {
	id        RealmID
	reg       *Registration
	attempted int
	destroyed bool
}

func (m *memRealm) status() *Status {
	switch {
	case m.destroyed:
		return &Status{State: StateDestroyed}
	case m.reg == nil:
		return &Status{State: StateNone}
	}
	return m.reg.StatusOf(m.attempted)
}

func (m *memRealm) evaluate(req *EvaluateRequest) (*EvaluateResponse, error) {
	if m.reg == nil || m.attempted >= m.reg.AllowedGuesses {
		m.reg, m.destroyed = nil, true
		return nil, ErrDestroyed
	}
	m.attempted++
	return m.reg.Evaluate(req, m.attempted)
}

func (m *memRealm) unlock(req *UnlockRequest) (*UnlockResponse, error) {
	if m.reg == nil {
		return nil, ErrDestroyed
	}
	if !m.reg.TagMatches(req.Tag) {
		if m.attempted >= m.reg.AllowedGuesses {
			m.reg, m.destroyed = nil, true
			return nil, ErrDestroyed
		}
		return nil, ErrWrongPIN
	}
	m.attempted = 0
	return m.reg.Release(), nil
}

func register(t *testing.T, s Setup, pin string, key []byte) []*memRealm {
	t.Helper()
	regs, err := Register(s, "alice", []byte(pin), key, cheap, 0)
	if err != nil {
		t.Fatal(err)
	}
	var realms []*memRealm
	for i, r := range regs {
		if err := r.Check(s.Realms[i]); err != nil {
			t.Fatalf("realm %d rejects its registration: %v", i, err)
		}
		realms = append(realms, &memRealm{id: s.Realms[i], reg: &r})
	}
	return realms
}

// recoverKey runs a whole recovery against the realms that are up.
func recoverKey(s Setup, realms []*memRealm, up []bool, pin string) ([]byte, error) {
	var sts []RealmStatus
	for i, m := range realms {
		if up[i] {
			sts = append(sts, RealmStatus{m.id, m.status()})
		}
	}
	plan, err := Choose(s, sts)
	if err != nil {
		return nil, err
	}
	rec, req, err := plan.Start("alice", []byte(pin))
	if err != nil {
		return nil, err
	}
	var evals []RealmEvaluation
	for i, m := range realms {
		if up[i] {
			if resp, err := m.evaluate(req); err == nil {
				evals = append(evals, RealmEvaluation{m.id, resp})
			}
		}
	}
	ureqs, err := rec.Unlock(evals)
	if err != nil {
		return nil, err
	}
	var res []RealmUnlock
	var last error
	for _, u := range ureqs {
		for _, m := range realms {
			if m.id == u.Realm {
				resp, err := m.unlock(u.Request)
				if err != nil {
					last = err
					continue
				}
				res = append(res, RealmUnlock{m.id, resp})
			}
		}
	}
	if len(res) < s.Threshold && last != nil {
		return nil, last
	}
	return rec.Finish(res)
}

func TestRegisterRecover(t *testing.T) {
	s := testSetup(t, 3, 2)
	key := NewBackupKey()
	realms := register(t, s, "2468", key)
	for _, up := range [][]bool{{true, true, true}, {false, true, true}, {true, false, true}, {true, true, false}} {
		got, err := recoverKey(s, realms, up, "2468")
		if err != nil || !bytes.Equal(got, key) {
			t.Fatalf("up %v: %x, %v", up, got, err)
		}
	}
	if _, err := recoverKey(s, realms, []bool{true, false, false}, "2468"); !errors.Is(err, ErrTooFewRealms) {
		t.Fatalf("two realms down: %v, want ErrTooFewRealms", err)
	}
}

func TestWrongPINsDestroy(t *testing.T) {
	s := testSetup(t, 3, 2)
	realms := register(t, s, "1234", NewBackupKey())
	up := []bool{true, true, true}
	for i := range DefaultAllowedGuesses {
		_, err := recoverKey(s, realms, up, fmt.Sprintf("%04d", 5000+i))
		want := ErrWrongPIN
		if i == DefaultAllowedGuesses-1 {
			want = ErrDestroyed
		}
		if !errors.Is(err, want) {
			t.Fatalf("wrong PIN %d: %v, want %v", i+1, err, want)
		}
	}
	if _, err := recoverKey(s, realms, up, "1234"); !errors.Is(err, ErrDestroyed) {
		t.Fatalf("right PIN after the limit: %v, want ErrDestroyed", err)
	}
}

func TestMisbehavingRealm(t *testing.T) {
	s := testSetup(t, 3, 2)
	key := NewBackupKey()
	realms := register(t, s, "1234", key)
	// Realm 0 swaps in a key share of its own, with a public share signed
	// by a key of its own: its evaluation verifies under the wrong
	// registration key and is set aside; the other two recover.
	other := register(t, s, "9999", NewBackupKey())
	forged := *realms[0].reg
	forged.KeyShare, forged.RegistrationKey, forged.PublicShareSignature = other[0].reg.KeyShare, other[0].reg.RegistrationKey, other[0].reg.PublicShareSignature
	realms[0].reg = &forged
	got, err := recoverKey(s, realms, []bool{true, true, true}, "1234")
	if err != nil || !bytes.Equal(got, key) {
		t.Fatalf("with one misbehaving realm: %v", err)
	}
	// With only it and one honest realm, the client refuses to combine.
	if _, err := recoverKey(s, realms, []bool{true, true, false}, "1234"); !errors.Is(err, ErrMisbehaving) {
		t.Fatalf("misbehaving + one honest: %v", err)
	}
}

func TestChooseThreshold(t *testing.T) {
	s := testSetup(t, 3, 2)
	realms := register(t, s, "1234", NewBackupKey())
	// A client configured for a different threshold does not use the
	// registration: a lone realm claiming t=1 cannot steer a recovery.
	s1 := s
	s1.Threshold = 3
	var sts []RealmStatus
	for _, m := range realms {
		sts = append(sts, RealmStatus{m.id, m.status()})
	}
	if _, err := Choose(s1, sts); !errors.Is(err, ErrNotFound) {
		t.Fatalf("threshold mismatch: %v", err)
	}
	if _, err := Choose(Setup{Realms: s.Realms, Threshold: 1}, sts); !errors.Is(err, ErrParams) {
		t.Fatalf("threshold 1: %v", err)
	}
	none := []RealmStatus{{s.Realms[0], &Status{State: StateNone}}, {s.Realms[1], &Status{State: StateNone}}}
	if _, err := Choose(s, none); !errors.Is(err, ErrNotFound) {
		t.Fatalf("nothing registered: %v", err)
	}
}

func TestValidPIN(t *testing.T) {
	for pin, ok := range map[string]bool{"1234": true, "123": false, "correct horse": true, "12\x003": false, "\xff\xfe12": false, "ünïc": true} {
		if got := ValidPIN([]byte(pin)) == nil; got != ok {
			t.Errorf("ValidPIN(%q) = %v", pin, got)
		}
	}
}

func TestBlob(t *testing.T) {
	key := NewBackupKey()
	blob, err := SealBlob(key, "alice", []byte("identity key and contacts"))
	if err != nil {
		t.Fatal(err)
	}
	pt, err := OpenBlob(key, "alice", blob)
	if err != nil || string(pt) != "identity key and contacts" {
		t.Fatalf("OpenBlob: %q, %v", pt, err)
	}
	if _, err := OpenBlob(key, "bob", blob); !errors.Is(err, ErrBlob) {
		t.Fatalf("other handle: %v", err)
	}
	if _, err := OpenBlob(NewBackupKey(), "alice", blob); !errors.Is(err, ErrBlob) {
		t.Fatalf("other key: %v", err)
	}
}

func TestCheckRejects(t *testing.T) {
	s := testSetup(t, 3, 2)
	regs, err := Register(s, "alice", []byte("1234"), NewBackupKey(), cheap, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := regs[0].Check(s.Realms[1]); err == nil {
		t.Fatal("a realm accepted the registration meant for another")
	}
	r := regs[0]
	r.SecretShare = regs[1].SecretShare
	if err := r.Check(s.Realms[0]); err == nil {
		t.Fatal("mismatched share indices accepted")
	}
}

func FuzzParseBlob(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		nonce, ct, err := parseBlob(b)
		if err != nil {
			return
		}
		if got := append(append([]byte{blobFormat}, nonce...), ct...); !bytes.Equal(got, b) {
			t.Fatalf("re-encoded %x, parsed %x", got, b)
		}
	})
}
