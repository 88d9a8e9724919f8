package loadgen

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/parleychat/parley/internal/devicelist"
)

// ErrConfig is wrapped by every error of Config.Validate and
// ParseSourceAddrs.
var ErrConfig = errors.New("loadgen: bad configuration")

// Limits of a Config.
const (
	MaxDevices     = 100_000
	MaxSenders     = 10_000
	MaxDuration    = time.Hour
	MaxSourceAddrs = 256
)

// Config is one load run.
type Config struct {
	// Server is parleyd's base URL (http://127.0.0.1:18080), or several
	// nodes' URLs separated by commas: device i then registers, connects
	// and sends through node i mod n, so messages cross between nodes.
	// Only loopback targets are allowed. Empty runs the echo baseline
	// alone.
	Server string
	// Devices is the number of simulated devices, each with its own
	// WebSocket: Devices/DevicesPerAccount accounts. The echo baseline
	// opens as many connections.
	Devices int
	// DevicesPerAccount is how many devices each account has (1 to
	// devicelist.MaxDevices; Devices must be a multiple of it). A send
	// then carries one envelope per device of the recipient and one per
	// other device of the sender, as parleyd requires.
	DevicesPerAccount int
	// SendOver is how senders send: SendOverWS ("send" frames on the
	// sending device's WebSocket) or SendOverHTTP (POST /v1/messages).
	SendOver string
	// Senders is the number of goroutines sending, each one message at a
	// time (closed loop). Sender j sends as device j mod Devices.
	Senders int
	// Duration is how long senders send, in each phase.
	Duration time.Duration
	// Size is the ciphertext (and echo payload) size in bytes.
	Size int
	// Rate is the total send rate over all senders in messages per second;
	// 0 sends as fast as the senders can.
	Rate float64
	// Echo also runs the plain WebSocket echo baseline, after the parleyd
	// phase, with the same connections, senders, size, rate and duration.
	Echo bool
	// SourceAddrs are the local loopback addresses connections come from,
	// device i using SourceAddrs[i mod len]; several spread parleyd's
	// per-address registration limit and the ephemeral ports. Empty lets
	// the kernel choose.
	SourceAddrs []netip.Addr
	// ServerPID, when set, is the parleyd process to sample memory and CPU
	// time of (Linux /proc).
	ServerPID int
	// SetupTimeout bounds registration and connection of all devices.
	SetupTimeout time.Duration
	// Drain is how long, after senders stop, the run waits for deliveries
	// still in flight before it compares them with the acknowledged sends.
	Drain time.Duration
	// SetupConcurrency is how many devices register and connect at once.
	SetupConcurrency int
	// RequestTimeout bounds each HTTP request and each echo round trip.
	RequestTimeout time.Duration
	// FsyncDir, when set, is a folder on the filesystem of parleyd's data
	// where the run first measures fsync'd 4 KiB appends for FsyncTime:
	// the disk baseline.
	FsyncDir  string
	FsyncTime time.Duration
}

// Values of Config.SendOver.
const (
	SendOverWS   = "ws"
	SendOverHTTP = "http"
)

// Defaults fills zero optional fields with their defaults.
func (c *Config) Defaults() {
	if c.DevicesPerAccount == 0 {
		c.DevicesPerAccount = 1
	}
	if c.SendOver == "" {
		c.SendOver = SendOverWS
	}
	if c.SetupTimeout == 0 {
		c.SetupTimeout = 5 * time.Minute
	}
	if c.Drain == 0 {
		c.Drain = 10 * time.Second
	}
	if c.SetupConcurrency == 0 {
		c.SetupConcurrency = 16
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.FsyncTime == 0 {
		c.FsyncTime = 3 * time.Second
	}
}

// Validate reports the first thing wrong with c.
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
	}
	if c.Server == "" && !c.Echo {
		return bad("nothing to run: give --server, --echo or both")
	}
	for _, s := range c.Servers() {
		if err := checkLoopbackURL(s); err != nil {
			return err
		}
	}
	switch {
	case c.Devices < 2 || c.Devices > MaxDevices:
		return bad("--devices %d: want 2 to %d", c.Devices, MaxDevices)
	case c.DevicesPerAccount < 1 || c.DevicesPerAccount > devicelist.MaxDevices:
		return bad("--devices-per-account %d: want 1 to %d", c.DevicesPerAccount, devicelist.MaxDevices)
	case c.Devices%c.DevicesPerAccount != 0 || c.Devices/c.DevicesPerAccount < 2:
		return bad("--devices %d: want a multiple of --devices-per-account %d, for at least 2 accounts", c.Devices, c.DevicesPerAccount)
	case c.SendOver != SendOverWS && c.SendOver != SendOverHTTP:
		return bad("--send-over %q: want %q or %q", c.SendOver, SendOverWS, SendOverHTTP)
	case c.Senders < 1 || c.Senders > MaxSenders:
		return bad("--senders %d: want 1 to %d", c.Senders, MaxSenders)
	case c.Duration <= 0 || c.Duration > MaxDuration:
		return bad("--duration %v: want more than 0 and at most %v", c.Duration, MaxDuration)
	case c.Size < MinSize || c.Size > MaxSize:
		return bad("--size %d: want %d to %d bytes", c.Size, MinSize, MaxSize)
	case c.Rate < 0:
		return bad("--rate %v: want 0 (unlimited) or more", c.Rate)
	case c.ServerPID < 0:
		return bad("--server-pid %d: want a process id", c.ServerPID)
	case c.SetupTimeout <= 0, c.Drain < 0, c.SetupConcurrency < 1, c.RequestTimeout <= 0,
		c.FsyncTime <= 0 || c.FsyncTime > time.Minute:
		return bad("timeouts and setup concurrency must be positive")
	case len(c.SourceAddrs) > MaxSourceAddrs:
		return bad("%d source addresses: at most %d", len(c.SourceAddrs), MaxSourceAddrs)
	}
	for _, a := range c.SourceAddrs {
		if !a.IsLoopback() {
			return bad("source address %v is not a loopback address", a)
		}
	}
	return nil
}

// Servers returns the node URLs of Server (none when it is empty).
func (c *Config) Servers() []string {
	if c.Server == "" {
		return nil
	}
	var out []string
	for s := range strings.SplitSeq(c.Server, ",") {
		out = append(out, strings.TrimSpace(s))
	}
	return out
}

// checkLoopbackURL accepts http(s) URLs whose host is "localhost" or a
// loopback IP literal, and nothing else: the tool must not load a machine
// it was not meant to.
func checkLoopbackURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%w: --server %q: %w", ErrConfig, s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w: --server %q: want an http:// or https:// URL", ErrConfig, s)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil {
		return fmt.Errorf("%w: --server %q: want a base URL without path, query or user", ErrConfig, s)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return fmt.Errorf("%w: --server %q: only loopback targets (127.0.0.0/8, ::1, localhost)", ErrConfig, s)
	}
	return nil
}

// ParseSourceAddrs parses a list of loopback addresses: comma-separated
// addresses or IPv4 ranges, "127.0.0.1-127.0.0.8,127.0.1.1". Empty gives
// none.
func ParseSourceAddrs(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := netip.ParseAddr(strings.TrimSpace(lo))
		if err != nil {
			return nil, fmt.Errorf("%w: source address %q: %w", ErrConfig, part, err)
		}
		last := first
		if isRange {
			if last, err = netip.ParseAddr(strings.TrimSpace(hi)); err != nil {
				return nil, fmt.Errorf("%w: source address %q: %w", ErrConfig, part, err)
			}
			if !first.Is4() || !last.Is4() || last.Less(first) {
				return nil, fmt.Errorf("%w: source range %q: want IPv4, low-high", ErrConfig, part)
			}
		}
		for a := first; ; a = a.Next() {
			if !a.IsLoopback() {
				return nil, fmt.Errorf("%w: source address %v is not a loopback address", ErrConfig, a)
			}
			if len(out) == MaxSourceAddrs {
				return nil, fmt.Errorf("%w: more than %d source addresses", ErrConfig, MaxSourceAddrs)
			}
			out = append(out, a)
			if a == last {
				break
			}
		}
	}
	return out, nil
}

// tcpAddr turns a netip.Addr into a dialer's local address (any port).
func tcpAddr(a netip.Addr) *net.TCPAddr {
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(a, 0))
}
