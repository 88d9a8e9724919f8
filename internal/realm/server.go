// Package realm is a PIN-backup realm: a small HTTP service, one per
// operator, that stores one share of each account's PIN backup and limits
// how many times anyone may guess the PIN (Juicebox's software realm).
// pinbackup defines what it stores and computes; this package adds the
// storage (its own SQLite file), the guess counting, the access tokens
// parleyd issues, throttling, and the HTTP API of docs/PROTOCOL-pin.md.
//
// A realm has its own Ed25519 key (realm.key in its data folder); its id
// is derived from the public key, which clients pin, and it signs every
// response. Tests and embedders use the same type as the binary:
//
//	srv, err := realm.New(cfg, logger) // cfg.Addr "127.0.0.1:0", cfg.DataDir t.TempDir()
//	go srv.Run(ctx)
//	<-srv.Ready()
package realm

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleychat/parley/internal/httpserve"
	"github.com/parleychat/parley/internal/pinbackup"
	"github.com/parleychat/parley/internal/ratelimit"
)

// Files inside Config.DataDir.
const (
	DBFile  = "realm.db"
	KeyFile = "realm.key" // base64 of the Ed25519 seed, mode 0600
)

// Errors.
var (
	ErrStarted = errors.New("realm: already started")
	ErrClosed  = errors.New("realm: closed")
)

// Server is one realm.
type Server struct {
	cfg    Config
	log    *slog.Logger
	db     *db
	key    ed25519.PrivateKey
	id     pinbackup.RealmID
	issuer ed25519.PublicKey
	mux    *http.ServeMux
	now    func() time.Time

	guessRL   *ratelimit.Limiter
	requestRL *ratelimit.Limiter

	mu      sync.Mutex
	ln      net.Listener
	started bool
	closed  bool
	ready   chan struct{}
	closing atomic.Bool
}

// New opens (creating) the realm's data folder, key and database. The
// server does not listen until Run (or Listen).
func New(cfg Config, logger *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	issuer, err := cfg.Issuer()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("realm: creating data folder: %w", err)
	}
	key, err := loadOrCreateKey(filepath.Join(cfg.DataDir, KeyFile))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := openDB(ctx, filepath.Join(cfg.DataDir, DBFile))
	if err != nil {
		return nil, err
	}
	pub := key.Public().(ed25519.PublicKey)
	s := &Server{
		cfg:       cfg,
		log:       logger,
		db:        d,
		key:       key,
		id:        pinbackup.RealmIDFromKey(pub),
		issuer:    issuer,
		now:       time.Now,
		guessRL:   ratelimit.New(cfg.GuessesPerHour/60, cfg.GuessBurst, 0),
		requestRL: ratelimit.New(cfg.RequestsPerMinute, cfg.RequestBurst, 0),
		ready:     make(chan struct{}),
	}
	s.routes()
	return s, nil
}

// loadOrCreateKey reads the realm's key, or makes one.
func loadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			return nil, fmt.Errorf("realm: generating key: %w", err)
		}
		text := base64.StdEncoding.EncodeToString(priv.Seed()) + "\n"
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("realm: writing key: %w", err)
		}
		if _, err := f.WriteString(text); err != nil {
			f.Close()
			return nil, fmt.Errorf("realm: writing key: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("realm: writing key: %w", err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("realm: writing key: %w", err)
		}
		return priv, nil
	}
	if err != nil {
		return nil, fmt.Errorf("realm: reading key: %w", err)
	}
	seed, err := base64.StdEncoding.DecodeString(string(trimNewline(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("realm: %s is not the base64 of a 32-byte Ed25519 seed", path)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// ID returns the realm's id.
func (s *Server) ID() pinbackup.RealmID { return s.id }

// PublicKey returns the realm's public key, which clients pin.
func (s *Server) PublicKey() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// Handler returns the HTTP handler, for tests that serve it themselves.
func (s *Server) Handler() http.Handler { return s.mux }

// Version returns the build's module version or VCS revision.
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, st := range bi.Settings {
		if st.Key == "vcs.revision" && len(st.Value) >= 12 && (v == "" || v == "(devel)") {
			v = "devel+" + st.Value[:12]
		}
	}
	if v == "" {
		v = "(devel)"
	}
	return v
}

// Listen binds the listen address now, so a caller can learn Addr before
// Run.
func (s *Server) Listen() (net.Addr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if s.ln == nil {
		ln, err := net.Listen("tcp", s.cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("realm: listening on %s: %w", s.cfg.Addr, err)
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

// Run serves until ctx is done, then shuts down (in-flight requests get
// Config.ShutdownTimeout) and closes the database.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.started || s.closed {
		s.mu.Unlock()
		return ErrStarted
	}
	s.started = true
	s.mu.Unlock()
	if _, err := s.Listen(); err != nil {
		s.closeDB()
		return err
	}
	ln := s.ln
	scheme := "http"
	if s.cfg.TLSCert != "" {
		tln, err := httpserve.TLS(ln, s.cfg.TLSCert, s.cfg.TLSKey)
		if err != nil {
			ln.Close()
			s.closeDB()
			return fmt.Errorf("realm: %w", err)
		}
		ln = tln
		scheme = "https"
	}
	hs := httpserve.NewServer(s.mux, s.log)
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	s.log.Info("listening", "addr", s.ln.Addr().String(), "scheme", scheme, "realm_id", fmt.Sprintf("%x", s.id[:]),
		"public_key", base64.StdEncoding.EncodeToString(s.PublicKey()), "version", Version())
	close(s.ready)

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		runErr = fmt.Errorf("realm: serving: %w", err)
	}
	s.log.Info("shutting down")
	s.closing.Store(true)
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	httpserve.Shutdown(sctx, hs, s.log)
	if err := s.closeDB(); err != nil && runErr == nil {
		runErr = err
	}
	s.log.Info("stopped")
	return runErr
}

// Close releases a server that Run never ran.
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
	return s.closeDB()
}

func (s *Server) closeDB() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	if err := s.db.close(); err != nil {
		return fmt.Errorf("realm: closing database: %w", err)
	}
	return nil
}

// LoadKey reads (creating if needed) the key in dataDir and returns the
// realm's public key and id, without opening the database.
func LoadKey(dataDir string) (ed25519.PublicKey, pinbackup.RealmID, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, pinbackup.RealmID{}, fmt.Errorf("realm: creating data folder: %w", err)
	}
	key, err := loadOrCreateKey(filepath.Join(dataDir, KeyFile))
	if err != nil {
		return nil, pinbackup.RealmID{}, err
	}
	pub := key.Public().(ed25519.PublicKey)
	return pub, pinbackup.RealmIDFromKey(pub), nil
}
