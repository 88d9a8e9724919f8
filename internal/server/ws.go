package server

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/store"
)

// WebSocket close codes beyond RFC 6455's (see docs/PROTOCOL-api.md).
const (
	// CloseReplaced: a newer connection of the same device took over. A
	// client must not reconnect automatically after it.
	CloseReplaced websocket.StatusCode = 4000
	// CloseDeviceRemoved: the device is no longer in its account's list.
	CloseDeviceRemoved websocket.StatusCode = 4001
)

// Delivery bounds.
const (
	pendingBatch = 100    // envelopes read from the store at once
	maxAckSeqs   = 10_000 // seqs in one ack frame
	// maxSendsInFlight bounds the sends of one connection being stored at
	// once; the connection's next frame is read when one finishes.
	maxSendsInFlight = 64
)

// FrameDeviceList is the server's hint that an account's device list
// changed (api.Frame's comment names it; api has no constant for it).
const FrameDeviceList = "device_list"

var (
	errReplaced   = errors.New("server: replaced by a newer connection")
	errPingFailed = errors.New("server: keepalive ping failed")
)

// wsConn is one delivery connection, as the registry knows it.
type wsConn struct {
	cancel context.CancelCauseFunc
}

// connRegistry keeps the newest delivery connection of each device on this
// node.
type connRegistry struct {
	mu sync.Mutex
	m  map[deviceRef]*wsConn
}

func newConnRegistry() *connRegistry { return &connRegistry{m: make(map[deviceRef]*wsConn)} }

func (r *connRegistry) add(ref deviceRef, c *wsConn) (old *wsConn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old = r.m[ref]
	r.m[ref] = c
	return old
}

func (r *connRegistry) remove(ref deviceRef, c *wsConn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m[ref] == c {
		delete(r.m, ref)
	}
}

// beginWS counts a WebSocket handler in, unless shutdown has begun.
func (s *Server) beginWS() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	s.wsWG.Add(1)
	return true
}

func (s *Server) handleWebSocket(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	if !s.beginWS() {
		writeAPIError(w, errShuttingDown)
		return
	}
	// The device's newest connection replaces its older one. It takes its
	// place before the upgrade is answered: a client that has seen its
	// connection accepted and then opens another (a second process on the
	// same home) must find the first one replaced, not the other way round.
	ref := deviceRef{c.handle, c.device}
	ctx, cancel := context.WithCancelCause(context.Background())
	me := &wsConn{cancel: cancel}
	if old := s.conns.add(ref, me); old != nil {
		old.cancel(errReplaced)
	}
	sb := &smallBuffers{ResponseWriter: w}
	w.Header().Set(api.HeaderFeatures, api.FeatureSend)
	conn, err := websocket.Accept(sb, r, nil)
	if err != nil {
		s.conns.remove(ref, me)
		cancel(nil)
		s.wsWG.Done()
		return // Accept has answered the request
	}
	// The connection is hijacked: net/http is done with it. Delivery runs
	// in a goroutine of its own and this one returns, so the request, its
	// headers and net/http's state for the connection are freed: an idle
	// device costs two parked goroutines (this and the reader) and the
	// WebSocket's buffers, not a third goroutine deep in net/http.
	dataNext := sb.dataNext()
	go func() {
		defer s.wsWG.Done()
		s.deliver(ctx, me, conn, dataNext, c)
	}()
}

// deliver runs one device's delivery connection, registered as me, until
// it ends or ctx (me's) is cancelled. dataNext reports whether another
// data frame has arrived already (smallBuffers).
func (s *Server) deliver(ctx context.Context, me *wsConn, conn *websocket.Conn, dataNext func() bool, c caller) {
	log := s.log.With("handle", c.handle, "device", c.device)
	defer me.cancel(nil)
	ref := deviceRef{c.handle, c.device}
	defer s.conns.remove(ref, me)
	s.metrics.WebSockets.Inc()
	defer s.metrics.WebSockets.Dec()

	// Subscribe before the first read of the queue, so no wake-up is lost.
	mail, unsubMail := s.bus.Subscribe(mailKey(c.handle, c.device))
	defer unsubMail()
	devs, unsubDevs := s.bus.Subscribe(devicesKey(c.handle))
	defer unsubDevs()

	// A frame holds at most a send: a request body and its wrapping.
	conn.SetReadLimit(s.cfg.MaxBodyBytes + frameOverhead)
	acks := make(chan []int64)
	readErr := make(chan error, 1)
	var wg sync.WaitGroup
	// fw writes the server's frames (pings and the close frame go to conn
	// directly), each bounded by WriteTimeout (wswriter.go).
	fw := newFrameWriter(conn, s.cfg.WriteTimeout)
	wg.Go(func() { readErr <- s.readFrames(ctx, conn, fw, dataNext, c, acks) })
	stopPing, pingDone := s.keepalive(conn, me.cancel)

	code, reason := s.deliveryLoop(ctx, fw, c, wakeups{mail, devs}, acks, readErr)
	log.Debug("delivery connection ends", "code", code, "reason", reason)
	stopPing()
	if errors.Is(context.Cause(ctx), errPingFailed) {
		conn.CloseNow() // it answers no ping: no close handshake either
	} else {
		conn.Close(code, reason)
	}
	me.cancel(nil)
	wg.Wait()
	fw.stop()
	pingDone()
}

// wakeups are the bus subscriptions of one delivery connection.
type wakeups struct {
	mail <-chan struct{} // the device has new mail
	devs <-chan struct{} // the account's device list changed
}

// pollDelay is the wait before an idle connection re-reads its queue:
// Config.PollInterval ±25%, so that connections opened together spread
// their reads.
func (s *Server) pollDelay() time.Duration {
	d := s.cfg.PollInterval
	return d - d/4 + rand.N(d/2+1)
}

// deliveryLoop sends envelopes and answers acks and wake-ups; it returns
// the close code and reason to end the connection with.
//
// Besides the bus's wake-ups, an idle connection re-reads its queue every
// Config.PollInterval: a wake-up from another node can be lost (the bus
// restarting, a node dying between its commit and its publish), and the
// envelope must still arrive.
func (s *Server) deliveryLoop(ctx context.Context, fw *frameWriter, c caller,
	wake wakeups, acks <-chan []int64, readErr <-chan error) (websocket.StatusCode, string) {
	var (
		lastSent int64
		unacked  = make(map[int64]struct{})
		caughtUp bool // the last read of the queue found nothing more
		drained  bool // the drained frame was sent
		polled   bool // this read of the queue is a poll, not a wake-up
	)
	defer func() { s.metrics.Unacked.Sub(float64(len(unacked))) }()
	// The device list version this connection knows: a devices wake-up
	// that finds the same version (a bus reconnecting wakes everyone) sends
	// no frame.
	var listVersion uint64
	if l, err := onOwnStack(s.deep, func() (store.DeviceList, error) { return s.store.DeviceList(ctx, c.handle) }); err == nil {
		listVersion = l.Version
	} else if !errors.Is(err, store.ErrNotFound) {
		return s.endCode(ctx, err)
	}
	var (
		pollTimer *time.Timer
		poll      <-chan time.Time // nil: never polls
	)
	if s.cfg.PollInterval > 0 {
		pollTimer = time.NewTimer(s.pollDelay())
		defer pollTimer.Stop()
		poll = pollTimer.C
	}
	fill := func() (int, error) {
		sent := 0
		for len(unacked) < s.cfg.MaxUnacked {
			n := min(pendingBatch, s.cfg.MaxUnacked-len(unacked))
			envs, err := s.store.Pending(ctx, c.handle, c.device, lastSent, n)
			if err != nil {
				return sent, err
			}
			for _, e := range envs {
				if err := fw.writeEnvelope(e); err != nil { // a notice or an envelope (deliveryFrame, realmtoken.go)
					return sent, err
				}
				lastSent = e.Seq
				unacked[e.Seq] = struct{}{}
				sent++
				s.metrics.Deliveries.Inc()
				s.metrics.Unacked.Inc()
				if drained {
					s.metrics.DeliveryLatency.Observe(time.Since(e.ServerTime).Seconds())
				}
			}
			if len(envs) < n {
				caughtUp = true
				if !drained {
					drained = true
					return sent, fw.writeFrame(api.Frame{Type: api.FrameDrained})
				}
				return sent, nil
			}
		}
		return sent, nil
	}

	for {
		if !caughtUp {
			n, err := onOwnStack(s.deep, fill)
			if polled && n > 0 {
				s.metrics.PollFinds.Add(float64(n))
			}
			polled = false
			if err != nil {
				return s.endCode(ctx, err)
			}
		}
		select {
		case <-wake.mail:
			caughtUp = false
			if pollTimer != nil { // only idle connections poll
				pollTimer.Reset(s.pollDelay())
			}
		case <-poll:
			caughtUp, polled = false, true
			pollTimer.Reset(s.pollDelay())
		case seqs := <-acks:
			for _, q := range seqs {
				if _, ok := unacked[q]; ok {
					delete(unacked, q)
					s.metrics.Unacked.Dec()
					s.metrics.Acks.Inc()
				}
			}
		case <-wake.devs:
			l, err := onOwnStack(s.deep, func() (store.DeviceList, error) { return s.store.DeviceList(ctx, c.handle) })
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return s.endCode(ctx, err)
			}
			if !hasDevice(l, c.device) {
				return CloseDeviceRemoved, "device removed"
			}
			if l.Version == listVersion {
				continue
			}
			listVersion = l.Version
			if err := fw.writeFrame(api.Frame{Type: FrameDeviceList, Handle: c.handle}); err != nil {
				return s.endCode(ctx, err)
			}
		case err := <-readErr:
			return s.endCode(ctx, err)
		case <-ctx.Done():
			return s.endCode(ctx, context.Cause(ctx))
		case <-s.shutdown:
			return websocket.StatusGoingAway, "server shutting down"
		}
	}
}

// endCode picks the close code for the error that ended a connection.
func (s *Server) endCode(ctx context.Context, err error) (websocket.StatusCode, string) {
	var ce *closeError
	switch {
	case s.closing.Load():
		return websocket.StatusGoingAway, "server shutting down"
	case errors.Is(context.Cause(ctx), errReplaced) || errors.Is(err, errReplaced):
		return CloseReplaced, "replaced by a newer connection"
	case errors.As(err, &ce):
		return ce.code, ce.reason
	case websocket.CloseStatus(err) != -1, errors.Is(err, errPingFailed):
		return websocket.StatusNormalClosure, ""
	default:
		s.log.Warn("delivery connection failed", "err", err)
		return websocket.StatusInternalError, "server error"
	}
}

// closeError ends a connection with a given code.
type closeError struct {
	code   websocket.StatusCode
	reason string
}

func (e *closeError) Error() string { return e.reason }

// readFrames reads client frames until the connection ends: acks are
// applied to the store, then passed to the delivery loop; sends are handed
// to the connection's wsSender (wssend.go). When another data frame has already arrived behind an ack
// (dataNext), its acks join it in one store.Ack:
// a client that acknowledges each envelope in a frame of its own
// (internal/client does, after committing each message locally) costs the
// store about one Ack per read, not one per envelope, so acks keep up
// with delivery. Acks are applied before any read that may wait or that
// meets a close frame (which the WebSocket library answers inside Read),
// so a client that acknowledges and then closes finds its acks applied
// when it reconnects.
func (s *Server) readFrames(ctx context.Context, conn *websocket.Conn, fw *frameWriter, dataNext func() bool, c caller, acks chan<- []int64) error {
	sends := s.newSender(ctx, fw, c)
	defer sends.wait()
	var pending []int64
	for {
		// Reads use a context that is never cancelled: cancelling a read
		// would drop the connection without a close frame. Close ends it.
		typ, data, err := conn.Read(context.Background())
		if err == nil {
			var f clientFrame
			f, err = decodeFrame(typ, data)
			pending = append(pending, f.seqs...)
			if f.send != nil {
				sends.start(f.send)
			}
			if err == nil && dataNext() && len(pending) < maxAckSeqs {
				continue // another frame is here already: take it too
			}
		}
		if len(pending) > 0 {
			if _, err := onOwnStack(s.deep, func() (struct{}, error) { return struct{}{}, s.store.Ack(ctx, c.handle, c.device, pending) }); err != nil {
				return err
			}
			select {
			case acks <- pending:
			case <-ctx.Done():
				return context.Cause(ctx)
			}
			pending = nil
		}
		if err != nil {
			return err
		}
	}
}

// clientFrame is what one client frame asks for: acks, or one send.
type clientFrame struct {
	seqs []int64
	send *api.Frame // a FrameSend with its ID and Send checked
}

// decodeFrame decodes one client frame. Unknown frame types decode to
// nothing, for later versions. The common forms of acks and sends take
// a fast path (parseFrameFast, frames.go); the rest encoding/json.
func decodeFrame(typ websocket.MessageType, data []byte) (clientFrame, error) {
	if typ != websocket.MessageText {
		return clientFrame{}, &closeError{websocket.StatusUnsupportedData, "frames are JSON text"}
	}
	f, ok := parseFrameFast(data)
	if !ok {
		if err := json.Unmarshal(data, &f); err != nil {
			return clientFrame{}, &closeError{websocket.StatusPolicyViolation, "malformed frame"}
		}
	}
	return checkFrame(f)
}

// checkFrame is what decodeFrame makes of a decoded frame.
func checkFrame(f api.Frame) (clientFrame, error) {
	switch f.Type {
	case api.FrameAck:
		if len(f.Seqs) > maxAckSeqs {
			return clientFrame{}, &closeError{websocket.StatusPolicyViolation, "too many seqs in one ack"}
		}
		return clientFrame{seqs: f.Seqs}, nil
	case api.FrameSend:
		// Without an id the answer could not be matched: that is a broken
		// client, not a bad request.
		if f.ID == 0 {
			return clientFrame{}, &closeError{websocket.StatusPolicyViolation, "a send frame needs an id of at least 1"}
		}
		return clientFrame{send: &api.Frame{Type: api.FrameSend, ID: f.ID, Send: f.Send}}, nil
	}
	return clientFrame{}, nil
}

// keepalive pings the client every PingInterval; a ping without a pong
// within WriteTimeout ends the connection. It runs on a timer, so an idle
// connection keeps no goroutine for it: the timer's goroutine lives only
// while a ping waits for its pong. stop ends the pings; wait waits for a
// ping in flight (closing the connection ends it).
func (s *Server) keepalive(conn *websocket.Conn, cancel context.CancelCauseFunc) (stop, wait func()) {
	var (
		mu      sync.Mutex
		stopped bool
		t       *time.Timer
		pinging sync.WaitGroup
	)
	ping := func() {
		pinging.Add(1) // before mu is released below: stop waits for it
		mu.Unlock()
		defer pinging.Done()
		// Not derived from the connection's context: cancelling a ping
		// in flight would drop the connection without a close frame.
		pctx, pcancel := context.WithTimeout(context.Background(), s.cfg.WriteTimeout)
		err := conn.Ping(pctx)
		pcancel()
		if err != nil {
			cancel(errPingFailed)
			return
		}
		mu.Lock()
		if !stopped {
			t.Reset(s.cfg.PingInterval)
		}
		mu.Unlock()
	}
	mu.Lock()
	t = time.AfterFunc(s.cfg.PingInterval, func() {
		mu.Lock()
		if stopped {
			mu.Unlock()
			return
		}
		ping() // unlocks mu
	})
	mu.Unlock()
	stop = func() {
		mu.Lock()
		stopped = true
		t.Stop()
		mu.Unlock()
	}
	return stop, pinging.Wait
}

func apiEnvelope(e store.Envelope) *api.Envelope {
	return &api.Envelope{
		Seq:          e.Seq,
		MessageID:    e.MessageID,
		Sender:       e.Sender,
		SenderDevice: e.SenderDevice,
		Ciphertext:   e.Ciphertext,
		ServerTime:   e.ServerTime.UnixMilli(),
	}
}

func hasDevice(l store.DeviceList, id uint32) bool {
	for _, d := range l.Devices {
		if d.ID == id {
			return true
		}
	}
	return false
}
