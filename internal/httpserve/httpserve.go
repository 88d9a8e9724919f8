// Package httpserve holds what parleyd (internal/server) and parley-realm
// (internal/realm) both serve HTTP with: the TLS listener, the http.Server
// settings and the graceful stop.
package httpserve

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// TLS wraps ln in TLS with the certificate and key in PEM files: TLS 1.2
// or later, offering HTTP/2 and HTTP/1.1.
func TLS(ln net.Listener, certFile, keyFile string) (net.Listener, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading TLS certificate: %w", err)
	}
	return tls.NewListener(ln, &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
	}), nil
}

// NewServer returns an http.Server for h: request headers within 10 s,
// idle keep-alive connections closed after 2 minutes, net/http's own
// complaints logged to log at Warn.
func NewServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// Shutdown stops hs: no new connections, and in-flight requests may finish
// until ctx ends; what is left then is closed.
func Shutdown(ctx context.Context, hs *http.Server, log *slog.Logger) {
	if err := hs.Shutdown(ctx); err != nil {
		log.Warn("in-flight requests did not finish in time; closing them", "err", err)
		hs.Close()
	}
}
