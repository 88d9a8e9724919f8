// Package client is Parley's client library: one device's local state
// (internal/client/clientdb), sessions with every device it talks to,
// sending with fan-out to every device of the peer and of the own account,
// receiving over the WebSocket with acknowledgement only after the local
// commit, contacts and message requests, device linking and safety numbers.
//
// A Client is safe for concurrent use: a Run loop may receive while other
// goroutines send. Every change of session state is a read-modify-write in
// one database transaction, so even two processes on the same home never
// encrypt twice with the same message key.
package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/parleychat/parley/internal/client/clientdb"
	"github.com/parleychat/parley/internal/identity"
)

// DBFile is the database's name inside Options.Home.
const DBFile = "parley.db"

// MaxTextBytes bounds one message's text.
const MaxTextBytes = 64 << 10

// Options configure a Client.
type Options struct {
	Home       string       // the device's folder, created with mode 0700
	Server     string       // base URL, e.g. https://chat.example; "" uses the one stored at registration or linking
	Logger     *slog.Logger // nil discards logs
	DeviceName string       // name in the device list for Register and Link; "" uses the host name
	HTTPClient *http.Client // nil uses a default client
	// MinTimer lowers the shortest vanishing timer SetTimer accepts
	// (default MinTimer, 30s); for tests only.
	MinTimer time.Duration
}

// Client is one device's view of its account.
type Client struct {
	o    Options
	log  *slog.Logger
	http *http.Client
	db   *clientdb.DB

	mu         sync.Mutex // guards the fields below
	server     string
	acct       *clientdb.Account
	accountKey *identity.AccountKey
	deviceKey  *identity.DeviceKey
	listeners  int     // Run/Sync loops receiving events
	pending    []Event // events found outside a loop, for the next loop
	wake       chan struct{}
	inflight   map[string]chan struct{} // outbox ids being sent now; closed when done
	rings      rings                    // calls ringing here, for missed-call entries (call.go)

	authMu sync.Mutex // one token fetch at a time

	sockets socketSends // sends over the delivery connection (wssend.go)

	// testHook, if set, runs at named points of receiving (tests only).
	testHook func(point string) error
	// testNow, if set, is the clock of prekey rotation (tests only).
	testNow func() time.Time
}

// now is the time prekey rotation goes by.
func (c *Client) now() time.Time {
	if c.testNow != nil {
		return c.testNow()
	}
	return time.Now()
}

// Open opens the device's home (creating it) and its database. It does not
// touch the network.
func Open(ctx context.Context, o Options) (*Client, error) {
	if o.Home == "" {
		return nil, errors.New("client: Options.Home is empty")
	}
	if err := os.MkdirAll(o.Home, 0o700); err != nil {
		return nil, fmt.Errorf("client: creating home: %w", err)
	}
	if err := os.Chmod(o.Home, 0o700); err != nil {
		return nil, fmt.Errorf("client: home: %w", err)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{}
	}
	if o.DeviceName == "" {
		o.DeviceName, _ = os.Hostname()
		if o.DeviceName == "" {
			o.DeviceName = "parley"
		}
	}
	if len(o.DeviceName) > 64 {
		o.DeviceName = truncateUTF8(o.DeviceName, 64)
	}
	db, err := clientdb.Open(ctx, filepath.Join(o.Home, DBFile))
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	c := &Client{
		o:        o,
		log:      o.Logger,
		http:     o.HTTPClient,
		db:       db,
		server:   trimServer(o.Server),
		wake:     make(chan struct{}, 1),
		inflight: map[string]chan struct{}{},
	}
	if err := c.loadAccount(ctx); err != nil {
		db.Close()
		return nil, err
	}
	// Forget dedupe records older than anything the server may redeliver.
	_ = db.Update(ctx, func(tx *clientdb.Tx) error { return tx.PruneSeen(time.Now().Add(-seenRetention)) })
	// Delete the vanishing messages whose time is up (vanish.go).
	c.sweepQuietly(ctx)
	return c, nil
}

// seenRetention is how long a received message id is remembered; the
// server forgets its own dedupe records after 7 days.
const seenRetention = 30 * 24 * time.Hour

// loadAccount reads the account (if any) into memory.
func (c *Client) loadAccount(ctx context.Context) error {
	var a *clientdb.Account
	err := c.db.View(ctx, func(tx *clientdb.Tx) error {
		var err error
		a, err = tx.Account()
		return err
	})
	if errors.Is(err, clientdb.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	ak, err := identity.AccountKeyFromSeed(a.AccountSeed)
	if err != nil {
		return fmt.Errorf("client: stored account key: %w", err)
	}
	dk, err := identity.UnmarshalDeviceKey(a.DeviceKey)
	if err != nil {
		return fmt.Errorf("client: stored device key: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.acct, c.accountKey, c.deviceKey = a, ak, dk
	if c.server == "" {
		c.server = a.Server
	}
	return nil
}

// Close closes the database.
func (c *Client) Close() error { return c.db.Close() }

// Registered reports whether this device has an account (registered or
// linked).
func (c *Client) Registered() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.acct != nil
}

// Handle returns the account's handle, "" before registration.
func (c *Client) Handle() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.acct == nil {
		return ""
	}
	return c.acct.Handle
}

// DeviceID returns this device's id, 0 before registration.
func (c *Client) DeviceID() uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.acct == nil {
		return 0
	}
	return c.acct.DeviceID
}

// Server returns the server URL in use, "" if none is known.
func (c *Client) Server() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.server
}

// self is a snapshot of the account for one operation.
type self struct {
	handle     string
	deviceID   uint32
	accountKey *identity.AccountKey
	deviceKey  *identity.DeviceKey
}

func (c *Client) self() (self, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.acct == nil {
		return self{}, ErrNotRegistered
	}
	return self{c.acct.Handle, c.acct.DeviceID, c.accountKey, c.deviceKey}, nil
}

const settingReadReceipts = "read_receipts"

// ReadReceipts reports whether read receipts are sent (the default).
func (c *Client) ReadReceipts() bool {
	on := true
	_ = c.db.View(context.Background(), func(tx *clientdb.Tx) error {
		v, err := tx.Setting(settingReadReceipts, "on")
		on = v != "off"
		return err
	})
	return on
}

// SetReadReceipts turns read receipts on or off. Off, MarkRead still
// tells this account's other devices what was read.
func (c *Client) SetReadReceipts(ctx context.Context, on bool) error {
	v := "off"
	if on {
		v = "on"
	}
	return c.db.Update(ctx, func(tx *clientdb.Tx) error { return tx.PutSetting(settingReadReceipts, v) })
}

// normHandle lower-cases a handle, drops a leading @ and checks it.
func normHandle(h string) (string, error) {
	h = strings.TrimPrefix(strings.TrimSpace(h), "@")
	b := []byte(h)
	for i, ch := range b {
		if 'A' <= ch && ch <= 'Z' {
			b[i] = ch + 'a' - 'A'
		}
	}
	h = string(b)
	if !identity.ValidHandle(h) {
		return "", fmt.Errorf("%w: %q", ErrInvalidHandle, h)
	}
	return h, nil
}

func truncateUTF8(s string, n int) string {
	for len(s) > n {
		r := []rune(s)
		s = string(r[:len(r)-1])
	}
	return s
}
