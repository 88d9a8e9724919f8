// Package relay is parleyd's TURN/STUN relay (RFC 8656 over RFC 8489),
// built on github.com/pion/turn/v4.
//
// Only devices of the server's accounts may allocate: the server hands
// each authenticated device short-lived credentials (see Credentials), and
// the relay checks them without storing anything. It limits the live
// allocations of each account, and refuses to relay to loopback, private
// and link-local addresses (so the relay cannot be used to reach the
// server's own network) unless the configuration allows it for tests or a
// LAN deployment.
//
// Like pion's turn.NewServer, New never opens the listening sockets
// itself: the caller passes them in (Listen opens them for parleyd).
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/turn/v4"

	"github.com/parleychat/parley/internal/pionlog"
)

// ErrConfig is wrapped by every error about a bad Config.
var ErrConfig = errors.New("relay: invalid configuration")

// Defaults.
const (
	DefaultRealm          = "parley"
	DefaultMaxAllocations = 16
)

// Config configures a relay.
type Config struct {
	// Realm is the TURN realm (RFC 8489 §9.2); "" uses DefaultRealm.
	Realm string
	// Secret is the shared secret of the credentials (at least 16 bytes).
	Secret []byte
	// RelayIP is the address written into relayed transport addresses:
	// the server's public IP. Required.
	RelayIP net.IP
	// RelayBind is the IP the relayed sockets bind to; "" uses RelayIP.
	RelayBind string
	// MinPort and MaxPort bound the relayed ports; both 0 lets the system
	// pick.
	MinPort, MaxPort int
	// MaxAllocations bounds the live allocations of one account (all its
	// devices together); 0 uses DefaultMaxAllocations.
	MaxAllocations int
	// AllowLoopback allows relaying to 127.0.0.0/8 and ::1 (tests).
	AllowLoopback bool
	// AllowPrivate allows relaying to private addresses (RFC 1918,
	// RFC 6598 shared space, fc00::/7): a deployment inside one LAN.
	// Link-local addresses (169.254.0.0/16, fe80::/10: cloud metadata
	// services live there) are never relayed to.
	AllowPrivate bool
	// Logger; nil discards logs.
	Logger *slog.Logger
	// Now is the clock; nil uses time.Now (tests move it).
	Now func() time.Time
}

// Stats count what the relay did since it started.
type Stats struct {
	Allocations    int64 // live allocations
	AllocationsAll int64 // allocations made
	AuthFailures   int64 // requests refused for bad or expired credentials
	QuotaRefusals  int64 // allocations refused by the per-account limit
	PeerRefusals   int64 // permissions refused for a forbidden peer address
	PacketsToPeers int64 // datagrams relayed from clients to peers
	BytesToPeers   int64
	PacketsToUs    int64 // datagrams received from peers on relayed addresses
	BytesToUs      int64
}

// Server is a running relay.
type Server struct {
	cfg   Config
	log   *slog.Logger
	turn  *turn.Server
	udp   []net.PacketConn
	tcp   net.Listener
	stats struct {
		allocs, allocsAll, authFail, quota, peer atomic.Int64
		pktOut, bytesOut, pktIn, bytesIn         atomic.Int64
	}

	mu      sync.Mutex
	perAcct map[string]int // live allocations per handle
}

// New starts a relay on the given sockets (UDP sockets, a TCP listener, or
// both). Several UDP sockets may share one address (SO_REUSEPORT: the
// kernel spreads clients over them, and each has its own reading
// goroutine). Close closes them.
func New(cfg Config, udp []net.PacketConn, tcp net.Listener) (*Server, error) {
	if cfg.Realm == "" {
		cfg.Realm = DefaultRealm
	}
	if cfg.MaxAllocations == 0 {
		cfg.MaxAllocations = DefaultMaxAllocations
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	switch {
	case len(udp) == 0 && tcp == nil:
		return nil, fmt.Errorf("%w: no UDP socket and no TCP listener", ErrConfig)
	case len(cfg.Secret) < 16:
		return nil, fmt.Errorf("%w: the credential secret is shorter than 16 bytes", ErrConfig)
	case cfg.RelayIP == nil || cfg.RelayIP.IsUnspecified():
		return nil, fmt.Errorf("%w: no relay IP address (the server's public address)", ErrConfig)
	case cfg.RelayIP.To4() == nil:
		return nil, fmt.Errorf("%w: the relay IP %s is not IPv4 (pion relays UDP over IPv4)", ErrConfig, cfg.RelayIP)
	case cfg.MinPort < 0 || cfg.MaxPort > 65535 || cfg.MinPort > cfg.MaxPort || (cfg.MinPort == 0) != (cfg.MaxPort == 0):
		return nil, fmt.Errorf("%w: relay ports %d..%d", ErrConfig, cfg.MinPort, cfg.MaxPort)
	case cfg.MaxAllocations < 0:
		return nil, fmt.Errorf("%w: max allocations %d", ErrConfig, cfg.MaxAllocations)
	}
	if cfg.RelayBind == "" {
		cfg.RelayBind = cfg.RelayIP.String()
	}
	s := &Server{cfg: cfg, log: cfg.Logger, udp: udp, tcp: tcp, perAcct: map[string]int{}}
	gen := &relayGenerator{s: s}
	sc := turn.ServerConfig{
		Realm:         cfg.Realm,
		LoggerFactory: pionlog.Factory{Logger: cfg.Logger.With("component", "turn")},
		AuthHandler:   s.authKey,
		QuotaHandler:  s.quotaOK,
		EventHandler: turn.EventHandler{
			OnAllocationCreated: s.allocated,
			OnAllocationDeleted: s.deallocated,
			OnAuth: func(src, dst net.Addr, protocol, username, realm, method string, ok bool) {
				if !ok {
					// A wrong password (MESSAGE-INTEGRITY does not check).
					s.stats.authFail.Add(1)
					s.log.Debug("TURN request with a wrong password refused", "from", src.String(), "method", method)
				}
			},
		},
	}
	for _, c := range udp {
		sc.PacketConnConfigs = append(sc.PacketConnConfigs, turn.PacketConnConfig{PacketConn: c, RelayAddressGenerator: gen, PermissionHandler: s.permit})
	}
	if tcp != nil {
		sc.ListenerConfigs = []turn.ListenerConfig{{Listener: tcp, RelayAddressGenerator: gen, PermissionHandler: s.permit}}
	}
	ts, err := turn.NewServer(sc)
	if err != nil {
		return nil, fmt.Errorf("relay: starting TURN: %w", err)
	}
	s.turn = ts
	return s, nil
}

// Listen opens UDP sockets on udpAddr (one per CPU, sharing the address
// with SO_REUSEPORT where the system has it) and a TCP listener on tcpAddr
// (either address may be "", not both) and starts a relay on them.
func Listen(cfg Config, udpAddr, tcpAddr string) (*Server, error) {
	var udp []net.PacketConn
	var tcp net.Listener
	closeAll := func() {
		for _, c := range udp {
			c.Close()
		}
		if tcp != nil {
			tcp.Close()
		}
	}
	if udpAddr != "" {
		conns, err := listenUDP(udpAddr, runtime.NumCPU())
		if err != nil {
			return nil, fmt.Errorf("relay: listening on UDP %s: %w", udpAddr, err)
		}
		udp = conns
	}
	if tcpAddr != "" {
		l, err := net.Listen("tcp4", tcpAddr)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("relay: listening on TCP %s: %w", tcpAddr, err)
		}
		tcp = l
	}
	s, err := New(cfg, udp, tcp)
	if err != nil {
		closeAll()
		return nil, err
	}
	return s, nil
}

// listenUDP opens n sockets on addr that share it (SO_REUSEPORT), or one
// socket where sharing is not available.
func listenUDP(addr string, n int) ([]net.PacketConn, error) {
	n = max(1, min(n, 16))
	lc := net.ListenConfig{Control: reusePort}
	first, err := lc.ListenPacket(context.Background(), "udp4", addr)
	if err != nil {
		// No SO_REUSEPORT here: one socket.
		c, err := net.ListenPacket("udp4", addr)
		if err != nil {
			return nil, err
		}
		return []net.PacketConn{tuneUDP(c)}, nil
	}
	conns := []net.PacketConn{tuneUDP(first)}
	bound := first.LocalAddr().String() // the port, if addr asked for port 0
	for len(conns) < n {
		c, err := lc.ListenPacket(context.Background(), "udp4", bound)
		if err != nil {
			break // the ones we have will do
		}
		conns = append(conns, tuneUDP(c))
	}
	return conns, nil
}

// tuneUDP gives a listening socket room for bursts: every client's
// traffic arrives on it (the kernel caps this at net.core.rmem_max).
func tuneUDP(c net.PacketConn) net.PacketConn {
	if uc, ok := c.(*net.UDPConn); ok {
		uc.SetReadBuffer(4 << 20)
		uc.SetWriteBuffer(4 << 20)
	}
	return c
}

// UDPAddr is the UDP sockets' address, nil without one.
func (s *Server) UDPAddr() net.Addr {
	if len(s.udp) == 0 {
		return nil
	}
	return s.udp[0].LocalAddr()
}

// TCPAddr is the TCP listener's address, nil without one.
func (s *Server) TCPAddr() net.Addr {
	if s.tcp == nil {
		return nil
	}
	return s.tcp.Addr()
}

// Realm is the TURN realm in use.
func (s *Server) Realm() string { return s.cfg.Realm }

// Close stops the relay: its sockets and every allocation.
func (s *Server) Close() error {
	if err := s.turn.Close(); err != nil {
		return fmt.Errorf("relay: closing: %w", err)
	}
	return nil
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	return Stats{
		Allocations:    s.stats.allocs.Load(),
		AllocationsAll: s.stats.allocsAll.Load(),
		AuthFailures:   s.stats.authFail.Load(),
		QuotaRefusals:  s.stats.quota.Load(),
		PeerRefusals:   s.stats.peer.Load(),
		PacketsToPeers: s.stats.pktOut.Load(),
		BytesToPeers:   s.stats.bytesOut.Load(),
		PacketsToUs:    s.stats.pktIn.Load(),
		BytesToUs:      s.stats.bytesIn.Load(),
	}
}

// authKey is pion's AuthHandler: the long-term key MD5(username ":" realm
// ":" password) for a valid, unexpired username.
func (s *Server) authKey(username, realm string, src net.Addr) ([]byte, bool) {
	exp, _, _, err := ParseUsername(username)
	if err == nil && !s.cfg.Now().Before(exp) {
		err = ErrExpired
	}
	if err != nil {
		s.stats.authFail.Add(1)
		s.log.Debug("TURN credentials refused", "from", src.String(), "err", err)
		return nil, false
	}
	// A wrong password fails the MESSAGE-INTEGRITY check that pion makes
	// with this key.
	return turn.GenerateAuthKey(username, realm, Password(s.cfg.Secret, username)), true
}

func accountOf(username string) string {
	_, h, _, err := ParseUsername(username)
	if err != nil {
		return ""
	}
	return h
}

// quotaOK is pion's QuotaHandler, called before each new allocation.
func (s *Server) quotaOK(username, realm string, src net.Addr) bool {
	h := accountOf(username)
	s.mu.Lock()
	n := s.perAcct[h]
	s.mu.Unlock()
	if n >= s.cfg.MaxAllocations {
		s.stats.quota.Add(1)
		s.log.Info("TURN allocation refused: the account's limit is reached", "account", h, "limit", s.cfg.MaxAllocations)
		return false
	}
	return true
}

func (s *Server) allocated(src, dst net.Addr, protocol, username, realm string, relayAddr net.Addr, port int) {
	h := accountOf(username)
	s.mu.Lock()
	s.perAcct[h]++
	s.mu.Unlock()
	s.stats.allocs.Add(1)
	s.stats.allocsAll.Add(1)
	s.log.Debug("TURN allocation", "account", h, "relay", relayAddr.String())
}

func (s *Server) deallocated(src, dst net.Addr, protocol, username, realm string) {
	h := accountOf(username)
	s.mu.Lock()
	if s.perAcct[h]--; s.perAcct[h] <= 0 {
		delete(s.perAcct, h)
	}
	s.mu.Unlock()
	s.stats.allocs.Add(-1)
}

// permit is pion's PermissionHandler, called for CreatePermission and
// ChannelBind.
func (s *Server) permit(client net.Addr, peer net.IP) bool {
	if PeerAllowed(peer, s.cfg.AllowLoopback, s.cfg.AllowPrivate) {
		return true
	}
	s.stats.peer.Add(1)
	s.log.Info("TURN permission refused for a forbidden peer address", "peer", peer.String(), "client", client.String())
	return false
}

// relayGenerator makes the relayed sockets: in the port range if one is
// set, wrapped to count traffic and to drop datagrams to forbidden peers.
type relayGenerator struct{ s *Server }

func (g *relayGenerator) Validate() error { return nil }

func (g *relayGenerator) AllocatePacketConn(network string, requestedPort int) (net.PacketConn, net.Addr, error) {
	cfg := g.s.cfg
	listen := func(port int) (net.PacketConn, error) {
		return net.ListenPacket(network, net.JoinHostPort(cfg.RelayBind, strconv.Itoa(port)))
	}
	var conn net.PacketConn
	var err error
	switch {
	case requestedPort != 0:
		conn, err = listen(requestedPort)
	case cfg.MinPort == 0:
		conn, err = listen(0)
	default:
		span := cfg.MaxPort - cfg.MinPort + 1
		start := rand.IntN(span)
		for i := range min(span, 64) {
			conn, err = listen(cfg.MinPort + (start+i)%span)
			if err == nil {
				break
			}
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("relay: no relay port: %w", err)
	}
	local, ok := conn.LocalAddr().(*net.UDPAddr)
	if !ok {
		conn.Close()
		return nil, nil, errors.New("relay: relayed socket is not UDP")
	}
	if uc, ok := conn.(*net.UDPConn); ok {
		uc.SetReadBuffer(1 << 20) // a peer's burst (a video key frame) waits here while the relay is busy
	}
	return &countingConn{PacketConn: conn, s: g.s}, &net.UDPAddr{IP: cfg.RelayIP, Port: local.Port}, nil
}

func (g *relayGenerator) AllocateConn(network string, requestedPort int) (net.Conn, net.Addr, error) {
	return nil, nil, errors.New("relay: TCP relaying (RFC 6062) is not offered")
}

// countingConn is a relayed socket: it counts datagrams and refuses to
// send to a forbidden peer even if a permission slipped through.
type countingConn struct {
	net.PacketConn
	s *Server
}

func (c *countingConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, addr, err := c.PacketConn.ReadFrom(p)
	if err == nil {
		c.s.stats.pktIn.Add(1)
		c.s.stats.bytesIn.Add(int64(n))
	}
	return n, addr, err
}

func (c *countingConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if ua, ok := addr.(*net.UDPAddr); !ok || !PeerAllowed(ua.IP, c.s.cfg.AllowLoopback, c.s.cfg.AllowPrivate) {
		return 0, fmt.Errorf("relay: refusing to relay to %s", addr)
	}
	n, err := c.PacketConn.WriteTo(p, addr)
	if err == nil {
		c.s.stats.pktOut.Add(1)
		c.s.stats.bytesOut.Add(int64(n))
	}
	return n, err
}
