package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// PathMetrics serves the Prometheus metrics (internal/metrics), on the API
// listener or, with Config.MetricsAddr, on a listener of their own.
const PathMetrics = "/metrics"

// QueueCounter is implemented by stores that count all queued envelopes
// cheaply; the server then exports the count as parley_queued_envelopes.
type QueueCounter interface {
	QueuedEnvelopes(ctx context.Context) (int64, error)
}

// busStats is implemented by buses between nodes (natsbus.Bus).
type busStats interface {
	Connected() bool
	Reconnects() uint64
	Dropped() uint64
}

// instrument adds the metrics that depend on the store and bus in use.
func (s *Server) instrument() {
	if qc, ok := s.store.(QueueCounter); ok {
		s.metrics.QueueDepth(qc.QueuedEnvelopes)
	}
	if bs, ok := s.bus.(busStats); ok {
		s.metrics.Bus(bs.Connected, bs.Reconnects, bs.Dropped)
	}
}

// serveMetrics starts the separate metrics listener if Config.MetricsAddr
// is set; stop shuts it down.
func (s *Server) serveMetrics() (stop func(), err error) {
	if s.cfg.MetricsAddr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", s.cfg.MetricsAddr)
	if err != nil {
		return nil, fmt.Errorf("server: listening for metrics on %s: %w", s.cfg.MetricsAddr, err)
	}
	s.mu.Lock()
	s.metricsLn = ln
	s.mu.Unlock()
	mux := http.NewServeMux()
	mux.Handle("GET "+PathMetrics, s.metrics.Handler())
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Warn("metrics listener failed", "err", err)
		}
	}()
	s.log.Info("metrics listening", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := hs.Shutdown(ctx); err != nil {
			hs.Close()
		}
		<-done
	}, nil
}

// MetricsAddr returns the address of the separate metrics listener while
// Run serves, nil without one.
func (s *Server) MetricsAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.metricsLn == nil {
		return nil
	}
	return s.metricsLn.Addr()
}
