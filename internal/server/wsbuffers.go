package server

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
)

// The buffers a delivery WebSocket reads and writes through. net/http
// hands a hijacked connection over with 4 KiB for each, 8 KiB of an idle
// device's memory; frames are mostly far smaller (an ack, an envelope of a
// text message), and a larger one costs only an extra read or write
// system call: bufio passes a large payload straight through.
const (
	wsReadBuffer  = 512
	wsWriteBuffer = 1024
)

// smallBuffers is a ResponseWriter whose Hijack gives the WebSocket
// library (websocket.Accept) buffers of wsReadBuffer and wsWriteBuffer
// bytes instead of net/http's.
type smallBuffers struct {
	http.ResponseWriter
}

// Hijack implements http.Hijacker. Bytes the client sent after its
// request, already buffered by net/http, are read first.
func (w smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Writer.Flush(); err != nil { // empty, but keep any bytes in order
		conn.Close()
		return nil, nil, err
	}
	var r io.Reader = conn
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		r = io.MultiReader(bytes.NewReader(bytes.Clone(b)), conn)
	}
	return conn, bufio.NewReadWriter(bufio.NewReaderSize(r, wsReadBuffer), bufio.NewWriterSize(conn, wsWriteBuffer)), nil
}

// Unwrap gives http.ResponseController the ResponseWriter underneath.
func (w smallBuffers) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// onOwnStack runs f on a short-lived goroutine and waits for it. The
// store's methods run deep (SQLite, in Go): a delivery connection's
// long-lived goroutines that called them directly would each keep a stack
// of tens of KiB while they sit idle (until the garbage collector shrinks
// it), times every connected device. The extra goroutine costs about a
// microsecond per call.
func onOwnStack(f func() error) error {
	_, err := onOwnStack2(func() (struct{}, error) { return struct{}{}, f() })
	return err
}

// onOwnStack2 is onOwnStack for a function with a result.
func onOwnStack2[T any](f func() (T, error)) (T, error) {
	var (
		v    T
		err  error
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		v, err = f()
	}()
	<-done
	return v, err
}
