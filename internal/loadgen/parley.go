package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/devicelist"
	"github.com/parleychat/parley/internal/identity"
	"github.com/parleychat/parley/internal/pqxdh"
)

// device is one simulated account with its one device.
type device struct {
	index  int
	handle string
	id     uint32
	key    *identity.DeviceKey
	token  string

	conn        *websocket.Conn
	drained     chan struct{} // closed when the server said "drained"
	drainedOnce sync.Once
	done        chan struct{} // closed when the receive loop ended
}

// parleyRun is the parleyd phase: setup, then senders and receivers.
type parleyRun struct {
	cfg     Config
	log     *slog.Logger
	clients *httpClients
	run     uint64    // this run's id, in every handle, message id and payload
	epoch   time.Time // send times in payloads are nanoseconds since epoch

	devices []*device
	servers []string // Config.Servers

	setupErrs   Errors
	rateLimited atomic.Int64 // registration answers 429, retried

	lat          *Recorder
	errs         Errors
	track        *tracker
	attempts     atomic.Int64
	acked        atomic.Int64
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

// handle names device i of this run: "ld" + 8 hex digits of the run id +
// "_" + index; at most 3+8+1+5 = 17 characters for MaxDevices.
func (p *parleyRun) handle(i int) string {
	return fmt.Sprintf("ld%08x_%d", uint32(p.run>>32), i)
}

// register creates device i's account with real keys: an account key, a
// device key, a signed device list (version 1) and a signed prekey plus a
// last-resort PQ prekey. It retries while parleyd answers rate_limited.
func (p *parleyRun) register(ctx context.Context, i int) (*device, error) {
	acct, err := identity.NewAccountKey()
	if err != nil {
		return nil, err
	}
	dk, err := identity.NewDeviceKey()
	if err != nil {
		return nil, err
	}
	d := &device{
		index:   i,
		handle:  p.handle(i),
		id:      rand.Uint32N(1<<32-1) + 1,
		key:     dk,
		drained: make(chan struct{}),
		done:    make(chan struct{}),
	}
	list := devicelist.List{Handle: d.handle, Version: 1, Devices: []devicelist.Device{{
		ID:         d.id,
		SigningKey: dk.SigningPublic(),
		DHKey:      dk.DHPublic(),
		Name:       "parley-load",
		Created:    time.Now().UnixMilli(),
	}}}
	signed, err := list.Sign(acct)
	if err != nil {
		return nil, err
	}
	spk, err := pqxdh.GeneratePrekey(dk, identity.PrekeySigned, 1)
	if err != nil {
		return nil, err
	}
	pq, err := pqxdh.GeneratePrekey(dk, identity.PrekeyPQLastResort, 1)
	if err != nil {
		return nil, err
	}
	req := api.RegisterRequest{
		Handle:      d.handle,
		IdentityKey: acct.Public(),
		DeviceList:  signed,
		DeviceID:    d.id,
		Prekeys: api.Prekeys{
			SignedPrekey: &api.SignedPrekey{ID: spk.ID, Public: spk.Public, Signature: spk.Signature},
			LastResortPQ: &api.SignedPrekey{ID: pq.ID, Public: pq.Public, Signature: pq.Signature},
		},
	}
	c := p.clients.get(i)
	for attempt := 0; ; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
		err = call(rctx, c, http.MethodPost, pathURL(p.server(i), api.PathAccounts), "", req, nil)
		cancel()
		wait, limited := isRateLimited(err)
		if !limited {
			break
		}
		p.rateLimited.Add(1)
		// Back off exponentially from 250ms to 8s, with jitter, or as long
		// as the server asks.
		backoff := 250 * time.Millisecond << min(attempt, 5)
		wait = max(wait, backoff/2+rand.N(backoff/2))
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("loadgen: registering %s: still rate limited at the setup timeout (raise parleyd's --register-rate/--register-burst): %w", d.handle, ctx.Err())
		case <-time.After(wait):
		}
	}
	if err != nil {
		return nil, fmt.Errorf("loadgen: registering %s: %w", d.handle, err)
	}

	var ch api.ChallengeResponse
	rctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
	defer cancel()
	if err := call(rctx, c, http.MethodPost, pathURL(p.server(i), api.PathChallenge), "",
		api.ChallengeRequest{Handle: d.handle, DeviceID: d.id}, &ch); err != nil {
		return nil, fmt.Errorf("loadgen: challenge for %s: %w", d.handle, err)
	}
	sig := dk.Sign(identity.AuthMessage(d.handle, d.id, ch.Challenge))
	var tok api.TokenResponse
	if err := call(rctx, c, http.MethodPost, pathURL(p.server(i), api.PathToken), "",
		api.TokenRequest{Handle: d.handle, DeviceID: d.id, Challenge: ch.Challenge, Signature: sig}, &tok); err != nil {
		return nil, fmt.Errorf("loadgen: token for %s: %w", d.handle, err)
	}
	d.token = tok.Token
	return d, nil
}

// registerAll registers and authenticates every device, SetupConcurrency
// at a time. Devices that fail are counted in setupErrs and left out.
func (p *parleyRun) registerAll(ctx context.Context) {
	devs := make([]*device, p.cfg.Devices)
	forEach(ctx, p.cfg.Devices, p.cfg.SetupConcurrency, func(i int) {
		d, err := p.register(ctx, i)
		if err != nil {
			p.setupErrs.Add("register_" + errorCode(err))
			p.log.Debug("register failed", "device", i, "err", err)
			return
		}
		devs[i] = d
	})
	for _, d := range devs {
		if d != nil {
			p.devices = append(p.devices, d)
		}
	}
}

// connectAll opens one WebSocket per device and waits until parleyd said
// "drained" on each. Devices that fail are left out.
func (p *parleyRun) connectAll(ctx context.Context) {
	p.receiveCtx, p.stopReceive = context.WithCancel(context.Background())
	ok := make([]bool, len(p.devices))
	forEach(ctx, len(p.devices), p.cfg.SetupConcurrency, func(i int) {
		d := p.devices[i]
		if err := p.connect(ctx, d); err != nil {
			p.setupErrs.Add("connect_" + errorCode(err))
			p.log.Debug("connect failed", "device", d.handle, "err", err)
			return
		}
		ok[i] = true
	})
	var kept []*device
	for i, d := range p.devices {
		if ok[i] {
			kept = append(kept, d)
		}
	}
	p.devices = kept
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
		return fmt.Errorf("loadgen: connecting %s: %w", d.handle, err)
	}
	// A frame holds the ciphertext in base64 plus a little JSON.
	conn.SetReadLimit(int64(p.cfg.Size)*4/3 + 4096)
	d.conn = conn
	p.receiversWG.Add(1)
	go p.receive(d)
	select {
	case <-d.drained:
		return nil
	case <-d.done:
		return fmt.Errorf("loadgen: %s: connection closed before \"drained\"", d.handle)
	case <-dctx.Done():
		conn.CloseNow()
		return fmt.Errorf("loadgen: %s: waiting for \"drained\": %w", d.handle, dctx.Err())
	}
}

// receive reads d's frames until the connection ends: it records each
// envelope of this run and hands its seq to the acker, which sends acks in
// batches (whatever queued up while the last ack was being written).
func (p *parleyRun) receive(d *device) {
	defer p.receiversWG.Done()
	defer close(d.done)
	acks := make(chan int64, 1024)
	ackerDone := make(chan struct{})
	go p.acker(d, acks, ackerDone)
	defer func() { close(acks); <-ackerDone }()
	for {
		_, data, err := d.conn.Read(p.receiveCtx)
		if err != nil {
			if !p.closing.Load() {
				p.errs.Add("ws_closed")
				p.log.Debug("websocket closed", "device", d.handle, "err", err)
			}
			return
		}
		now := time.Since(p.epoch)
		var f api.Frame
		if err := json.Unmarshal(data, &f); err != nil {
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
			p.onEnvelope(now, f.Envelope)
			acks <- f.Envelope.Seq
		}
	}
}

func (p *parleyRun) onEnvelope(now time.Duration, e *api.Envelope) {
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
	p.track.delivered(id)
}

func (p *parleyRun) acker(d *device, acks <-chan int64, done chan<- struct{}) {
	defer close(done)
	const maxBatch = 256
	batch := make([]int64, 0, maxBatch)
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
		b, _ := json.Marshal(api.Frame{Type: api.FrameAck, Seqs: batch}) // cannot fail
		ctx, cancel := context.WithTimeout(p.receiveCtx, p.cfg.RequestTimeout)
		err := d.conn.Write(ctx, websocket.MessageText, b)
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

// sendLoop is sender j: until ctx ends it sends, one request at a time, a
// message from account j mod n to a random other account.
func (p *parleyRun) sendLoop(ctx context.Context, j int, limiter *rate.Limiter) {
	n := len(p.devices)
	from := p.devices[j%n]
	client := p.clients.get(from.index)
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(rng.Uint32())
	}
	fill := rand.NewChaCha8(seed)
	buf := make([]byte, p.cfg.Size)
	url := pathURL(p.server(from.index), api.PathMessages)
	for seq := uint32(0); ctx.Err() == nil; seq++ {
		if limiter != nil && limiter.Wait(ctx) != nil {
			return
		}
		k := rng.IntN(n - 1) // any device but the sender's own (position j mod n)
		if k >= j%n {
			k++
		}
		to := p.devices[k]
		id, idHex := messageID(p.run, uint32(j), seq)
		fillPayload(buf, payloadHeader{Run: p.run, SentNS: int64(time.Since(p.epoch)), Sender: uint32(j), Seq: seq}, fill)
		req := api.SendRequest{
			MessageID: idHex,
			To:        to.handle,
			Envelopes: []api.OutgoingEnvelope{{Handle: to.handle, DeviceID: to.id, Ciphertext: buf}},
		}
		p.attempts.Add(1)
		// A request under way when the duration ends may finish: its
		// context is not the sending loop's.
		rctx, cancel := context.WithTimeout(context.Background(), p.cfg.RequestTimeout)
		var resp api.SendResponse
		err := call(rctx, client, http.MethodPost, url, from.token, req, &resp)
		cancel()
		if err != nil {
			p.errs.Add(errorCode(err))
			continue
		}
		p.acked.Add(1)
		p.track.acked(id)
	}
}

// runPhase runs the senders for the configured duration, then waits up to
// Drain for deliveries in flight.
func (p *parleyRun) runPhase(ctx context.Context) (*Phase, error) {
	if len(p.devices) < 2 {
		return nil, fmt.Errorf("loadgen: only %d devices set up, need 2", len(p.devices))
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
	forEach(ctx, len(p.devices), 64, func(i int) {
		if c := p.devices[i].conn; c != nil {
			_ = c.Close(websocket.StatusNormalClosure, "load run over")
		}
	})
	if p.stopReceive != nil {
		p.stopReceive()
	}
	for _, d := range p.devices {
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
