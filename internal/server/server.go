// Package server is parleyd: the HTTP API, WebSocket delivery, challenge
// authentication and device linking, over a store.Store and a Bus.
//
// Tests and embedders use the same type as the binary:
//
//	srv, err := server.New(cfg, logger) // cfg.Addr "127.0.0.1:0", cfg.DataDir t.TempDir()
//	go srv.Run(ctx)
//	<-srv.Ready()
//	url := "http://" + srv.Addr().String()
//
// docs/PROTOCOL-api.md describes every endpoint.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/blob"
	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/fanout"
	"github.com/parleychat/parley/internal/httpserve"
	"github.com/parleychat/parley/internal/metrics"
	"github.com/parleychat/parley/internal/ratelimit"
	"github.com/parleychat/parley/internal/store"
)

// Bus carries "something changed" signals between connections, possibly
// across nodes. Publish must not block on slow subscribers; a subscription
// channel coalesces signals (capacity one) and never misses one published
// after Subscribe returned.
type Bus interface {
	Publish(ctx context.Context, key string) error
	Subscribe(key string) (<-chan struct{}, func())
}

var _ Bus = (*fanout.Local)(nil)

// DBFile is the name of the SQLite database inside Config.DataDir.
const DBFile = "parley.db"

// Errors.
var (
	ErrStarted = errors.New("server: already started")
	ErrClosed  = errors.New("server: closed")
)

// Options are the parts of a server that a deployment can swap.
type Options struct {
	// Store is required. The server owns it: Run and Close close it.
	Store store.Store
	// Bus is the fan-out bus; nil means an in-process fanout.Local.
	Bus Bus
	// Logger; nil discards logs.
	Logger *slog.Logger
	// Listener, if set, is served instead of listening on Config.Addr.
	Listener net.Listener
	// Blobs stores encrypted files; nil means a diskstore in
	// Config.BlobDir (default <DataDir>/blobs). The server owns it.
	Blobs blob.Store
	// Metrics; nil means new ones (internal/metrics).
	Metrics *metrics.Metrics
}

// Server is one parleyd node.
type Server struct {
	cfg   config.Config
	store store.Store
	blobs blob.Store
	bus   Bus
	log   *slog.Logger
	mux   *http.ServeMux

	challenges *challenges
	proxies    []netip.Prefix // cfg.TrustedProxies (clientAddr)
	registerRL *ratelimit.Limiter
	bundleRL   *ratelimit.Limiter
	joinRL     *ratelimit.Limiter
	turn       turnState // the TURN relay (turn.go)
	pin        pinState  // PIN backup: realm tokens, backups, recovery (realmtoken.go)
	conns      *connRegistry
	deep       *callPool // runs store calls of delivery connections (callpool.go)
	metrics    *metrics.Metrics
	busCloser  io.Closer // the bus New opened, closed with the store

	mu        sync.Mutex
	metricsLn net.Listener
	pprofLn   net.Listener // Config.PprofAddr (pprof.go)
	ln        net.Listener
	started   bool
	closed    bool
	ready     chan struct{}
	shutdown  chan struct{} // closed when shutdown begins
	closing   atomic.Bool
	wsWG      sync.WaitGroup // WebSocket handlers (hijacked, unseen by http.Server)
}

// New opens the store and bus the configuration names (creating the data
// folder with mode 0700): SQLite in cfg.DataDir or PostgreSQL at cfg.DB; an
// in-process bus or NATS at cfg.NATS. The server does not listen until Run
// (or Listen).
func New(cfg config.Config, logger *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("server: creating data folder: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := openStore(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	bus, busCloser, err := openBus(ctx, cfg, logger)
	if err != nil {
		db.Close()
		return nil, err
	}
	s, err := NewWithOptions(cfg, Options{Store: db, Bus: bus, Logger: logger})
	if err != nil {
		if busCloser != nil {
			busCloser.Close()
		}
		db.Close()
		return nil, err
	}
	s.busCloser = busCloser
	return s, nil
}

// NewWithOptions returns a server over the given parts.
func NewWithOptions(cfg config.Config, o Options) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if o.Store == nil {
		return nil, errors.New("server: Options.Store is nil")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Bus == nil {
		o.Bus = fanout.NewLocal()
	}
	proxies, err := config.ParseTrustedProxies(cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	pin, err := newPINState(cfg, o.Store, o.Logger)
	if err != nil {
		return nil, err
	}
	if o.Blobs == nil {
		bs, err := openBlobStore(cfg, o.Store, o.Logger)
		if err != nil {
			return nil, err
		}
		o.Blobs = bs
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New()
	}
	s := &Server{
		cfg:        cfg,
		store:      o.Store,
		blobs:      o.Blobs,
		bus:        o.Bus,
		log:        o.Logger,
		challenges: newChallenges(cfg.ChallengeTTL),
		proxies:    proxies,
		registerRL: ratelimit.New(cfg.RegisterRate, cfg.RegisterBurst, 0),
		bundleRL:   ratelimit.New(cfg.BundleRate, cfg.BundleBurst, 0),
		joinRL:     ratelimit.New(cfg.JoinRate, cfg.JoinBurst, 0),
		conns:      newConnRegistry(),
		deep:       newCallPool(),
		metrics:    o.Metrics,
		pin:        pin,
		ln:         o.Listener,
		ready:      make(chan struct{}),
		shutdown:   make(chan struct{}),
	}
	s.instrument()
	s.routes()
	return s, nil
}

// Version returns the build's module version or VCS revision.
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, st := range bi.Settings {
		if st.Key == "vcs.revision" && len(st.Value) >= 12 {
			if v == "" || v == "(devel)" {
				v = "devel+" + st.Value[:12]
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	return v
}

// Handler returns the HTTP handler of the API, for tests that serve it
// themselves (httptest). Such a handler still needs Close to release the
// store.
func (s *Server) Handler() http.Handler { return s.mux }

// Listen binds the listen address now (Run calls it if needed), so a caller
// can learn Addr before Run.
func (s *Server) Listen() (net.Addr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if s.ln == nil {
		ln, err := net.Listen("tcp", s.cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("server: listening on %s: %w", s.cfg.Addr, err)
		}
		s.ln = ln
	}
	return s.ln.Addr(), nil
}

// Addr returns the bound address once the server listens, nil before.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Ready is closed once Run serves requests.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Run serves until ctx is done, then shuts down gracefully: it stops
// accepting connections, lets in-flight requests finish (bounded by
// Config.ShutdownTimeout), closes WebSockets with StatusGoingAway and
// closes the store. It returns nil after a clean shutdown.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.started || s.closed {
		s.mu.Unlock()
		return ErrStarted
	}
	s.started = true
	s.mu.Unlock()

	if _, err := s.Listen(); err != nil {
		s.closeStore()
		return err
	}
	ln := s.ln
	scheme := "http"
	if s.cfg.TLSCert != "" {
		tln, err := httpserve.TLS(ln, s.cfg.TLSCert, s.cfg.TLSKey)
		if err != nil {
			ln.Close()
			s.closeStore()
			return fmt.Errorf("server: %w", err)
		}
		ln = tln
		scheme = "https"
	}

	hs := httpserve.NewServer(s.mux, s.log)
	stopMetrics, err := s.serveMetrics()
	if err != nil {
		ln.Close()
		s.closeStore()
		return err
	}
	defer stopMetrics()
	stopPprof, err := s.servePprof()
	if err != nil {
		ln.Close()
		s.closeStore()
		return err
	}
	defer stopPprof()
	stopTURN, err := s.startTURN()
	if err != nil {
		ln.Close()
		s.closeStore()
		return err
	}
	defer stopTURN()
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()

	expireDone := make(chan struct{})
	go func() {
		defer close(expireDone)
		s.expireLoop()
	}()

	s.log.Info("listening", "addr", s.ln.Addr().String(), "scheme", scheme, "version", Version())
	close(s.ready)

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		runErr = fmt.Errorf("server: serving: %w", err)
	}

	s.log.Info("shutting down")
	s.mu.Lock()
	s.closing.Store(true) // under mu: beginWS counts no handler in after this
	s.mu.Unlock()
	close(s.shutdown) // ends long polls and WebSockets

	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	httpserve.Shutdown(sctx, hs, s.log)
	wsDone := make(chan struct{})
	go func() { s.wsWG.Wait(); close(wsDone) }()
	select {
	case <-wsDone:
	case <-sctx.Done():
		s.log.Warn("WebSockets did not close in time")
	}
	<-expireDone
	if err := s.closeStore(); err != nil && runErr == nil {
		runErr = err
	}
	s.log.Info("stopped")
	return runErr
}

// Close releases a server that Run never ran (Run closes it itself).
func (s *Server) Close() error {
	s.mu.Lock()
	started := s.started
	s.mu.Unlock()
	if started {
		return nil
	}
	if s.ln != nil {
		s.ln.Close()
	}
	return s.closeStore()
}

func (s *Server) closeStore() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	if s.busCloser != nil {
		if err := s.busCloser.Close(); err != nil {
			s.log.Warn("closing the fan-out bus", "err", err)
		}
	}
	if err := s.blobs.Close(); err != nil {
		s.log.Warn("closing the blob store", "err", err)
	}
	if err := s.store.Close(); err != nil {
		return fmt.Errorf("server: closing store: %w", err)
	}
	return nil
}

// expireLoop deletes expired tokens, links and challenges until shutdown,
// and runs the blob store's orphan sweep beside it (orphanSweepLoop).
func (s *Server) expireLoop() {
	sweepDone := make(chan struct{})
	go func() {
		defer close(sweepDone)
		s.orphanSweepLoop()
	}()
	defer func() { <-sweepDone }()
	t := time.NewTicker(s.cfg.ExpireInterval)
	defer t.Stop()
	for {
		select {
		case <-s.shutdown:
			return
		case now := <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ExpireInterval)
			if err := s.store.Expire(ctx, now); err != nil {
				s.log.Warn("expiring tokens and links", "err", err)
			}
			cancel()
			s.expireBlobs(now)
		}
	}
}

// endpoint is one route of the API.
type endpoint struct {
	Route
	h http.HandlerFunc
}

// Route is one endpoint: method, path pattern, and whether it needs a
// bearer token.
type Route struct {
	Method string
	Path   string
	Auth   bool
}

func (s *Server) endpoints() []endpoint {
	return append([]endpoint{
		{Route{"GET", api.PathHealth, false}, s.handleHealth},
		{Route{"POST", api.PathAccounts, false}, s.handleRegister},
		{Route{"GET", api.PathAccount, true}, s.handleGetAccount},
		{Route{"DELETE", api.PathAccount, true}, s.handleDeleteAccount},
		{Route{"POST", api.PathChallenge, false}, s.handleChallenge},
		{Route{"POST", api.PathToken, false}, s.handleToken},
		{Route{"PUT", api.PathDeviceList, true}, s.handlePutDeviceList},
		{Route{"POST", api.PathKeys, true}, s.handlePutKeys},
		{Route{"GET", api.PathKeys, true}, s.handleKeyCounts},
		{Route{"GET", api.PathBundles, true}, s.handleBundles},
		{Route{"POST", api.PathMessages, true}, s.handleSend},
		{Route{"GET", api.PathWebSocket, true}, s.handleWebSocket},
		{Route{"POST", api.PathLinks, true}, s.handleCreateLink},
		{Route{"GET", api.PathLink, true}, s.handleLinkStatus},
		{Route{"POST", api.PathLinkJoin, false}, s.handleJoinLink},
		{Route{"POST", api.PathLinkComplete, true}, s.handleCompleteLink},
		{Route{"GET", api.PathLinkResult, false}, s.handleLinkResult},
		{Route{"POST", api.PathBlobs, true}, s.handleCreateBlob},
		{Route{"PATCH", api.PathBlob, true}, s.handleAppendBlob},
		{Route{"GET", api.PathBlob, true}, s.handleGetBlob}, // and HEAD
		{Route{"DELETE", api.PathBlob, true}, s.handleDeleteBlob},
		{Route{"GET", api.PathBlobStatus, true}, s.handleBlobStatus},
		{Route{"POST", api.PathBlobFinish, true}, s.handleFinishBlob},
		{Route{"POST", api.PathBlobDone, true}, s.handleBlobDone},
		{Route{"GET", api.PathTURN, true}, s.handleTURN},
	}, s.pinEndpoints()...)
}

// Routes lists every endpoint the server serves.
func (s *Server) Routes() []Route {
	var out []Route
	for _, e := range s.endpoints() {
		out = append(out, e.Route)
	}
	return out
}

// routes builds the mux.
func (s *Server) routes() {
	m := http.NewServeMux()
	for _, e := range s.endpoints() {
		h := e.h
		if e.Auth {
			h = s.authed(h)
		}
		m.Handle(e.Method+" "+e.Path, s.common(h))
	}
	if s.cfg.MetricsAddr == "" {
		m.Handle("GET "+PathMetrics, s.common(s.metrics.Handler().ServeHTTP))
	}
	m.Handle("/", s.common(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, api.CodeNotFound, "There is no endpoint "+r.Method+" "+r.URL.Path+".")
	}))
	s.mux = m
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if s.closing.Load() {
		writeError(w, api.CodeUnavailable, "The server is shutting down.")
		return
	}
	writeJSON(w, api.Health{Status: "ok", Version: Version(), Registration: s.cfg.Registration})
}
