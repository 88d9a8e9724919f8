package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// servePprof starts Go's profiler (net/http/pprof under /debug/pprof/) on
// its own listener if Config.PprofAddr is set (config allows only a
// loopback address); stop shuts it down. It is for performance work:
//
//	go tool pprof -seconds 20 http://127.0.0.1:6060/debug/pprof/profile
func (s *Server) servePprof() (stop func(), err error) {
	if s.cfg.PprofAddr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", s.cfg.PprofAddr)
	if err != nil {
		return nil, fmt.Errorf("server: listening for pprof on %s: %w", s.cfg.PprofAddr, err)
	}
	s.mu.Lock()
	s.pprofLn = ln
	s.mu.Unlock()
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // and the named profiles: heap, goroutine, ...
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Warn("pprof listener failed", "err", err)
		}
	}()
	s.log.Info("pprof listening", "addr", ln.Addr().String())
	return func() {
		// A CPU profile or trace in progress is cut short.
		hs.Close()
		<-done
	}, nil
}

// PprofAddr returns the address of the profiler's listener while Run
// serves, nil without one.
func (s *Server) PprofAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pprofLn == nil {
		return nil
	}
	return s.pprofLn.Addr()
}
