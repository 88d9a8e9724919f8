package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/client/clientdb"
	"github.com/parleychat/parley/internal/devicelist"
	"github.com/parleychat/parley/internal/identity"
	"github.com/parleychat/parley/internal/pinbackup"
	"github.com/parleychat/parley/internal/realm/realmclient"
)

// PIN backup (docs/PROTOCOL-pin.md §10): the account identity key, the
// contact list and settings, sealed under a random backup key that the
// realms give back only to the holder of the PIN, and kept at parleyd. A
// new device restores the account with handle + PIN and adds itself to the
// device list with the recovered account key.

// PIN errors. pinbackup's errors (ErrWrongPIN with the guesses left,
// ErrDestroyed, ErrTooFewRealms, ErrNotFound, ErrMisbehaving, ErrPIN,
// ErrBlob) pass through wrapped; test them with errors.Is.
var (
	ErrNoRealms      = errors.New("client: this server has no PIN-backup realms configured")
	ErrRealmsChanged = errors.New("client: the server names other PIN-backup realms than the ones pinned on this device")
	ErrNoBackup      = errors.New("client: this account has no PIN backup")
	ErrBackupAccount = errors.New("client: the recovered backup is not this account's (its key does not match the account on the server)")
)

// Events of PIN backup, from the server's notices.
const (
	EventRecoveryAttempt = "recovery_attempt" // someone began recovering this account by PIN (Detail: when)
	EventDeviceRecovered = "device_recovered" // a device that recovered the account by PIN added itself (Device)
)

// PIN backup states (PINStatus.State).
const (
	PINSet       = "set"       // t or more realms hold one registration
	PINNone      = "none"      // no realm holds a backup
	PINDestroyed = "destroyed" // too many wrong PINs: the realms deleted it
	PINUnknown   = "unknown"   // too few realms answered to tell
)

// Settings of PIN backup in the client database.
const (
	settingPINRealms      = "pin_realms"       // the pinned realm set, JSON
	settingPINBackupKey   = "pin_backup_key"   // base64 backup key, "" when none
	settingPINStale       = "pin_backup_stale" // "1": the sealed blob at the server is older than the contacts here
	settingPINLastAttempt = "pin_last_attempt" // Unix ms of the last recovery notice
)

// PINOptions modify the PIN operations.
type PINOptions struct {
	// AcceptRealms accepts a realm set that differs from the pinned one
	// (and pins it). Without it such a set is ErrRealmsChanged.
	AcceptRealms bool
	// ExpectKeys, if set, are the realms' public keys, in order, as their
	// operators publish them: the server's realm set must have exactly
	// these, whatever is pinned. A restore into a fresh home has nothing
	// pinned; this is how it avoids trusting the server's word.
	ExpectKeys [][]byte
	// Params are the Argon2id parameters for a new registration; zero
	// means pinbackup.DefaultParams.
	Params pinbackup.Params
}

// RealmsChangedError says how the offered realm set differs from the
// pinned one. errors.Is(err, ErrRealmsChanged) holds.
type RealmsChangedError struct {
	Pinned, Offered RealmSet
	// Expected: Pinned holds the keys of PINOptions.ExpectKeys (no URLs),
	// not the set pinned on this device.
	Expected bool
}

func (e *RealmsChangedError) Error() string {
	return fmt.Sprintf("%v: pinned %s, offered %s", ErrRealmsChanged, e.Pinned, e.Offered)
}

func (e *RealmsChangedError) Is(target error) bool { return target == ErrRealmsChanged }

// RealmSet is a deployment's PIN-backup realms as a client pins them.
type RealmSet struct {
	Realms    []Realm `json:"realms"`
	Threshold int     `json:"threshold"`
}

// Realm is one realm: URL and Ed25519 public key.
type Realm struct {
	URL       string `json:"url"`
	PublicKey []byte `json:"public_key"`
}

func (s RealmSet) String() string {
	var parts []string
	for _, r := range s.Realms {
		id := pinbackup.RealmIDFromKey(r.PublicKey)
		parts = append(parts, fmt.Sprintf("%s (%x)", r.URL, id[:4]))
	}
	return fmt.Sprintf("%d of [%s]", s.Threshold, strings.Join(parts, ", "))
}

func (s RealmSet) equal(o RealmSet) bool {
	return s.Threshold == o.Threshold && slices.EqualFunc(s.Realms, o.Realms, func(a, b Realm) bool {
		return a.URL == b.URL && bytes.Equal(a.PublicKey, b.PublicKey)
	})
}

func (s RealmSet) clientSet() realmclient.Set {
	out := realmclient.Set{Threshold: s.Threshold}
	for _, r := range s.Realms {
		out.Realms = append(out.Realms, realmclient.Realm{URL: r.URL, PublicKey: ed25519.PublicKey(r.PublicKey)})
	}
	return out
}

// PINStatus is the state of the account's PIN backup.
type PINStatus struct {
	State          string // PIN*
	Realms         int    // realms in the set
	Threshold      int    // realms needed
	Answered       int    // realms that answered
	Holding        int    // realms that hold the registration t of them agree on
	AllowedGuesses int    // wrong PINs allowed in all
	GuessesLeft    int    // wrong PINs left before the backup is destroyed
	HasKey         bool   // this device holds the backup key: it can change the PIN and refresh the backup
	BlobStored     bool   // the sealed backup is stored at the server
	BlobUpdated    time.Time
	BlobStale      bool      // contacts changed here since the sealed backup was last stored
	LastAttempt    time.Time // the last recovery attempt the server announced to this device
	RealmSet       RealmSet
}

// FetchRealms returns the realm set the server names, and the one pinned
// on this device (empty if none).
func (c *Client) FetchRealms(ctx context.Context) (offered, pinned RealmSet, err error) {
	offered, err = c.serverRealms(ctx)
	if err != nil {
		return offered, pinned, err
	}
	pinned, err = c.pinnedRealms(ctx)
	return offered, pinned, err
}

// serverRealms fetches and checks GET /v1/realms.
func (c *Client) serverRealms(ctx context.Context) (RealmSet, error) {
	var rs api.RealmSet
	if err := c.call(ctx, http.MethodGet, api.PathRealms, nil, &rs, false); err != nil {
		return RealmSet{}, err
	}
	if len(rs.Realms) == 0 {
		return RealmSet{}, ErrNoRealms
	}
	out := RealmSet{Threshold: rs.Threshold}
	for _, r := range rs.Realms {
		if len(r.PublicKey) != ed25519.PublicKeySize || r.URL == "" {
			return RealmSet{}, fmt.Errorf("client: the server names a realm without a URL or a 32-byte key")
		}
		if id := pinbackup.RealmIDFromKey(r.PublicKey); !bytes.Equal(id[:], r.ID) {
			return RealmSet{}, fmt.Errorf("client: the server names realm %s with an id that does not match its key", r.URL)
		}
		out.Realms = append(out.Realms, Realm{URL: strings.TrimRight(r.URL, "/"), PublicKey: r.PublicKey})
	}
	if err := out.clientSet().Setup().Validate(); err != nil {
		return RealmSet{}, fmt.Errorf("client: the server's realm set: %w", err)
	}
	return out, nil
}

func (c *Client) pinnedRealms(ctx context.Context) (RealmSet, error) {
	var v string
	if err := c.db.View(ctx, func(tx *clientdb.Tx) error {
		var err error
		v, err = tx.Setting(settingPINRealms, "")
		return err
	}); err != nil {
		return RealmSet{}, fmt.Errorf("client: %w", err)
	}
	var rs RealmSet
	if v == "" {
		return rs, nil
	}
	if err := json.Unmarshal([]byte(v), &rs); err != nil {
		return RealmSet{}, fmt.Errorf("client: the pinned realm set is damaged: %w", err)
	}
	return rs, nil
}

// realmSet returns the realm set to use: the server's, which must equal
// the pinned one; on first use (nothing pinned) or with AcceptRealms it is
// pinned.
func (c *Client) realmSet(ctx context.Context, o PINOptions) (RealmSet, error) {
	offered, pinned, err := c.FetchRealms(ctx)
	if err != nil {
		return RealmSet{}, err
	}
	if len(o.ExpectKeys) > 0 && !slices.EqualFunc(o.ExpectKeys, offered.Realms, func(k []byte, r Realm) bool { return bytes.Equal(k, r.PublicKey) }) {
		want := RealmSet{Threshold: offered.Threshold}
		for _, k := range o.ExpectKeys {
			want.Realms = append(want.Realms, Realm{PublicKey: k})
		}
		return RealmSet{}, &RealmsChangedError{Pinned: want, Offered: offered, Expected: true}
	}
	if len(pinned.Realms) > 0 && pinned.equal(offered) {
		return pinned, nil
	}
	if len(pinned.Realms) > 0 && !o.AcceptRealms && len(o.ExpectKeys) == 0 {
		return RealmSet{}, &RealmsChangedError{Pinned: pinned, Offered: offered}
	}
	b, err := json.Marshal(offered)
	if err != nil {
		return RealmSet{}, fmt.Errorf("client: %w", err)
	}
	if err := c.db.Update(ctx, func(tx *clientdb.Tx) error { return tx.PutSetting(settingPINRealms, string(b)) }); err != nil {
		return RealmSet{}, fmt.Errorf("client: %w", err)
	}
	if len(pinned.Realms) > 0 {
		c.log.Warn("pinned a changed realm set", "old", pinned.String(), "new", offered.String())
	}
	return offered, nil
}

// tokenCache hands out the tokens of one RealmTokens answer, fetching a
// new answer with fetch when they are about to expire.
type tokenCache struct {
	mu    sync.Mutex
	fetch func(ctx context.Context) (*api.RealmTokens, error)
	toks  *api.RealmTokens
}

func (tc *tokenCache) current(ctx context.Context) (*api.RealmTokens, error) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.toks == nil || time.Until(time.UnixMilli(tc.toks.ExpiresAt)) < 30*time.Second {
		t, err := tc.fetch(ctx)
		if err != nil {
			return nil, err
		}
		tc.toks = t
	}
	return tc.toks, nil
}

func (tc *tokenCache) source(ctx context.Context, _ string, id pinbackup.RealmID) (string, error) {
	toks, err := tc.current(ctx)
	if err != nil {
		return "", err
	}
	for _, t := range toks.Tokens {
		if bytes.Equal(t.RealmID, id[:]) {
			return t.Token, nil
		}
	}
	return "", fmt.Errorf("client: the server issued no token for realm %x", id[:])
}

// realmClient returns a client for the set with tokens for this device's
// account.
func (c *Client) realmClient(set RealmSet) (*realmclient.Client, error) {
	tc := &tokenCache{fetch: func(ctx context.Context) (*api.RealmTokens, error) {
		var t api.RealmTokens
		if err := c.call(ctx, http.MethodPost, api.PathRealmToken, nil, &t, true); err != nil {
			return nil, err
		}
		return &t, nil
	}}
	return realmclient.New(set.clientSet(), tc.source, nil)
}

// backupKey returns the backup key this device holds, nil if none.
func (c *Client) backupKey(ctx context.Context) ([]byte, error) {
	var v string
	if err := c.db.View(ctx, func(tx *clientdb.Tx) error {
		var err error
		v, err = tx.Setting(settingPINBackupKey, "")
		return err
	}); err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if v == "" {
		return nil, nil
	}
	k, err := base64.StdEncoding.DecodeString(v)
	if err != nil || len(k) != pinbackup.BackupKeySize {
		return nil, fmt.Errorf("client: the stored backup key is damaged")
	}
	return k, nil
}

// SetPIN creates the account's PIN backup, or replaces it with a new one
// under a new backup key: it registers the PIN at every realm (all must be
// reachable) and stores the sealed account at the server.
func (c *Client) SetPIN(ctx context.Context, pin []byte, o PINOptions) error {
	return c.setPIN(ctx, pin, o, pinbackup.NewBackupKey())
}

// ChangePIN changes the PIN of the account's backup. The backup must
// exist; a device that holds the backup key keeps it (the sealed account
// stays valid), another one makes a new backup.
func (c *Client) ChangePIN(ctx context.Context, pin []byte, o PINOptions) error {
	st, err := c.PINStatus(ctx, o)
	if err != nil {
		return err
	}
	switch st.State {
	case PINSet:
	case PINDestroyed:
		return pinbackup.ErrDestroyed
	case PINUnknown:
		return fmt.Errorf("%w: %d of %d realms answered; %d are needed", pinbackup.ErrTooFewRealms, st.Answered, st.Realms, st.Threshold)
	default:
		return ErrNoBackup
	}
	key, err := c.backupKey(ctx)
	if err != nil {
		return err
	}
	if key == nil {
		key = pinbackup.NewBackupKey()
	}
	return c.setPIN(ctx, pin, o, key)
}

func (c *Client) setPIN(ctx context.Context, pin []byte, o PINOptions, key []byte) error {
	me, err := c.self()
	if err != nil {
		return err
	}
	if err := pinbackup.ValidPIN(pin); err != nil {
		return err
	}
	set, err := c.realmSet(ctx, o)
	if err != nil {
		return err
	}
	rc, err := c.realmClient(set)
	if err != nil {
		return err
	}
	params := o.Params
	if params == (pinbackup.Params{}) {
		params = pinbackup.DefaultParams
	}
	// The key is kept before the realms learn it, so that a failure half
	// way leaves a device that can finish with the same key.
	if err := c.db.Update(ctx, func(tx *clientdb.Tx) error {
		return tx.PutSetting(settingPINBackupKey, base64.StdEncoding.EncodeToString(key))
	}); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if err := rc.Register(ctx, me.handle, pin, key, params, 0); err != nil {
		return err
	}
	if err := c.storeBackup(ctx, me, key); err != nil {
		return err
	}
	c.log.Info("PIN backup set", "realms", len(set.Realms), "threshold", set.Threshold)
	return nil
}

// storeBackup seals the account under key and stores it at the server.
func (c *Client) storeBackup(ctx context.Context, me self, key []byte) error {
	p := &backupPayload{Handle: me.handle, AccountSeed: me.accountKey.Seed(), ReadReceipts: c.ReadReceipts()}
	if err := c.db.View(ctx, func(tx *clientdb.Tx) error {
		var err error
		p.Contacts, err = contactList(tx)
		return err
	}); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	pt, err := p.marshal()
	if err != nil {
		return err
	}
	blob, err := pinbackup.SealBlob(key, me.handle, pt)
	if err != nil {
		return err
	}
	if err := c.call(ctx, http.MethodPut, api.PathBackup, api.PutBackupRequest{Blob: blob}, nil, true); err != nil {
		return err
	}
	return c.db.Update(ctx, func(tx *clientdb.Tx) error { return tx.PutSetting(settingPINStale, "") })
}

// RefreshBackup seals the current contacts and settings again and stores
// them at the server, if this device holds the backup key.
func (c *Client) RefreshBackup(ctx context.Context) error {
	me, err := c.self()
	if err != nil {
		return err
	}
	key, err := c.backupKey(ctx)
	if err != nil || key == nil {
		return err
	}
	return c.storeBackup(ctx, me, key)
}

// refreshBackupQuietly is RefreshBackup after a contact change, bounded
// in time; a failure marks the backup stale for PINStatus and the next
// PIN command.
func (c *Client) refreshBackupQuietly(ctx context.Context) {
	if key, err := c.backupKey(ctx); err != nil || key == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := c.RefreshBackup(ctx); err != nil {
		c.log.Info("the PIN backup will be refreshed later", "err", err)
		_ = c.db.Update(context.WithoutCancel(ctx), func(tx *clientdb.Tx) error { return tx.PutSetting(settingPINStale, "1") })
	}
}

// RemovePIN deletes the account's PIN backup at every realm and at the
// server, and forgets the backup key here.
func (c *Client) RemovePIN(ctx context.Context, o PINOptions) error {
	me, err := c.self()
	if err != nil {
		return err
	}
	set, err := c.realmSet(ctx, o)
	if err != nil {
		return err
	}
	rc, err := c.realmClient(set)
	if err != nil {
		return err
	}
	// Both go, even if a realm fails: without the blob, shares left at a
	// realm protect nothing.
	rerr := rc.Delete(ctx, me.handle)
	berr := c.call(ctx, http.MethodDelete, api.PathBackup, nil, nil, true)
	if err := errors.Join(rerr, berr); err != nil {
		return err
	}
	return c.db.Update(ctx, func(tx *clientdb.Tx) error {
		if err := tx.PutSetting(settingPINBackupKey, ""); err != nil {
			return err
		}
		return tx.PutSetting(settingPINStale, "")
	})
}

// PINStatus asks the realms (no guess is used) and the server about the
// account's PIN backup.
func (c *Client) PINStatus(ctx context.Context, o PINOptions) (PINStatus, error) {
	me, err := c.self()
	if err != nil {
		return PINStatus{}, err
	}
	set, err := c.realmSet(ctx, o)
	if err != nil {
		return PINStatus{}, err
	}
	rc, err := c.realmClient(set)
	if err != nil {
		return PINStatus{}, err
	}
	st := PINStatus{Realms: len(set.Realms), Threshold: set.Threshold, RealmSet: set}
	statuses := rc.Statuses(ctx, me.handle)
	for _, s := range statuses {
		if s.Status != nil {
			st.Answered++
		}
	}
	plan, err := pinbackup.Choose(set.clientSet().Setup(), statuses)
	switch {
	case err == nil:
		st.State, st.Holding, st.GuessesLeft = PINSet, len(plan.Realms), plan.GuessesLeft
		for _, s := range statuses {
			if s.Status != nil && slices.Contains(plan.Realms, s.Realm) {
				st.AllowedGuesses = max(st.AllowedGuesses, s.Status.AllowedGuesses)
			}
		}
	case errors.Is(err, pinbackup.ErrDestroyed):
		st.State = PINDestroyed
	case errors.Is(err, pinbackup.ErrTooFewRealms):
		st.State = PINUnknown
	case errors.Is(err, pinbackup.ErrNotFound):
		st.State = PINNone
	default:
		return PINStatus{}, err
	}
	key, err := c.backupKey(ctx)
	if err != nil {
		return PINStatus{}, err
	}
	st.HasKey = key != nil
	var b api.Backup
	err = c.call(ctx, http.MethodGet, path(api.PathBackupOf, me.handle), nil, &b, true)
	var ae *APIError
	switch {
	case err == nil:
		st.BlobStored, st.BlobUpdated = true, time.UnixMilli(b.Updated)
	case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
	default:
		return PINStatus{}, err
	}
	err = c.db.View(ctx, func(tx *clientdb.Tx) error {
		stale, err := tx.Setting(settingPINStale, "")
		if err != nil {
			return err
		}
		st.BlobStale = stale == "1"
		last, err := tx.Setting(settingPINLastAttempt, "")
		if ms, perr := strconv.ParseInt(last, 10, 64); perr == nil && ms > 0 {
			st.LastAttempt = time.UnixMilli(ms)
		}
		return err
	})
	if err != nil {
		return PINStatus{}, fmt.Errorf("client: %w", err)
	}
	return st, nil
}

// Restore makes this fresh device a device of handle's account from its
// PIN backup: with the PIN and t of the realms it recovers the backup key,
// opens the sealed account the server keeps, checks that its key is the
// account's, adds this device to the device list (signed with the
// recovered account key) and stores the account, its contacts and
// settings. The identity key stays the same, so safety numbers do not
// change. A wrong PIN costs one of the backup's guesses.
func (c *Client) Restore(ctx context.Context, handle string, pin []byte, o PINOptions) error {
	if c.Registered() {
		return ErrAlreadyRegistered
	}
	h, err := normHandle(handle)
	if err != nil {
		return err
	}
	server, err := c.baseURL()
	if err != nil {
		return err
	}
	if err := pinbackup.ValidPIN(pin); err != nil {
		return err
	}
	set, err := c.realmSet(ctx, o)
	if err != nil {
		return err
	}

	// Recovery tokens: the server announces this attempt to the account.
	var toks api.RealmTokens
	err = c.call(ctx, http.MethodPost, api.PathRealmTokenRecover, api.RecoverTokensRequest{Handle: h}, &toks, false)
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		return fmt.Errorf("%w: @%s", ErrUnknownHandle, h)
	}
	if err != nil {
		return err
	}
	tc := &tokenCache{toks: &toks, fetch: func(ctx context.Context) (*api.RealmTokens, error) {
		var t api.RealmTokens
		if err := c.call(ctx, http.MethodPost, api.PathRealmTokenRecover, api.RecoverTokensRequest{Handle: h}, &t, false); err != nil {
			return nil, err
		}
		return &t, nil
	}}
	rc, err := realmclient.New(set.clientSet(), tc.source, nil)
	if err != nil {
		return err
	}
	key, err := rc.Recover(ctx, h, pin)
	if err != nil {
		return err
	}

	// The sealed account, readable with the backup token.
	cur, err := tc.current(ctx)
	if err != nil {
		return err
	}
	var b api.Backup
	if err := c.callBearer(ctx, http.MethodGet, path(api.PathBackupOf, h), cur.BackupToken, nil, &b); err != nil {
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			return fmt.Errorf("%w: the realms hold a backup of @%s, but the server has no sealed account for it", ErrNoBackup, h)
		}
		return err
	}
	pt, err := pinbackup.OpenBlob(key, h, b.Blob)
	if err != nil {
		return err
	}
	p, err := parseBackupPayload(pt)
	if err != nil {
		return err
	}
	if p.Handle != h {
		return fmt.Errorf("%w: it is @%s's", ErrBackupAccount, p.Handle)
	}
	ak, err := identity.AccountKeyFromSeed(p.AccountSeed)
	if err != nil {
		return fmt.Errorf("%w: %w", errBackupPayload, err)
	}

	// Read the account with the account key, then add this device.
	var ch api.ChallengeResponse
	if err := c.call(ctx, http.MethodPost, api.PathRecoverChallenge, api.RecoverChallengeRequest{Handle: h}, &ch, false); err != nil {
		return err
	}
	var acct api.Account
	req := api.RecoverDeviceRequest{Handle: h, Challenge: ch.Challenge, Signature: ak.Sign(identity.RecoveryMessage(h, ch.Challenge, nil))}
	if err := c.call(ctx, http.MethodPost, api.PathRecoverDevice, req, &acct, false); err != nil {
		if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
			return fmt.Errorf("%w (%w)", ErrBackupAccount, err)
		}
		return err
	}
	if !bytes.Equal(acct.IdentityKey, ak.Public()) {
		return ErrBackupAccount
	}
	list, err := devicelist.Verify(acct.DeviceList, ak.Public())
	if err != nil || list.Handle != h {
		return fmt.Errorf("%w: @%s's device list does not verify with the recovered key", ErrBadDeviceList, h)
	}
	if len(list.Devices) >= devicelist.MaxDevices {
		return ErrTooManyDevices
	}
	dk, err := identity.NewDeviceKey()
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	id := randomDeviceID()
	for _, ok := list.Device(id); ok; _, ok = list.Device(id) {
		id = randomDeviceID()
	}
	next := devicelist.List{Handle: h, Version: list.Version + 1, Devices: append(slices.Clone(list.Devices), c.ownEntry(dk, id))}
	signed, err := next.Sign(ak)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	prekeys, nextPrekey, err := initialPrekeys(dk, 1)
	if err != nil {
		return err
	}
	req = api.RecoverDeviceRequest{Handle: h, Challenge: ch.Challenge, DeviceList: signed, Signature: ak.Sign(identity.RecoveryMessage(h, ch.Challenge, signed))}
	if err := c.call(ctx, http.MethodPost, api.PathRecoverDevice, req, nil, false); err != nil {
		return err
	}

	dkb, err := dk.MarshalBinary()
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	a := &clientdb.Account{Handle: h, AccountSeed: ak.Seed(), DeviceID: id, DeviceKey: dkb, Server: server, NextPrekeyID: nextPrekey, Created: time.Now()}
	err = c.installAccount(ctx, a, signed, prekeys, func(tx *clientdb.Tx) error {
		if err := importContacts(tx, h, p.Contacts); err != nil {
			return err
		}
		v := "off"
		if p.ReadReceipts {
			v = "on"
		}
		for k, v := range map[string]string{
			settingReadReceipts:   v,
			settingPrekeysPending: "1",
			settingPINBackupKey:   base64.StdEncoding.EncodeToString(key),
		} {
			if err := tx.PutSetting(k, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if _, err := c.refreshPeer(ctx, h); err != nil {
		return err
	}
	if err := c.uploadPendingPrekeys(ctx); err != nil {
		return fmt.Errorf("client: uploading prekeys (the next sync tries again): %w", err)
	}
	c.log.Info("restored the account from its PIN backup", "handle", h, "device", id)
	return nil
}

// callBearer is call without this device's credentials: it presents the
// given bearer token.
func (c *Client) callBearer(ctx context.Context, method, p, bearer string, in, out any) error {
	base, err := c.baseURL()
	if err != nil {
		return err
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("client: encoding request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, base+p, body)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	req.Header.Set(api.HeaderAuthorization, "Bearer "+bearer)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, p, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return readAPIError(resp)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(out); err != nil {
		return fmt.Errorf("client: %s %s: decoding answer: %w", method, p, err)
	}
	return nil
}

// onNotice handles a server notice from the delivery stream: it records a
// recovery attempt, reports the event, and acknowledges the notice.
func (c *Client) onNotice(ctx context.Context, conn *websocket.Conn, n *api.Notice, fn func(Event)) error {
	if n == nil {
		return nil
	}
	at := time.UnixMilli(n.Time)
	switch n.Kind {
	case api.NoticeRecoveryAttempt:
		if err := c.db.Update(ctx, func(tx *clientdb.Tx) error {
			return tx.PutSetting(settingPINLastAttempt, strconv.FormatInt(n.Time, 10))
		}); err != nil {
			return fmt.Errorf("client: %w", err)
		}
		fn(Event{Type: EventRecoveryAttempt, Detail: at.UTC().Format(time.RFC3339)})
	case api.NoticeDeviceRecovered:
		fn(Event{Type: EventDeviceRecovered, Device: n.Device, Detail: at.UTC().Format(time.RFC3339)})
	}
	if err := writeFrame(ctx, conn, api.Frame{Type: api.FrameAck, Seqs: []int64{n.Seq}}); err != nil {
		return fmt.Errorf("client: acknowledging: %w", err)
	}
	return nil
}
