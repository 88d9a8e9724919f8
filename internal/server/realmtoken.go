package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/backupstore"
	"github.com/parleychat/parley/internal/backupstore/pgbackups"
	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/devicelist"
	"github.com/parleychat/parley/internal/identity"
	"github.com/parleychat/parley/internal/pinbackup"
	"github.com/parleychat/parley/internal/ratelimit"
	"github.com/parleychat/parley/internal/realm"
	"github.com/parleychat/parley/internal/store"
)

// PIN backup, parleyd's part (docs/PROTOCOL-pin.md §10): name the realms,
// issue the access tokens they require, keep each account's sealed backup
// blob, let a device that recovered the account key add itself, and tell
// the account's devices about every recovery.

// RealmTokenKeyFile is the name of the generated realm token key inside
// Config.DataDir (used when Config.RealmTokenKeyFile is empty).
const RealmTokenKeyFile = "realm-token.key"

// BackupDir is the folder of the backup blobs inside Config.DataDir (used
// when Config.BackupDir is empty and the store is SQLite).
const BackupDir = "backups"

// BackupImportMarker is the file newPINState leaves in <data_dir>/backups
// once it has copied that folder's blobs into PostgreSQL, so that it
// copies them once: a later start does not bring back a backup deleted
// since.
const BackupImportMarker = "imported-to-postgresql.txt"

// MaxBackupBytes bounds one account's sealed backup blob.
const MaxBackupBytes = 1 << 20

// noticeDevice is the sender device of a server notice in a device's
// queue: device ids in signed lists are never 0, so no client can send one.
const noticeDevice = 0

// Recovery challenges: u64 expires_ms || random (16) || MAC (32).
const (
	recoverChallengeSize = 8 + 16 + 32
	recoverChallengeInfo = "parley-recover-challenge-v1"
)

// pinState is the server's PIN-backup state; the zero value is "not
// configured".
type pinState struct {
	enabled   bool
	realms    []config.Realm
	ids       []pinbackup.RealmID
	threshold int
	key       ed25519.PrivateKey // signs realm tokens
	macKey    []byte             // authenticates recovery challenges
	audience  pinbackup.RealmID  // the "realm id" of backup tokens: parleyd itself
	backups   backupstore.Backups
	handleRL  *ratelimit.Limiter // recovery tokens per handle
	addrRL    *ratelimit.Limiter // recovery tokens per client address
}

// newPINState loads what PIN backup needs when cfg configures realms. The
// blobs live in st's database when st is PostgreSQL and cfg names no
// backup_dir (the cluster's nodes then share them with no shared folder),
// else in files in backup_dir (default <data_dir>/backups).
func newPINState(cfg config.Config, st store.Store, log *slog.Logger) (pinState, error) {
	realms, err := cfg.RealmList()
	if err != nil || len(realms) == 0 {
		return pinState{}, err // Validate has checked the list
	}
	key, err := LoadRealmTokenKey(cfg)
	if err != nil {
		return pinState{}, err
	}
	backups, where, err := openBackups(cfg, st, log)
	if err != nil {
		return pinState{}, err
	}
	macKey, err := hkdf.Key(sha256.New, key.Seed(), nil, recoverChallengeInfo, 32)
	if err != nil {
		return pinState{}, fmt.Errorf("server: %w", err)
	}
	pub := key.Public().(ed25519.PublicKey)
	aud := sha256.Sum256(append([]byte("parley-backup-token-audience-v1"), pub...))
	p := pinState{
		enabled:   true,
		realms:    realms,
		threshold: cfg.RealmThreshold,
		key:       key,
		macKey:    macKey,
		audience:  pinbackup.RealmID(aud[:pinbackup.RealmIDSize]),
		backups:   backups,
		handleRL:  ratelimit.New(cfg.RecoverRate/60, cfg.RecoverBurst, 0),
		addrRL:    ratelimit.New(cfg.RecoverAddrRate/60, cfg.RecoverAddrBurst, 0),
	}
	for _, r := range realms {
		p.ids = append(p.ids, pinbackup.RealmIDFromKey(r.PublicKey))
	}
	log.Info("PIN backup", "realms", len(realms), "threshold", cfg.RealmThreshold,
		"realm_token_key", base64.StdEncoding.EncodeToString(pub), "backups", where)
	return p, nil
}

// openBackups opens the store of the sealed blobs (see newPINState) and
// says where it is, for the log.
func openBackups(cfg config.Config, st store.Store, log *slog.Logger) (backupstore.Backups, string, error) {
	pool, isPG := pgPool(st)
	if !isPG || cfg.BackupDir != "" {
		dir := cfg.BackupDir
		if dir == "" {
			dir = filepath.Join(cfg.DataDir, BackupDir)
		}
		files, err := backupstore.Open(dir)
		if err != nil {
			return nil, "", fmt.Errorf("server: %w", err)
		}
		return files, dir, nil
	}
	pg := pgbackups.New(pool)
	if err := importBackupFiles(pg, filepath.Join(cfg.DataDir, BackupDir), log); err != nil {
		return nil, "", err
	}
	return pg, "postgresql", nil
}

// importBackupFiles copies once the blobs a node kept in files before it
// kept them in PostgreSQL (a single node moved from SQLite, or upgraded
// from a version that had no pin_backups table) into the table, each
// unless the table already has one for that account, and leaves a marker
// in the folder. The files stay.
func importBackupFiles(pg *pgbackups.Store, dir string, log *slog.Logger) error {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	marker := filepath.Join(dir, BackupImportMarker)
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	files, err := backupstore.Open(dir)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	imported, skipped, err := pg.Import(ctx, files)
	if err != nil {
		return fmt.Errorf("server: copying the PIN-backup files of %s into PostgreSQL: %w", dir, err)
	}
	note := fmt.Sprintf("parleyd copied the *.backup files of this folder into PostgreSQL (table pin_backups) at %s:\n"+
		"%d copied, %d skipped (the table had a backup for that account already).\n"+
		"parleyd no longer reads them while db is postgres:// and backup_dir is unset.\n"+
		"Delete this file to have the next start copy them again (only those the table lacks).\n",
		time.Now().UTC().Format(time.RFC3339), imported, skipped)
	if err := os.WriteFile(marker, []byte(note), 0o600); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	log.Info("PIN backups copied from files into PostgreSQL", "dir", dir, "imported", imported, "skipped", skipped)
	return nil
}

// LoadRealmTokenKey reads parleyd's realm token key from
// Config.RealmTokenKeyFile, or <data_dir>/realm-token.key, creating the
// file (the base64 of a random 32-byte Ed25519 seed, mode 0600) if it does
// not exist. Every realm is configured with its public half; every node
// of a deployment uses the same file.
func LoadRealmTokenKey(cfg config.Config) (ed25519.PrivateKey, error) {
	file := cfg.RealmTokenKeyFile
	if file == "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("server: creating data folder: %w", err)
		}
		file = filepath.Join(cfg.DataDir, RealmTokenKeyFile)
	}
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		if err := writeNewTokenKey(file); err != nil {
			return nil, err
		}
		b, err = os.ReadFile(file) // another process may have won the race
	}
	if err != nil {
		return nil, fmt.Errorf("server: reading the realm token key: %w", err)
	}
	seed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("server: %s is not the base64 of a 32-byte Ed25519 seed", file)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// writeNewTokenKey creates file with a fresh key seed, unless it exists.
func writeNewTokenKey(file string) error {
	seed := make([]byte, ed25519.SeedSize)
	rand.Read(seed)
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err == nil {
		_, err = f.WriteString(base64.StdEncoding.EncodeToString(seed) + "\n")
		if serr := f.Sync(); err == nil {
			err = serr
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("server: writing the realm token key: %w", err)
	}
	return nil
}

func (s *Server) pinEndpoints() []endpoint {
	return []endpoint{
		{Route{"GET", api.PathRealms, false}, s.handleRealms},
		{Route{"POST", api.PathRealmToken, true}, s.requirePIN(s.handleRealmToken)},
		{Route{"POST", api.PathRealmTokenRecover, false}, s.requirePIN(s.handleRecoverTokens)},
		{Route{"PUT", api.PathBackup, true}, s.requirePIN(s.handlePutBackup)},
		{Route{"DELETE", api.PathBackup, true}, s.requirePIN(s.handleDeleteBackup)},
		{Route{"GET", api.PathBackupOf, false}, s.requirePIN(s.handleGetBackup)}, // authenticates itself: device or backup token
		{Route{"POST", api.PathRecoverChallenge, false}, s.requirePIN(s.handleRecoverChallenge)},
		{Route{"POST", api.PathRecoverDevice, false}, s.requirePIN(s.handleRecoverDevice)},
	}
}

var errNoPIN = errorf(api.CodeNotFound, "This server has no PIN backup realms configured.")

// requirePIN answers not_found for the PIN-backup endpoints of a server
// that names no realms (inside the auth check, as every handler's own).
func (s *Server) requirePIN(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.pin.enabled {
			s.fail(w, r, errNoPIN)
			return
		}
		h(w, r)
	}
}

// handleRealms: GET /v1/realms.
func (s *Server) handleRealms(w http.ResponseWriter, r *http.Request) {
	set := api.RealmSet{Realms: []api.RealmInfo{}}
	if s.pin.enabled {
		set.Threshold = s.pin.threshold
		set.TokenKey = s.pin.key.Public().(ed25519.PublicKey)
		for i, rl := range s.pin.realms {
			set.Realms = append(set.Realms, api.RealmInfo{URL: rl.URL, PublicKey: rl.PublicKey, ID: s.pin.ids[i][:]})
		}
	}
	writeJSON(w, set)
}

// tokens signs one token per realm for handle.
func (s *Server) realmTokens(handle string, scope realm.Scope) (api.RealmTokens, error) {
	exp := time.Now().Add(s.cfg.RealmTokenTTL)
	out := api.RealmTokens{Tokens: make([]api.RealmToken, 0, len(s.pin.ids)), ExpiresAt: exp.UnixMilli()}
	for _, id := range s.pin.ids {
		tok, err := realm.SignToken(s.pin.key, realm.Token{Handle: handle, Realm: id, Expires: exp, Scope: scope})
		if err != nil {
			return out, err
		}
		out.Tokens = append(out.Tokens, api.RealmToken{RealmID: id[:], Token: tok})
	}
	return out, nil
}

// handleRealmToken: POST /v1/realm-token, for a device of the account.
func (s *Server) handleRealmToken(w http.ResponseWriter, r *http.Request) {
	toks, err := s.realmTokens(callerOf(r).handle, realm.ScopeAccount)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, toks)
}

// handleRecoverTokens: POST /v1/realm-token/recover. A new device has no
// credentials, so anyone who names a handle gets recovery tokens: they
// allow only status and recovery at the realms (never register or
// delete) and reading the sealed blob. Requests are throttled per client
// address and per handle, and each one is announced to the account's
// devices.
func (s *Server) handleRecoverTokens(w http.ResponseWriter, r *http.Request) {
	var req api.RecoverTokensRequest
	if err := s.decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	handle, err := normHandle(req.Handle)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !s.pin.addrRL.Allow(s.clientAddr(r)) {
		writeError(w, api.CodeRateLimited, "Too many recovery attempts from this address; try again later.")
		return
	}
	_, list, err := s.account(r.Context(), handle)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !s.pin.handleRL.Allow(handle) {
		writeError(w, api.CodeRateLimited, "Too many recovery attempts for this account; try again later.")
		return
	}
	toks, err := s.realmTokens(handle, realm.ScopeRecovery)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	toks.BackupToken, err = realm.SignToken(s.pin.key, realm.Token{Handle: handle, Realm: s.pin.audience,
		Expires: time.UnixMilli(toks.ExpiresAt), Scope: realm.ScopeRecovery})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("recovery tokens issued", "handle", handle)
	s.notify(r.Context(), handle, list.Devices, api.Notice{Kind: api.NoticeRecoveryAttempt})
	writeJSON(w, toks)
}

// handlePutBackup: PUT /v1/backup.
func (s *Server) handlePutBackup(w http.ResponseWriter, r *http.Request) {
	var req api.PutBackupRequest
	if err := s.decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	// Opaque, but shaped like pinbackup.SealBlob's output.
	if len(req.Blob) < pinbackup.BlobOverhead || len(req.Blob) > MaxBackupBytes || req.Blob[0] != 1 {
		writeError(w, api.CodeBadRequest, fmt.Sprintf("The backup blob must be a sealed blob of %d to %d bytes.", pinbackup.BlobOverhead, MaxBackupBytes))
		return
	}
	if err := s.pin.backups.Put(r.Context(), callerOf(r).handle, req.Blob); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, struct{}{})
}

// handleDeleteBackup: DELETE /v1/backup.
func (s *Server) handleDeleteBackup(w http.ResponseWriter, r *http.Request) {
	if err := s.pin.backups.Delete(r.Context(), callerOf(r).handle); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, struct{}{})
}

// handleGetBackup: GET /v1/backup/{handle}, for a device of the account or
// the bearer of a backup token for the handle (from a recovery).
func (s *Server) handleGetBackup(w http.ResponseWriter, r *http.Request) {
	handle, err := normHandle(r.PathValue("handle"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	allowed := false
	bearer, ok := strings.CutPrefix(r.Header.Get(api.HeaderAuthorization), "Bearer ")
	if ok {
		t, err := realm.VerifyToken(s.pin.key.Public().(ed25519.PublicKey), s.pin.audience, strings.TrimSpace(bearer), time.Now(), s.cfg.RealmTokenTTL+time.Minute)
		allowed = err == nil && t.Handle == handle
	}
	if !allowed {
		c, err := s.authenticate(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if c.handle != handle {
			writeError(w, api.CodeForbidden, "A device may read only its own account's backup.")
			return
		}
	}
	blob, updated, err := s.pin.backups.Get(r.Context(), handle)
	if errors.Is(err, backupstore.ErrNotFound) {
		writeError(w, api.CodeNotFound, fmt.Sprintf("No backup is stored for @%s.", handle))
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, api.Backup{Blob: blob, Updated: updated.UnixMilli()})
}

// recoverChallenge makes a challenge for handle: stateless, so that the
// answer may reach any node, and valid until it expires. Replaying an
// answer within that time repeats the same request, which a newer device
// list makes stale.
func (s *Server) recoverChallenge(handle string, expires time.Time) []byte {
	ch := binary.BigEndian.AppendUint64(nil, uint64(expires.UnixMilli()))
	ch = append(ch, make([]byte, 16)...)
	rand.Read(ch[8:])
	return append(ch, s.challengeMAC(handle, ch)...)
}

func (s *Server) challengeMAC(handle string, head []byte) []byte {
	m := hmac.New(sha256.New, s.pin.macKey)
	m.Write([]byte(recoverChallengeInfo))
	m.Write([]byte{byte(len(handle))})
	m.Write([]byte(handle))
	m.Write(head)
	return m.Sum(nil)
}

// checkRecoverChallenge reports whether ch is a live challenge for handle.
func (s *Server) checkRecoverChallenge(handle string, ch []byte, now time.Time) bool {
	if len(ch) != recoverChallengeSize {
		return false
	}
	exp := binary.BigEndian.Uint64(ch[:8])
	if exp > 1<<62 || !now.Before(time.UnixMilli(int64(exp))) {
		return false
	}
	return hmac.Equal(ch[24:], s.challengeMAC(handle, ch[:24]))
}

// handleRecoverChallenge: POST /v1/devices/recover/challenge.
func (s *Server) handleRecoverChallenge(w http.ResponseWriter, r *http.Request) {
	var req api.RecoverChallengeRequest
	if err := s.decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	handle, err := normHandle(req.Handle)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !s.challenges.allow(s.cfg, s.clientAddr(r)) {
		writeError(w, api.CodeRateLimited, "Too many sign-ins from this address; try again shortly.")
		return
	}
	if _, err := s.store.Account(r.Context(), handle); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			err = errorf(api.CodeNotFound, "There is no account @%s.", handle)
		}
		s.fail(w, r, err)
		return
	}
	exp := time.Now().Add(s.cfg.ChallengeTTL)
	writeJSON(w, api.ChallengeResponse{Challenge: s.recoverChallenge(handle, exp), ExpiresAt: exp.UnixMilli()})
}

// handleRecoverDevice: POST /v1/devices/recover. The request is signed by
// the account identity key: the caller recovered it from the PIN backup.
// Without a device list it reads the account; with one it installs it.
func (s *Server) handleRecoverDevice(w http.ResponseWriter, r *http.Request) {
	var req api.RecoverDeviceRequest
	if err := s.decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	handle, err := normHandle(req.Handle)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !s.checkRecoverChallenge(handle, req.Challenge, time.Now()) {
		writeError(w, api.CodeChallengeExpired, "The challenge is unknown, expired or was issued for another account; ask for a new one.")
		return
	}
	a, cur, err := s.account(r.Context(), handle)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	msg := identity.RecoveryMessage(handle, req.Challenge, req.DeviceList)
	if len(a.IdentityKey) != ed25519.PublicKeySize || msg == nil || !ed25519.Verify(a.IdentityKey, msg, req.Signature) {
		writeError(w, api.CodeUnauthorized, "The signature does not verify with the account's identity key.")
		return
	}
	if len(req.DeviceList) == 0 {
		writeJSON(w, api.Account{Handle: handle, IdentityKey: a.IdentityKey, DeviceList: cur.Signed})
		return
	}
	list, err := verifyList(req.DeviceList, a.IdentityKey, handle)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if list.Version <= cur.Version {
		s.fail(w, r, staleError(list.Version, cur.Version))
		return
	}
	curList, err := devicelist.Verify(cur.Signed, ed25519.PublicKey(a.IdentityKey))
	if err != nil {
		s.fail(w, r, err) // the stored list was verified before it was stored
		return
	}
	var added []uint32
	for _, d := range list.Devices {
		old, ok := curList.Device(d.ID)
		if !ok {
			added = append(added, d.ID)
			continue
		}
		if !sameKeys(old, d) {
			writeError(w, api.CodeBadRequest, "A device list update may not change the keys of an existing device.")
			return
		}
	}
	if err := s.replaceDeviceList(r.Context(), handle, req.DeviceList, list, cur.Devices); err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("device added by PIN recovery", "handle", handle, "devices", added)
	var told []store.Device
	for _, d := range cur.Devices {
		if _, ok := list.Device(d.ID); ok {
			told = append(told, d)
		}
	}
	for _, id := range added {
		s.notify(r.Context(), handle, told, api.Notice{Kind: api.NoticeDeviceRecovered, Device: id})
	}
	writeJSON(w, api.Account{Handle: handle, IdentityKey: a.IdentityKey, DeviceList: req.DeviceList})
}

// notify queues a server notice for each of devices: durably, in the
// devices' own queues, so an offline device learns it when it connects.
// A failure is logged; the request that caused it goes on.
func (s *Server) notify(ctx context.Context, handle string, devices []store.Device, n api.Notice) {
	if len(devices) == 0 {
		return
	}
	now := time.Now()
	n.Time = now.UnixMilli()
	body, err := json.Marshal(n)
	if err != nil {
		s.log.Warn("encoding a notice", "err", err)
		return
	}
	var id [16]byte
	rand.Read(id[:])
	envs := make([]store.Envelope, 0, len(devices))
	for _, d := range devices {
		envs = append(envs, store.Envelope{
			MessageID: hex.EncodeToString(id[:]), Sender: handle, SenderDevice: noticeDevice,
			Recipient: handle, RecipientDevice: d.ID, Ciphertext: body, ServerTime: now,
		})
	}
	ctx = context.WithoutCancel(ctx)
	if _, err := s.store.Enqueue(ctx, envs); err != nil {
		s.log.Warn("queueing a notice", "handle", handle, "kind", n.Kind, "err", err)
		return
	}
	for _, d := range devices {
		s.publish(ctx, mailKey(handle, d.ID))
	}
}

// deliveryFrame is the WebSocket frame for a queued envelope: a notice
// frame for a server notice, an envelope frame otherwise.
func deliveryFrame(e store.Envelope) api.Frame {
	if e.SenderDevice == noticeDevice {
		var n api.Notice
		dec := json.NewDecoder(bytes.NewReader(e.Ciphertext))
		dec.DisallowUnknownFields()
		if dec.Decode(&n) == nil {
			n.Seq = e.Seq
			return api.Frame{Type: api.FrameNotice, Notice: &n}
		}
		// Not a notice this build wrote: deliver it as it is.
	}
	return api.Frame{Type: api.FrameEnvelope, Envelope: apiEnvelope(e)}
}
