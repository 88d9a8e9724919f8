package server

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/parleychat/parley/internal/api"
)

// Sends over the delivery WebSocket.
//
// A device that holds its delivery connection can send on it: a FrameSend
// carries the body of POST /v1/messages, and the answer (FrameSent or
// FrameError, with the same id) comes once the message is durable. It is
// the same send (Server.send: the same checks, the same store call, the
// same errors); what it saves is a request's worth of HTTP per message:
// headers to parse and write, the token to look up, a response to flush.
// The connection was authenticated when it opened, and it is closed when
// its device leaves the account's list.
//
// Sends of one connection are stored concurrently, up to
// maxSendsInFlight; the reader waits for a slot before it reads on, so a
// client that sends faster than the store commits is slowed, not
// answered with errors. Answers are written as sends finish, in any order.

// frameOverhead is what a send frame adds to the request body it carries.
const frameOverhead = 4 << 10

// wsRoute names sends over WebSockets in the request metrics.
const wsRoute = "WS send"

// wsSender runs one connection's sends.
type wsSender struct {
	s   *Server
	ctx context.Context
	fw  *frameWriter
	c   caller
	sem chan struct{}
	wg  sync.WaitGroup
}

func (s *Server) newSender(ctx context.Context, fw *frameWriter, c caller) *wsSender {
	return &wsSender{s: s, ctx: ctx, fw: fw, c: c, sem: make(chan struct{}, maxSendsInFlight)}
}

// start stores f's message and answers it on a worker of the server's
// callPool (the store's calls run deep: see callpool.go), without waiting
// for it; it waits while maxSendsInFlight sends are under way. (A
// goroutine of its own per send, handing the store call to the pool,
// cost a goroutine and a hand-off more per send.)
func (w *wsSender) start(f *api.Frame) {
	w.sem <- struct{}{}
	w.wg.Add(1)
	w.s.deep.goOn(func() {
		defer w.wg.Done()
		defer func() { <-w.sem }()
		w.run(f)
	})
}

// wait returns once every send started has been answered (or its answer
// failed to be written).
func (w *wsSender) wait() { w.wg.Wait() }

func (w *wsSender) run(f *api.Frame) {
	s := w.s
	start := time.Now()
	var (
		resp *api.SendResponse
		err  error
	)
	switch {
	case f.Send == nil:
		err = errorf(api.CodeBadRequest, "A send frame needs a send: the body of POST %s.", api.PathMessages)
	case s.closing.Load():
		err = errShuttingDown
	default:
		resp, err = s.send(w.ctx, w.c, f.Send) // on a pool worker already (start)
	}
	answer := api.Frame{ID: f.ID}
	if err == nil {
		s.metrics.ObserveSend(start, resp.Duplicate, len(f.Send.Envelopes))
		answer.Type, answer.Sent = api.FrameSent, resp
	} else {
		e := w.apiError(err)
		answer.Type, answer.Error = api.FrameError, &e
	}
	status, code := http.StatusOK, ""
	if answer.Error != nil {
		status, code = statusFor(answer.Error.Code), answer.Error.Code
	}
	s.metrics.ObserveHTTP(wsRoute, status, code, time.Since(start))
	if err := w.fw.writeFrame(answer); err != nil && w.ctx.Err() == nil {
		s.log.Debug("answering a send", "handle", w.c.handle, "device", w.c.device, "err", err)
	}
}

// apiError is what the client is told of err, as Server.fail would say it
// over HTTP.
func (w *wsSender) apiError(err error) api.Error {
	ae, internal := w.s.publicError(err)
	if internal && w.ctx.Err() == nil {
		w.s.log.Error("send over WebSocket failed", "handle", w.c.handle, "device", w.c.device, "err", err)
	}
	return ae.e
}
