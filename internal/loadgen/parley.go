package loadgen

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/devicelist"
	"github.com/parleychat/parley/internal/identity"
	"github.com/parleychat/parley/internal/linking"
	"github.com/parleychat/parley/internal/pqxdh"
)

// account is one simulated account with its devices.
type account struct {
	index   int // of the run's accounts, before setup failures
	pos     int // in parleyRun.accounts, after setup
	handle  string
	key     *identity.AccountKey
	list    devicelist.List // the current (last signed) device list
	devices []*device       // Config.DevicesPerAccount, devices[0] registered the account
}

// device is one device of an account, with its own WebSocket.
type device struct {
	index int // of the run's devices: account index * K + position
	acct  *account
	id    uint32
	key   *identity.DeviceKey
	token string

	conn        *websocket.Conn
	drained     chan struct{} // closed when the server said "drained"
	drainedOnce sync.Once
	done        chan struct{} // closed when the receive loop ended

	// Sends over the WebSocket waiting for their answer, by frame id.
	mu      sync.Mutex
	pending map[uint64]chan<- error
	closed  bool // the receive loop ended: no answer will come
	nextID  atomic.Uint64
}

// errWSClosed fails sends over a WebSocket that closed.
var errWSClosed = errors.New("loadgen: the WebSocket closed")

// parleyRun is the parleyd phase: setup, then senders and receivers.
type parleyRun struct {
	cfg     Config
	log     *slog.Logger
	clients *httpClients
	run     uint64    // this run's id, in every handle, message id and payload
	epoch   time.Time // send times in payloads are nanoseconds since epoch

	accounts []*account // set up completely, every device connected
	devices  []*device  // the devices of accounts
	all      []*device  // every device set up (to close)
	servers  []string   // Config.Servers

	setupErrs   Errors
	rateLimited atomic.Int64 // registration and link answers 429, retried

	lat          *Recorder
	errs         Errors
	track        *tracker
	attempts     atomic.Int64
	acked        atomic.Int64
	ackedEnvs    atomic.Int64 // envelopes of acknowledged sends
	delivered    atomic.Int64 // deliveries of this run's messages, drain included
	inWindow     atomic.Int64 // deliveries while the senders ran
	windowOpen   atomic.Bool
	foreign      atomic.Int64 // envelopes some other run sent to these devices
	acksSent     atomic.Int64 // ack frames written
	closing      atomic.Bool
	receiveCtx   context.Context
	stopReceive  context.CancelFunc
	receiversWG  sync.WaitGroup
	setupTimeout time.Duration
}

func newParleyRun(cfg Config, log *slog.Logger, clients *httpClients) *parleyRun {
	return &parleyRun{
		cfg:     cfg,
		log:     log,
		clients: clients,
		run:     rand.Uint64(),
		epoch:   time.Now(),
		lat:     NewRecorder(),
		track:   newTracker(),
		servers: cfg.Servers(),
	}
}

// server is the node device i uses (Config.Server may name several).
func (p *parleyRun) server(i int) string {
	return p.servers[i%len(p.servers)]
}

// handle names account a of this run: "ld" + 8 hex digits of the run id +
// "_" + index; at most 3+8+1+5 = 17 characters for MaxDevices.
func (p *parleyRun) handle(a int) string {
	return fmt.Sprintf("ld%08x_%d", uint32(p.run>>32), a)
}

// stageError is a setup failure and the step it happened in.
type stageError struct {
	stage string
	err   error
}

func (e *stageError) Error() string { return e.err.Error() }
func (e *stageError) Unwrap() error { return e.err }

func stage(name string, err error) error {
	if err == nil {
		return nil
	}
	return &stageError{name, err}
}

// setupAccount creates account a with real keys and
// Config.DevicesPerAccount devices, as the apps do: the first device
// registers the account (a device list of version 1 naming it, a signed
// prekey and a last-resort PQ prekey); each further device is linked
// (POST /v1/links by the first device, join by the new one, a new signed
// device list with it added and the account sealed to it by the first),
// then authenticates and uploads its own prekeys (POST /v1/keys). Every
// device ends with a token.
func (p *parleyRun) setupAccount(ctx context.Context, a int) (*account, error) {
	k := p.cfg.DevicesPerAccount
	acct, err := identity.NewAccountKey()
	if err != nil {
		return nil, err
	}
	ac := &account{index: a, handle: p.handle(a), key: acct, list: devicelist.List{Handle: p.handle(a)}}
	ids := make(map[uint32]bool, k)
	for j := range k {
		dk, err := identity.NewDeviceKey()
		if err != nil {
			return nil, err
		}
		d := &device{
			index:   a*k + j,
			acct:    ac,
			key:     dk,
			drained: make(chan struct{}),
			done:    make(chan struct{}),
			pending: make(map[uint64]chan<- error),
		}
		for d.id == 0 || ids[d.id] {
			d.id = rand.Uint32N(1<<32-1) + 1
		}
		ids[d.id] = true
		ac.devices = append(ac.devices, d)
	}
	first := ac.devices[0]
	if err := p.register(ctx, ac); err != nil {
		return nil, stage("register", err)
	}
	if err := p.authenticate(ctx, first); err != nil {
		return nil, stage("token", err)
	}
	for _, d := range ac.devices[1:] {
		if err := p.link(ctx, ac, d); err != nil {
			return nil, stage("link", err)
		}
		if err := p.authenticate(ctx, d); err != nil {
			return nil, stage("token", err)
		}
		pk, err := prekeys(d.key)
		if err != nil {
			return nil, err
		}
		rctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
		err = call(rctx, p.clients.get(d.index), http.MethodPost, pathURL(p.server(d.index), api.PathKeys), d.token, pk, nil)
		cancel()
		if err != nil {
			return nil, stage("prekeys", fmt.Errorf("loadgen: prekeys of %s device %d: %w", ac.handle, d.id, err))
		}
	}
	return ac, nil
}

func listDevice(d *device) devicelist.Device {
	return devicelist.Device{
		ID:         d.id,
		SigningKey: d.key.SigningPublic(),
		DHKey:      d.key.DHPublic(),
		Name:       "parley-load",
		Created:    time.Now().UnixMilli(),
	}
}

// prekeys makes a device's signed prekey and last-resort PQ prekey.
func prekeys(dk *identity.DeviceKey) (*api.Prekeys, error) {
	spk, err := pqxdh.GeneratePrekey(dk, identity.PrekeySigned, 1)
	if err != nil {
		return nil, err
	}
	pq, err := pqxdh.GeneratePrekey(dk, identity.PrekeyPQLastResort, 1)
	if err != nil {
		return nil, err
	}
	return &api.Prekeys{
		SignedPrekey: &api.SignedPrekey{ID: spk.ID, Public: spk.Public, Signature: spk.Signature},
		LastResortPQ: &api.SignedPrekey{ID: pq.ID, Public: pq.Public, Signature: pq.Signature},
	}, nil
}

// register creates the account with its first device. It retries while
// parleyd answers rate_limited.
func (p *parleyRun) register(ctx context.Context, ac *account) error {
	d := ac.devices[0]
	ac.list.Version = 1
	ac.list.Devices = []devicelist.Device{listDevice(d)}
	signed, err := ac.list.Sign(ac.key)
	if err != nil {
		return err
	}
	pk, err := prekeys(d.key)
	if err != nil {
		return err
	}
	req := api.RegisterRequest{
		Handle:      ac.handle,
		IdentityKey: ac.key.Public(),
		DeviceList:  signed,
		DeviceID:    d.id,
		Prekeys:     *pk,
	}
	err = p.retryLimited(ctx, "registering "+ac.handle, "--register-rate/--register-burst", func(rctx context.Context) error {
		return call(rctx, p.clients.get(d.index), http.MethodPost, pathURL(p.server(d.index), api.PathAccounts), "", req, nil)
	})
	if err != nil {
		return fmt.Errorf("loadgen: registering %s: %w", ac.handle, err)
	}
	return nil
}

// retryLimited calls f (bounded by RequestTimeout) until parleyd stops
// answering rate_limited, backing off, or ctx ends.
func (p *parleyRun) retryLimited(ctx context.Context, what, flags string, f func(ctx context.Context) error) error {
	for attempt := 0; ; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
		err := f(rctx)
		cancel()
		wait, limited := isRateLimited(err)
		if !limited {
			return err
		}
		p.rateLimited.Add(1)
		// Back off exponentially from 250ms to 8s, with jitter, or as long
		// as the server asks.
		backoff := 250 * time.Millisecond << min(attempt, 5)
		wait = max(wait, backoff/2+rand.N(backoff/2))
		select {
		case <-ctx.Done():
			return fmt.Errorf("loadgen: %s: still rate limited at the setup timeout (raise parleyd's %s): %w", what, flags, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// authenticate gets d a token: a challenge signed with its device key.
func (p *parleyRun) authenticate(ctx context.Context, d *device) error {
	c := p.clients.get(d.index)
	h := d.acct.handle
	var ch api.ChallengeResponse
	rctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
	defer cancel()
	if err := call(rctx, c, http.MethodPost, pathURL(p.server(d.index), api.PathChallenge), "",
		api.ChallengeRequest{Handle: h, DeviceID: d.id}, &ch); err != nil {
		return fmt.Errorf("loadgen: challenge for %s device %d: %w", h, d.id, err)
	}
	sig := d.key.Sign(identity.AuthMessage(h, d.id, ch.Challenge))
	var tok api.TokenResponse
	if err := call(rctx, c, http.MethodPost, pathURL(p.server(d.index), api.PathToken), "",
		api.TokenRequest{Handle: h, DeviceID: d.id, Challenge: ch.Challenge, Signature: sig}, &tok); err != nil {
		return fmt.Errorf("loadgen: token for %s device %d: %w", h, d.id, err)
	}
	d.token = tok.Token
	return nil
}

// link adds d to its account (docs/PROTOCOL-api.md, linking): the first
// device creates a link, d joins it with a Join authenticated by the
// code's secret, the first device reads and checks the join, signs the
// next device list with d added and completes the link with the account
// sealed to d.
func (p *parleyRun) link(ctx context.Context, ac *account, d *device) error {
	first := ac.devices[0]
	fc, fs := p.clients.get(first.index), p.server(first.index)
	one := func(f func(ctx context.Context) error) error {
		rctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
		defer cancel()
		return f(rctx)
	}
	var cl api.CreateLinkResponse
	if err := one(func(rctx context.Context) error {
		return call(rctx, fc, http.MethodPost, pathURL(fs, api.PathLinks), first.token, nil, &cl)
	}); err != nil {
		return fmt.Errorf("loadgen: creating a link for %s: %w", ac.handle, err)
	}
	raw, err := hex.DecodeString(cl.LinkID)
	if err != nil || len(raw) != 16 {
		return fmt.Errorf("loadgen: link id %q is not 32 hex digits", cl.LinkID)
	}
	code, err := linking.NewCode([16]byte(raw))
	if err != nil {
		return err
	}
	join, _, err := linking.NewJoin(code, d.key, d.id, "parley-load")
	if err != nil {
		return err
	}
	linkPath := func(tmpl string) string { return strings.Replace(tmpl, "{id}", cl.LinkID, 1) }
	err = p.retryLimited(ctx, "joining a link of "+ac.handle, "--join-rate/--join-burst", func(rctx context.Context) error {
		return call(rctx, p.clients.get(d.index), http.MethodPost, pathURL(p.server(d.index), linkPath(api.PathLinkJoin)), "",
			api.JoinLinkRequest{Join: join.Marshal()}, nil)
	})
	if err != nil {
		return fmt.Errorf("loadgen: joining a link of %s: %w", ac.handle, err)
	}
	var st api.LinkStatus
	if err := one(func(rctx context.Context) error {
		return call(rctx, fc, http.MethodGet, pathURL(fs, linkPath(api.PathLink)), first.token, nil, &st)
	}); err != nil {
		return fmt.Errorf("loadgen: link status for %s: %w", ac.handle, err)
	}
	if !st.Joined {
		return fmt.Errorf("loadgen: link of %s: the server says no device joined", ac.handle)
	}
	got, err := linking.ParseJoin(st.Join)
	if err != nil {
		return fmt.Errorf("loadgen: link of %s: %w", ac.handle, err)
	}
	if err := got.Verify(code); err != nil {
		return fmt.Errorf("loadgen: link of %s: %w", ac.handle, err)
	}
	next := ac.list
	next.Version++
	next.Devices = append(slices.Clip(ac.list.Devices), listDevice(d))
	signed, err := next.Sign(ac.key)
	if err != nil {
		return err
	}
	sealed, err := linking.Seal(code, got, &linking.Transfer{Handle: ac.handle, AccountSeed: ac.key.Seed()})
	if err != nil {
		return err
	}
	if err := one(func(rctx context.Context) error {
		return call(rctx, fc, http.MethodPost, pathURL(fs, linkPath(api.PathLinkComplete)), first.token,
			api.CompleteLinkRequest{Sealed: sealed, DeviceList: signed}, nil)
	}); err != nil {
		return fmt.Errorf("loadgen: completing a link of %s: %w", ac.handle, err)
	}
	ac.list = next
	return nil
}

// setupAll sets up every account, SetupConcurrency at a time. Accounts
// that fail are counted in setupErrs and left out.
func (p *parleyRun) setupAll(ctx context.Context) {
	n := p.cfg.Devices / p.cfg.DevicesPerAccount
	accts := make([]*account, n)
	forEach(ctx, n, p.cfg.SetupConcurrency, func(a int) {
		ac, err := p.setupAccount(ctx, a)
		if err != nil {
			name := "setup"
			var se *stageError
			if errors.As(err, &se) {
				name = se.stage
			}
			p.setupErrs.Add(name + "_" + errorCode(err))
			p.log.Debug("account setup failed", "account", a, "err", err)
			return
		}
		accts[a] = ac
	})
	for _, ac := range accts {
		if ac != nil {
			p.accounts = append(p.accounts, ac)
			p.all = append(p.all, ac.devices...)
		}
	}
}

// connectAll opens one WebSocket per device and waits until parleyd said
// "drained" on each. An account with a device that fails is left out (its
// devices would miss their envelopes).
func (p *parleyRun) connectAll(ctx context.Context) {
	p.receiveCtx, p.stopReceive = context.WithCancel(context.Background())
	ok := make([]bool, len(p.all))
	forEach(ctx, len(p.all), p.cfg.SetupConcurrency, func(i int) {
		d := p.all[i]
		if err := p.connect(ctx, d); err != nil {
			p.setupErrs.Add("connect_" + errorCode(err))
			p.log.Debug("connect failed", "account", d.acct.handle, "device", d.id, "err", err)
			return
		}
		ok[i] = true
	})
	failed := make(map[*account]bool)
	for i, d := range p.all {
		if !ok[i] {
			failed[d.acct] = true
		}
	}
	var kept []*account
	for _, ac := range p.accounts {
		if !failed[ac] {
			ac.pos = len(kept)
			kept = append(kept, ac)
			p.devices = append(p.devices, ac.devices...)
		}
	}
	p.accounts = kept
}

func (p *parleyRun) connect(ctx context.Context, d *device) error {
	h := http.Header{}
	h.Set(api.HeaderAuthorization, "Bearer "+d.token)
	dctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
	defer cancel()
	conn, resp, err := websocket.Dial(dctx, pathURL(p.server(d.index), api.PathWebSocket), &websocket.DialOptions{
		HTTPClient: p.clients.get(d.index),
		HTTPHeader: h,
	})
	if err != nil {
		if resp != nil {
			return &apiError{Status: resp.StatusCode, Message: err.Error()}
		}
		return fmt.Errorf("loadgen: connecting %s device %d: %w", d.acct.handle, d.id, err)
	}
	if p.cfg.SendOver == SendOverWS && !strings.Contains(resp.Header.Get(api.HeaderFeatures), api.FeatureSend) {
		conn.CloseNow()
		// No Parley-Features: send: an older parleyd. The code names the
		// cause in the report's setup errors.
		return &apiError{Status: resp.StatusCode, Code: "no_ws_send",
			Message: "this parleyd takes no sends over the WebSocket; use --send-over http"}
	}
	// A frame holds the ciphertext in base64 plus a little JSON; error
	// answers name at most every device of two accounts.
	conn.SetReadLimit(int64(p.cfg.Size)*4/3 + 8192)
	d.conn = conn
	p.receiversWG.Add(1)
	go p.receive(d)
	select {
	case <-d.drained:
		return nil
	case <-d.done:
		return fmt.Errorf("loadgen: %s device %d: connection closed before \"drained\"", d.acct.handle, d.id)
	case <-dctx.Done():
		conn.CloseNow()
		return fmt.Errorf("loadgen: %s device %d: waiting for \"drained\": %w", d.acct.handle, d.id, dctx.Err())
	}
}

// receive reads d's frames until the connection ends: it records each
// envelope of this run and hands its seq to the acker, which sends acks in
// batches (whatever queued up while the last ack was being written), and
// passes the answers to sends over the WebSocket to their senders.
func (p *parleyRun) receive(d *device) {
	defer p.receiversWG.Done()
	defer close(d.done)
	defer d.failPending()
	acks := make(chan int64, 1024)
	ackerDone := make(chan struct{})
	go p.acker(d, acks, ackerDone)
	defer func() { close(acks); <-ackerDone }()
	var (
		buf bytes.Buffer // a frame, reused
		fr  frameReader
	)
	for {
		// No context: one with a deadline or cancel costs the WebSocket
		// library a timer hook per read. close and connect end reads by
		// closing the connection.
		_, r, err := d.conn.Reader(context.Background())
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(r)
		}
		if err != nil {
			if !p.closing.Load() {
				p.errs.Add("ws_closed")
				p.log.Debug("websocket closed", "account", d.acct.handle, "device", d.id, "err", err)
			}
			return
		}
		now := time.Since(p.epoch)
		f, err := fr.decode(buf.Bytes())
		if err != nil {
			p.errs.Add("bad_frame")
			continue
		}
		switch f.Type {
		case api.FrameDrained:
			d.drainedOnce.Do(func() { close(d.drained) })
		case api.FrameEnvelope:
			if f.Envelope == nil {
				p.errs.Add("bad_frame")
				continue
			}
			p.onEnvelope(now, d, f.Envelope)
			acks <- f.Envelope.Seq
		case api.FrameSent:
			d.answer(f.ID, nil)
		case api.FrameError:
			e := &apiError{Code: "error_frame_without_error"}
			if f.Error != nil {
				e.Code, e.Message = f.Error.Code, f.Error.Message
			}
			d.answer(f.ID, e)
		}
	}
}

func (p *parleyRun) onEnvelope(now time.Duration, d *device, e *envelopeIn) {
	h, err := parseHeader(e.Ciphertext)
	id, idOK := parseMessageID(e.MessageID)
	if err != nil || h.Run != p.run || !idOK {
		p.foreign.Add(1)
		return
	}
	p.lat.Add(now - time.Duration(h.SentNS))
	p.delivered.Add(1)
	if p.windowOpen.Load() {
		p.inWindow.Add(1)
	}
	p.track.delivered(id, uint32(d.index))
}

func (p *parleyRun) acker(d *device, acks <-chan int64, done chan<- struct{}) {
	defer close(done)
	const maxBatch = 256
	batch := make([]int64, 0, maxBatch)
	var frame []byte
	for seq := range acks {
		batch = append(batch[:0], seq)
	more:
		for len(batch) < maxBatch {
			select {
			case s, ok := <-acks:
				if !ok {
					break more
				}
				batch = append(batch, s)
			default:
				break more
			}
		}
		frame = appendAckFrame(frame[:0], batch)
		ctx, cancel := context.WithTimeout(p.receiveCtx, p.cfg.RequestTimeout)
		err := d.conn.Write(ctx, websocket.MessageText, frame)
		cancel()
		if err != nil {
			if !p.closing.Load() {
				p.errs.Add("ack_" + errorCode(err))
			}
			// Keep draining the channel so the reader never blocks.
			continue
		}
		p.acksSent.Add(1)
	}
}

// sendWS writes a send frame (whose id is id) on d's WebSocket and waits,
// at most timeout, for its answer, which the receive loop passes on
// through answer. answer is the caller's channel of capacity 1, empty
// when sendWS is called and when it returns.
func (d *device) sendWS(frame []byte, id uint64, answer chan error, timeout time.Duration) error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return errWSClosed
	}
	d.pending[id] = answer
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := d.conn.Write(ctx, websocket.MessageText, frame); err != nil {
		d.forget(id, answer)
		return fmt.Errorf("loadgen: writing a send frame: %w", err)
	}
	select {
	case err := <-answer:
		return err
	case <-ctx.Done():
		d.forget(id, answer)
		return fmt.Errorf("loadgen: no answer to a send frame: %w", ctx.Err())
	}
}

// forget drops the wait for answer id. An answer already taken from
// pending is on its way to the channel: it is received, so the channel
// is empty for the next send.
func (d *device) forget(id uint64, answer chan error) {
	d.mu.Lock()
	_, waiting := d.pending[id]
	delete(d.pending, id)
	d.mu.Unlock()
	if !waiting {
		<-answer
	}
}

// answer passes the answer to send frame id to its sender, if it still
// waits.
func (d *device) answer(id uint64, err error) {
	d.mu.Lock()
	ch, ok := d.pending[id]
	delete(d.pending, id)
	d.mu.Unlock()
	if ok {
		ch <- err // capacity 1, one answer per send
	}
}

// failPending answers every waiting send with errWSClosed, and every
// later one.
func (d *device) failPending() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	for id, ch := range d.pending {
		ch <- errWSClosed
		delete(d.pending, id)
	}
}

// sendLoop is sender j: until ctx ends it sends, one message at a time,
// from device j mod n to a random other account: one envelope for each of
// that account's devices and one for each other device of its own.
func (p *parleyRun) sendLoop(ctx context.Context, j int, limiter *rate.Limiter) {
	from := p.devices[j%len(p.devices)]
	client := p.clients.get(from.index)
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(rng.Uint32())
	}
	fill := rand.NewChaCha8(seed)
	buf := make([]byte, p.cfg.Size)
	url := pathURL(p.server(from.index), api.PathMessages)
	overWS := p.cfg.SendOver == SendOverWS
	answer := make(chan error, 1)
	var (
		own     []outEnvelope // the sender's other devices
		ownIdx  []uint32
		envs    []outEnvelope
		targets []uint32 // device indexes, as envs
		frame   []byte
	)
	for _, d := range from.acct.devices {
		if d != from {
			own = append(own, outEnvelope{from.acct.handle, d.id})
			ownIdx = append(ownIdx, uint32(d.index))
		}
	}
	m := len(p.accounts)
	for seq := uint32(0); ctx.Err() == nil; seq++ {
		if limiter != nil && limiter.Wait(ctx) != nil {
			return
		}
		k := rng.IntN(m - 1) // any account but the sender's own
		if k >= from.acct.pos {
			k++
		}
		to := p.accounts[k]
		envs, targets = envs[:0], targets[:0]
		for _, d := range to.devices {
			envs = append(envs, outEnvelope{to.handle, d.id})
			targets = append(targets, uint32(d.index))
		}
		envs = append(envs, own...)
		targets = append(targets, ownIdx...)
		id, idHex := messageID(p.run, uint32(j), seq)
		fillPayload(buf, payloadHeader{Run: p.run, SentNS: int64(time.Since(p.epoch)), Sender: uint32(j), Seq: seq}, fill)
		p.attempts.Add(1)
		// A send under way when the duration ends may finish: its
		// context is not the sending loop's.
		var err error
		if overWS {
			fid := from.nextID.Add(1)
			frame = appendSendFrame(frame[:0], fid, idHex, to.handle, envs, buf)
			err = from.sendWS(frame, fid, answer, p.cfg.RequestTimeout)
		} else {
			// A new body each time: the transport may still hold the last.
			body := appendSendRequest(nil, idHex, to.handle, envs, buf)
			rctx, cancel := context.WithTimeout(context.Background(), p.cfg.RequestTimeout)
			err = call(rctx, client, http.MethodPost, url, from.token, rawJSON(body), nil)
			cancel()
		}
		if err != nil {
			p.errs.Add(errorCode(err))
			if errors.Is(err, errWSClosed) {
				return // counted as ws_closed by the receive loop
			}
			continue
		}
		p.acked.Add(1)
		p.ackedEnvs.Add(int64(len(targets)))
		for _, t := range targets {
			p.track.acked(id, t)
		}
	}
}

// runPhase runs the senders for the configured duration, then waits up to
// Drain for deliveries in flight.
func (p *parleyRun) runPhase(ctx context.Context) (*Phase, error) {
	if len(p.accounts) < 2 {
		return nil, fmt.Errorf("loadgen: only %d accounts set up, need 2", len(p.accounts))
	}
	var limiter *rate.Limiter
	if p.cfg.Rate > 0 {
		limiter = rate.NewLimiter(rate.Limit(p.cfg.Rate), 1)
	}
	probe := startCPU(p.cfg.ServerPID)
	start := time.Now()
	p.windowOpen.Store(true)
	sctx, cancel := context.WithTimeout(ctx, p.cfg.Duration)
	var wg sync.WaitGroup
	for j := range p.cfg.Senders {
		wg.Go(func() { p.sendLoop(sctx, j, limiter) })
	}
	wg.Wait()
	cancel()
	p.windowOpen.Store(false)
	elapsed := time.Since(start)
	cpu := probe.stop(elapsed.Seconds())

	// Drain: wait until every acknowledged send arrived, or Drain passed.
	drainStart := time.Now()
	deadline := time.NewTimer(p.cfg.Drain)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var chk Check
wait:
	for {
		chk = p.track.check()
		if chk.Missing == 0 {
			break
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			chk = p.track.check()
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	secs := elapsed.Seconds()
	ph := &Phase{
		Connections:     len(p.devices),
		Seconds:         secs,
		Attempts:        p.attempts.Load(),
		Acked:           p.acked.Load(),
		AckedEnvelopes:  p.ackedEnvs.Load(),
		AckedPerSec:     float64(p.acked.Load()) / secs,
		Delivered:       p.inWindow.Load(),
		DeliveredPerSec: float64(p.inWindow.Load()) / secs,
		DeliveredTotal:  p.delivered.Load(),
		DrainSeconds:    time.Since(drainStart).Seconds(),
		Latency:         p.lat.Summary(),
		Errors:          p.errs.Map(),
		Check:           &chk,
		Foreign:         p.foreign.Load(),
		AckFrames:       p.acksSent.Load(),
		CPU:             cpu,
	}
	return ph, nil
}

// close ends every connection and waits (bounded) for the receive loops.
func (p *parleyRun) close() {
	p.closing.Store(true)
	// A close handshake per connection, many at once, so parleyd sees
	// normal closures; whatever is left after 10 s is cut.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	forEach(ctx, len(p.all), 64, func(i int) {
		if c := p.all[i].conn; c != nil {
			_ = c.Close(websocket.StatusNormalClosure, "load run over")
		}
	})
	if p.stopReceive != nil {
		p.stopReceive()
	}
	for _, d := range p.all {
		if d.conn != nil {
			d.conn.CloseNow()
		}
	}
	done := make(chan struct{})
	go func() { p.receiversWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.log.Warn("receive loops still running after close")
	}
}

// forEach calls f(0..n-1) from at most par goroutines, stopping early
// when ctx ends.
func forEach(ctx context.Context, n, par int, f func(i int)) {
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range min(par, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				f(i)
			}
		})
	}
	wg.Wait()
}
