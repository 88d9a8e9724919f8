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
// bytes instead of net/http's, and keeps the read buffer to tell how much
// has arrived (buffered).
type smallBuffers struct {
	http.ResponseWriter
	br *bufio.Reader // set by Hijack
}

// Hijack implements http.Hijacker. Bytes the client sent after its
// request, already buffered by net/http, are read first.
func (w *smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
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
	w.br = bufio.NewReaderSize(r, wsReadBuffer)
	return conn, bufio.NewReadWriter(w.br, bufio.NewWriterSize(conn, wsWriteBuffer)), nil
}

// Unwrap gives http.ResponseController the ResponseWriter underneath.
func (w *smallBuffers) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// dataNext returns a function that reports whether the start of another
// data frame has already arrived in the read buffer, from the first byte
// of its header (RFC 6455 §5.2: the opcode is its low four bits; 0
// continues a message, 1 is text, 2 binary). Control frames (close, ping,
// pong) are not data: the WebSocket library answers them inside Read.
// Only the connection's reader may call it, between its reads, which leave
// the buffer at a frame boundary. (It keeps the buffer only, not w, which
// holds net/http's state of the request.)
func (w *smallBuffers) dataNext() func() bool {
	br := w.br
	return func() bool {
		if br.Buffered() == 0 {
			return false
		}
		b, err := br.Peek(1)
		return err == nil && b[0]&0x0f <= 2
	}
}
