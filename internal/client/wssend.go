package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/internal/api"
)

// Sends over the delivery connection.
//
// While Run or Sync holds the delivery WebSocket, messages go out as
// "send" frames on it (docs/PROTOCOL-api.md §7) rather than as requests
// of their own: the server answers each with "sent" or "error", matched
// by id. The reader of the connection hands answers to their waiting
// sends directly, so a send made from the receiving loop itself (receipts
// flushed after an envelope) cannot wait on its own loop. Without a
// connection, or if it ends before the answer came, a message is sent by
// POST /v1/messages; the server knows it by its message id, so a send
// whose answer was lost is stored once.

// errNoSocket means no delivery connection could carry a send: the
// caller sends over HTTP.
var errNoSocket = errors.New("client: no delivery connection")

// socketSends routes sends over the live delivery connection.
type socketSends struct {
	mu      sync.Mutex
	conn    *websocket.Conn // nil: none
	nextID  uint64
	waiting map[uint64]chan api.Frame // closed without a frame if the connection ends
}

// attach makes conn the connection sends use.
func (s *socketSends) attach(conn *websocket.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conn = conn
	if s.waiting == nil {
		s.waiting = make(map[uint64]chan api.Frame)
	}
}

// detach ends conn's use: sends waiting on it give up (and go over HTTP).
func (s *socketSends) detach(conn *websocket.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != conn {
		return
	}
	s.conn = nil
	for id, ch := range s.waiting {
		close(ch)
		delete(s.waiting, id)
	}
}

// answer hands a sent or error frame to its send; it reports whether f
// was such a frame.
func (s *socketSends) answer(f *api.Frame) bool {
	if f.Type != api.FrameSent && f.Type != api.FrameError {
		return false
	}
	s.mu.Lock()
	ch, ok := s.waiting[f.ID]
	delete(s.waiting, f.ID)
	s.mu.Unlock()
	if ok {
		ch <- *f // buffered: never blocks
	}
	return true
}

// send sends req over the connection and waits for its answer:
// errNoSocket if there is no connection or it ended first, an *APIError
// if the server refused the message.
func (s *socketSends) send(ctx context.Context, req *api.SendRequest) (*api.SendResponse, error) {
	s.mu.Lock()
	conn := s.conn
	if conn == nil {
		s.mu.Unlock()
		return nil, errNoSocket
	}
	s.nextID++
	id := s.nextID
	ch := make(chan api.Frame, 1)
	s.waiting[id] = ch
	s.mu.Unlock()
	forget := func() {
		s.mu.Lock()
		delete(s.waiting, id)
		s.mu.Unlock()
	}

	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if err := writeFrame(ctx, conn, api.Frame{Type: api.FrameSend, ID: id, Send: req}); err != nil {
		forget()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %w", errNoSocket, err)
	}
	select {
	case f, ok := <-ch:
		switch {
		case !ok:
			return nil, errNoSocket
		case f.Type == api.FrameSent && f.Sent != nil:
			return f.Sent, nil
		case f.Type == api.FrameError && f.Error != nil:
			st, known := api.HTTPStatus(f.Error.Code)
			if !known {
				st = http.StatusInternalServerError
			}
			return nil, &APIError{Status: st, Code: f.Error.Code, Message: f.Error.Message, Mismatch: f.Error.Mismatch}
		}
		b, _ := json.Marshal(f)
		return nil, fmt.Errorf("client: the server answered a send with %s", b)
	case <-ctx.Done():
		forget()
		return nil, ctx.Err()
	}
}

// postMessage sends req over the delivery connection if there is one,
// else (or if it ends first) by POST /v1/messages.
func (c *Client) postMessage(ctx context.Context, req *api.SendRequest) error {
	_, err := c.sockets.send(ctx, req)
	if !errors.Is(err, errNoSocket) {
		return err
	}
	var resp api.SendResponse
	return c.call(ctx, http.MethodPost, api.PathMessages, req, &resp, true)
}
