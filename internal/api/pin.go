package api

// PIN backup (docs/PROTOCOL-pin.md §10, docs/PROTOCOL-api.md §10). parleyd
// names the deployment's realms, issues the access tokens the realms
// require, keeps each account's sealed backup blob, and lets a device that
// recovered the account key by PIN add itself to the account.
const (
	PathRealms            = "/v1/realms"                    // GET (no auth): RealmSet
	PathRealmToken        = "/v1/realm-token"               // POST (auth): RealmTokens for the caller's account
	PathRealmTokenRecover = "/v1/realm-token/recover"       // POST (no auth; throttled per handle and address): RecoverTokensRequest -> RealmTokens (recovery scope)
	PathBackup            = "/v1/backup"                    // PUT (auth): PutBackupRequest; DELETE (auth)
	PathBackupOf          = "/v1/backup/{handle}"           // GET (auth, or the backup token of a recovery): Backup
	PathRecoverChallenge  = "/v1/devices/recover/challenge" // POST (no auth): RecoverChallengeRequest -> ChallengeResponse
	PathRecoverDevice     = "/v1/devices/recover"           // POST (signed by the account identity key): RecoverDeviceRequest -> Account
)

// RealmSet is the body of GET /v1/realms: the realms of this deployment in
// order (realm i holds share index i+1) and the threshold. Realms is empty
// when the server has no PIN backup configured. TokenKey is parleyd's
// token public key, which every realm is configured with.
type RealmSet struct {
	Realms    []RealmInfo `json:"realms"`
	Threshold int         `json:"threshold"`
	TokenKey  []byte      `json:"token_key,omitempty"`
}

// RealmInfo is one realm: its base URL and Ed25519 public key, and its id
// (SHA-256("parley-realm-id-v1" || public key)[0:16]).
type RealmInfo struct {
	URL       string `json:"url"`
	PublicKey []byte `json:"public_key"`
	ID        []byte `json:"id"`
}

// RealmToken is an access token for one realm (internal/realm.Token,
// already base64url-encoded: send it as "Authorization: Bearer <token>").
type RealmToken struct {
	RealmID []byte `json:"realm_id"`
	Token   string `json:"token"`
}

// RealmTokens answers both token endpoints: one token per realm, all
// expiring at ExpiresAt. From the recovery endpoint the tokens have the
// recovery scope (status, evaluate, unlock only), and BackupToken lets the
// bearer read the account's sealed backup blob and nothing else.
type RealmTokens struct {
	Tokens      []RealmToken `json:"tokens"`
	ExpiresAt   int64        `json:"expires_at"`
	BackupToken string       `json:"backup_token,omitempty"`
}

// RecoverTokensRequest asks for recovery tokens for an account.
type RecoverTokensRequest struct {
	Handle string `json:"handle"`
}

// PutBackupRequest stores the caller's account's sealed backup blob
// (internal/pinbackup.SealBlob output), replacing the previous one.
type PutBackupRequest struct {
	Blob []byte `json:"blob"`
}

// Backup is the body of GET /v1/backup/{handle}.
type Backup struct {
	Blob    []byte `json:"blob"`
	Updated int64  `json:"updated"`
}

// RecoverChallengeRequest asks for a challenge for the account identity
// key to sign (identity.RecoveryMessage).
type RecoverChallengeRequest struct {
	Handle string `json:"handle"`
}

// RecoverDeviceRequest is signed by the account identity key over
// identity.RecoveryMessage(handle, challenge, device_list). Without a
// device list it reads the account (identity key and signed device list);
// with one it installs that list, which must be newer than the current
// one, keep every listed device's keys, and be signed by the account key.
type RecoverDeviceRequest struct {
	Handle     string `json:"handle"`
	Challenge  []byte `json:"challenge"`
	DeviceList []byte `json:"device_list,omitempty"`
	Signature  []byte `json:"signature"`
}

// FrameNotice is a WebSocket frame type, server -> client: a plaintext
// notice from the server itself about the account, acknowledged by its
// seq like an envelope: {"type":"notice","notice":{...}}.
const FrameNotice = "notice"

// Notice kinds.
const (
	// NoticeRecoveryAttempt: someone obtained recovery tokens for the
	// account (a PIN recovery began, on a device that is not yet one of
	// the account's).
	NoticeRecoveryAttempt = "recovery_attempt"
	// NoticeDeviceRecovered: a device that recovered the account key by
	// PIN added itself to the device list.
	NoticeDeviceRecovered = "device_recovered"
)

// Notice is what the server itself tells an account's devices. It is not
// end-to-end encrypted: it carries only what the server knows anyway.
type Notice struct {
	Seq    int64  `json:"seq"`
	Kind   string `json:"kind"`
	Time   int64  `json:"time"`             // Unix ms
	Device uint32 `json:"device,omitempty"` // NoticeDeviceRecovered: the new device
}
