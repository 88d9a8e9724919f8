package pinbackup

import (
	"crypto/ed25519"
	"fmt"
	"slices"

	"github.com/cloudflare/circl/group"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/parleychat/parley/internal/toprf"
)

// Realm states reported by Status.State.
const (
	StateRegistered = "registered"
	StateDestroyed  = "destroyed" // too many wrong PINs: everything deleted
	StateNone       = "none"
)

// Status is a realm's answer to a status request (Juicebox recover1). It
// costs no guess.
type Status struct {
	State            string  `json:"state"`
	Version          []byte  `json:"version,omitempty"`
	Params           *Params `json:"params,omitempty"`
	Threshold        int     `json:"threshold,omitempty"`
	AllowedGuesses   int     `json:"allowed_guesses"`
	AttemptedGuesses int     `json:"attempted_guesses"`
}

// EvaluateRequest is recovery phase 1 (Juicebox recover2): the blinded
// access key. The realm counts a guess before it answers.
type EvaluateRequest struct {
	Version []byte `json:"version"`
	Blinded []byte `json:"blinded"` // toprf.BlindedElement, 32 bytes
}

// EvaluateResponse is a realm's OPRF evaluation with its proof and the
// signed public share the proof is checked against.
type EvaluateResponse struct {
	Index                int    `json:"index"`
	Evaluation           []byte `json:"evaluation"`   // toprf.Evaluation, 96 bytes
	PublicShare          []byte `json:"public_share"` // K_i, 32 bytes
	RegistrationKey      []byte `json:"registration_key"`
	PublicShareSignature []byte `json:"public_share_signature"`
	AllowedGuesses       int    `json:"allowed_guesses"`
	AttemptedGuesses     int    `json:"attempted_guesses"` // after counting this one
}

// UnlockRequest is recovery phase 2 (Juicebox recover3): the realm's
// unlock tag.
type UnlockRequest struct {
	Version []byte `json:"version"`
	Tag     []byte `json:"tag"`
}

// UnlockResponse is what a realm releases to the holder of its tag.
type UnlockResponse struct {
	SecretShare      []byte `json:"secret_share"`
	SealedSecret     []byte `json:"sealed_secret"`
	SecretCommitment []byte `json:"secret_commitment"`
}

// StatusOf is the realm's status for its stored registration.
func (r *Registration) StatusOf(attempted int) *Status {
	p := r.Params
	return &Status{
		State:            StateRegistered,
		Version:          r.Version,
		Params:           &p,
		Threshold:        r.Threshold,
		AllowedGuesses:   r.AllowedGuesses,
		AttemptedGuesses: attempted,
	}
}

// Evaluate is the realm's phase-1 computation: its OPRF evaluation of the
// blinded element with its key share, and the proof. The realm must have
// counted the guess (attempted includes it) and committed that before it
// sends the answer.
func (r *Registration) Evaluate(req *EvaluateRequest, attempted int) (*EvaluateResponse, error) {
	ks, err := toprf.ParseKeyShare(r.KeyShare)
	if err != nil {
		return nil, err
	}
	b, err := toprf.ParseBlindedElement(req.Blinded)
	if err != nil {
		return nil, err
	}
	ev, err := ks.BlindEvaluate(b)
	if err != nil {
		return nil, err
	}
	return &EvaluateResponse{
		Index:                ks.Index(),
		Evaluation:           ev.Bytes(),
		PublicShare:          ks.Public().Bytes(),
		RegistrationKey:      r.RegistrationKey,
		PublicShareSignature: r.PublicShareSignature,
		AllowedGuesses:       r.AllowedGuesses,
		AttemptedGuesses:     attempted,
	}, nil
}

// TagMatches compares a presented tag with the stored one in constant time.
func (r *Registration) TagMatches(tag []byte) bool {
	return len(tag) == TagSize && ctEqual(tag, r.UnlockTag)
}

// Release is what the realm answers to a correct tag.
func (r *Registration) Release() *UnlockResponse {
	return &UnlockResponse{SecretShare: r.SecretShare, SealedSecret: r.SealedSecret, SecretCommitment: r.SecretCommitment}
}

// RealmStatus is one realm's status; Status is nil if the realm did not
// answer.
type RealmStatus struct {
	Realm  RealmID
	Status *Status
}

// Plan is the registration a recovery works on: the one t realms agree on.
type Plan struct {
	Version   []byte
	Params    Params
	Threshold int
	// Realms hold that registration, in Setup order.
	Realms []RealmID
	// GuessesLeft is the fewest guesses any of them has left.
	GuessesLeft int
}

// Choose picks the registration that at least t realms of s agree on
// (same version, parameters and threshold, and the threshold is s's), as
// Juicebox's recover1 does. Errors: ErrDestroyed when too few realms still
// hold a registration because the others destroyed theirs, ErrTooFewRealms
// when fewer than t answered, ErrNotFound otherwise.
func Choose(s Setup, statuses []RealmStatus) (*Plan, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	t, n := s.Threshold, len(s.Realms)
	type key struct {
		version string
		params  Params
	}
	groups := map[key][]RealmStatus{}
	var order []key
	reachable, destroyed := 0, 0
	for _, realm := range s.Realms {
		i := slices.IndexFunc(statuses, func(rs RealmStatus) bool { return rs.Realm == realm })
		if i < 0 || statuses[i].Status == nil {
			continue
		}
		st := statuses[i].Status
		reachable++
		switch st.State {
		case StateDestroyed:
			destroyed++
		case StateRegistered:
			if len(st.Version) != VersionSize || st.Params == nil || st.Params.Validate() != nil || st.Threshold != t {
				continue
			}
			k := key{string(st.Version), *st.Params}
			if _, ok := groups[k]; !ok {
				order = append(order, k)
			}
			groups[k] = append(groups[k], statuses[i])
		}
	}
	var best []RealmStatus
	var bestKey key
	for _, k := range order {
		if len(groups[k]) > len(best) {
			best, bestKey = groups[k], k
		}
	}
	if len(best) >= t {
		p := &Plan{Version: []byte(bestKey.version), Params: bestKey.params, Threshold: t, GuessesLeft: MaxAllowedGuesses}
		for _, rs := range best {
			p.Realms = append(p.Realms, rs.Realm)
			p.GuessesLeft = min(p.GuessesLeft, max(0, rs.Status.AllowedGuesses-rs.Status.AttemptedGuesses))
		}
		return p, nil
	}
	switch {
	case destroyed > 0 && destroyed > n-t:
		return nil, ErrDestroyed
	case reachable < t:
		return nil, fmt.Errorf("%w: %d of %d realms answered; %d are needed", ErrTooFewRealms, reachable, n, t)
	case destroyed > 0:
		return nil, ErrDestroyed
	default:
		return nil, ErrNotFound
	}
}

// Recovery is a client's recovery in progress. It holds secrets (the
// blind, the encryption seed, the unlock key): keep it in memory only.
type Recovery struct {
	_        [0]func()
	plan     *Plan
	handle   string
	encSeed  []byte
	blinding *toprf.Blinding
	request  *EvaluateRequest
	unlock   []byte
	indices  map[RealmID]int // share index of each realm that evaluated validly
}

// String hides the recovery's secrets.
func (r *Recovery) String() string { return "pinbackup.Recovery(REDACTED)" }

// Start stretches the PIN (Argon2id; the slow step) and blinds the access
// key. It returns the phase-1 request, the same for every realm of the plan.
func (p *Plan) Start(handle string, pin []byte) (*Recovery, *EvaluateRequest, error) {
	accessKey, encSeed, err := Stretch(pin, handle, p.Version, p.Params)
	if err != nil {
		return nil, nil, err
	}
	bl, b, err := toprf.Blind(accessKey)
	if err != nil {
		return nil, nil, err
	}
	req := &EvaluateRequest{Version: p.Version, Blinded: b.Bytes()}
	return &Recovery{plan: p, handle: handle, encSeed: encSeed, blinding: bl, request: req}, req, nil
}

// RealmEvaluation is one realm's phase-1 answer.
type RealmEvaluation struct {
	Realm    RealmID
	Response *EvaluateResponse
}

// RealmUnlockRequest is the phase-2 request for one realm.
type RealmUnlockRequest struct {
	Realm   RealmID
	Request *UnlockRequest
}

// Unlock checks every evaluation (public-share signature, DLEQ proof),
// keeps those of realms agreeing on one registration key, combines t of
// them into the OPRF output and returns the phase-2 request (the unlock
// tag) for each realm whose evaluation verified. A wrong PIN is not
// detected here: it gives wrong tags, which the realms refuse.
func (r *Recovery) Unlock(evals []RealmEvaluation) ([]RealmUnlockRequest, error) {
	t := r.plan.Threshold
	blinded, err := toprf.ParseBlindedElement(r.request.Blinded)
	if err != nil {
		return nil, err
	}
	type good struct {
		realm RealmID
		se    toprf.ShareEvaluation
	}
	byKey := map[string][]good{}
	bad := 0
	for _, e := range evals {
		if e.Response == nil || !slices.Contains(r.plan.Realms, e.Realm) {
			continue
		}
		g, ok := checkEvaluation(e, blinded)
		if !ok {
			bad++
			continue
		}
		k := string(e.Response.RegistrationKey)
		if slices.ContainsFunc(byKey[k], func(x good) bool { return x.realm == e.Realm || x.se.Index == g.Index }) {
			bad++
			continue
		}
		byKey[k] = append(byKey[k], good{e.Realm, g})
	}
	var best []good
	for _, gs := range byKey {
		if len(gs) > len(best) {
			best = gs
		}
	}
	if len(best) < t {
		if bad > 0 || len(byKey) > 1 {
			return nil, fmt.Errorf("%w: %d evaluations failed their checks and %d registration keys were seen; %d agree, %d needed",
				ErrMisbehaving, bad, len(byKey), len(best), t)
		}
		return nil, fmt.Errorf("%w: %d realms evaluated; %d are needed", ErrTooFewRealms, len(best), t)
	}
	slices.SortFunc(best, func(a, b good) int { return a.se.Index - b.se.Index })
	ses := make([]toprf.ShareEvaluation, t)
	for i := range t {
		ses[i] = best[i].se
	}
	out, err := r.blinding.Finalize(ses)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMisbehaving, err)
	}
	r.unlock = unlockKey(out, r.handle, r.plan.Version)
	r.indices = map[RealmID]int{}
	reqs := make([]RealmUnlockRequest, len(best))
	for i, g := range best {
		r.indices[g.realm] = g.se.Index
		reqs[i] = RealmUnlockRequest{Realm: g.realm, Request: &UnlockRequest{Version: r.plan.Version, Tag: unlockTag(r.unlock, g.realm)}}
	}
	return reqs, nil
}

// checkEvaluation verifies one realm's answer: encodings, the signature of
// the registration key over the public share, and the DLEQ proof.
func checkEvaluation(e RealmEvaluation, blinded *toprf.BlindedElement) (toprf.ShareEvaluation, bool) {
	resp := e.Response
	if resp.Index < 1 || resp.Index > MaxRealms ||
		len(resp.RegistrationKey) != ed25519.PublicKeySize || len(resp.PublicShareSignature) != SignatureSize {
		return toprf.ShareEvaluation{}, false
	}
	pub, err := toprf.ParsePublicShare(resp.PublicShare)
	if err != nil {
		return toprf.ShareEvaluation{}, false
	}
	if !ed25519.Verify(resp.RegistrationKey, PublicShareMessage(e.Realm, resp.Index, resp.PublicShare), resp.PublicShareSignature) {
		return toprf.ShareEvaluation{}, false
	}
	ev, err := toprf.ParseEvaluation(resp.Evaluation)
	if err != nil || ev.Verify(pub, blinded) != nil {
		return toprf.ShareEvaluation{}, false
	}
	return toprf.ShareEvaluation{Index: resp.Index, Public: pub, Evaluation: ev}, true
}

// RealmUnlock is one realm's phase-2 answer to a correct tag.
type RealmUnlock struct {
	Realm    RealmID
	Response *UnlockResponse
}

// Finish checks each released share against its commitment, recovers the
// encryption scalar from t of them and opens the sealed backup key
// (Juicebox RecoverSecret).
func (r *Recovery) Finish(res []RealmUnlock) ([]byte, error) {
	if r.unlock == nil {
		return nil, fmt.Errorf("%w: Finish before Unlock", ErrParams)
	}
	t := r.plan.Threshold
	var idx []int
	var vals []group.Scalar
	var sealed []byte
	bad := 0
	for _, u := range res {
		want, ok := r.indices[u.Realm]
		if !ok || u.Response == nil || slices.Contains(idx, want) {
			continue
		}
		resp := u.Response
		share, err := toprf.ParseKeyShare(resp.SecretShare)
		if err != nil || share.Index() != want || len(resp.SealedSecret) != SealedSecretSize ||
			!ctEqual(resp.SecretCommitment, secretCommitment(r.unlock, u.Realm, resp.SecretShare, resp.SealedSecret)) {
			bad++
			continue
		}
		if sealed == nil {
			sealed = resp.SealedSecret
		} else if !ctEqual(sealed, resp.SealedSecret) {
			bad++
			continue
		}
		s := group.Ristretto255.NewScalar()
		if err := s.UnmarshalBinary(resp.SecretShare[1:]); err != nil {
			bad++
			continue
		}
		idx = append(idx, want)
		vals = append(vals, s)
	}
	if len(idx) < t {
		if bad > 0 {
			return nil, fmt.Errorf("%w: %d released shares failed their commitments; %d valid, %d needed", ErrMisbehaving, bad, len(idx), t)
		}
		return nil, fmt.Errorf("%w: %d realms released their share; %d are needed", ErrTooFewRealms, len(idx), t)
	}
	scalar, err := toprf.RecoverScalar(idx[:t], vals[:t])
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.New(encryptionKey(r.encSeed, scalar))
	if err != nil {
		return nil, fmt.Errorf("pinbackup: %w", err)
	}
	key, err := aead.Open(nil, make([]byte, chacha20poly1305.NonceSize), sealed, secretAD(r.handle, r.plan.Version))
	if err != nil {
		return nil, fmt.Errorf("%w: the sealed backup key does not open", ErrMisbehaving)
	}
	return key, nil
}

// GuessesLeft is the plan's count of guesses left before this attempt.
func (r *Recovery) GuessesLeft() int { return r.plan.GuessesLeft }
