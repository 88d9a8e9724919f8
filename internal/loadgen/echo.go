package loadgen

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"
)

// EchoServer is the baseline: a plain WebSocket server that writes every
// message back on the connection it came from, with nothing in between.
type EchoServer struct {
	srv    *http.Server
	ln     net.Listener
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   chan struct{}
}

// StartEchoServer listens on 127.0.0.1:0 and serves until Close. Messages
// up to readLimit bytes are echoed.
func StartEchoServer(readLimit int64, log *slog.Logger) (*EchoServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("loadgen: echo server: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &EchoServer{ln: ln, ctx: ctx, cancel: cancel, done: make(chan struct{})}
	e.srv = &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { e.serve(w, r, readLimit) }),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go func() {
		defer close(e.done)
		_ = e.srv.Serve(ln) // returns http.ErrServerClosed after Close
	}()
	return e, nil
}

func (e *EchoServer) serve(w http.ResponseWriter, r *http.Request, readLimit int64) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	e.wg.Add(1)
	defer e.wg.Done()
	defer c.CloseNow()
	c.SetReadLimit(readLimit)
	for {
		typ, data, err := c.Read(e.ctx)
		if err != nil {
			return
		}
		if err := c.Write(e.ctx, typ, data); err != nil {
			return
		}
	}
}

// URL is the server's ws:// address.
func (e *EchoServer) URL() string { return "ws://" + e.ln.Addr().String() + "/" }

// Close stops the server and every echo loop.
func (e *EchoServer) Close() {
	e.cancel()
	_ = e.srv.Close()
	<-e.done
	e.wg.Wait()
}

// echoRun is the baseline phase: the same number of connections, senders,
// payload size, rate and duration as the parleyd phase, against the
// in-process echo server. A sender writes a message on a random
// connection and waits for its echo (one at a time, like a parleyd sender
// waits for its HTTP answer); latency is the round trip, measured from the
// send time inside the payload as for parleyd.
type echoRun struct {
	cfg     Config
	log     *slog.Logger
	clients *httpClients
	run     uint64
	epoch   time.Time

	conns   []*websocket.Conn
	replies []chan uint32 // per sender: seq of each echo that came back

	setupErrs  Errors
	lat        *Recorder
	errs       Errors
	attempts   atomic.Int64
	written    atomic.Int64
	acked      atomic.Int64 // round trips the sender saw complete
	delivered  atomic.Int64
	inWindow   atomic.Int64
	windowOpen atomic.Bool
	foreign    atomic.Int64
	closing    atomic.Bool
	readCtx    context.Context
	stopRead   context.CancelFunc
	readersWG  sync.WaitGroup
}

func newEchoRun(cfg Config, log *slog.Logger, clients *httpClients) *echoRun {
	r := &echoRun{cfg: cfg, log: log, clients: clients, run: rand.Uint64(), epoch: time.Now(), lat: NewRecorder()}
	r.replies = make([]chan uint32, cfg.Senders)
	for i := range r.replies {
		// Room for a few echoes that came after their sender gave up, so
		// they do not crowd out the one it waits for.
		r.replies[i] = make(chan uint32, 8)
	}
	return r
}

func (r *echoRun) connectAll(ctx context.Context, url string) {
	r.readCtx, r.stopRead = context.WithCancel(context.Background())
	conns := make([]*websocket.Conn, r.cfg.Devices)
	forEach(ctx, r.cfg.Devices, r.cfg.SetupConcurrency, func(i int) {
		dctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
		defer cancel()
		c, _, err := websocket.Dial(dctx, url, &websocket.DialOptions{HTTPClient: r.clients.get(i)})
		if err != nil {
			r.setupErrs.Add("connect_" + errorCode(err))
			r.log.Debug("echo connect failed", "conn", i, "err", err)
			return
		}
		c.SetReadLimit(int64(r.cfg.Size) + 4096)
		conns[i] = c
	})
	for _, c := range conns {
		if c != nil {
			r.conns = append(r.conns, c)
		}
	}
	for _, c := range r.conns {
		r.readersWG.Add(1)
		go r.read(c)
	}
}

func (r *echoRun) read(c *websocket.Conn) {
	defer r.readersWG.Done()
	for {
		_, data, err := c.Read(r.readCtx)
		if err != nil {
			if !r.closing.Load() {
				r.errs.Add("ws_closed")
			}
			return
		}
		now := time.Since(r.epoch)
		h, err := parseHeader(data)
		if err != nil || h.Run != r.run || int(h.Sender) >= len(r.replies) {
			r.foreign.Add(1)
			continue
		}
		r.lat.Add(now - time.Duration(h.SentNS))
		r.delivered.Add(1)
		if r.windowOpen.Load() {
			r.inWindow.Add(1)
		}
		select {
		case r.replies[h.Sender] <- h.Seq:
		default: // the sender gave up on it already
		}
	}
}

func (r *echoRun) sendLoop(ctx context.Context, j int, limiter *rate.Limiter) {
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(rng.Uint32())
	}
	fill := rand.NewChaCha8(seed)
	buf := make([]byte, r.cfg.Size)
	for seq := uint32(0); ctx.Err() == nil; seq++ {
		if limiter != nil && limiter.Wait(ctx) != nil {
			return
		}
		c := r.conns[rng.IntN(len(r.conns))]
		fillPayload(buf, payloadHeader{Run: r.run, SentNS: int64(time.Since(r.epoch)), Sender: uint32(j), Seq: seq}, fill)
		r.attempts.Add(1)
		wctx, cancel := context.WithTimeout(context.Background(), r.cfg.RequestTimeout)
		err := c.Write(wctx, websocket.MessageBinary, buf)
		if err != nil {
			cancel()
			r.errs.Add(errorCode(err))
			continue
		}
		r.written.Add(1)
		if err := r.awaitEcho(wctx, j, seq); err != nil {
			r.errs.Add(errorCode(err))
		} else {
			r.acked.Add(1)
		}
		cancel()
	}
}

func (r *echoRun) awaitEcho(ctx context.Context, j int, seq uint32) error {
	for {
		select {
		case got := <-r.replies[j]:
			if got == seq {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (r *echoRun) runPhase(ctx context.Context) (*Phase, error) {
	if len(r.conns) == 0 {
		return nil, errors.New("loadgen: echo baseline: no connections")
	}
	var limiter *rate.Limiter
	if r.cfg.Rate > 0 {
		limiter = rate.NewLimiter(rate.Limit(r.cfg.Rate), 1)
	}
	probe := startCPU(0)
	start := time.Now()
	r.windowOpen.Store(true)
	sctx, cancel := context.WithTimeout(ctx, r.cfg.Duration)
	var wg sync.WaitGroup
	for j := range r.cfg.Senders {
		wg.Go(func() { r.sendLoop(sctx, j, limiter) })
	}
	wg.Wait()
	cancel()
	r.windowOpen.Store(false)
	elapsed := time.Since(start)
	cpu := probe.stop(elapsed.Seconds())
	// Every sender waited for its echo (or timed out), so nothing is in
	// flight but echoes that came too late; no drain wait is needed.
	missing := max(r.written.Load()-r.delivered.Load(), 0)
	secs := elapsed.Seconds()
	return &Phase{
		Connections:     len(r.conns),
		Seconds:         secs,
		Attempts:        r.attempts.Load(),
		Acked:           r.acked.Load(),
		AckedPerSec:     float64(r.acked.Load()) / secs,
		Delivered:       r.inWindow.Load(),
		DeliveredPerSec: float64(r.inWindow.Load()) / secs,
		DeliveredTotal:  r.delivered.Load(),
		Latency:         r.lat.Summary(),
		Errors:          r.errs.Map(),
		Check:           &Check{Missing: missing},
		Foreign:         r.foreign.Load(),
		CPU:             cpu,
	}, nil
}

func (r *echoRun) close() {
	r.closing.Store(true)
	if r.stopRead != nil {
		r.stopRead()
	}
	for _, c := range r.conns {
		c.CloseNow()
	}
	done := make(chan struct{})
	go func() { r.readersWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		r.log.Warn("echo readers still running after close")
	}
}
