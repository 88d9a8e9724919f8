package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/store"
)

// errWriteTimeout ends a connection whose write took longer than
// Config.WriteTimeout.
var errWriteTimeout = errors.New("server: write timed out")

// frameWriter writes one connection's frames, one at a time, each encoded
// into a buffer from framePool (not one kept per connection: an idle
// device keeps none).
//
// Every write is bounded by the write timeout: a client that stops
// reading must not hold its delivery loop (or its sends' answers)
// forever. A context with a deadline would bound it too, but costs a
// timer and, inside the WebSocket library, a context.AfterFunc per write;
// instead the writer keeps one timer for the connection, armed while
// writes are under way: when it finds the write in progress older than
// the timeout, it closes the connection, which ends the write (as the
// library does when a write's context expires). Writes themselves pass a
// context that is never done.
type frameWriter struct {
	conn    *websocket.Conn
	timeout time.Duration

	mu sync.Mutex // one write at a time

	wmu      sync.Mutex // guards the watchdog's state below
	started  time.Time  // when the write in progress began; zero: none
	timer    *time.Timer
	armed    bool // timer is set
	stopped  bool // the connection is done: no more arming
	timedOut bool // the watchdog closed the connection
}

// frameBufferKeep is the largest buffer framePool keeps; a larger
// frame's buffer is dropped after its write.
const frameBufferKeep = 16 << 10

// framePool holds encoding buffers (*[]byte) of frameWriters.
var framePool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func newFrameWriter(conn *websocket.Conn, timeout time.Duration) *frameWriter {
	return &frameWriter{conn: conn, timeout: timeout}
}

// writeEnvelope writes the delivery frame of e (deliveryFrame).
func (w *frameWriter) writeEnvelope(e store.Envelope) error {
	bp := framePool.Get().(*[]byte)
	b, err := appendDeliveryFrame((*bp)[:0], e)
	if err != nil {
		return err
	}
	return w.write(bp, b)
}

// writeFrame writes f.
func (w *frameWriter) writeFrame(f api.Frame) error {
	bp := framePool.Get().(*[]byte)
	b, err := appendFrame((*bp)[:0], f)
	if err != nil {
		return err
	}
	return w.write(bp, b)
}

// write writes b, encoded into *bp, and returns bp to framePool.
func (w *frameWriter) write(bp *[]byte, b []byte) error {
	defer func() {
		if cap(b) <= frameBufferKeep {
			*bp = b
			framePool.Put(bp)
		}
	}()
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.begin() {
		return errWriteTimeout
	}
	err := w.conn.Write(context.Background(), websocket.MessageText, b)
	if w.end() {
		return fmt.Errorf("%w (after %v)", errWriteTimeout, w.timeout)
	}
	return err
}

// begin marks a write as started and arms the watchdog; it reports false
// if the watchdog has closed the connection already.
func (w *frameWriter) begin() bool {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if w.timedOut {
		return false
	}
	w.started = time.Now()
	if !w.armed && !w.stopped {
		w.armed = true
		if w.timer == nil {
			w.timer = time.AfterFunc(w.timeout, w.watch)
		} else {
			w.timer.Reset(w.timeout)
		}
	}
	return true
}

// end marks the write as finished; it reports whether the watchdog ended
// it.
func (w *frameWriter) end() (timedOut bool) {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	w.started = time.Time{}
	return w.timedOut
}

// watch is the watchdog's timer: it closes the connection if the write
// in progress began a timeout ago or earlier, waits for the rest of its
// time if it began later, and disarms if no write is under way.
func (w *frameWriter) watch() {
	w.wmu.Lock()
	switch {
	case w.stopped || w.started.IsZero():
		w.armed = false
	case time.Since(w.started) >= w.timeout:
		w.armed = false
		w.timedOut = true
		w.wmu.Unlock()
		w.conn.CloseNow() // the write returns; so does any other on the connection
		return
	default:
		w.timer.Reset(w.timeout - time.Since(w.started))
	}
	w.wmu.Unlock()
}

// stop ends the watchdog, once the connection is done.
func (w *frameWriter) stop() {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	w.stopped = true
	if w.timer != nil {
		w.timer.Stop()
	}
}
