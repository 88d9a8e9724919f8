// Package loadgen is the logic of parley-load: many simulated devices
// against a running parleyd, and a plain WebSocket echo server measured
// the same way in the same run as the baseline.
//
// A run sets up Devices/DevicesPerAccount accounts of DevicesPerAccount
// devices each (real keys and signed device lists; further devices are
// linked as the apps link them), authenticates each device, opens one
// WebSocket per device and keeps it connected; then Senders goroutines
// send, for Duration, messages of Size random bytes to random other
// accounts, as "send" frames on the sending device's WebSocket or as
// POST /v1/messages (SendOver), while every receiver acknowledges what it
// gets. A send carries an envelope for each device of the recipient and
// each other device of the sender; deliveries count envelopes. The ciphertext is opaque random bytes with
// the send time inside (parleyd never reads ciphertext), so the figures
// are those of the server's path, not of client cryptography.
package loadgen

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"time"
)

// Report is the outcome of a run.
type Report struct {
	Machine Machine `json:"machine"`
	Run     RunInfo `json:"run"`
	Fsync   *Fsync  `json:"fsync,omitempty"`
	Setup   *Setup  `json:"setup,omitempty"`
	Parley  *Phase  `json:"parleyd,omitempty"`
	Echo    *Phase  `json:"echo,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	// BusyBefore is the machine's busy share of all cores during the
	// second before the run: other work competing with the measurement.
	BusyBefore float64 `json:"busy_before"`
}

// RunInfo repeats the configuration the figures belong to.
type RunInfo struct {
	Server            string  `json:"server,omitempty"`
	Devices           int     `json:"devices"`
	DevicesPerAccount int     `json:"devices_per_account"`
	SendOver          string  `json:"send_over"`
	Senders           int     `json:"senders"`
	DurationS         float64 `json:"duration_s"`
	Size              int     `json:"size"`
	Rate              float64 `json:"rate"`
	SourceAddrs       int     `json:"source_addrs"`
}

// Setup is what registering and connecting the parleyd devices took.
type Setup struct {
	// Accounts counts accounts set up with every device connected: the
	// ones the run sends between.
	Accounts int `json:"accounts"`
	// Registered counts devices registered or linked, with a token.
	Registered          int              `json:"registered"`
	Connected           int              `json:"connected"`
	RegisterSeconds     float64          `json:"register_s"`
	ConnectSeconds      float64          `json:"connect_s"`
	RateLimitedRetries  int64            `json:"rate_limited_retries"`
	Errors              map[string]int64 `json:"errors,omitempty"`
	ServerRSSBeforeKB   int64            `json:"server_rss_before_connect_kb,omitempty"`
	ServerRSSConnKB     int64            `json:"server_rss_connected_kb,omitempty"`
	ServerRSSAfterRunKB int64            `json:"server_rss_after_run_kb,omitempty"`
	// ServerBytesPerConn is (RSS connected - RSS before connect) / the
	// connections of that server (all of them with one server; with
	// several, ServerPID must be the first's, which has every n-th device).
	ServerBytesPerConn float64 `json:"server_bytes_per_connection,omitempty"`
}

// Phase is the measurement of one target (parleyd or the echo baseline).
type Phase struct {
	Connections int     `json:"connections"`
	Seconds     float64 `json:"seconds"` // how long the senders ran
	// Attempts counts sends started.
	Attempts int64 `json:"attempts"`
	// Acked counts sends acknowledged: HTTP 200 or a "sent" frame from
	// parleyd; for the echo baseline, round trips the sender saw complete.
	Acked       int64   `json:"acked"`
	AckedPerSec float64 `json:"acked_per_s"`
	// AckedEnvelopes counts the envelopes of the acknowledged sends (one
	// per device they were for): the deliveries due.
	AckedEnvelopes int64 `json:"acked_envelopes,omitempty"`
	// Delivered counts deliveries (envelopes) received while the senders
	// ran; DeliveredTotal includes those that arrived during the drain.
	Delivered       int64            `json:"delivered"`
	DeliveredPerSec float64          `json:"delivered_per_s"`
	DeliveredTotal  int64            `json:"delivered_total"`
	DrainSeconds    float64          `json:"drain_s,omitempty"`
	Latency         Latency          `json:"latency"`
	Errors          map[string]int64 `json:"errors,omitempty"`
	Check           *Check           `json:"check,omitempty"`
	// Foreign counts deliveries that were not this run's.
	Foreign   int64 `json:"foreign,omitempty"`
	AckFrames int64 `json:"ack_frames,omitempty"`
	CPU       CPU   `json:"cpu"`
}

// Run runs the load described by cfg (after Defaults and Validate) and
// returns its report. Every stage is bounded: setup by SetupTimeout, each
// phase by Duration plus Drain, each request by RequestTimeout.
func Run(ctx context.Context, cfg Config, log *slog.Logger) (*Report, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// An overall bound, so the tool always ends by itself.
	total := cfg.SetupTimeout*2 + 2*(cfg.Duration+cfg.Drain+cfg.RequestTimeout) + cfg.FsyncTime + time.Minute
	ctx, cancel := context.WithTimeout(ctx, total)
	defer cancel()

	rep := &Report{
		Machine: Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH},
		Run: RunInfo{Server: cfg.Server, Devices: cfg.Devices, DevicesPerAccount: cfg.DevicesPerAccount, SendOver: cfg.SendOver,
			Senders: cfg.Senders, DurationS: cfg.Duration.Seconds(),
			Size: cfg.Size, Rate: cfg.Rate, SourceAddrs: len(cfg.SourceAddrs)},
	}
	// How busy the machine is before we add anything: figures taken on a
	// machine that is already busy say less.
	before := startCPU(0)
	select {
	case <-time.After(time.Second):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	rep.Machine.BusyBefore = before.stop(1).MachineBusy

	if cfg.FsyncDir != "" {
		f, err := measureFsync(ctx, cfg.FsyncDir, cfg.FsyncTime)
		if err != nil {
			return rep, err
		}
		rep.Fsync = f
	}

	clients := newHTTPClients(cfg.SourceAddrs, cfg.Senders+cfg.SetupConcurrency)
	defer clients.close()

	if cfg.Server != "" {
		setup, phase, err := runParley(ctx, cfg, log, clients)
		rep.Setup, rep.Parley = setup, phase
		if err != nil {
			return rep, err
		}
	}
	if cfg.Echo {
		phase, err := runEcho(ctx, cfg, log, clients)
		rep.Echo = phase
		if err != nil {
			return rep, err
		}
	}
	return rep, nil
}

func runParley(ctx context.Context, cfg Config, log *slog.Logger, clients *httpClients) (*Setup, *Phase, error) {
	p := newParleyRun(cfg, log, clients)
	defer p.close()
	setup := &Setup{}
	sctx, cancel := context.WithTimeout(ctx, cfg.SetupTimeout)
	defer cancel()

	log.Info("registering devices", "devices", cfg.Devices, "per_account", cfg.DevicesPerAccount, "server", cfg.Server)
	t := time.Now()
	p.setupAll(sctx)
	setup.RegisterSeconds = time.Since(t).Seconds()
	setup.Registered = len(p.all)
	setup.RateLimitedRetries = p.rateLimited.Load()
	if cfg.ServerPID > 0 {
		setup.ServerRSSBeforeKB, _ = readRSS(cfg.ServerPID)
	}

	log.Info("connecting devices", "registered", setup.Registered, "s", round(setup.RegisterSeconds))
	t = time.Now()
	p.connectAll(sctx)
	setup.ConnectSeconds = time.Since(t).Seconds()
	setup.Connected = len(p.devices)
	setup.Accounts = len(p.accounts)
	if cfg.ServerPID > 0 {
		setup.ServerRSSConnKB, _ = readRSS(cfg.ServerPID)
		// With several nodes, ServerPID is the first node's: it holds the
		// connections of devices 0, n, 2n, ...
		conns := 0
		for _, d := range p.all {
			if d.conn != nil && d.index%len(p.servers) == 0 {
				conns++
			}
		}
		if conns > 0 && setup.ServerRSSBeforeKB > 0 {
			setup.ServerBytesPerConn = float64(setup.ServerRSSConnKB-setup.ServerRSSBeforeKB) * 1024 / float64(conns)
		}
	}
	setup.Errors = p.setupErrs.Map()
	if err := ctx.Err(); err != nil {
		return setup, nil, fmt.Errorf("loadgen: setup: %w", err)
	}
	log.Info("sending", "connected", setup.Connected, "s", round(setup.ConnectSeconds), "senders", cfg.Senders,
		"over", cfg.SendOver, "duration", cfg.Duration)
	phase, err := p.runPhase(ctx)
	if cfg.ServerPID > 0 {
		setup.ServerRSSAfterRunKB, _ = readRSS(cfg.ServerPID)
	}
	return setup, phase, err
}

func runEcho(ctx context.Context, cfg Config, log *slog.Logger, clients *httpClients) (*Phase, error) {
	srv, err := StartEchoServer(int64(cfg.Size)+4096, log)
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	r := newEchoRun(cfg, log, clients)
	defer r.close()
	log.Info("echo baseline: connecting", "connections", cfg.Devices, "server", srv.URL())
	sctx, cancel := context.WithTimeout(ctx, cfg.SetupTimeout)
	r.connectAll(sctx, srv.URL())
	cancel()
	log.Info("echo baseline: sending", "connected", len(r.conns), "senders", cfg.Senders, "duration", cfg.Duration)
	phase, err := r.runPhase(ctx)
	if phase != nil {
		if errs := r.setupErrs.Map(); errs != nil {
			for k, v := range errs {
				if phase.Errors == nil {
					phase.Errors = map[string]int64{}
				}
				phase.Errors[k] += v
			}
		}
	}
	return phase, err
}

func round(x float64) float64 { return float64(int64(x*100+0.5)) / 100 }
