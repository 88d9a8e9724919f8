// Package api defines the JSON wire types of parleyd's HTTP and WebSocket
// API, shared by the server and every client. docs/PROTOCOL.md describes
// each endpoint; this file is the single source of the field names.
//
// Binary fields ([]byte) travel as standard base64 strings, as encoding/json
// writes them. Times are Unix milliseconds (UTC).
package api

// Paths of the API. {handle}, {id} are path parameters.
const (
	PathHealth          = "/healthz"
	PathAccounts        = "/v1/accounts"          // POST: register
	PathAccount         = "/v1/accounts/{handle}" // GET: identity key and signed device list; DELETE: delete the caller's account
	PathChallenge       = "/v1/auth/challenge"    // POST
	PathToken           = "/v1/auth/token"        // POST
	PathDeviceList      = "/v1/devices"           // PUT: replace own signed device list
	PathKeys            = "/v1/keys"              // POST: upload prekeys; GET: own counts
	PathBundles         = "/v1/keys/{handle}"     // GET: consume one bundle per device (?devices=1,2)
	PathMessages        = "/v1/messages"          // POST: send
	PathWebSocket       = "/v1/ws"                // GET: delivery stream
	PathLinks           = "/v1/links"             // POST: start linking a new device
	PathLink            = "/v1/links/{id}"        // GET: creator waits for the join (?wait=30s)
	PathLinkJoin        = "/v1/links/{id}/join"   // POST: new device joins (no auth)
	PathLinkComplete    = "/v1/links/{id}/complete"
	PathLinkResult      = "/v1/links/{id}/result" // GET: new device fetches the sealed account (no auth, ?wait=30s)
	HeaderAuthorization = "Authorization"         // "Bearer <token>"

	// HeaderFeatures, on the answer to the WebSocket upgrade, lists what
	// the connection offers beyond delivery, separated by commas:
	// FeatureSend is sends over it (FrameSend). A client sends no frame
	// the server did not list (an older server ignores unknown frames, and
	// the send would wait for an answer that never comes).
	HeaderFeatures = "Parley-Features"
	FeatureSend    = "send"
)

// Error is the body of every non-2xx response: {"error": {...}}.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Mismatch is set with CodeDeviceMismatch: the current devices of each
	// account the send named wrongly.
	Mismatch []DeviceMismatch `json:"mismatch,omitempty"`
}

// ErrorResponse wraps Error.
type ErrorResponse struct {
	Error Error `json:"error"`
}

// Error codes. Each is paired with one HTTP status.
const (
	CodeBadRequest       = "bad_request"       // 400
	CodeInvalidHandle    = "invalid_handle"    // 400
	CodeBadSignature     = "bad_signature"     // 400
	CodeUnauthorized     = "unauthorized"      // 401
	CodeChallengeExpired = "challenge_expired" // 401
	CodeForbidden        = "forbidden"         // 403
	CodeInviteRequired   = "invite_required"   // 403: registration needs an invite here
	CodeInviteInvalid    = "invite_invalid"    // 403: unknown, expired, used up or for another handle
	CodeNotFound         = "not_found"         // 404
	CodeHandleTaken      = "handle_taken"      // 409
	CodeDeviceMismatch   = "device_mismatch"   // 409
	CodeStaleDeviceList  = "stale_device_list" // 409
	CodeLinkUsed         = "link_used"         // 409
	CodeLinkExpired      = "link_expired"      // 410
	CodeTooLarge         = "payload_too_large" // 413
	CodeRateLimited      = "rate_limited"      // 429
	CodeQueueFull        = "queue_full"        // 507
	CodeInternal         = "internal"          // 500
	CodeUnavailable      = "unavailable"       // 503 (shutting down)
)

// Health is the body of GET /healthz.
type Health struct {
	Status  string `json:"status"` // "ok"
	Version string `json:"version"`
	// Registration is who may register: "open" (anyone) or "invite"
	// (with an invite's code in RegisterRequest.Invite).
	Registration string `json:"registration"`
}

// Prekeys is a device's upload of public prekeys. Every signature is made
// by the device's signing key (see internal/identity); the server checks
// them before storing.
type Prekeys struct {
	SignedPrekey *SignedPrekey   `json:"signed_prekey,omitempty"`
	LastResortPQ *SignedPrekey   `json:"last_resort_pq,omitempty"`
	OneTime      []OneTimePrekey `json:"one_time,omitempty"`
	OneTimePQ    []SignedPrekey  `json:"one_time_pq,omitempty"`
}

// SignedPrekey is an X25519 signed prekey or an ML-KEM-768 prekey.
type SignedPrekey struct {
	ID        uint32 `json:"id"`
	Public    []byte `json:"public"`
	Signature []byte `json:"signature"`
}

// OneTimePrekey is a one-time X25519 prekey (unsigned, as in PQXDH).
type OneTimePrekey struct {
	ID     uint32 `json:"id"`
	Public []byte `json:"public"`
}

// PrekeyCounts is the body of GET /v1/keys: how many one-time keys the
// server still holds for the calling device.
type PrekeyCounts struct {
	OneTime   int `json:"one_time"`
	OneTimePQ int `json:"one_time_pq"`
}

// RegisterRequest creates an account with its first device.
type RegisterRequest struct {
	Handle      string  `json:"handle"`
	IdentityKey []byte  `json:"identity_key"` // Ed25519 account identity public key
	DeviceList  []byte  `json:"device_list"`  // signed device list, version 1, one device
	DeviceID    uint32  `json:"device_id"`
	Prekeys     Prekeys `json:"prekeys"` // must include signed_prekey and last_resort_pq
	// Invite is the code of an invite, needed on a server whose
	// registration is "invite" (GET /healthz says which); ignored otherwise.
	Invite string `json:"invite,omitempty"`
}

// DeleteAccountRequest is the body of DELETE /v1/accounts/{handle}: the
// account identity key's signature over identity.DeleteAccountMessage.
type DeleteAccountRequest struct {
	Signature []byte `json:"signature"`
}

// RegisterResponse answers a registration.
type RegisterResponse struct {
	Handle string `json:"handle"` // normalised (lower case)
}

// ChallengeRequest asks for a challenge to sign.
type ChallengeRequest struct {
	Handle   string `json:"handle"`
	DeviceID uint32 `json:"device_id"`
}

// ChallengeResponse carries a fresh random challenge.
type ChallengeResponse struct {
	Challenge []byte `json:"challenge"`
	ExpiresAt int64  `json:"expires_at"`
}

// TokenRequest proves possession of the device signing key.
type TokenRequest struct {
	Handle    string `json:"handle"`
	DeviceID  uint32 `json:"device_id"`
	Challenge []byte `json:"challenge"`
	Signature []byte `json:"signature"` // over identity.AuthMessage(...)
}

// TokenResponse carries a bearer token for the device.
type TokenResponse struct {
	Token     string `json:"token"`
	ExpiresAt int64  `json:"expires_at"`
}

// Account is the body of GET /v1/accounts/{handle}.
type Account struct {
	Handle      string `json:"handle"`
	IdentityKey []byte `json:"identity_key"`
	DeviceList  []byte `json:"device_list"` // signed; clients verify it
}

// PutDeviceListRequest replaces the caller's account's signed device list
// (to remove a device). The version must be higher than the current one.
type PutDeviceListRequest struct {
	DeviceList []byte `json:"device_list"`
}

// Bundle is one device's prekey bundle, as served (one-time keys consumed).
type Bundle struct {
	DeviceID     uint32         `json:"device_id"`
	SignedPrekey SignedPrekey   `json:"signed_prekey"`
	OneTime      *OneTimePrekey `json:"one_time,omitempty"`
	PQPrekey     SignedPrekey   `json:"pq_prekey"`
	PQLastResort bool           `json:"pq_last_resort"` // PQPrekey is the last-resort key
}

// Bundles is the body of GET /v1/keys/{handle}.
type Bundles struct {
	Handle      string   `json:"handle"`
	IdentityKey []byte   `json:"identity_key"`
	DeviceList  []byte   `json:"device_list"`
	Bundles     []Bundle `json:"bundles"`
}

// SendRequest sends one message, encrypted separately for each device.
// Envelopes must name every current device of To and every current device
// of the sender except the sending one, and nothing else.
type SendRequest struct {
	MessageID string             `json:"message_id"` // 32 lower-case hex digits, chosen by the client
	To        string             `json:"to"`
	Envelopes []OutgoingEnvelope `json:"envelopes"`
	// ExpiresAt (Unix ms, optional) is when the server drops the envelopes
	// of a vanishing message that were not fetched by then: the sender
	// declares it, since the server cannot read the timer. 0: kept until
	// fetched.
	ExpiresAt int64 `json:"expires_at,omitempty"`
}

// OutgoingEnvelope is the ciphertext for one device.
type OutgoingEnvelope struct {
	Handle     string `json:"handle"`
	DeviceID   uint32 `json:"device_id"`
	Ciphertext []byte `json:"ciphertext"`
}

// SendResponse acknowledges a committed send.
type SendResponse struct {
	MessageID  string `json:"message_id"`
	ServerTime int64  `json:"server_time"`
	Duplicate  bool   `json:"duplicate,omitempty"` // already stored by an earlier try
}

// DeviceMismatch names an account's current devices after a send that
// missed some or named removed ones.
type DeviceMismatch struct {
	Handle  string   `json:"handle"`
	Current []uint32 `json:"current"`
	Missing []uint32 `json:"missing,omitempty"`
	Extra   []uint32 `json:"extra,omitempty"`
}

// Envelope is a message as delivered to one device.
type Envelope struct {
	Seq          int64  `json:"seq"` // server order; acknowledge by it
	MessageID    string `json:"message_id"`
	Sender       string `json:"sender"`
	SenderDevice uint32 `json:"sender_device"`
	Ciphertext   []byte `json:"ciphertext"`
	ServerTime   int64  `json:"server_time"`
}

// Frame is one WebSocket text message, in either direction.
//
//	server -> client: {"type":"envelope","envelope":{...}}
//	server -> client: {"type":"drained"}          (backlog sent; live from here)
//	server -> client: {"type":"device_list","handle":"..."} (an account's devices changed; optional hint)
//	client -> server: {"type":"ack","seqs":[1,2]}
type Frame struct {
	Type     string    `json:"type"`
	Envelope *Envelope `json:"envelope,omitempty"`
	Seqs     []int64   `json:"seqs,omitempty"`
	Handle   string    `json:"handle,omitempty"`
	Notice   *Notice   `json:"notice,omitempty"` // FrameNotice (pin.go)

	// A send over the WebSocket (FrameSend) and its answer (FrameSent or
	// FrameError) carry the same ID, chosen by the client (at least 1).
	ID    uint64        `json:"id,omitempty"`
	Send  *SendRequest  `json:"send,omitempty"`
	Sent  *SendResponse `json:"sent,omitempty"`
	Error *Error        `json:"error,omitempty"`
}

// Frame types.
const (
	FrameEnvelope = "envelope"
	FrameDrained  = "drained"
	FrameAck      = "ack"

	// FrameSend (client -> server) is POST /v1/messages over the delivery
	// WebSocket: Send is the request body. The server answers FrameSent
	// (Sent is the response body) once the message is durable, or
	// FrameError (Error as the HTTP answer's); answers may come in any
	// order and between other frames.
	FrameSend  = "send"
	FrameSent  = "sent"
	FrameError = "error"
)

// CreateLinkResponse starts linking: the creator shows a code made of
// LinkID and a secret it keeps (see internal/linking).
type CreateLinkResponse struct {
	LinkID    string `json:"link_id"` // 32 lower-case hex digits, unguessable
	ExpiresAt int64  `json:"expires_at"`
}

// JoinLinkRequest is sent by the new device, unauthenticated.
type JoinLinkRequest struct {
	Join []byte `json:"join"` // linking.Join, encoded; MAC'd with the code's secret
}

// LinkStatus is the body of GET /v1/links/{id} for the creator.
type LinkStatus struct {
	Joined bool   `json:"joined"`
	Join   []byte `json:"join,omitempty"`
}

// CompleteLinkRequest carries the sealed account for the new device and
// the new signed device list that includes it.
type CompleteLinkRequest struct {
	Sealed     []byte `json:"sealed"`
	DeviceList []byte `json:"device_list"`
}

// LinkResult is the body of GET /v1/links/{id}/result for the new device.
type LinkResult struct {
	Ready      bool   `json:"ready"`
	Sealed     []byte `json:"sealed,omitempty"`
	DeviceList []byte `json:"device_list,omitempty"`
}

// PathTURN is GET (auth): short-lived TURN/STUN credentials for calls.
const PathTURN = "/v1/turn"

// TURNCredentials is the body of GET /v1/turn: the ICE servers a device
// uses for its calls, with credentials that expire after TTL seconds.
// ICEServers is empty when the server runs no relay.
type TURNCredentials struct {
	ICEServers []ICEServer `json:"ice_servers"`
	TTL        int64       `json:"ttl"`        // seconds
	ExpiresAt  int64       `json:"expires_at"` // Unix ms
}

// ICEServer is one entry of TURNCredentials, with the field names of the
// W3C RTCIceServer dictionary, so a browser passes it on unchanged.
type ICEServer struct {
	URLs       []string `json:"urls"` // "stun:host:port", "turn:host:port?transport=udp|tcp"
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// Blobs: encrypted files (docs/PROTOCOL-files.md). A blob is the age STREAM
// ciphertext of one file; the key, the SHA-256 of the ciphertext, the size,
// the media type and the name travel inside the end-to-end encrypted
// message, never here.
const (
	PathBlobs      = "/v1/blobs"             // POST: create an upload
	PathBlob       = "/v1/blobs/{id}"        // PATCH: append at Upload-Offset; GET: download (Range), HEAD: state in headers; DELETE: uploader drops it
	PathBlobStatus = "/v1/blobs/{id}/status" // GET: upload state
	PathBlobFinish = "/v1/blobs/{id}/finish" // POST: uploader checks the SHA-256 and names the recipients
	PathBlobDone   = "/v1/blobs/{id}/done"   // POST: a recipient device has fetched the blob

	// HeaderUploadOffset carries the byte offset of a PATCH, and the
	// current size in responses about an upload.
	HeaderUploadOffset = "Upload-Offset"
	// HeaderUploadLength is the declared size, in HEAD responses.
	HeaderUploadLength = "Upload-Length"
	// HeaderUploadComplete is "?1" once the upload is finished, else "?0"
	// (an RFC 8941 boolean), in HEAD responses.
	HeaderUploadComplete = "Upload-Complete"
)

// Error codes of the blob endpoints.
const (
	CodeQuotaExceeded       = "quota_exceeded"        // 507: the account's blob quota is used up
	CodeOffsetMismatch      = "offset_mismatch"       // 409: PATCH at another offset than the current size (see Upload-Offset)
	CodeUploadBusy          = "upload_busy"           // 409: another PATCH or finish of the blob is running
	CodeUploadIncomplete    = "upload_incomplete"     // 409: not all bytes uploaded / not finished (see Upload-Offset)
	CodeUploadComplete      = "upload_complete"       // 409: the upload is finished and cannot change
	CodeHashMismatch        = "hash_mismatch"         // 409: the uploaded bytes do not have the SHA-256 given to finish
	CodeRangeNotSatisfiable = "range_not_satisfiable" // 416: a Range the server cannot serve
)

// CreateBlobRequest starts an upload of Size bytes (the exact ciphertext
// size, at most the server's max_blob_bytes).
type CreateBlobRequest struct {
	Size int64 `json:"size"`
	// TTL, in seconds, shortens how long the finished blob is kept (for
	// vanishing messages); 0 or more than the server's blob_ttl means
	// blob_ttl.
	TTL int64 `json:"ttl,omitempty"`
}

// BlobStatus is the state of a blob: the answer to create, PATCH, finish
// and GET .../status.
type BlobStatus struct {
	ID        string `json:"id"`       // 43 characters: 32 random bytes, unpadded base64url
	Size      int64  `json:"size"`     // declared size
	Offset    int64  `json:"offset"`   // bytes received: the next PATCH starts here
	Complete  bool   `json:"complete"` // finished: downloadable
	ExpiresAt int64  `json:"expires_at"`
}

// FinishBlobRequest ends an upload.
type FinishBlobRequest struct {
	SHA256 []byte `json:"sha256"` // of all Size bytes of ciphertext
	// Recipients are the devices that will fetch the blob (every device of
	// the recipient and the sender's other devices). When each has called
	// done, the blob is deleted. Empty: it lives until it expires.
	Recipients []BlobRecipient `json:"recipients,omitempty"`
}

// BlobRecipient names one device.
type BlobRecipient struct {
	Handle   string `json:"handle"`
	DeviceID uint32 `json:"device_id"`
}

// BlobDoneResponse answers done: deleted is true when the caller was the
// last recipient and the blob is gone.
type BlobDoneResponse struct {
	Deleted bool `json:"deleted"`
}
