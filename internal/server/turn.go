package server

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/relay"
)

// TURNSecretFile is the name of the generated TURN credential secret inside
// Config.DataDir (used when Config.TURNSecretFile is empty).
const TURNSecretFile = "turn-secret"

// turnState is the node's TURN relay, set while Run runs.
type turnState struct {
	mu     sync.Mutex
	relay  *relay.Server
	secret []byte
}

// startTURN starts the TURN/STUN relay if the configuration asks for one;
// the returned function stops it.
func (s *Server) startTURN() (stop func(), err error) {
	if !s.cfg.TURNEnabled() {
		return func() {}, nil
	}
	secret, err := loadTURNSecret(s.cfg.TURNSecretFile, s.cfg.DataDir)
	if err != nil {
		return nil, err
	}
	relayIP := net.ParseIP(s.cfg.TURNRelayIP)
	if relayIP == nil {
		for _, a := range []string{s.cfg.TURNUDPAddr, s.cfg.TURNTCPAddr} {
			if host, _, err := net.SplitHostPort(a); err == nil && relayIP == nil {
				relayIP = net.ParseIP(host) // config.Validate made sure it is specific
			}
		}
	}
	bind := ""
	if host, _, err := net.SplitHostPort(s.cfg.TURNUDPAddr); err == nil {
		bind = host // relayed sockets on the interface the relay listens on
	}
	r, err := relay.Listen(relay.Config{
		Realm:          s.cfg.TURNRealm,
		Secret:         secret,
		RelayIP:        relayIP,
		RelayBind:      bind,
		MinPort:        s.cfg.TURNRelayMinPort,
		MaxPort:        s.cfg.TURNRelayMaxPort,
		MaxAllocations: s.cfg.TURNMaxAllocations,
		AllowLoopback:  s.cfg.TURNAllowLoopback,
		AllowPrivate:   s.cfg.TURNAllowPrivate,
		Logger:         s.log,
	}, s.cfg.TURNUDPAddr, s.cfg.TURNTCPAddr)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	s.turn.mu.Lock()
	s.turn.relay, s.turn.secret = r, secret
	s.turn.mu.Unlock()
	s.log.Info("turn listening", "udp", addrString(r.UDPAddr()), "tcp", addrString(r.TCPAddr()),
		"relay_ip", relayIP.String(), "realm", r.Realm())
	return func() {
		s.turn.mu.Lock()
		s.turn.relay = nil
		s.turn.mu.Unlock()
		if err := r.Close(); err != nil {
			s.log.Warn("closing the TURN relay", "err", err)
		}
	}, nil
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// TURNAddrs returns the relay's UDP and TCP addresses while Run runs (nil
// for a transport that is off, or when there is no relay).
func (s *Server) TURNAddrs() (udp, tcp net.Addr) {
	s.turn.mu.Lock()
	defer s.turn.mu.Unlock()
	if s.turn.relay == nil {
		return nil, nil
	}
	return s.turn.relay.UDPAddr(), s.turn.relay.TCPAddr()
}

// TURNStats returns the relay's counters (zero without a relay).
func (s *Server) TURNStats() relay.Stats {
	s.turn.mu.Lock()
	defer s.turn.mu.Unlock()
	if s.turn.relay == nil {
		return relay.Stats{}
	}
	return s.turn.relay.Stats()
}

// loadTURNSecret reads the credential secret from file, or from
// <dataDir>/turn-secret, generating that one (32 random bytes as hex,
// mode 0600) on first start. The secret is text so that other TURN tools
// (coturn's static-auth-secret, turnutils_uclient -W) can share it.
func loadTURNSecret(file, dataDir string) ([]byte, error) {
	generated := file == ""
	if generated {
		file = filepath.Join(dataDir, TURNSecretFile)
	}
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) && generated {
		if err := writeNewSecret(file); err != nil {
			return nil, err
		}
		b, err = os.ReadFile(file) // another process may have won the race
	}
	if err != nil {
		return nil, fmt.Errorf("server: reading the TURN secret: %w", err)
	}
	secret := []byte(strings.TrimSpace(string(b)))
	if len(secret) < 16 {
		return nil, fmt.Errorf("server: the TURN secret in %s is shorter than 16 characters", file)
	}
	return secret, nil
}

// writeNewSecret creates file with a fresh secret, unless it exists.
func writeNewSecret(file string) error {
	var k [32]byte
	rand.Read(k[:])
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err == nil {
		_, err = f.WriteString(hex.EncodeToString(k[:]) + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("server: writing the TURN secret: %w", err)
	}
	return nil
}

// handleTURN hands the calling device TURN credentials: GET /v1/turn.
func (s *Server) handleTURN(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	s.turn.mu.Lock()
	rl, secret := s.turn.relay, s.turn.secret
	s.turn.mu.Unlock()
	if rl == nil {
		writeJSON(w, api.TURNCredentials{ICEServers: []api.ICEServer{}})
		return
	}
	ttl := s.cfg.TURNCredentialTTL
	cred := relay.NewCredentials(secret, c.handle, c.device, time.Now().Add(ttl))
	host := s.turnHost(r)
	var stun []string
	var turn []string
	if a, ok := rl.UDPAddr().(*net.UDPAddr); ok {
		hp := net.JoinHostPort(host, strconv.Itoa(a.Port))
		stun = append(stun, "stun:"+hp)
		turn = append(turn, "turn:"+hp+"?transport=udp")
	}
	if a, ok := rl.TCPAddr().(*net.TCPAddr); ok {
		turn = append(turn, "turn:"+net.JoinHostPort(host, strconv.Itoa(a.Port))+"?transport=tcp")
	}
	resp := api.TURNCredentials{TTL: int64(ttl / time.Second), ExpiresAt: cred.Expires.UnixMilli()}
	if len(stun) > 0 {
		resp.ICEServers = append(resp.ICEServers, api.ICEServer{URLs: stun})
	}
	resp.ICEServers = append(resp.ICEServers, api.ICEServer{URLs: turn, Username: cred.Username, Credential: cred.Password})
	writeJSON(w, resp)
}

// turnHost is the host clients dial for TURN: turn_public_host, else the
// specific host the relay listens on, else the host the client reached the
// API at.
func (s *Server) turnHost(r *http.Request) string {
	if s.cfg.TURNPublicHost != "" {
		return s.cfg.TURNPublicHost
	}
	for _, a := range []string{s.cfg.TURNUDPAddr, s.cfg.TURNTCPAddr} {
		if host, _, err := net.SplitHostPort(a); err == nil && host != "" {
			if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
				return host
			}
		}
	}
	if host, _, err := net.SplitHostPort(r.Host); err == nil {
		return strings.Trim(host, "[]")
	}
	return r.Host
}
