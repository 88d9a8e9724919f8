package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/client/clientdb"
	"github.com/parleychat/parley/internal/identity"
)

// requestTimeout bounds one ordinary request; long polls add their wait.
const requestTimeout = 60 * time.Second

// path fills the {handle} or {id} parameter of an api.Path*.
func path(p, param string) string {
	p = strings.Replace(p, "{handle}", url.PathEscape(param), 1)
	return strings.Replace(p, "{id}", url.PathEscape(param), 1)
}

func (c *Client) baseURL() (string, error) {
	s := c.Server()
	if s == "" {
		return "", ErrNoServer
	}
	return s, nil
}

// call sends one JSON request. in may be nil (no body); out may be nil.
// With auth, it presents the device's bearer token, fetching a new one
// once if the server no longer knows the cached one.
func (c *Client) call(ctx context.Context, method, p string, in, out any, auth bool) error {
	err := c.call1(ctx, method, p, in, out, auth, false)
	var ae *APIError
	if auth && errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
		c.log.Debug("token refused; signing in again", "path", p)
		err = c.call1(ctx, method, p, in, out, auth, true)
	}
	return err
}

func (c *Client) call1(ctx context.Context, method, p string, in, out any, auth, fresh bool) error {
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
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth {
		tok, err := c.token(ctx, fresh)
		if err != nil {
			return err
		}
		req.Header.Set(api.HeaderAuthorization, "Bearer "+tok)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, p, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return readAPIError(resp)
	}
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(out); err != nil {
		return fmt.Errorf("client: %s %s: decoding answer: %w", method, p, err)
	}
	return nil
}

func readAPIError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	ae := &APIError{Status: resp.StatusCode}
	var er api.ErrorResponse
	if json.Unmarshal(b, &er) == nil && er.Error.Code != "" {
		ae.Code, ae.Message, ae.Mismatch = er.Error.Code, er.Error.Message, er.Error.Mismatch
	} else {
		ae.Message = strings.TrimSpace(string(b))
		if len(ae.Message) > 200 {
			ae.Message = ae.Message[:200]
		}
	}
	return ae
}

// tokenMargin: a cached token this close to expiry is renewed first.
const tokenMargin = 2 * time.Minute

// token returns a bearer token for this device: the cached one, or a new
// one from a signed challenge.
func (c *Client) token(ctx context.Context, fresh bool) (string, error) {
	c.authMu.Lock()
	defer c.authMu.Unlock()
	me, err := c.self()
	if err != nil {
		return "", err
	}
	if !fresh {
		var tok string
		var exp time.Time
		err := c.db.View(ctx, func(tx *clientdb.Tx) error {
			var err error
			tok, exp, err = tx.Token()
			return err
		})
		if err == nil && time.Until(exp) > tokenMargin {
			return tok, nil
		}
		if err != nil && !errors.Is(err, clientdb.ErrNotFound) {
			return "", fmt.Errorf("client: %w", err)
		}
	}
	var ch api.ChallengeResponse
	if err := c.call1(ctx, http.MethodPost, api.PathChallenge, api.ChallengeRequest{Handle: me.handle, DeviceID: me.deviceID}, &ch, false, false); err != nil {
		return "", signInError(err)
	}
	sig := me.deviceKey.Sign(identity.AuthMessage(me.handle, me.deviceID, ch.Challenge))
	var tr api.TokenResponse
	req := api.TokenRequest{Handle: me.handle, DeviceID: me.deviceID, Challenge: ch.Challenge, Signature: sig}
	if err := c.call1(ctx, http.MethodPost, api.PathToken, req, &tr, false, false); err != nil {
		return "", signInError(err)
	}
	exp := time.UnixMilli(tr.ExpiresAt)
	if err := c.db.Update(ctx, func(tx *clientdb.Tx) error { return tx.PutToken(tr.Token, exp) }); err != nil {
		return "", fmt.Errorf("client: %w", err)
	}
	return tr.Token, nil
}

// signInError says that the server does not know this device any more
// when signing in is refused for good.
func signInError(err error) error {
	var ae *APIError
	if errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden) {
		return fmt.Errorf("%w: %w", ErrDeviceRemoved, err)
	}
	return err
}
