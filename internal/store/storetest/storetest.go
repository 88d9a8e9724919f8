// Package storetest is the conformance suite of store.Store: one body of
// tests that every backend runs unchanged (sqlitestore, pgstore). A
// backend's test calls
//
//	storetest.Run(t, func(t *testing.T) store.Store { ... })
//
// where open returns a new, empty store and closes it with t.Cleanup.
// The suite uses only the store.Store interface and the real clock; it
// never sleeps. Times it stores are whole milliseconds, so a backend may
// keep times to the millisecond or finer.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/store"
)

// Options tune the suite to a backend.
type Options struct {
	// MaxQueue is the per-device queue limit of the stores open returns;
	// zero means store.MaxQueue. The queue-limit test fills one queue to
	// it with one Enqueue per envelope, so a backend may open its test
	// stores with a lower limit (sqlitestore.Options.MaxQueue) to keep the
	// suite fast.
	MaxQueue int
}

// Run runs the whole suite against stores made by open, which must return
// a new, empty store and close it with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	RunOptions(t, open, Options{})
}

// RunOptions is Run with Options.
func RunOptions(t *testing.T, open func(t *testing.T) store.Store, o Options) {
	if o.MaxQueue == 0 {
		o.MaxQueue = store.MaxQueue
	}
	s := &suite{open: open, opt: o}
	tests := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"Account/CreateAndRead", s.testAccountCreateAndRead},
		{"Account/CaseInsensitive", s.testAccountCaseInsensitive},
		{"Account/HandleTaken", s.testAccountHandleTaken},
		{"Account/InvalidHandle", s.testAccountInvalidHandle},
		{"Account/BadDeviceList", s.testAccountBadDeviceList},
		{"Account/NotFound", s.testAccountNotFound},
		{"Account/CreatedDefault", s.testAccountCreatedDefault},
		{"Account/Delete", s.testAccountDelete},
		{"Account/DeleteNotFound", s.testAccountDeleteNotFound},
		{"Account/DeleteThenEnqueue", s.testAccountDeleteThenEnqueue},
		{"Account/DeleteConcurrent", s.testAccountDeleteConcurrent},
		{"DeviceList/Replace", s.testDeviceListReplace},
		{"DeviceList/StaleVersion", s.testDeviceListStale},
		{"DeviceList/NotFound", s.testDeviceListNotFound},
		{"DeviceList/Cascade", s.testDeviceListCascade},
		{"DeviceList/NoTakeover", s.testDeviceListNoTakeover},
		{"DeviceList/ReAdd", s.testDeviceListReAdd},
		{"Prekeys/PutAndCount", s.testPrekeysPutAndCount},
		{"Prekeys/NotFound", s.testPrekeysNotFound},
		{"Prekeys/Replace", s.testPrekeysReplace},
		{"Prekeys/TakeBundleOrder", s.testTakeBundleOrder},
		{"Prekeys/NoPrekeys", s.testTakeBundleNoPrekeys},
		{"Prekeys/ConcurrentTake", s.testTakeBundleConcurrent},
		{"Token/Resolve", s.testTokenResolve},
		{"Token/Expired", s.testTokenExpired},
		{"Token/NotFound", s.testTokenNotFound},
		{"Challenge/PutAndTake", s.testChallengePutAndTake},
		{"Challenge/Expired", s.testChallengeExpired},
		{"Challenge/NotFound", s.testChallengeNotFound},
		{"Challenge/ConcurrentTake", s.testChallengeConcurrentTake},
		{"Queue/EnqueueAndPending", s.testEnqueueAndPending},
		{"Queue/Order", s.testQueueOrder},
		{"Queue/Duplicate", s.testEnqueueDuplicate},
		{"Queue/DuplicateAfterAck", s.testEnqueueDuplicateAfterAck},
		{"Queue/DedupKey", s.testEnqueueDedupKey},
		{"Queue/UnknownDevice", s.testEnqueueUnknownDevice},
		{"Queue/Full", s.testQueueFull},
		{"Queue/Ack", s.testAck},
		{"Queue/PendingPaging", s.testPendingPaging},
		{"Queue/Concurrent", s.testEnqueueConcurrent},
		{"Queue/ConcurrentFailures", s.testEnqueueConcurrentFailures}, // concurrent.go
		{"Queue/EmptyAndMixed", s.testEnqueueEmptyAndMixed},
		{"Link/Lifecycle", s.testLinkLifecycle},
		{"Link/Once", s.testLinkOnce},
		{"Link/Expired", s.testLinkExpired},
		{"Link/NotFound", s.testLinkNotFound},
		{"Link/ConcurrentFetch", s.testLinkConcurrentFetch},
		{"Expire/TokensAndLinks", s.testExpireTokensAndLinks},
		{"Expire/Dedup", s.testExpireDedup},
		{"Expire/Challenges", s.testExpireChallenges},
		{"Expire/Envelopes", s.testExpireEnvelopes},
		{"Expire/Invites", s.testExpireInvites},
		{"Invite/CreateAndList", s.testInviteCreateAndList},
		{"Invite/CreateErrors", s.testInviteCreateErrors},
		{"Invite/Unknown", s.testInviteUnknown},
		{"Invite/Uses", s.testInviteUses},
		{"Invite/Handle", s.testInviteHandle},
		{"Invite/Expired", s.testInviteExpired},
		{"Invite/HandleTaken", s.testInviteHandleTaken},
		{"Invite/Delete", s.testInviteDelete},
		{"Invite/Concurrent", s.testInviteConcurrent}, // concurrent.go
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.fn)
	}
}

type suite struct {
	open func(t *testing.T) store.Store
	opt  Options
}

// env is one test's store and bounded context.
type env struct {
	t   *testing.T
	ctx context.Context
	s   store.Store
	now time.Time // whole milliseconds
}

func (s *suite) env(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return &env{t: t, ctx: ctx, s: s.open(t), now: time.Now().UTC().Truncate(time.Millisecond)}
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// messageID returns a fresh message id, as clients make them.
func messageID() string { return fmt.Sprintf("%x", random(16)) }

// prekeys returns a full upload: a signed prekey (id 1), a last-resort PQ
// key (id 2), one-time X25519 keys 100.. and one-time PQ keys 200...
func prekeys(oneTime, oneTimePQ int) store.Prekeys {
	p := store.Prekeys{
		Signed:     &store.Prekey{ID: 1, Public: random(32), Signature: random(64)},
		LastResort: &store.Prekey{ID: 2, Public: random(1184), Signature: random(64)},
	}
	for i := range oneTime {
		p.OneTime = append(p.OneTime, store.Prekey{ID: uint32(100 + i), Public: random(32)})
	}
	for i := range oneTimePQ {
		p.OneTimePQ = append(p.OneTimePQ, store.Prekey{ID: uint32(200 + i), Public: random(1184), Signature: random(64)})
	}
	return p
}

func device(id uint32, created time.Time) store.Device {
	return store.Device{ID: id, SigningKey: random(32), Created: created}
}

// account creates an account with the given devices (version 1), and
// gives every device prekeys(3, 2).
func (e *env) account(handle string, ids ...uint32) (store.Account, store.DeviceList) {
	e.t.Helper()
	a := store.Account{Handle: handle, IdentityKey: random(32), Created: e.now}
	l := store.DeviceList{Signed: random(100), Version: 1}
	for _, id := range ids {
		l.Devices = append(l.Devices, device(id, e.now))
	}
	if err := e.s.CreateAccount(e.ctx, a, l, prekeys(3, 2)); err != nil {
		e.t.Fatalf("CreateAccount(%q): %v", handle, err)
	}
	for _, id := range ids[1:] {
		if err := e.s.PutPrekeys(e.ctx, handle, id, prekeys(3, 2)); err != nil {
			e.t.Fatalf("PutPrekeys(%q, %d): %v", handle, id, err)
		}
	}
	for i := range l.Devices {
		l.Devices[i].Handle = handle
	}
	return a, l
}

// to names a recipient device.
type to struct {
	handle string
	id     uint32
}

// message builds one message's envelopes.
func message(sender string, senderDev uint32, id string, recipients ...to) []store.Envelope {
	var envs []store.Envelope
	for _, r := range recipients {
		envs = append(envs, store.Envelope{
			MessageID: id, Sender: sender, SenderDevice: senderDev,
			Recipient: r.handle, RecipientDevice: r.id, Ciphertext: random(48),
		})
	}
	return envs
}

func (e *env) enqueue(envs []store.Envelope) {
	e.t.Helper()
	dup, err := e.s.Enqueue(e.ctx, envs)
	if err != nil || dup {
		e.t.Fatalf("Enqueue: duplicate %v, err %v", dup, err)
	}
}

func (e *env) pending(handle string, id uint32) []store.Envelope {
	e.t.Helper()
	envs, err := e.s.Pending(e.ctx, handle, id, 0, 1<<20)
	if err != nil {
		e.t.Fatalf("Pending(%q, %d): %v", handle, id, err)
	}
	return envs
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func noErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func sameDevices(t *testing.T, got, want []store.Device) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("devices: got %d, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Handle != w.Handle || g.ID != w.ID || !bytes.Equal(g.SigningKey, w.SigningKey) || !g.Created.Equal(w.Created) {
			t.Fatalf("device %d: got %+v, want %+v", i, g, w)
		}
	}
}

func samePrekey(t *testing.T, what string, got, want store.Prekey) {
	t.Helper()
	if got.ID != want.ID || !bytes.Equal(got.Public, want.Public) || !bytes.Equal(got.Signature, want.Signature) {
		t.Fatalf("%s: got id %d, want %d (or other bytes)", what, got.ID, want.ID)
	}
}

// Accounts.

func (s *suite) testAccountCreateAndRead(t *testing.T) {
	e := s.env(t)
	a, l := e.account("alice", 7, 3)
	got, err := e.s.Account(e.ctx, "alice")
	noErr(t, "Account", err)
	if got.Handle != "alice" || !bytes.Equal(got.IdentityKey, a.IdentityKey) || !got.Created.Equal(a.Created) {
		t.Fatalf("Account: got %+v, want %+v", got, a)
	}
	gl, err := e.s.DeviceList(e.ctx, "alice")
	noErr(t, "DeviceList", err)
	if !bytes.Equal(gl.Signed, l.Signed) || gl.Version != 1 {
		t.Fatalf("DeviceList: version %d, signed differs %v", gl.Version, !bytes.Equal(gl.Signed, l.Signed))
	}
	sameDevices(t, gl.Devices, l.Devices) // in list order, not id order
	// The first device got the prekeys given to CreateAccount.
	ot, pq, err := e.s.PrekeyCounts(e.ctx, "alice", 7)
	noErr(t, "PrekeyCounts", err)
	if ot != 3 || pq != 2 {
		t.Fatalf("PrekeyCounts: %d, %d; want 3, 2", ot, pq)
	}
}

func (s *suite) testAccountCaseInsensitive(t *testing.T) {
	e := s.env(t)
	a := store.Account{Handle: "Carol_99", IdentityKey: random(32), Created: e.now}
	l := store.DeviceList{Signed: random(10), Version: 1, Devices: []store.Device{device(1, e.now)}}
	noErr(t, "CreateAccount", e.s.CreateAccount(e.ctx, a, l, prekeys(1, 1)))
	for _, h := range []string{"carol_99", "CAROL_99", "Carol_99"} {
		got, err := e.s.Account(e.ctx, h)
		noErr(t, "Account "+h, err)
		if got.Handle != "carol_99" {
			t.Fatalf("Account(%q).Handle = %q, want the stored form carol_99", h, got.Handle)
		}
		gl, err := e.s.DeviceList(e.ctx, h)
		noErr(t, "DeviceList "+h, err)
		if len(gl.Devices) != 1 || gl.Devices[0].Handle != "carol_99" {
			t.Fatalf("DeviceList(%q): %+v", h, gl.Devices)
		}
	}
	_, err := e.s.TakeBundle(e.ctx, "CAROL_99", 1)
	noErr(t, "TakeBundle by upper case", err)
}

func (s *suite) testAccountHandleTaken(t *testing.T) {
	e := s.env(t)
	first, _ := e.account("bob", 1)
	for _, h := range []string{"bob", "BOB", "Bob"} {
		a := store.Account{Handle: h, IdentityKey: random(32), Created: e.now}
		l := store.DeviceList{Signed: random(10), Version: 1, Devices: []store.Device{device(9, e.now)}}
		wantErr(t, "CreateAccount "+h, e.s.CreateAccount(e.ctx, a, l, prekeys(1, 1)), store.ErrHandleTaken)
	}
	// The first account is untouched.
	got, err := e.s.Account(e.ctx, "bob")
	noErr(t, "Account", err)
	if !bytes.Equal(got.IdentityKey, first.IdentityKey) {
		t.Fatal("a refused CreateAccount changed the account")
	}
	gl, err := e.s.DeviceList(e.ctx, "bob")
	noErr(t, "DeviceList", err)
	if len(gl.Devices) != 1 || gl.Devices[0].ID != 1 {
		t.Fatalf("a refused CreateAccount changed the devices: %+v", gl.Devices)
	}
}

func (s *suite) testAccountInvalidHandle(t *testing.T) {
	e := s.env(t)
	for _, h := range []string{"", "ab", "@alice", "al ice", "alice!", "ålice", "a-b-c", "\u212Aey", string(make([]byte, 33))} {
		a := store.Account{Handle: h, IdentityKey: random(32), Created: e.now}
		l := store.DeviceList{Signed: random(10), Version: 1, Devices: []store.Device{device(1, e.now)}}
		wantErr(t, fmt.Sprintf("CreateAccount(%q)", h), e.s.CreateAccount(e.ctx, a, l, prekeys(1, 1)), store.ErrInvalidHandle)
		_, err := e.s.Account(e.ctx, h)
		wantErr(t, fmt.Sprintf("Account(%q)", h), err, store.ErrNotFound)
	}
	// 32 characters is the longest handle.
	long := "abcdefghijklmnopqrstuvwxyz_01234"
	e.account(long, 1)
}

func (s *suite) testAccountBadDeviceList(t *testing.T) {
	e := s.env(t)
	a := store.Account{Handle: "dave", IdentityKey: random(32), Created: e.now}
	twice := store.DeviceList{Signed: random(10), Version: 1, Devices: []store.Device{device(4, e.now), device(4, e.now)}}
	wantErr(t, "CreateAccount with an id twice", e.s.CreateAccount(e.ctx, a, twice, prekeys(1, 1)), store.ErrDeviceExists)
	none := store.DeviceList{Signed: random(10), Version: 1}
	if err := e.s.CreateAccount(e.ctx, a, none, prekeys(1, 1)); err == nil {
		t.Fatal("CreateAccount with no device: no error")
	}
	_, err := e.s.Account(e.ctx, "dave")
	wantErr(t, "Account after refused creations", err, store.ErrNotFound)
	e.account("dave", 4)
}

func (s *suite) testAccountNotFound(t *testing.T) {
	e := s.env(t)
	e.account("erin", 1)
	_, err := e.s.Account(e.ctx, "frank")
	wantErr(t, "Account", err, store.ErrNotFound)
	_, err = e.s.DeviceList(e.ctx, "frank")
	wantErr(t, "DeviceList", err, store.ErrNotFound)
}

func (s *suite) testAccountCreatedDefault(t *testing.T) {
	e := s.env(t)
	before := time.Now().Add(-time.Second)
	a := store.Account{Handle: "gina", IdentityKey: random(32)}
	l := store.DeviceList{Signed: random(10), Version: 1, Devices: []store.Device{{ID: 1, SigningKey: random(32)}}}
	noErr(t, "CreateAccount", e.s.CreateAccount(e.ctx, a, l, prekeys(0, 0)))
	after := time.Now().Add(time.Second)
	got, err := e.s.Account(e.ctx, "gina")
	noErr(t, "Account", err)
	gl, err := e.s.DeviceList(e.ctx, "gina")
	noErr(t, "DeviceList", err)
	for what, c := range map[string]time.Time{"account": got.Created, "device": gl.Devices[0].Created} {
		if c.Before(before) || c.After(after) {
			t.Fatalf("zero %s Created became %v, not the store's clock", what, c)
		}
	}
}

// testAccountDelete deletes an account with two devices and everything
// of theirs, checks that nothing of it is left and the other account lost
// nothing, then registers the handle again with the same device ids.
func (s *suite) testAccountDelete(t *testing.T) {
	e := s.env(t)
	e.account("alice", 2, 1)
	e.account("bob", 1)
	tok, bobTok := random(32), random(32)
	noErr(t, "PutToken", e.s.PutToken(e.ctx, tok, "alice", 1, e.now.Add(time.Hour)))
	noErr(t, "PutToken", e.s.PutToken(e.ctx, bobTok, "bob", 1, e.now.Add(time.Hour)))
	ch := random(32)
	noErr(t, "PutChallenge", e.s.PutChallenge(e.ctx, ch, "alice", 2, e.now.Add(time.Hour)))
	link := store.Link{ID: fmt.Sprintf("%x", random(16)), Handle: "alice", Expires: time.Now().Add(10 * time.Minute)}
	noErr(t, "CreateLink", e.s.CreateLink(e.ctx, link))
	for range 3 {
		e.enqueue(message("bob", 1, messageID(), to{"alice", 1}, to{"alice", 2}, to{"bob", 1}))
	}
	// alice sent one message; its id stays remembered after the delete.
	sent := messageID()
	e.enqueue(message("alice", 1, sent, to{"bob", 1}))
	// Read what a backend may cache, so that stale entries would show.
	_, err := e.s.DeviceList(e.ctx, "alice")
	noErr(t, "DeviceList", err)
	_, _, err = e.s.TokenDevice(e.ctx, tok)
	noErr(t, "TokenDevice", err)
	if got := e.pending("alice", 1); len(got) != 3 {
		t.Fatalf("alice/1 has %d envelopes before the delete, want 3", len(got))
	}

	devices, err := e.s.DeleteAccount(e.ctx, "ALICE")
	noErr(t, "DeleteAccount", err)
	slices.Sort(devices)
	if !slices.Equal(devices, []uint32{1, 2}) {
		t.Fatalf("DeleteAccount returned devices %v, want 1 and 2", devices)
	}

	_, err = e.s.Account(e.ctx, "alice")
	wantErr(t, "Account after delete", err, store.ErrNotFound)
	_, err = e.s.DeviceList(e.ctx, "alice")
	wantErr(t, "DeviceList after delete", err, store.ErrNotFound)
	_, _, err = e.s.TokenDevice(e.ctx, tok)
	wantErr(t, "TokenDevice after delete", err, store.ErrNotFound)
	_, _, _, err = e.s.TakeChallenge(e.ctx, ch)
	wantErr(t, "TakeChallenge after delete", err, store.ErrNotFound)
	_, err = e.s.Link(e.ctx, link.ID)
	wantErr(t, "Link after delete", err, store.ErrNotFound)
	wantErr(t, "JoinLink after delete", e.s.JoinLink(e.ctx, link.ID, random(10)), store.ErrNotFound)
	for _, id := range []uint32{1, 2} {
		if got := e.pending("alice", id); len(got) != 0 {
			t.Fatalf("deleted device %d still has %d envelopes", id, len(got))
		}
		_, err = e.s.TakeBundle(e.ctx, "alice", id)
		wantErr(t, fmt.Sprintf("TakeBundle of deleted device %d", id), err, store.ErrNotFound)
		_, _, err = e.s.PrekeyCounts(e.ctx, "alice", id)
		wantErr(t, fmt.Sprintf("PrekeyCounts of deleted device %d", id), err, store.ErrNotFound)
		wantErr(t, fmt.Sprintf("PutToken for deleted device %d", id),
			e.s.PutToken(e.ctx, random(32), "alice", id, e.now.Add(time.Hour)), store.ErrNotFound)
		wantErr(t, fmt.Sprintf("PutChallenge for deleted device %d", id),
			e.s.PutChallenge(e.ctx, random(32), "alice", id, e.now.Add(time.Hour)), store.ErrNotFound)
	}
	wantErr(t, "CreateLink for deleted account",
		e.s.CreateLink(e.ctx, store.Link{ID: fmt.Sprintf("%x", random(16)), Handle: "alice", Expires: time.Now().Add(time.Minute)}),
		store.ErrNotFound)

	// bob is untouched: his queue (4 envelopes), token and prekeys.
	if got := e.pending("bob", 1); len(got) != 4 {
		t.Fatalf("bob/1 has %d envelopes after alice's delete, want 4", len(got))
	}
	h, d, err := e.s.TokenDevice(e.ctx, bobTok)
	noErr(t, "TokenDevice of bob", err)
	if h != "bob" || d != 1 {
		t.Fatalf("TokenDevice of bob = %q, %d", h, d)
	}
	ot, pq, err := e.s.PrekeyCounts(e.ctx, "bob", 1)
	noErr(t, "PrekeyCounts of bob", err)
	if ot != 3 || pq != 2 {
		t.Fatalf("bob's prekey counts %d, %d; want 3, 2", ot, pq)
	}

	// The handle is free at once; the new account, with the same device
	// ids, inherits nothing: no envelopes, prekeys, token, challenge, link.
	a := store.Account{Handle: "alice", IdentityKey: random(32), Created: e.now}
	l := store.DeviceList{Signed: random(10), Version: 1, Devices: []store.Device{device(1, e.now), device(2, e.now)}}
	noErr(t, "CreateAccount again", e.s.CreateAccount(e.ctx, a, l, prekeys(1, 1)))
	got, err := e.s.Account(e.ctx, "alice")
	noErr(t, "Account of the new alice", err)
	if !bytes.Equal(got.IdentityKey, a.IdentityKey) {
		t.Fatal("the new alice has the old identity key")
	}
	gl, err := e.s.DeviceList(e.ctx, "alice")
	noErr(t, "DeviceList of the new alice", err)
	if gl.Version != 1 || !bytes.Equal(gl.Signed, l.Signed) {
		t.Fatalf("the new alice's device list: version %d (or other bytes)", gl.Version)
	}
	for i := range l.Devices {
		l.Devices[i].Handle = "alice"
	}
	sameDevices(t, gl.Devices, l.Devices)
	for _, id := range []uint32{1, 2} {
		if got := e.pending("alice", id); len(got) != 0 {
			t.Fatalf("the new alice/%d inherited %d envelopes", id, len(got))
		}
	}
	ot, pq, err = e.s.PrekeyCounts(e.ctx, "alice", 1)
	noErr(t, "PrekeyCounts of the new alice/1", err)
	if ot != 1 || pq != 1 {
		t.Fatalf("the new alice/1 has prekey counts %d, %d; want 1, 1", ot, pq)
	}
	ot, pq, err = e.s.PrekeyCounts(e.ctx, "alice", 2)
	noErr(t, "PrekeyCounts of the new alice/2", err)
	if ot != 0 || pq != 0 {
		t.Fatalf("the new alice/2 inherited prekeys: %d, %d", ot, pq)
	}
	_, err = e.s.TakeBundle(e.ctx, "alice", 2)
	wantErr(t, "TakeBundle of the new alice/2", err, store.ErrNoPrekeys)
	_, _, err = e.s.TokenDevice(e.ctx, tok)
	wantErr(t, "the old token for the new alice", err, store.ErrNotFound)
	_, _, _, err = e.s.TakeChallenge(e.ctx, ch)
	wantErr(t, "the old challenge for the new alice", err, store.ErrNotFound)
	_, err = e.s.Link(e.ctx, link.ID)
	wantErr(t, "the old link for the new alice", err, store.ErrNotFound)
	// The message id alice/1 sent before is still remembered.
	dup, err := e.s.Enqueue(e.ctx, message("alice", 1, sent, to{"bob", 1}))
	noErr(t, "Enqueue of an id sent before the delete", err)
	if !dup {
		t.Fatal("a message id sent before DeleteAccount was forgotten")
	}
	// The new queues start empty: each takes exactly the limit.
	for range s.opt.MaxQueue {
		e.enqueue(message("bob", 1, messageID(), to{"alice", 1}))
	}
	_, err = e.s.Enqueue(e.ctx, message("bob", 1, messageID(), to{"alice", 1}))
	wantErr(t, "Enqueue past the new alice/1's limit", err, store.ErrQueueFull)
	if got := e.pending("alice", 1); len(got) != s.opt.MaxQueue {
		t.Fatalf("the new alice/1 holds %d envelopes, want %d", len(got), s.opt.MaxQueue)
	}
}

func (s *suite) testAccountDeleteNotFound(t *testing.T) {
	e := s.env(t)
	e.account("alice", 1)
	_, err := e.s.DeleteAccount(e.ctx, "nobody")
	wantErr(t, "DeleteAccount of an unknown handle", err, store.ErrNotFound)
	_, err = e.s.DeleteAccount(e.ctx, "no")
	wantErr(t, "DeleteAccount of an invalid handle", err, store.ErrNotFound)
	devices, err := e.s.DeleteAccount(e.ctx, "alice")
	noErr(t, "DeleteAccount", err)
	if !slices.Equal(devices, []uint32{1}) {
		t.Fatalf("DeleteAccount returned devices %v, want [1]", devices)
	}
	_, err = e.s.DeleteAccount(e.ctx, "alice")
	wantErr(t, "DeleteAccount twice", err, store.ErrNotFound)
	_, err = e.s.ReplaceDeviceList(e.ctx, "alice", store.DeviceList{Signed: random(10), Version: 2, Devices: []store.Device{device(1, e.now)}})
	wantErr(t, "ReplaceDeviceList of a deleted account", err, store.ErrNotFound)
}

// testAccountDeleteThenEnqueue checks that a deleted account's devices are
// not current: an Enqueue to one fails as a whole and remembers nothing.
func (s *suite) testAccountDeleteThenEnqueue(t *testing.T) {
	e := s.env(t)
	e.account("alice", 1, 2)
	e.account("bob", 1)
	e.enqueue(message("bob", 1, messageID(), to{"alice", 1}))
	_, err := e.s.DeleteAccount(e.ctx, "alice")
	noErr(t, "DeleteAccount", err)
	id := messageID()
	for _, rs := range [][]to{{{"alice", 1}}, {{"alice", 2}}, {{"bob", 1}, {"alice", 1}}} {
		_, err = e.s.Enqueue(e.ctx, message("bob", 1, id, rs...))
		wantErr(t, fmt.Sprintf("Enqueue to %v after delete", rs), err, store.ErrNotFound)
	}
	if got := e.pending("bob", 1); len(got) != 0 {
		t.Fatalf("a refused message reached bob/1: %d envelopes", len(got))
	}
	// The refused id was not remembered.
	e.enqueue(message("bob", 1, id, to{"bob", 1}))
	if got := e.pending("alice", 1); len(got) != 0 {
		t.Fatalf("deleted alice/1 has %d envelopes", len(got))
	}
}

// testAccountDeleteConcurrent deletes an account while its devices are
// sent to and its handle is registered again: every Enqueue succeeds or
// fails with ErrNotFound, and the new account starts with empty queues
// that hold exactly the limit.
func (s *suite) testAccountDeleteConcurrent(t *testing.T) {
	e := s.env(t)
	e.account("alice", 1, 2)
	e.account("bob", 1)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 8 {
		wg.Go(func() {
			for range 5 {
				_, err := e.s.Enqueue(e.ctx, message("bob", 1, messageID(), to{"alice", 1}, to{"alice", 2}))
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					errs <- fmt.Errorf("Enqueue: %w", err)
					return
				}
			}
		})
	}
	created := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			a := store.Account{Handle: "alice", IdentityKey: random(32), Created: e.now}
			l := store.DeviceList{Signed: random(10), Version: 1, Devices: []store.Device{device(1, e.now)}}
			created <- e.s.CreateAccount(e.ctx, a, l, prekeys(1, 1))
		})
	}
	devices, err := e.s.DeleteAccount(e.ctx, "alice")
	wg.Wait()
	close(errs)
	close(created)
	noErr(t, "DeleteAccount", err)
	slices.Sort(devices)
	if !slices.Equal(devices, []uint32{1, 2}) {
		t.Fatalf("DeleteAccount returned devices %v, want 1 and 2", devices)
	}
	for err := range errs {
		t.Fatal(err)
	}
	// The creations ran before the delete (all refused) or after it (one
	// wins): at most one succeeded.
	won := 0
	for err := range created {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrHandleTaken):
			t.Fatalf("CreateAccount during delete: %v", err)
		}
	}
	if won > 1 {
		t.Fatalf("%d CreateAccounts of one handle succeeded", won)
	}
	if won == 0 {
		a := store.Account{Handle: "alice", IdentityKey: random(32), Created: e.now}
		l := store.DeviceList{Signed: random(10), Version: 1, Devices: []store.Device{device(1, e.now)}}
		noErr(t, "CreateAccount after delete", e.s.CreateAccount(e.ctx, a, l, prekeys(1, 1)))
	}
	// Enqueues that ran after the new account was created may have
	// reached alice/1 (and failed for alice/2): its queue holds only them.
	n := len(e.pending("alice", 1))
	for range s.opt.MaxQueue - n {
		e.enqueue(message("bob", 1, messageID(), to{"alice", 1}))
	}
	_, err = e.s.Enqueue(e.ctx, message("bob", 1, messageID(), to{"alice", 1}))
	wantErr(t, "Enqueue past the new alice/1's limit", err, store.ErrQueueFull)
	if got := e.pending("alice", 2); len(got) != 0 {
		t.Fatalf("alice/2, not in the new list, has %d envelopes", len(got))
	}
}

// Device lists.

func (s *suite) testDeviceListReplace(t *testing.T) {
	e := s.env(t)
	_, l := e.account("alice", 1, 2)
	later := e.now.Add(time.Hour)
	nl := store.DeviceList{Signed: random(120), Version: 5, Devices: []store.Device{
		device(9, later), l.Devices[1], l.Devices[0],
	}}
	nl.Devices[0].Handle = "alice"
	removed, err := e.s.ReplaceDeviceList(e.ctx, "ALICE", nl)
	noErr(t, "ReplaceDeviceList", err)
	if len(removed) != 0 {
		t.Fatalf("removed %v, want none", removed)
	}
	gl, err := e.s.DeviceList(e.ctx, "alice")
	noErr(t, "DeviceList", err)
	if gl.Version != 5 || !bytes.Equal(gl.Signed, nl.Signed) {
		t.Fatalf("DeviceList: version %d", gl.Version)
	}
	sameDevices(t, gl.Devices, nl.Devices)
	// The new device can receive and take prekeys.
	noErr(t, "PutPrekeys new device", e.s.PutPrekeys(e.ctx, "alice", 9, prekeys(1, 1)))
	e.enqueue(message("alice", 1, messageID(), to{"alice", 9}))

	// A kept device keeps its Created, whatever the new list says.
	kept := l.Devices[0]
	kept.Created = later
	nl2 := store.DeviceList{Signed: random(10), Version: 6, Devices: []store.Device{kept}}
	removed, err = e.s.ReplaceDeviceList(e.ctx, "alice", nl2)
	noErr(t, "ReplaceDeviceList", err)
	slices.Sort(removed)
	if !slices.Equal(removed, []uint32{2, 9}) {
		t.Fatalf("removed %v, want [2 9]", removed)
	}
	gl, err = e.s.DeviceList(e.ctx, "alice")
	noErr(t, "DeviceList", err)
	sameDevices(t, gl.Devices, l.Devices[:1])

	// A version far above int64 still orders as uint64.
	nl3 := store.DeviceList{Signed: random(10), Version: 1<<63 + 1, Devices: []store.Device{kept}}
	_, err = e.s.ReplaceDeviceList(e.ctx, "alice", nl3)
	noErr(t, "ReplaceDeviceList to version 2^63+1", err)
	gl, err = e.s.DeviceList(e.ctx, "alice")
	noErr(t, "DeviceList", err)
	if gl.Version != 1<<63+1 {
		t.Fatalf("version %d, want 2^63+1", gl.Version)
	}
	nl3.Version = 1 << 62
	_, err = e.s.ReplaceDeviceList(e.ctx, "alice", nl3)
	wantErr(t, "ReplaceDeviceList to a version below 2^63", err, store.ErrStaleVersion)
}

func (s *suite) testDeviceListStale(t *testing.T) {
	e := s.env(t)
	_, l := e.account("alice", 1, 2)
	nl := store.DeviceList{Signed: random(10), Version: 3, Devices: l.Devices[:1]}
	_, err := e.s.ReplaceDeviceList(e.ctx, "alice", nl)
	noErr(t, "ReplaceDeviceList v3", err)
	for _, v := range []uint64{3, 2, 0} {
		stale := store.DeviceList{Signed: random(10), Version: v, Devices: l.Devices}
		removed, err := e.s.ReplaceDeviceList(e.ctx, "alice", stale)
		wantErr(t, fmt.Sprintf("ReplaceDeviceList v%d", v), err, store.ErrStaleVersion)
		if len(removed) != 0 {
			t.Fatalf("stale replace reported removed %v", removed)
		}
	}
	gl, err := e.s.DeviceList(e.ctx, "alice")
	noErr(t, "DeviceList", err)
	if gl.Version != 3 || !bytes.Equal(gl.Signed, nl.Signed) || len(gl.Devices) != 1 {
		t.Fatalf("a stale list changed the stored one: %+v", gl)
	}
}

func (s *suite) testDeviceListNotFound(t *testing.T) {
	e := s.env(t)
	_, err := e.s.ReplaceDeviceList(e.ctx, "nobody", store.DeviceList{Version: 2, Devices: []store.Device{device(1, e.now)}})
	wantErr(t, "ReplaceDeviceList", err, store.ErrNotFound)
}

// testDeviceListCascade removes a device and checks its prekeys, tokens and
// queue are gone while the other device's stay.
func (s *suite) testDeviceListCascade(t *testing.T) {
	e := s.env(t)
	_, l := e.account("alice", 1, 2)
	e.account("bob", 1)
	tok1, tok2 := random(32), random(32)
	noErr(t, "PutToken", e.s.PutToken(e.ctx, tok1, "alice", 1, e.now.Add(time.Hour)))
	noErr(t, "PutToken", e.s.PutToken(e.ctx, tok2, "alice", 2, e.now.Add(time.Hour)))
	for range 3 {
		e.enqueue(message("bob", 1, messageID(), to{"alice", 1}, to{"alice", 2}))
	}

	removed, err := e.s.ReplaceDeviceList(e.ctx, "alice", store.DeviceList{Signed: random(10), Version: 2, Devices: l.Devices[:1]})
	noErr(t, "ReplaceDeviceList", err)
	if !slices.Equal(removed, []uint32{2}) {
		t.Fatalf("removed %v, want [2]", removed)
	}

	_, _, err = e.s.PrekeyCounts(e.ctx, "alice", 2)
	wantErr(t, "PrekeyCounts of removed device", err, store.ErrNotFound)
	_, err = e.s.TakeBundle(e.ctx, "alice", 2)
	wantErr(t, "TakeBundle of removed device", err, store.ErrNotFound)
	_, _, err = e.s.TokenDevice(e.ctx, tok2)
	wantErr(t, "TokenDevice of removed device", err, store.ErrNotFound)
	if got := e.pending("alice", 2); len(got) != 0 {
		t.Fatalf("removed device still has %d envelopes", len(got))
	}
	wantErr(t, "PutPrekeys for removed device", e.s.PutPrekeys(e.ctx, "alice", 2, prekeys(1, 1)), store.ErrNotFound)
	wantErr(t, "PutToken for removed device", e.s.PutToken(e.ctx, random(32), "alice", 2, e.now.Add(time.Hour)), store.ErrNotFound)
	_, err = e.s.Enqueue(e.ctx, message("bob", 1, messageID(), to{"alice", 1}, to{"alice", 2}))
	wantErr(t, "Enqueue to removed device", err, store.ErrNotFound)

	// The kept device lost nothing.
	ot, pq, err := e.s.PrekeyCounts(e.ctx, "alice", 1)
	noErr(t, "PrekeyCounts of kept device", err)
	if ot != 3 || pq != 2 {
		t.Fatalf("kept device counts %d, %d; want 3, 2", ot, pq)
	}
	h, d, err := e.s.TokenDevice(e.ctx, tok1)
	noErr(t, "TokenDevice of kept device", err)
	if h != "alice" || d != 1 {
		t.Fatalf("TokenDevice = %q, %d", h, d)
	}
	if got := e.pending("alice", 1); len(got) != 3 {
		t.Fatalf("kept device has %d envelopes, want 3", len(got))
	}
	// The removed device's queue no longer counts toward anything: it can
	// be re-added (see ReAdd) and the kept queue still accepts.
	e.enqueue(message("bob", 1, messageID(), to{"alice", 1}))
}

func (s *suite) testDeviceListNoTakeover(t *testing.T) {
	e := s.env(t)
	_, l := e.account("alice", 1, 2)
	impostor := device(2, e.now) // id 2, another signing key
	nl := store.DeviceList{Signed: random(10), Version: 2, Devices: []store.Device{l.Devices[0], impostor}}
	_, err := e.s.ReplaceDeviceList(e.ctx, "alice", nl)
	wantErr(t, "ReplaceDeviceList taking over id 2", err, store.ErrDeviceExists)
	twice := store.DeviceList{Signed: random(10), Version: 2, Devices: []store.Device{l.Devices[0], device(5, e.now), device(5, e.now)}}
	_, err = e.s.ReplaceDeviceList(e.ctx, "alice", twice)
	wantErr(t, "ReplaceDeviceList naming id 5 twice", err, store.ErrDeviceExists)
	gl, err := e.s.DeviceList(e.ctx, "alice")
	noErr(t, "DeviceList", err)
	if gl.Version != 1 {
		t.Fatalf("a refused list was installed: version %d", gl.Version)
	}
	sameDevices(t, gl.Devices, l.Devices)
}

func (s *suite) testDeviceListReAdd(t *testing.T) {
	e := s.env(t)
	_, l := e.account("alice", 1, 2)
	e.account("bob", 1)
	e.enqueue(message("bob", 1, messageID(), to{"alice", 2}))
	_, err := e.s.ReplaceDeviceList(e.ctx, "alice", store.DeviceList{Signed: random(10), Version: 2, Devices: l.Devices[:1]})
	noErr(t, "ReplaceDeviceList remove 2", err)
	again := device(2, e.now)
	again.Handle = "alice"
	_, err = e.s.ReplaceDeviceList(e.ctx, "alice", store.DeviceList{Signed: random(10), Version: 3, Devices: []store.Device{l.Devices[0], again}})
	noErr(t, "ReplaceDeviceList re-add 2", err)
	if got := e.pending("alice", 2); len(got) != 0 {
		t.Fatalf("re-added device inherited %d envelopes", len(got))
	}
	ot, pq, err := e.s.PrekeyCounts(e.ctx, "alice", 2)
	noErr(t, "PrekeyCounts", err)
	if ot != 0 || pq != 0 {
		t.Fatalf("re-added device inherited prekeys: %d, %d", ot, pq)
	}
	_, err = e.s.TakeBundle(e.ctx, "alice", 2)
	wantErr(t, "TakeBundle of device with no prekeys", err, store.ErrNoPrekeys)
	gl, err := e.s.DeviceList(e.ctx, "alice")
	noErr(t, "DeviceList", err)
	sameDevices(t, gl.Devices, []store.Device{l.Devices[0], again})
}

// Prekeys.

func (s *suite) testPrekeysPutAndCount(t *testing.T) {
	e := s.env(t)
	e.account("alice", 1)
	more := store.Prekeys{
		OneTime:   []store.Prekey{{ID: 300, Public: random(32)}, {ID: 301, Public: random(32)}},
		OneTimePQ: []store.Prekey{{ID: 400, Public: random(1184), Signature: random(64)}},
	}
	noErr(t, "PutPrekeys", e.s.PutPrekeys(e.ctx, "Alice", 1, more))
	ot, pq, err := e.s.PrekeyCounts(e.ctx, "alice", 1)
	noErr(t, "PrekeyCounts", err)
	if ot != 5 || pq != 3 {
		t.Fatalf("PrekeyCounts = %d, %d; want 5, 3", ot, pq)
	}
	// An upload with only one-time keys left the signed prekey alone.
	b, err := e.s.TakeBundle(e.ctx, "alice", 1)
	noErr(t, "TakeBundle", err)
	if b.Signed.ID != 1 {
		t.Fatalf("signed prekey id %d, want 1", b.Signed.ID)
	}
	noErr(t, "PutPrekeys empty", e.s.PutPrekeys(e.ctx, "alice", 1, store.Prekeys{}))
	ot, pq, err = e.s.PrekeyCounts(e.ctx, "alice", 1)
	noErr(t, "PrekeyCounts", err)
	if ot != 4 || pq != 2 {
		t.Fatalf("PrekeyCounts after one bundle = %d, %d; want 4, 2", ot, pq)
	}
}

func (s *suite) testPrekeysNotFound(t *testing.T) {
	e := s.env(t)
	e.account("alice", 1)
	for _, c := range []struct {
		h  string
		id uint32
	}{{"alice", 2}, {"nobody", 1}} {
		wantErr(t, "PutPrekeys", e.s.PutPrekeys(e.ctx, c.h, c.id, prekeys(1, 1)), store.ErrNotFound)
		_, _, err := e.s.PrekeyCounts(e.ctx, c.h, c.id)
		wantErr(t, "PrekeyCounts", err, store.ErrNotFound)
		_, err = e.s.TakeBundle(e.ctx, c.h, c.id)
		wantErr(t, "TakeBundle", err, store.ErrNotFound)
	}
}

func (s *suite) testPrekeysReplace(t *testing.T) {
	e := s.env(t)
	e.account("alice", 1)
	p := store.Prekeys{
		Signed:     &store.Prekey{ID: 11, Public: random(32), Signature: random(64)},
		LastResort: &store.Prekey{ID: 12, Public: random(1184), Signature: random(64)},
		OneTime:    []store.Prekey{{ID: 100, Public: random(32)}},                          // replaces key 100
		OneTimePQ:  []store.Prekey{{ID: 200, Public: random(1184), Signature: random(64)}}, // replaces key 200
	}
	noErr(t, "PutPrekeys", e.s.PutPrekeys(e.ctx, "alice", 1, p))
	ot, pq, err := e.s.PrekeyCounts(e.ctx, "alice", 1)
	noErr(t, "PrekeyCounts", err)
	if ot != 3 || pq != 2 {
		t.Fatalf("PrekeyCounts = %d, %d; want 3, 2 (same ids replace)", ot, pq)
	}
	b, err := e.s.TakeBundle(e.ctx, "alice", 1)
	noErr(t, "TakeBundle", err)
	samePrekey(t, "signed", b.Signed, *p.Signed)
	samePrekey(t, "one-time", *b.OneTime, p.OneTime[0])
	samePrekey(t, "one-time PQ", b.PQ, p.OneTimePQ[0])
	// Use up the PQ keys: the last-resort key is the new one.
	b, err = e.s.TakeBundle(e.ctx, "alice", 1)
	noErr(t, "TakeBundle", err)
	if b.PQLastResort {
		t.Fatal("second bundle: last resort while a one-time PQ key remained")
	}
	b, err = e.s.TakeBundle(e.ctx, "alice", 1)
	noErr(t, "TakeBundle", err)
	if !b.PQLastResort {
		t.Fatal("third bundle: want the last-resort key")
	}
	samePrekey(t, "last resort", b.PQ, *p.LastResort)
}

func (s *suite) testTakeBundleOrder(t *testing.T) {
	e := s.env(t)
	a := store.Account{Handle: "alice", IdentityKey: random(32), Created: e.now}
	l := store.DeviceList{Signed: random(10), Version: 1, Devices: []store.Device{device(1, e.now)}}
	p := prekeys(0, 0)
	// Uploaded out of order; ids above 2^31 too.
	for _, id := range []uint32{50, 7, 1 << 31, 9} {
		p.OneTime = append(p.OneTime, store.Prekey{ID: id, Public: random(32)})
	}
	for _, id := range []uint32{1<<32 - 1, 8, 60} {
		p.OneTimePQ = append(p.OneTimePQ, store.Prekey{ID: id, Public: random(1184), Signature: random(64)})
	}
	noErr(t, "CreateAccount", e.s.CreateAccount(e.ctx, a, l, p))
	byID := func(ks []store.Prekey, id uint32) store.Prekey {
		for _, k := range ks {
			if k.ID == id {
				return k
			}
		}
		t.Fatalf("no key %d", id)
		return store.Prekey{}
	}
	wantOT := []uint32{7, 9, 50, 1 << 31, 0, 0}
	wantPQ := []uint32{8, 60, 1<<32 - 1, 0, 0, 0}
	for i := range wantOT {
		b, err := e.s.TakeBundle(e.ctx, "alice", 1)
		noErr(t, "TakeBundle", err)
		if b.DeviceID != 1 {
			t.Fatalf("bundle device %d", b.DeviceID)
		}
		samePrekey(t, "signed", b.Signed, *p.Signed)
		if wantOT[i] == 0 {
			if b.OneTime != nil {
				t.Fatalf("bundle %d: one-time key %d after all were used", i, b.OneTime.ID)
			}
		} else {
			if b.OneTime == nil {
				t.Fatalf("bundle %d: no one-time key, want %d", i, wantOT[i])
			}
			samePrekey(t, "one-time", *b.OneTime, byID(p.OneTime, wantOT[i]))
			if len(b.OneTime.Signature) != 0 {
				t.Fatal("one-time X25519 key has a signature")
			}
		}
		if wantPQ[i] == 0 {
			if !b.PQLastResort {
				t.Fatalf("bundle %d: want the last-resort PQ key", i)
			}
			samePrekey(t, "last resort", b.PQ, *p.LastResort)
		} else {
			if b.PQLastResort {
				t.Fatalf("bundle %d: last resort, want one-time PQ key %d", i, wantPQ[i])
			}
			samePrekey(t, "one-time PQ", b.PQ, byID(p.OneTimePQ, wantPQ[i]))
		}
	}
	ot, pq, err := e.s.PrekeyCounts(e.ctx, "alice", 1)
	noErr(t, "PrekeyCounts", err)
	if ot != 0 || pq != 0 {
		t.Fatalf("PrekeyCounts = %d, %d after using all", ot, pq)
	}
}

func (s *suite) testTakeBundleNoPrekeys(t *testing.T) {
	e := s.env(t)
	_, l := e.account("alice", 1)
	// A second device with one-time keys but no signed prekey.
	nl := store.DeviceList{Signed: random(10), Version: 2, Devices: []store.Device{l.Devices[0], device(2, e.now)}}
	_, err := e.s.ReplaceDeviceList(e.ctx, "alice", nl)
	noErr(t, "ReplaceDeviceList", err)
	noErr(t, "PutPrekeys", e.s.PutPrekeys(e.ctx, "alice", 2, store.Prekeys{
		OneTime:    []store.Prekey{{ID: 1, Public: random(32)}},
		LastResort: &store.Prekey{ID: 2, Public: random(1184), Signature: random(64)},
	}))
	_, err = e.s.TakeBundle(e.ctx, "alice", 2)
	wantErr(t, "TakeBundle without signed prekey", err, store.ErrNoPrekeys)

	// A third device with a signed prekey and a one-time X25519 key but
	// no PQ key at all: refused, and the one-time key is not used up.
	nl = store.DeviceList{Signed: random(10), Version: 3, Devices: append(nl.Devices, device(3, e.now))}
	_, err = e.s.ReplaceDeviceList(e.ctx, "alice", nl)
	noErr(t, "ReplaceDeviceList", err)
	noErr(t, "PutPrekeys", e.s.PutPrekeys(e.ctx, "alice", 3, store.Prekeys{
		Signed:  &store.Prekey{ID: 1, Public: random(32), Signature: random(64)},
		OneTime: []store.Prekey{{ID: 5, Public: random(32)}},
	}))
	_, err = e.s.TakeBundle(e.ctx, "alice", 3)
	wantErr(t, "TakeBundle without PQ key", err, store.ErrNoPrekeys)
	ot, _, err := e.s.PrekeyCounts(e.ctx, "alice", 3)
	noErr(t, "PrekeyCounts", err)
	if ot != 1 {
		t.Fatalf("a refused TakeBundle used up a one-time key: %d left", ot)
	}
	// With a one-time PQ key it works.
	noErr(t, "PutPrekeys", e.s.PutPrekeys(e.ctx, "alice", 3, store.Prekeys{
		OneTimePQ: []store.Prekey{{ID: 6, Public: random(1184), Signature: random(64)}},
	}))
	b, err := e.s.TakeBundle(e.ctx, "alice", 3)
	noErr(t, "TakeBundle", err)
	if b.OneTime == nil || b.OneTime.ID != 5 || b.PQ.ID != 6 || b.PQLastResort {
		t.Fatalf("bundle %+v", b)
	}
	_, err = e.s.TakeBundle(e.ctx, "alice", 3)
	wantErr(t, "TakeBundle with PQ keys used up and no last resort", err, store.ErrNoPrekeys)
}

// testTakeBundleConcurrent has 20 goroutines take bundles from a device
// with 10 one-time keys of each kind: each key is handed out exactly once.
func (s *suite) testTakeBundleConcurrent(t *testing.T) {
	e := s.env(t)
	e.account("alice", 1)
	p := store.Prekeys{}
	for i := range 7 { // 3 + 7 = 10
		p.OneTime = append(p.OneTime, store.Prekey{ID: uint32(500 + i), Public: random(32)})
	}
	for i := range 8 { // 2 + 8 = 10
		p.OneTimePQ = append(p.OneTimePQ, store.Prekey{ID: uint32(600 + i), Public: random(1184), Signature: random(64)})
	}
	noErr(t, "PutPrekeys", e.s.PutPrekeys(e.ctx, "alice", 1, p))
	const n = 20
	bundles := make([]store.Bundle, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			bundles[i], errs[i] = e.s.TakeBundle(e.ctx, "alice", 1)
		})
	}
	close(start)
	wg.Wait()
	seenOT := map[uint32]int{}
	seenPQ := map[uint32]int{}
	lastResort := 0
	for i := range n {
		noErr(t, "TakeBundle", errs[i])
		if o := bundles[i].OneTime; o != nil {
			seenOT[o.ID]++
		}
		if bundles[i].PQLastResort {
			lastResort++
		} else {
			seenPQ[bundles[i].PQ.ID]++
		}
	}
	if len(seenOT) != 10 || len(seenPQ) != 10 || lastResort != 10 {
		t.Fatalf("%d distinct one-time keys, %d distinct PQ keys, %d last-resort; want 10, 10, 10", len(seenOT), len(seenPQ), lastResort)
	}
	for id, c := range seenOT {
		if c != 1 {
			t.Fatalf("one-time key %d handed out %d times", id, c)
		}
	}
	for id, c := range seenPQ {
		if c != 1 {
			t.Fatalf("one-time PQ key %d handed out %d times", id, c)
		}
	}
}

// Tokens.

func (s *suite) testTokenResolve(t *testing.T) {
	e := s.env(t)
	e.account("alice", 1, 2)
	tok := random(32)
	noErr(t, "PutToken", e.s.PutToken(e.ctx, tok, "ALICE", 2, e.now.Add(time.Hour)))
	h, d, err := e.s.TokenDevice(e.ctx, tok)
	noErr(t, "TokenDevice", err)
	if h != "alice" || d != 2 {
		t.Fatalf("TokenDevice = %q, %d; want alice, 2", h, d)
	}
	// The same hash again replaces the old entry.
	noErr(t, "PutToken again", e.s.PutToken(e.ctx, tok, "alice", 1, e.now.Add(time.Hour)))
	_, d, err = e.s.TokenDevice(e.ctx, tok)
	noErr(t, "TokenDevice", err)
	if d != 1 {
		t.Fatalf("TokenDevice device %d after replacing, want 1", d)
	}
}

func (s *suite) testTokenExpired(t *testing.T) {
	e := s.env(t)
	e.account("alice", 1)
	tok := random(32)
	noErr(t, "PutToken", e.s.PutToken(e.ctx, tok, "alice", 1, time.Now().Add(-time.Second)))
	_, _, err := e.s.TokenDevice(e.ctx, tok)
	wantErr(t, "TokenDevice of expired token", err, store.ErrNotFound)
}

func (s *suite) testTokenNotFound(t *testing.T) {
	e := s.env(t)
	e.account("alice", 1)
	_, _, err := e.s.TokenDevice(e.ctx, random(32))
	wantErr(t, "TokenDevice unknown", err, store.ErrNotFound)
	wantErr(t, "PutToken unknown device", e.s.PutToken(e.ctx, random(32), "alice", 9, e.now.Add(time.Hour)), store.ErrNotFound)
	wantErr(t, "PutToken unknown account", e.s.PutToken(e.ctx, random(32), "nobody", 1, e.now.Add(time.Hour)), store.ErrNotFound)
}

// Challenges.

func (s *suite) testChallengePutAndTake(t *testing.T) {
	e := s.env(t)
	e.account("alice", 1, 2)
	c1, c2 := random(32), random(32)
	exp := e.now.Add(time.Minute)
	noErr(t, "PutChallenge", e.s.PutChallenge(e.ctx, c1, "ALICE", 2, exp))
	noErr(t, "PutChallenge", e.s.PutChallenge(e.ctx, c2, "alice", 1, exp.Add(time.Second)))
	h, d, got, err := e.s.TakeChallenge(e.ctx, c1)
	noErr(t, "TakeChallenge", err)
	if h != "alice" || d != 2 || !got.Equal(exp) || got.Location() != time.UTC {
		t.Fatalf("TakeChallenge = %q, %d, %v; want alice, 2, %v (UTC)", h, d, got, exp)
	}
	// Single use.
	_, _, _, err = e.s.TakeChallenge(e.ctx, c1)
	wantErr(t, "TakeChallenge twice", err, store.ErrNotFound)
	// The other challenge is untouched by taking the first.
	h, d, _, err = e.s.TakeChallenge(e.ctx, c2)
	noErr(t, "TakeChallenge other", err)
	if h != "alice" || d != 1 {
		t.Fatalf("TakeChallenge = %q, %d; want alice, 1", h, d)
	}
	// The same challenge again replaces the stored one.
	noErr(t, "PutChallenge", e.s.PutChallenge(e.ctx, c1, "alice", 1, exp))
	noErr(t, "PutChallenge again", e.s.PutChallenge(e.ctx, c1, "alice", 2, exp))
	_, d, _, err = e.s.TakeChallenge(e.ctx, c1)
	noErr(t, "TakeChallenge", err)
	if d != 2 {
		t.Fatalf("TakeChallenge device %d after replacing, want 2", d)
	}
}

// testChallengeExpired checks that an expired challenge is not handed out,
// and is used up all the same.
func (s *suite) testChallengeExpired(t *testing.T) {
	e := s.env(t)
	e.account("alice", 1)
	c := random(32)
	noErr(t, "PutChallenge", e.s.PutChallenge(e.ctx, c, "alice", 1, time.Now().Add(-time.Second)))
	_, _, _, err := e.s.TakeChallenge(e.ctx, c)
	wantErr(t, "TakeChallenge expired", err, store.ErrNotFound)
	_, _, _, err = e.s.TakeChallenge(e.ctx, c)
	wantErr(t, "TakeChallenge expired, twice", err, store.ErrNotFound)
}

// testChallengeNotFound covers unknown challenges and devices, and a
// device's challenges going with it.
func (s *suite) testChallengeNotFound(t *testing.T) {
	e := s.env(t)
	_, l := e.account("alice", 1, 2)
	_, _, _, err := e.s.TakeChallenge(e.ctx, random(32))
	wantErr(t, "TakeChallenge unknown", err, store.ErrNotFound)
	exp := e.now.Add(time.Minute)
	wantErr(t, "PutChallenge unknown device", e.s.PutChallenge(e.ctx, random(32), "alice", 9, exp), store.ErrNotFound)
	wantErr(t, "PutChallenge unknown account", e.s.PutChallenge(e.ctx, random(32), "nobody", 1, exp), store.ErrNotFound)
	c1, c2 := random(32), random(32)
	noErr(t, "PutChallenge", e.s.PutChallenge(e.ctx, c1, "alice", 1, exp))
	noErr(t, "PutChallenge", e.s.PutChallenge(e.ctx, c2, "alice", 2, exp))
	_, err = e.s.ReplaceDeviceList(e.ctx, "alice", store.DeviceList{Signed: random(10), Version: 2, Devices: l.Devices[:1]})
	noErr(t, "ReplaceDeviceList", err)
	_, _, _, err = e.s.TakeChallenge(e.ctx, c2)
	wantErr(t, "TakeChallenge of a removed device", err, store.ErrNotFound)
	_, d, _, err := e.s.TakeChallenge(e.ctx, c1)
	noErr(t, "TakeChallenge of the kept device", err)
	if d != 1 {
		t.Fatalf("TakeChallenge device %d, want 1", d)
	}
}

// testChallengeConcurrentTake has several token requests race for one
// challenge: exactly one gets it.
func (s *suite) testChallengeConcurrentTake(t *testing.T) {
	e := s.env(t)
	e.account("alice", 1)
	c := random(32)
	noErr(t, "PutChallenge", e.s.PutChallenge(e.ctx, c, "alice", 1, e.now.Add(time.Minute)))
	const n = 10
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, _, _, errs[i] = e.s.TakeChallenge(e.ctx, c) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("TakeChallenge: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d takers got the challenge, want 1", ok)
	}
}

// Queues.

func (s *suite) testEnqueueAndPending(t *testing.T) {
	e := s.env(t)
	e.account("alice", 1, 2)
	e.account("bob", 1, 2, 3)
	id := messageID()
	envs := message("Alice", 1, id, to{"bob", 1}, to{"BOB", 2}, to{"bob", 3}, to{"alice", 2})
	envs[0].ServerTime = e.now.Add(-time.Minute) // kept as given
	before := time.Now().Add(-time.Second)
	e.enqueue(envs)
	after := time.Now().Add(time.Second)
	for i, r := range []to{{"bob", 1}, {"bob", 2}, {"bob", 3}, {"alice", 2}} {
		got := e.pending(r.handle, r.id)
		if len(got) != 1 {
			t.Fatalf("%v: %d envelopes, want 1", r, len(got))
		}
		g := got[0]
		if g.MessageID != id || g.Sender != "alice" || g.SenderDevice != 1 || g.Recipient != r.handle ||
			g.RecipientDevice != r.id || !bytes.Equal(g.Ciphertext, envs[i].Ciphertext) || g.Seq <= 0 {
			t.Fatalf("%v: got %+v", r, g)
		}
		if i == 0 {
			if !g.ServerTime.Equal(envs[0].ServerTime) {
				t.Fatalf("ServerTime %v, want the given %v", g.ServerTime, envs[0].ServerTime)
			}
		} else if g.ServerTime.Before(before) || g.ServerTime.After(after) {
			t.Fatalf("zero ServerTime became %v, not the store's clock", g.ServerTime)
		}
	}
	if got := e.pending("alice", 1); len(got) != 0 {
		t.Fatalf("the sending device got %d envelopes", len(got))
	}
	got, err := e.s.Pending(e.ctx, "nobody", 1, 0, 10)
	noErr(t, "Pending of unknown device", err)
	if len(got) != 0 {
		t.Fatalf("unknown device has %d envelopes", len(got))
	}
}

func (s *suite) testQueueOrder(t *testing.T) {
	e := s.env(t)
	e.account("alice", 1)
	e.account("bob", 1, 2)
	var ids []string
	for range 30 {
		id := messageID()
		ids = append(ids, id)
		e.enqueue(message("alice", 1, id, to{"bob", 1}, to{"bob", 2}))
	}
	for _, d := range []uint32{1, 2} {
		got := e.pending("bob", d)
		if len(got) != len(ids) {
			t.Fatalf("device %d: %d envelopes, want %d", d, len(got), len(ids))
		}
		for i, g := range got {
			if g.MessageID != ids[i] {
				t.Fatalf("device %d: envelope %d is %s, want %s (enqueue order)", d, i, g.MessageID, ids[i])
			}
			if i > 0 && g.Seq <= got[i-1].Seq {
				t.Fatalf("device %d: seq %d after %d", d, g.Seq, got[i-1].Seq)
			}
		}
	}
	// Acking the newest envelope must not let a later one reuse its seq.
	got := e.pending("bob", 1)
	last := got[len(got)-1].Seq
	noErr(t, "Ack", e.s.Ack(e.ctx, "bob", 1, []int64{last}))
	e.enqueue(message("alice", 1, messageID(), to{"bob", 1}))
	next, err := e.s.Pending(e.ctx, "bob", 1, last, 10)
	noErr(t, "Pending after", err)
	if len(next) != 1 || next[0].Seq <= last {
		t.Fatalf("after acking seq %d, the next envelope is %+v", last, next)
	}
}

func (s *suite) testEnqueueDuplicate(t *testing.T) {
	e := s.env(t)
	e.account("alice", 1)
	e.account("bob", 1, 2)
	id := messageID()
	first := message("alice", 1, id, to{"bob", 1}, to{"bob", 2})
	e.enqueue(first)
	// A retry with other ciphertexts, or naming other devices, stores nothing.
	for _, retry := range [][]store.Envelope{
		message("alice", 1, id, to{"bob", 1}, to{"bob", 2}),
		message("ALICE", 1, id, to{"bob", 2}),
		message("alice", 1, id, to{"bob", 1}, to{"bob", 2}, to{"bob", 9}), // even with an unknown device
	} {
		dup, err := e.s.Enqueue(e.ctx, retry)
		noErr(t, "Enqueue retry", err)
		if !dup {
			t.Fatal("retry not reported as duplicate")
		}
	}
	for i, d := range []uint32{1, 2} {
		got := e.pending("bob", d)
		if len(got) != 1 || !bytes.Equal(got[0].Ciphertext, first[i].Ciphertext) {
			t.Fatalf("device %d: %d envelopes after retries, want the first one only", d, len(got))
		}
	}
}

func (s *suite) testEnqueueDuplicateAfterAck(t *testing.T) {
	e := s.env(t)
	e.account("alice", 1)
	e.account("bob", 1)
	id := messageID()
	e.enqueue(message("alice", 1, id, to{"bob", 1}))
	got := e.pending("bob", 1)
	noErr(t, "Ack", e.s.Ack(e.ctx, "bob", 1, []int64{got[0].Seq}))
	dup, err := e.s.Enqueue(e.ctx, message("alice", 1, id, to{"bob", 1}))
	noErr(t, "Enqueue after delivery", err)
	if !dup {
		t.Fatal("a delivered message id was forgotten")
	}
	if got := e.pending("bob", 1); len(got) != 0 {
		t.Fatalf("a retry after delivery queued %d envelopes", len(got))
	}
}

// testEnqueueDedupKey checks that only the (sender, sender device,
// message id) triple is a duplicate.
func (s *suite) testEnqueueDedupKey(t *testing.T) {
	e := s.env(t)
	e.account("alice", 1, 2)
	e.account("carol", 1)
	e.account("bob", 1)
	id := messageID()
	e.enqueue(message("alice", 1, id, to{"bob", 1}))
	e.enqueue(message("alice", 2, id, to{"bob", 1}))
	e.enqueue(message("carol", 1, id, to{"bob", 1}))
	e.enqueue(message("alice", 1, messageID(), to{"bob", 1}))
	if got := e.pending("bob", 1); len(got) != 4 {
		t.Fatalf("%d envelopes, want 4", len(got))
	}
}

// testEnqueueUnknownDevice checks that a message naming a device that is
// not current stores nothing and is not remembered.
func (s *suite) testEnqueueUnknownDevice(t *testing.T) {
	e := s.env(t)
	e.account("alice", 1)
	e.account("bob", 1)
	id := messageID()
	for _, bad := range []to{{"bob", 2}, {"nobody", 1}} {
		_, err := e.s.Enqueue(e.ctx, message("alice", 1, id, to{"bob", 1}, bad))
		wantErr(t, fmt.Sprintf("Enqueue naming %v", bad), err, store.ErrNotFound)
	}
	if got := e.pending("bob", 1); len(got) != 0 {
		t.Fatalf("a refused message left %d envelopes", len(got))
	}
	e.enqueue(message("alice", 1, id, to{"bob", 1})) // the id was not remembered
}

// testQueueFull fills a device's queue to the limit: the next message is
// refused whole, for every device it names, and its id is not remembered.
func (s *suite) testQueueFull(t *testing.T) {
	e := s.env(t)
	e.account("alice", 1)
	e.account("bob", 1, 2)
	for range s.opt.MaxQueue {
		e.enqueue(message("alice", 1, messageID(), to{"bob", 1}))
	}
	id := messageID()
	_, err := e.s.Enqueue(e.ctx, message("alice", 1, id, to{"bob", 2}, to{"bob", 1}))
	wantErr(t, "Enqueue to a full queue", err, store.ErrQueueFull)
	if got := e.pending("bob", 2); len(got) != 0 {
		t.Fatalf("a refused message reached the other device: %d envelopes", len(got))
	}
	got, err := e.s.Pending(e.ctx, "bob", 1, 0, s.opt.MaxQueue+10)
	noErr(t, "Pending", err)
	if len(got) != s.opt.MaxQueue {
		t.Fatalf("full queue holds %d, want %d", len(got), s.opt.MaxQueue)
	}
	// Another device's queue is not affected.
	e.enqueue(message("alice", 1, messageID(), to{"bob", 2}))
	// Acknowledging one makes room for exactly one; the refused id retries.
	noErr(t, "Ack", e.s.Ack(e.ctx, "bob", 1, []int64{got[0].Seq, got[0].Seq}))
	e.enqueue(message("alice", 1, id, to{"bob", 2}, to{"bob", 1}))
	_, err = e.s.Enqueue(e.ctx, message("alice", 1, messageID(), to{"bob", 1}))
	wantErr(t, "Enqueue to a full queue again", err, store.ErrQueueFull)
	// Acking unknown seqs and another device's seqs frees nothing.
	other := e.pending("bob", 2)
	noErr(t, "Ack", e.s.Ack(e.ctx, "bob", 1, []int64{other[0].Seq, -1, 1 << 62}))
	_, err = e.s.Enqueue(e.ctx, message("alice", 1, messageID(), to{"bob", 1}))
	wantErr(t, "Enqueue after a no-op ack", err, store.ErrQueueFull)
}

func (s *suite) testAck(t *testing.T) {
	e := s.env(t)
	e.account("alice", 1)
	e.account("bob", 1, 2)
	for range 5 {
		e.enqueue(message("alice", 1, messageID(), to{"bob", 1}, to{"bob", 2}))
	}
	b1, b2 := e.pending("bob", 1), e.pending("bob", 2)
	// bob/2 acks bob/1's seqs: nothing happens to either.
	noErr(t, "Ack of another device's seqs", e.s.Ack(e.ctx, "bob", 2, []int64{b1[0].Seq, b1[1].Seq}))
	if len(e.pending("bob", 1)) != 5 || len(e.pending("bob", 2)) != 5 {
		t.Fatal("an ack of another device's seqs deleted something")
	}
	noErr(t, "Ack empty", e.s.Ack(e.ctx, "bob", 1, nil))
	noErr(t, "Ack", e.s.Ack(e.ctx, "BOB", 1, []int64{b1[1].Seq, b1[3].Seq, 987654321}))
	got := e.pending("bob", 1)
	want := []int64{b1[0].Seq, b1[2].Seq, b1[4].Seq}
	var seqs []int64
	for _, g := range got {
		seqs = append(seqs, g.Seq)
	}
	if !slices.Equal(seqs, want) {
		t.Fatalf("after ack: seqs %v, want %v", seqs, want)
	}
	noErr(t, "Ack again", e.s.Ack(e.ctx, "bob", 1, []int64{b1[1].Seq}))
	if len(e.pending("bob", 2)) != len(b2) {
		t.Fatal("acking bob/1 changed bob/2")
	}
	// Ack for a device or account that does not exist is a no-op.
	noErr(t, "Ack unknown device", e.s.Ack(e.ctx, "bob", 9, []int64{b2[0].Seq}))
	noErr(t, "Ack unknown account", e.s.Ack(e.ctx, "nobody", 1, []int64{b2[0].Seq}))
	// Many seqs at once.
	var all []int64
	for range 600 {
		all = append(all, b2[0].Seq+int64(len(all))*7)
	}
	for _, g := range b2 {
		all = append(all, g.Seq)
	}
	noErr(t, "Ack many", e.s.Ack(e.ctx, "bob", 2, all))
	if n := len(e.pending("bob", 2)); n != 0 {
		t.Fatalf("%d envelopes left after acking all", n)
	}
}

func (s *suite) testPendingPaging(t *testing.T) {
	e := s.env(t)
	e.account("alice", 1)
	e.account("bob", 1)
	for range 10 {
		e.enqueue(message("alice", 1, messageID(), to{"bob", 1}))
	}
	all := e.pending("bob", 1)
	var paged []store.Envelope
	after := int64(0)
	for {
		page, err := e.s.Pending(e.ctx, "bob", 1, after, 3)
		noErr(t, "Pending", err)
		if len(page) > 3 {
			t.Fatalf("page of %d, limit 3", len(page))
		}
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
		after = page[len(page)-1].Seq
	}
	if len(paged) != len(all) {
		t.Fatalf("paging gave %d, want %d", len(paged), len(all))
	}
	for i := range all {
		if paged[i].Seq != all[i].Seq {
			t.Fatalf("page order differs at %d", i)
		}
	}
	got, err := e.s.Pending(e.ctx, "bob", 1, all[4].Seq, 100)
	noErr(t, "Pending after", err)
	if len(got) != 5 || got[0].Seq != all[5].Seq {
		t.Fatalf("Pending after seq %d: %d envelopes", all[4].Seq, len(got))
	}
	for _, limit := range []int{0, -1} {
		got, err := e.s.Pending(e.ctx, "bob", 1, 0, limit)
		noErr(t, "Pending limit", err)
		if len(got) != 0 {
			t.Fatalf("Pending limit %d gave %d", limit, len(got))
		}
	}
}

// testEnqueueConcurrent has several senders enqueue at once (and a reader
// page through): nothing is lost, seqs are unique and increase.
func (s *suite) testEnqueueConcurrent(t *testing.T) {
	e := s.env(t)
	e.account("bob", 1, 2)
	// 8 senders, up to 25 messages each, within the queue limit.
	const senders = 8
	each := min(25, s.opt.MaxQueue/senders)
	for i := range senders {
		e.account(fmt.Sprintf("sender%d", i), 1)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*senders*each+each)
	start := make(chan struct{})
	for i := range senders {
		wg.Go(func() {
			<-start
			for range each {
				id := messageID()
				if _, err := e.s.Enqueue(e.ctx, message(fmt.Sprintf("sender%d", i), 1, id, to{"bob", 1}, to{"bob", 2})); err != nil {
					errs <- err
				}
				// The same message again, concurrently with the others.
				if dup, err := e.s.Enqueue(e.ctx, message(fmt.Sprintf("sender%d", i), 1, id, to{"bob", 1}, to{"bob", 2})); err != nil || !dup {
					errs <- fmt.Errorf("retry: duplicate %v, err %v", dup, err)
				}
			}
		})
	}
	wg.Go(func() {
		<-start
		for range each {
			if _, err := e.s.Pending(e.ctx, "bob", 1, 0, 50); err != nil {
				errs <- err
			}
		}
	})
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Enqueue: %v", err)
	}
	for _, d := range []uint32{1, 2} {
		got := e.pending("bob", d)
		if len(got) != senders*each {
			t.Fatalf("device %d: %d envelopes, want %d", d, len(got), senders*each)
		}
		seen := map[string]bool{}
		for i, g := range got {
			if i > 0 && g.Seq <= got[i-1].Seq {
				t.Fatalf("device %d: seq %d after %d", d, g.Seq, got[i-1].Seq)
			}
			k := g.Sender + "/" + g.MessageID
			if seen[k] {
				t.Fatalf("device %d: %s twice", d, k)
			}
			seen[k] = true
		}
	}
}

func (s *suite) testEnqueueEmptyAndMixed(t *testing.T) {
	e := s.env(t)
	e.account("alice", 1, 2)
	e.account("bob", 1)
	dup, err := e.s.Enqueue(e.ctx, nil)
	if err != nil || dup {
		t.Fatalf("Enqueue(nil) = %v, %v", dup, err)
	}
	mixed := append(message("alice", 1, messageID(), to{"bob", 1}), message("alice", 2, messageID(), to{"bob", 1})...)
	if _, err := e.s.Enqueue(e.ctx, mixed); err == nil {
		t.Fatal("Enqueue of envelopes from two messages: no error")
	}
	if got := e.pending("bob", 1); len(got) != 0 {
		t.Fatalf("a refused batch queued %d envelopes", len(got))
	}
}

// Links.

func (s *suite) newLink(e *env) store.Link {
	e.t.Helper()
	l := store.Link{ID: fmt.Sprintf("%x", random(16)), Handle: "alice", Expires: time.Now().Add(10 * time.Minute).Truncate(time.Millisecond)}
	noErr(e.t, "CreateLink", e.s.CreateLink(e.ctx, l))
	return l
}

func (s *suite) testLinkLifecycle(t *testing.T) {
	e := s.env(t)
	e.account("alice", 1)
	l := store.Link{ID: fmt.Sprintf("%x", random(16)), Handle: "Alice", Expires: time.Now().Add(10 * time.Minute).Truncate(time.Millisecond),
		Join: []byte("ignored"), Sealed: []byte("ignored"), Fetched: true}
	noErr(t, "CreateLink", e.s.CreateLink(e.ctx, l))
	got, err := e.s.Link(e.ctx, l.ID)
	noErr(t, "Link", err)
	if got.ID != l.ID || got.Handle != "alice" || !got.Expires.Equal(l.Expires) || len(got.Join) != 0 || len(got.Sealed) != 0 || got.Fetched {
		t.Fatalf("new link: %+v", got)
	}
	// Polling for the result before completion hands out nothing.
	got, err = e.s.FetchLinkResult(e.ctx, l.ID)
	noErr(t, "FetchLinkResult before completion", err)
	if len(got.Sealed) != 0 || got.Fetched {
		t.Fatalf("FetchLinkResult before completion: %+v", got)
	}
	join := random(200)
	noErr(t, "JoinLink", e.s.JoinLink(e.ctx, l.ID, join))
	got, err = e.s.Link(e.ctx, l.ID)
	noErr(t, "Link", err)
	if !bytes.Equal(got.Join, join) {
		t.Fatal("Link: join not recorded")
	}
	got, err = e.s.FetchLinkResult(e.ctx, l.ID)
	noErr(t, "FetchLinkResult before completion", err)
	if len(got.Sealed) != 0 || got.Fetched {
		t.Fatalf("FetchLinkResult after join, before completion: %+v", got)
	}
	sealed, dl := random(500), random(300)
	noErr(t, "CompleteLink", e.s.CompleteLink(e.ctx, l.ID, sealed, dl))
	got, err = e.s.FetchLinkResult(e.ctx, l.ID)
	noErr(t, "FetchLinkResult", err)
	if !bytes.Equal(got.Sealed, sealed) || !bytes.Equal(got.DeviceList, dl) || !bytes.Equal(got.Join, join) || !got.Fetched {
		t.Fatalf("FetchLinkResult: %+v", got)
	}
	_, err = e.s.FetchLinkResult(e.ctx, l.ID)
	wantErr(t, "FetchLinkResult twice", err, store.ErrLinkUsed)
	got, err = e.s.Link(e.ctx, l.ID)
	noErr(t, "Link after fetch", err)
	if !got.Fetched {
		t.Fatal("Link after fetch: not marked fetched")
	}
}

func (s *suite) testLinkOnce(t *testing.T) {
	e := s.env(t)
	e.account("alice", 1)
	l := s.newLink(e)
	wantErr(t, "CreateLink same id", e.s.CreateLink(e.ctx, store.Link{ID: l.ID, Handle: "alice", Expires: l.Expires}), store.ErrLinkUsed)
	join := random(50)
	noErr(t, "JoinLink", e.s.JoinLink(e.ctx, l.ID, join))
	wantErr(t, "JoinLink twice", e.s.JoinLink(e.ctx, l.ID, random(50)), store.ErrLinkUsed)
	sealed := random(50)
	noErr(t, "CompleteLink", e.s.CompleteLink(e.ctx, l.ID, sealed, random(20)))
	wantErr(t, "CompleteLink twice", e.s.CompleteLink(e.ctx, l.ID, random(50), random(20)), store.ErrLinkUsed)
	got, err := e.s.Link(e.ctx, l.ID)
	noErr(t, "Link", err)
	if !bytes.Equal(got.Join, join) || !bytes.Equal(got.Sealed, sealed) {
		t.Fatal("a second JoinLink or CompleteLink changed the link")
	}
	if err := e.s.JoinLink(e.ctx, s.newLink(e).ID, nil); err == nil {
		t.Fatal("JoinLink with an empty join: no error")
	}
	if err := e.s.CompleteLink(e.ctx, s.newLink(e).ID, nil, nil); err == nil {
		t.Fatal("CompleteLink with an empty sealed transfer: no error")
	}
}

func (s *suite) testLinkExpired(t *testing.T) {
	e := s.env(t)
	e.account("alice", 1)
	l := store.Link{ID: fmt.Sprintf("%x", random(16)), Handle: "alice", Expires: time.Now().Add(-time.Second)}
	noErr(t, "CreateLink", e.s.CreateLink(e.ctx, l))
	_, err := e.s.Link(e.ctx, l.ID)
	wantErr(t, "Link expired", err, store.ErrNotFound)
	wantErr(t, "JoinLink expired", e.s.JoinLink(e.ctx, l.ID, random(10)), store.ErrNotFound)
	wantErr(t, "CompleteLink expired", e.s.CompleteLink(e.ctx, l.ID, random(10), random(10)), store.ErrNotFound)
	_, err = e.s.FetchLinkResult(e.ctx, l.ID)
	wantErr(t, "FetchLinkResult expired", err, store.ErrNotFound)
}

func (s *suite) testLinkNotFound(t *testing.T) {
	e := s.env(t)
	e.account("alice", 1)
	id := fmt.Sprintf("%x", random(16))
	_, err := e.s.Link(e.ctx, id)
	wantErr(t, "Link", err, store.ErrNotFound)
	wantErr(t, "JoinLink", e.s.JoinLink(e.ctx, id, random(10)), store.ErrNotFound)
	wantErr(t, "CompleteLink", e.s.CompleteLink(e.ctx, id, random(10), random(10)), store.ErrNotFound)
	_, err = e.s.FetchLinkResult(e.ctx, id)
	wantErr(t, "FetchLinkResult", err, store.ErrNotFound)
	wantErr(t, "CreateLink for unknown account",
		e.s.CreateLink(e.ctx, store.Link{ID: id, Handle: "nobody", Expires: time.Now().Add(time.Minute)}), store.ErrNotFound)
}

// testLinkConcurrentFetch has several fetchers race for one result: exactly
// one gets it.
func (s *suite) testLinkConcurrentFetch(t *testing.T) {
	e := s.env(t)
	e.account("alice", 1)
	l := s.newLink(e)
	noErr(t, "JoinLink", e.s.JoinLink(e.ctx, l.ID, random(10)))
	noErr(t, "CompleteLink", e.s.CompleteLink(e.ctx, l.ID, random(10), random(10)))
	const n = 10
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, errs[i] = e.s.FetchLinkResult(e.ctx, l.ID) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else if !errors.Is(err, store.ErrLinkUsed) {
			t.Fatalf("FetchLinkResult: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d fetchers got the result, want 1", ok)
	}
}

// Expiry.

func (s *suite) testExpireTokensAndLinks(t *testing.T) {
	e := s.env(t)
	e.account("alice", 1)
	now := time.Now()
	short, long := random(32), random(32)
	noErr(t, "PutToken", e.s.PutToken(e.ctx, short, "alice", 1, now.Add(time.Hour)))
	noErr(t, "PutToken", e.s.PutToken(e.ctx, long, "alice", 1, now.Add(3*time.Hour)))
	l1 := store.Link{ID: "link1", Handle: "alice", Expires: now.Add(time.Hour)}
	l2 := store.Link{ID: "link2", Handle: "alice", Expires: now.Add(3 * time.Hour)}
	noErr(t, "CreateLink", e.s.CreateLink(e.ctx, l1))
	noErr(t, "CreateLink", e.s.CreateLink(e.ctx, l2))

	noErr(t, "Expire", e.s.Expire(e.ctx, now))
	for _, tok := range [][]byte{short, long} {
		_, _, err := e.s.TokenDevice(e.ctx, tok)
		noErr(t, "TokenDevice after an early Expire", err)
	}
	// Expire as if two hours had passed: the one-hour token and link go.
	noErr(t, "Expire", e.s.Expire(e.ctx, now.Add(2*time.Hour)))
	_, _, err := e.s.TokenDevice(e.ctx, short)
	wantErr(t, "TokenDevice of an expired-and-deleted token", err, store.ErrNotFound)
	_, _, err = e.s.TokenDevice(e.ctx, long)
	noErr(t, "TokenDevice of a live token", err)
	_, err = e.s.Link(e.ctx, "link1")
	wantErr(t, "Link deleted by Expire", err, store.ErrNotFound)
	_, err = e.s.Link(e.ctx, "link2")
	noErr(t, "Link kept by Expire", err)
	// The deleted link's id is free again.
	noErr(t, "CreateLink reusing an expired id", e.s.CreateLink(e.ctx, l1))
}

func (s *suite) testExpireChallenges(t *testing.T) {
	e := s.env(t)
	e.account("alice", 1)
	now := time.Now()
	short, long := random(32), random(32)
	noErr(t, "PutChallenge", e.s.PutChallenge(e.ctx, short, "alice", 1, now.Add(time.Minute)))
	noErr(t, "PutChallenge", e.s.PutChallenge(e.ctx, long, "alice", 1, now.Add(time.Hour)))
	// Expire as if ten minutes had passed: the one-minute challenge goes.
	noErr(t, "Expire", e.s.Expire(e.ctx, now.Add(10*time.Minute)))
	_, _, _, err := e.s.TakeChallenge(e.ctx, short)
	wantErr(t, "TakeChallenge of an expired-and-deleted challenge", err, store.ErrNotFound)
	_, _, _, err = e.s.TakeChallenge(e.ctx, long)
	noErr(t, "TakeChallenge of a live challenge", err)
}

func (s *suite) testExpireDedup(t *testing.T) {
	e := s.env(t)
	e.account("alice", 1)
	e.account("bob", 1)
	id := messageID()
	e.enqueue(message("alice", 1, id, to{"bob", 1}))
	now := time.Now()
	noErr(t, "Expire", e.s.Expire(e.ctx, now.Add(store.DedupWindow-time.Hour)))
	dup, err := e.s.Enqueue(e.ctx, message("alice", 1, id, to{"bob", 1}))
	noErr(t, "Enqueue", err)
	if !dup {
		t.Fatal("a message id was forgotten before DedupWindow")
	}
	noErr(t, "Expire", e.s.Expire(e.ctx, now.Add(store.DedupWindow+time.Hour)))
	e.enqueue(message("alice", 1, id, to{"bob", 1})) // forgotten after the window
	if got := e.pending("bob", 1); len(got) != 2 {
		t.Fatalf("%d envelopes, want 2", len(got))
	}
}

// expiring sets the expiry of a message's envelopes.
func expiring(envs []store.Envelope, at time.Time) []store.Envelope {
	for i := range envs {
		envs[i].Expires = at
	}
	return envs
}

func (s *suite) testExpireEnvelopes(t *testing.T) {
	e := s.env(t)
	e.account("alice", 1)
	e.account("bob", 1, 2)
	now := time.Now()
	soon, later, plain := messageID(), messageID(), messageID()
	e.enqueue(expiring(message("alice", 1, soon, to{"bob", 1}, to{"bob", 2}), now.Add(time.Minute)))
	e.enqueue(expiring(message("alice", 1, later, to{"bob", 1}), now.Add(time.Hour)))
	e.enqueue(message("alice", 1, plain, to{"bob", 1}))
	ids := func(h string, d uint32) []string {
		var out []string
		for _, env := range e.pending(h, d) {
			if !env.Expires.IsZero() {
				t.Fatalf("Pending returned an expiry: %v", env.Expires)
			}
			out = append(out, env.MessageID)
		}
		return out
	}
	noErr(t, "Expire", e.s.Expire(e.ctx, now))
	if got := ids("bob", 1); !slices.Equal(got, []string{soon, later, plain}) {
		t.Fatalf("before their time: %v", got)
	}
	noErr(t, "Expire", e.s.Expire(e.ctx, now.Add(2*time.Minute)))
	if got := ids("bob", 1); !slices.Equal(got, []string{later, plain}) {
		t.Fatalf("after the first expiry, bob/1 holds %v", got)
	}
	if got := ids("bob", 2); len(got) != 0 {
		t.Fatalf("after the first expiry, bob/2 holds %v", got)
	}
	noErr(t, "Expire", e.s.Expire(e.ctx, now.Add(2*time.Hour)))
	if got := ids("bob", 1); !slices.Equal(got, []string{plain}) {
		t.Fatalf("after the second expiry, bob/1 holds %v", got)
	}
	// The message ids are still remembered: a retry is a duplicate.
	dup, err := e.s.Enqueue(e.ctx, expiring(message("alice", 1, soon, to{"bob", 1}, to{"bob", 2}), now.Add(time.Minute)))
	noErr(t, "Enqueue again", err)
	if !dup {
		t.Fatal("an expired message's id was forgotten")
	}

	// Expired envelopes give their room in the queue back.
	for range s.opt.MaxQueue {
		e.enqueue(expiring(message("alice", 1, messageID(), to{"bob", 2}), now.Add(time.Minute)))
	}
	_, err = e.s.Enqueue(e.ctx, message("alice", 1, messageID(), to{"bob", 2}))
	wantErr(t, "Enqueue to a full queue", err, store.ErrQueueFull)
	noErr(t, "Expire", e.s.Expire(e.ctx, now.Add(2*time.Minute)))
	if n := len(e.pending("bob", 2)); n != 0 {
		t.Fatalf("%d envelopes left after they all expired", n)
	}
	for range s.opt.MaxQueue {
		e.enqueue(message("alice", 1, messageID(), to{"bob", 2}))
	}
}

// Invites.

// invite stores an invite with a fresh hash, created at e.now.
func (e *env) invite(handle string, uses int, expires time.Time) store.Invite {
	e.t.Helper()
	inv := store.Invite{Hash: random(32), Handle: handle, Uses: uses, Expires: expires, Created: e.now}
	if err := e.s.CreateInvite(e.ctx, inv); err != nil {
		e.t.Fatalf("CreateInvite(%q, %d uses): %v", handle, uses, err)
	}
	return inv
}

// register is CreateAccount of a one-device account with an invite
// (nil: none), as the account tests build them.
func (e *env) register(handle string, invite []byte) error {
	a := store.Account{Handle: handle, IdentityKey: random(32), Created: e.now, Invite: invite}
	l := store.DeviceList{Signed: random(10), Version: 1, Devices: []store.Device{device(1, e.now)}}
	return e.s.CreateAccount(e.ctx, a, l, prekeys(1, 1))
}

// inviteUses returns the uses left on the invite with hash, and false if
// Invites does not list it.
func (e *env) inviteUses(hash []byte) (int, bool) {
	e.t.Helper()
	invs, err := e.s.Invites(e.ctx)
	if err != nil {
		e.t.Fatalf("Invites: %v", err)
	}
	for _, inv := range invs {
		if bytes.Equal(inv.Hash, hash) {
			return inv.Uses, true
		}
	}
	return 0, false
}

// wantUses fails unless the invite with hash is listed with uses left.
func (e *env) wantUses(what string, hash []byte, uses int) {
	e.t.Helper()
	if n, ok := e.inviteUses(hash); !ok || n != uses {
		e.t.Fatalf("%s: invite listed %v with %d uses, want %d uses", what, ok, n, uses)
	}
}

// noAccount fails unless handle has no account.
func (e *env) noAccount(what, handle string) {
	e.t.Helper()
	_, err := e.s.Account(e.ctx, handle)
	wantErr(e.t, what+": Account("+handle+")", err, store.ErrNotFound)
	_, err = e.s.DeviceList(e.ctx, handle)
	wantErr(e.t, what+": DeviceList("+handle+")", err, store.ErrNotFound)
}

func sameInvite(t *testing.T, i int, got, want store.Invite) {
	t.Helper()
	if !bytes.Equal(got.Hash, want.Hash) || got.Handle != want.Handle || got.Uses != want.Uses ||
		!got.Expires.Equal(want.Expires) || got.Expires.IsZero() != want.Expires.IsZero() || !got.Created.Equal(want.Created) {
		t.Fatalf("invite %d: got %+v, want %+v", i, got, want)
	}
}

func (s *suite) testInviteCreateAndList(t *testing.T) {
	e := s.env(t)
	invs, err := e.s.Invites(e.ctx)
	noErr(t, "Invites of an empty store", err)
	if len(invs) != 0 {
		t.Fatalf("Invites of an empty store: %d", len(invs))
	}
	// The newer one is created first: Invites orders by Created.
	newer := store.Invite{Hash: random(32), Uses: 5, Created: e.now.Add(-time.Minute)}
	older := store.Invite{Hash: random(32), Handle: "Alice", Uses: 2, Expires: e.now.Add(time.Hour), Created: e.now.Add(-time.Hour)}
	noErr(t, "CreateInvite for any handle", e.s.CreateInvite(e.ctx, newer))
	noErr(t, "CreateInvite for Alice", e.s.CreateInvite(e.ctx, older))
	invs, err = e.s.Invites(e.ctx)
	noErr(t, "Invites", err)
	if len(invs) != 2 {
		t.Fatalf("Invites: %d, want 2", len(invs))
	}
	older.Handle = "alice" // stored normalised
	sameInvite(t, 0, invs[0], older)
	sameInvite(t, 1, invs[1], newer)

	// A zero Created is the store's clock.
	before := time.Now().Add(-time.Second)
	dflt := store.Invite{Hash: random(32), Uses: 1}
	noErr(t, "CreateInvite with a zero Created", e.s.CreateInvite(e.ctx, dflt))
	after := time.Now().Add(time.Second)
	invs, err = e.s.Invites(e.ctx)
	noErr(t, "Invites", err)
	if len(invs) != 3 || !bytes.Equal(invs[2].Hash, dflt.Hash) {
		t.Fatalf("Invites: %d, or the newest is not last", len(invs))
	}
	if c := invs[2].Created; c.Before(before) || c.After(after) {
		t.Fatalf("zero Created became %v, not the store's clock", c)
	}
}

func (s *suite) testInviteCreateErrors(t *testing.T) {
	e := s.env(t)
	good := e.invite("", 3, time.Time{})
	for _, n := range []int{0, 16, 31, 33, 64} {
		inv := store.Invite{Hash: random(n), Uses: 1, Created: e.now}
		if err := e.s.CreateInvite(e.ctx, inv); err == nil {
			t.Fatalf("CreateInvite with a %d-byte hash: no error", n)
		}
	}
	if err := e.s.CreateInvite(e.ctx, store.Invite{Uses: 1, Created: e.now}); err == nil {
		t.Fatal("CreateInvite with a nil hash: no error")
	}
	for _, uses := range []int{0, -1} {
		if err := e.s.CreateInvite(e.ctx, store.Invite{Hash: random(32), Uses: uses, Created: e.now}); err == nil {
			t.Fatalf("CreateInvite with %d uses: no error", uses)
		}
	}
	dup := store.Invite{Hash: good.Hash, Handle: "bob", Uses: 9, Created: e.now.Add(time.Second)}
	if err := e.s.CreateInvite(e.ctx, dup); err == nil {
		t.Fatal("CreateInvite with an existing hash: no error")
	}
	for _, h := range []string{"ab", "@alice", "al ice", "ålice"} {
		inv := store.Invite{Hash: random(32), Handle: h, Uses: 1, Created: e.now}
		wantErr(t, fmt.Sprintf("CreateInvite for %q", h), e.s.CreateInvite(e.ctx, inv), store.ErrInvalidHandle)
	}
	// Only the first invite is stored, unchanged.
	invs, err := e.s.Invites(e.ctx)
	noErr(t, "Invites", err)
	if len(invs) != 1 {
		t.Fatalf("Invites: %d, want 1", len(invs))
	}
	sameInvite(t, 0, invs[0], good)
}

func (s *suite) testInviteUnknown(t *testing.T) {
	e := s.env(t)
	e.invite("", 1, time.Time{})
	for _, hash := range [][]byte{random(32), random(5), {}} {
		wantErr(t, "CreateAccount with an unknown invite", e.register("alice", hash), store.ErrInviteInvalid)
		e.noAccount("after an unknown invite", "alice")
	}
}

func (s *suite) testInviteUses(t *testing.T) {
	e := s.env(t)
	inv := e.invite("", 2, e.now.Add(time.Hour))
	other := e.invite("", 1, time.Time{})
	noErr(t, "CreateAccount with the invite", e.register("alice", inv.Hash))
	e.wantUses("after the first use", inv.Hash, 1)
	noErr(t, "CreateAccount with the invite's last use", e.register("bob", inv.Hash))
	if _, ok := e.inviteUses(inv.Hash); ok {
		t.Fatal("a used-up invite is still listed")
	}
	wantErr(t, "CreateAccount with a used-up invite", e.register("carol", inv.Hash), store.ErrInviteInvalid)
	e.noAccount("after a used-up invite", "carol")
	for _, h := range []string{"alice", "bob"} {
		_, err := e.s.Account(e.ctx, h)
		noErr(t, "Account "+h, err)
	}
	// Without an invite, CreateAccount works as before, and uses none.
	noErr(t, "CreateAccount without an invite", e.register("dave", nil))
	e.account("erin", 1, 2)
	e.wantUses("after registrations without an invite", other.Hash, 1)
}

func (s *suite) testInviteHandle(t *testing.T) {
	e := s.env(t)
	inv := e.invite("Alice", 2, time.Time{})
	wantErr(t, "CreateAccount bob with alice's invite", e.register("bob", inv.Hash), store.ErrInviteInvalid)
	e.noAccount("after another handle's invite", "bob")
	e.wantUses("after it was refused", inv.Hash, 2)
	noErr(t, "CreateAccount ALICE with alice's invite", e.register("ALICE", inv.Hash))
	_, err := e.s.Account(e.ctx, "alice")
	noErr(t, "Account alice", err)
	e.wantUses("after alice used it", inv.Hash, 1)
}

func (s *suite) testInviteExpired(t *testing.T) {
	e := s.env(t)
	inv := e.invite("", 3, e.now.Add(-time.Minute))
	wantErr(t, "CreateAccount with an expired invite", e.register("alice", inv.Hash), store.ErrInviteInvalid)
	e.noAccount("after an expired invite", "alice")
	e.wantUses("after it was refused", inv.Hash, 3) // listed until Expire deletes it
}

func (s *suite) testInviteHandleTaken(t *testing.T) {
	e := s.env(t)
	e.account("alice", 1)
	inv := e.invite("", 1, time.Time{})
	for _, h := range []string{"alice", "ALICE"} {
		wantErr(t, "CreateAccount of a taken handle with an invite", e.register(h, inv.Hash), store.ErrHandleTaken)
		e.wantUses("after a taken handle", inv.Hash, 1)
	}
	// Any other failure keeps the use too.
	a := store.Account{Handle: "bob", IdentityKey: random(32), Created: e.now, Invite: inv.Hash}
	twice := store.DeviceList{Signed: random(10), Version: 1, Devices: []store.Device{device(4, e.now), device(4, e.now)}}
	wantErr(t, "CreateAccount with an id twice and an invite", e.s.CreateAccount(e.ctx, a, twice, prekeys(1, 1)), store.ErrDeviceExists)
	wantErr(t, "CreateAccount of an invalid handle with an invite", e.register("b@b", inv.Hash), store.ErrInvalidHandle)
	e.wantUses("after refused creations", inv.Hash, 1)
	e.noAccount("after refused creations", "bob")
	noErr(t, "CreateAccount bob with the invite", e.register("bob", inv.Hash))
}

func (s *suite) testInviteDelete(t *testing.T) {
	e := s.env(t)
	inv := e.invite("", 2, time.Time{})
	keep := e.invite("", 1, time.Time{})
	noErr(t, "DeleteInvite", e.s.DeleteInvite(e.ctx, inv.Hash))
	if _, ok := e.inviteUses(inv.Hash); ok {
		t.Fatal("a deleted invite is still listed")
	}
	wantErr(t, "DeleteInvite again", e.s.DeleteInvite(e.ctx, inv.Hash), store.ErrNotFound)
	wantErr(t, "DeleteInvite of an unknown hash", e.s.DeleteInvite(e.ctx, random(32)), store.ErrNotFound)
	wantErr(t, "CreateAccount with a deleted invite", e.register("alice", inv.Hash), store.ErrInviteInvalid)
	e.wantUses("the other invite", keep.Hash, 1)
}

func (s *suite) testExpireInvites(t *testing.T) {
	e := s.env(t)
	never := e.invite("", 1, time.Time{})
	soon := e.invite("", 1, e.now.Add(time.Hour))
	later := e.invite("", 1, e.now.Add(3*time.Hour))
	listed := func() (n int) {
		for _, inv := range []store.Invite{never, soon, later} {
			if _, ok := e.inviteUses(inv.Hash); ok {
				n++
			}
		}
		return n
	}
	noErr(t, "Expire", e.s.Expire(e.ctx, e.now))
	if n := listed(); n != 3 {
		t.Fatalf("after an early Expire %d invites are listed, want 3", n)
	}
	// Expire exactly at the first one's time: expires <= now goes.
	noErr(t, "Expire", e.s.Expire(e.ctx, e.now.Add(time.Hour)))
	if _, ok := e.inviteUses(soon.Hash); ok {
		t.Fatal("an invite with expires == now survived Expire")
	}
	e.wantUses("a later invite after Expire", later.Hash, 1)
	e.wantUses("an invite without expiry after Expire", never.Hash, 1)
	noErr(t, "Expire", e.s.Expire(e.ctx, e.now.Add(100*365*24*time.Hour)))
	if _, ok := e.inviteUses(later.Hash); ok {
		t.Fatal("an expired invite survived Expire")
	}
	e.wantUses("an invite without expiry after a far Expire", never.Hash, 1)
}
