// Package realmclient carries pinbackup's requests to a set of realms over
// HTTP: register, recover and delete a PIN backup. It checks every
// response's signature against the realm keys the client pinned, talks to
// the realms in parallel, and turns their answers into clear errors.
package realmclient

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
	"strings"
	"sync"
	"time"

	"github.com/parleychat/parley/internal/pinbackup"
	"github.com/parleychat/parley/internal/realm"
)

// Errors (besides pinbackup's, which Recover also returns).
var (
	ErrBadSignature = errors.New("realmclient: a realm's response is not signed by its pinned key")
	ErrRealm        = errors.New("realmclient: a realm refused the request")
	ErrIncomplete   = errors.New("realmclient: not every realm completed the request")
)

// WrongPINError is a wrong PIN, with the guesses left before the backup is
// destroyed. errors.Is(err, pinbackup.ErrWrongPIN) holds.
type WrongPINError struct{ GuessesLeft int }

func (e *WrongPINError) Error() string {
	if e.GuessesLeft == 1 {
		return "wrong PIN: 1 guess left before the backup is destroyed for good"
	}
	return fmt.Sprintf("wrong PIN: %d guesses left before the backup is destroyed for good", e.GuessesLeft)
}

func (e *WrongPINError) Is(target error) bool { return target == pinbackup.ErrWrongPIN }

// RealmError is a realm's error response.
type RealmError struct {
	URL         string
	Status      int
	Code        string
	Message     string
	GuessesLeft *int
}

func (e *RealmError) Error() string {
	return fmt.Sprintf("realmclient: realm %s: %s (%d %s)", e.URL, e.Message, e.Status, e.Code)
}

func (e *RealmError) Unwrap() error { return ErrRealm }

// Realm is a realm as the client pins it.
type Realm struct {
	URL       string // base URL, e.g. https://realm1.example.org
	PublicKey ed25519.PublicKey
}

// ID returns the realm's id.
func (r Realm) ID() pinbackup.RealmID { return pinbackup.RealmIDFromKey(r.PublicKey) }

// Set is a deployment's realms and threshold.
type Set struct {
	Realms    []Realm
	Threshold int
}

// Setup is the set as pinbackup sees it.
func (s Set) Setup() pinbackup.Setup {
	p := pinbackup.Setup{Threshold: s.Threshold}
	for _, r := range s.Realms {
		p.Realms = append(p.Realms, r.ID())
	}
	return p
}

// TokenSource returns an access token for handle at a realm; parleyd
// issues them (realm.SignToken).
type TokenSource func(ctx context.Context, handle string, realm pinbackup.RealmID) (string, error)

// Client talks to one realm set for one account.
type Client struct {
	set    Set
	tokens TokenSource
	hc     *http.Client
}

// New returns a client; hc nil means an http.Client with a 30 s timeout.
func New(set Set, tokens TokenSource, hc *http.Client) (*Client, error) {
	if err := set.Setup().Validate(); err != nil {
		return nil, err
	}
	for _, r := range set.Realms {
		if len(r.PublicKey) != ed25519.PublicKeySize || r.URL == "" {
			return nil, fmt.Errorf("realmclient: realm %q has no URL or no 32-byte public key", r.URL)
		}
	}
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{set: set, tokens: tokens, hc: hc}, nil
}

// maxResponse bounds a realm response body.
const maxResponse = 1 << 20

// do sends one request to realm r and decodes a 200 answer into out; any
// other answer becomes a *RealmError. The response signature is checked
// first.
func (c *Client) do(ctx context.Context, r Realm, handle, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("realmclient: %w", err)
		}
		body = b
	}
	tok, err := c.tokens(ctx, handle, r.ID())
	if err != nil {
		return fmt.Errorf("realmclient: getting a token for %s: %w", r.URL, err)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(r.URL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("realmclient: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("realmclient: realm %s: %w", r.URL, err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("realmclient: realm %s: %w", r.URL, err)
	}
	sig, err := base64.StdEncoding.DecodeString(resp.Header.Get(realm.HeaderSignature))
	if err != nil || !realm.VerifyResponse(r.PublicKey, handle, method, path, body, resp.StatusCode, rb, sig) {
		return fmt.Errorf("%w: %s", ErrBadSignature, r.URL)
	}
	if resp.StatusCode != http.StatusOK {
		var er realm.ErrorResponse
		if json.Unmarshal(rb, &er) != nil || er.Error.Code == "" {
			return &RealmError{URL: r.URL, Status: resp.StatusCode, Code: realm.CodeInternal, Message: "unreadable error response"}
		}
		return &RealmError{URL: r.URL, Status: resp.StatusCode, Code: er.Error.Code, Message: er.Error.Message, GuessesLeft: er.Error.GuessesLeft}
	}
	if out != nil {
		if err := json.Unmarshal(rb, out); err != nil {
			return fmt.Errorf("realmclient: realm %s: unreadable response: %w", r.URL, err)
		}
	}
	return nil
}

// each runs f for every realm in rs in parallel and returns the errors by
// position.
func each(rs []Realm, f func(i int, r Realm) error) []error {
	errs := make([]error, len(rs))
	var wg sync.WaitGroup
	for i, r := range rs {
		wg.Go(func() { errs[i] = f(i, r) })
	}
	wg.Wait()
	return errs
}

func code(err error) string {
	var re *RealmError
	if errors.As(err, &re) {
		return re.Code
	}
	return ""
}

// Register stores a PIN backup of backupKey at every realm of the set
// (pinbackup.Register). It fails unless every realm stored its part; a
// failed registration leaves mixed versions, which a new Register fixes.
func (c *Client) Register(ctx context.Context, handle string, pin, backupKey []byte, p pinbackup.Params, allowedGuesses int) error {
	regs, err := pinbackup.Register(c.set.Setup(), handle, pin, backupKey, p, allowedGuesses)
	if err != nil {
		return err
	}
	errs := each(c.set.Realms, func(i int, r Realm) error {
		return c.do(ctx, r, handle, "POST", realm.PathRegister, &regs[i], nil)
	})
	return joinFailures(errs, "registering")
}

// Delete removes the account's PIN backup from every realm.
func (c *Client) Delete(ctx context.Context, handle string) error {
	errs := each(c.set.Realms, func(_ int, r Realm) error {
		return c.do(ctx, r, handle, "DELETE", realm.PathDelete, nil, nil)
	})
	return joinFailures(errs, "deleting")
}

func joinFailures(errs []error, what string) error {
	var failed []error
	for _, err := range errs {
		if err != nil {
			failed = append(failed, err)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s failed at %d of %d realms: %w", ErrIncomplete, what, len(failed), len(errs), errors.Join(failed...))
}

// Statuses asks every realm for the account's status (no guess is used).
// A realm that does not answer properly has a nil Status.
func (c *Client) Statuses(ctx context.Context, handle string) []pinbackup.RealmStatus {
	out := make([]pinbackup.RealmStatus, len(c.set.Realms))
	each(c.set.Realms, func(i int, r Realm) error {
		out[i].Realm = r.ID()
		var st pinbackup.Status
		if err := c.do(ctx, r, handle, "GET", realm.PathStatus, nil, &st); err == nil {
			out[i].Status = &st
		}
		return nil
	})
	return out
}

// Recover recovers the backup key with the PIN. Errors, all wrapping a
// pinbackup sentinel: *WrongPINError (pinbackup.ErrWrongPIN) with the
// guesses left; pinbackup.ErrDestroyed once no guesses are left (said
// also on the last wrong PIN); pinbackup.ErrTooFewRealms when fewer than
// the threshold of realms answer; pinbackup.ErrNotFound; and
// pinbackup.ErrMisbehaving for answers that do not verify.
func (c *Client) Recover(ctx context.Context, handle string, pin []byte) ([]byte, error) {
	setup := c.set.Setup()
	if err := pinbackup.ValidPIN(pin); err != nil {
		return nil, err
	}
	plan, err := pinbackup.Choose(setup, c.Statuses(ctx, handle))
	if err != nil {
		return nil, err
	}
	rec, req, err := plan.Start(handle, pin)
	if err != nil {
		return nil, err
	}
	realms := c.realms(plan.Realms)

	// Phase 1: every realm of the plan counts a guess and evaluates.
	evals := make([]pinbackup.RealmEvaluation, len(realms))
	errs := each(realms, func(i int, r Realm) error {
		var resp pinbackup.EvaluateResponse
		if err := c.do(ctx, r, handle, "POST", realm.PathEvaluate, req, &resp); err != nil {
			return err
		}
		evals[i] = pinbackup.RealmEvaluation{Realm: r.ID(), Response: &resp}
		return nil
	})
	destroyed := 0
	for _, err := range errs {
		if code(err) == realm.CodeDestroyed {
			destroyed++
		}
	}
	ureqs, err := rec.Unlock(evals)
	if err != nil {
		if destroyed > 0 && errors.Is(err, pinbackup.ErrTooFewRealms) {
			return nil, pinbackup.ErrDestroyed
		}
		return nil, fmt.Errorf("%w (%w)", err, errors.Join(errs...))
	}

	// Phase 2: present each realm its unlock tag.
	unlocks := make([]pinbackup.RealmUnlock, len(ureqs))
	uerrs := make([]error, len(ureqs))
	var wg sync.WaitGroup
	for i, u := range ureqs {
		r := c.realms([]pinbackup.RealmID{u.Realm})[0]
		wg.Go(func() {
			var resp pinbackup.UnlockResponse
			if err := c.do(ctx, r, handle, "POST", realm.PathUnlock, u.Request, &resp); err != nil {
				uerrs[i] = err
				return
			}
			unlocks[i] = pinbackup.RealmUnlock{Realm: u.Realm, Response: &resp}
		})
	}
	wg.Wait()
	ok, wrong, left := 0, 0, pinbackup.MaxAllowedGuesses
	destroyed = 0
	for _, err := range uerrs {
		switch {
		case err == nil:
			ok++
		case code(err) == realm.CodeWrongPIN:
			wrong++
			var re *RealmError
			if errors.As(err, &re) && re.GuessesLeft != nil {
				left = min(left, *re.GuessesLeft)
			}
		case code(err) == realm.CodeDestroyed:
			destroyed++
		}
	}
	if ok >= plan.Threshold {
		return rec.Finish(unlocks)
	}
	switch {
	case destroyed > 0 && wrong == 0:
		return nil, fmt.Errorf("%w: the PIN was wrong and that was the last guess", pinbackup.ErrDestroyed)
	case destroyed > 0:
		return nil, pinbackup.ErrDestroyed
	case wrong > 0:
		return nil, &WrongPINError{GuessesLeft: left}
	default:
		return nil, fmt.Errorf("%w: %d realms released their share, %d are needed (%w)", pinbackup.ErrTooFewRealms,
			ok, plan.Threshold, errors.Join(uerrs...))
	}
}

// realms returns the pinned realms with the given ids, in that order.
func (c *Client) realms(ids []pinbackup.RealmID) []Realm {
	var out []Realm
	for _, id := range ids {
		for _, r := range c.set.Realms {
			if r.ID() == id {
				out = append(out, r)
			}
		}
	}
	return out
}

// FetchInfo reads a realm's public info (no auth, unsigned): what a client
// shows the user before pinning a realm set.
func FetchInfo(ctx context.Context, hc *http.Client, url string) (*realm.Info, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimRight(url, "/")+realm.PathInfo, nil)
	if err != nil {
		return nil, fmt.Errorf("realmclient: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("realmclient: %w", err)
	}
	defer resp.Body.Close()
	var info realm.Info
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("realmclient: %s: status %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponse)).Decode(&info); err != nil {
		return nil, fmt.Errorf("realmclient: %s: %w", url, err)
	}
	if len(info.PublicKey) != ed25519.PublicKeySize || !bytes.Equal(info.ID, idBytes(info.PublicKey)) {
		return nil, fmt.Errorf("realmclient: %s: the realm id does not match its public key", url)
	}
	return &info, nil
}

func idBytes(pub []byte) []byte {
	id := pinbackup.RealmIDFromKey(pub)
	return id[:]
}
