// Command parley-load puts load on a running parleyd over loopback: it
// sets up many accounts (real keys; one device each, or several linked
// devices), keeps one WebSocket per device, has senders send messages of
// random bytes to random other accounts for a while (as "send" frames on
// the WebSocket, or POST /v1/messages), and reports acknowledged sends/s,
// deliveries/s, end-to-end latency percentiles and errors by code. In the
// same run it measures a plain WebSocket echo server the same way, as the
// baseline. See docs/PERFORMANCE.md.
//
//	parley-load --server http://127.0.0.1:18080 --devices 200 --senders 50 --duration 20s --size 200
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/parleychat/parley/internal/loadgen"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// options are the parsed command line.
type options struct {
	cfg        loadgen.Config
	json       bool
	verbose    bool
	cpuProfile string
}

func run(args []string, stdout, stderr io.Writer) int {
	opts, err := parseArgs(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "parley-load:", err)
		return 2
	}
	level := slog.LevelInfo
	if opts.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if opts.cpuProfile != "" {
		f, err := os.Create(opts.cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "parley-load:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "parley-load:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}

	rep, err := loadgen.Run(ctx, opts.cfg, log)
	if rep != nil {
		if opts.json {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if werr := enc.Encode(rep); werr != nil && err == nil {
				err = werr
			}
		} else if werr := rep.WriteText(stdout); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "parley-load:", err)
		return 1
	}
	return 0
}

// parseArgs turns the command line into options, defaults applied and
// validated.
func parseArgs(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("parley-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: parley-load --server URL --devices N --senders S --duration D --size BYTES [flags]")
		fmt.Fprintln(stderr, "Loopback targets only. The echo baseline runs in the same process after the parleyd phase.")
		fs.PrintDefaults()
	}
	c := &o.cfg
	fs.StringVar(&c.Server, "server", "", "parleyd base URL, loopback only; several nodes comma-separated, device i using node i mod n (empty: echo baseline only)")
	fs.IntVar(&c.Devices, "devices", 100, "simulated devices in all, one WebSocket each: devices/K accounts of K devices (a multiple of K)")
	fs.IntVar(&c.DevicesPerAccount, "devices-per-account", 1, "K, devices per account; a send from device d of account A to account B carries\n"+
		"one envelope per device of B and one per other device of A (2K-1), each a delivery.\nDevices after the first are linked, which parleyd limits per address: raise its --join-rate/--join-burst")
	fs.StringVar(&c.SendOver, "send-over", loadgen.SendOverWS, "how senders send: ws (\"send\" frames on the sending device's WebSocket) or http (POST /v1/messages)")
	fs.IntVar(&c.Senders, "senders", 10, "sending goroutines, one message at a time each; sender j sends from device j mod devices")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "how long to send, per phase")
	fs.IntVar(&c.Size, "size", 200, fmt.Sprintf("ciphertext bytes per message (%d to %d)", loadgen.MinSize, loadgen.MaxSize))
	fs.Float64Var(&c.Rate, "rate", 0, "total messages/s over all senders; 0 = as fast as possible")
	fs.BoolVar(&c.Echo, "echo", true, "also measure the plain WebSocket echo baseline (--echo=false to skip)")
	fs.IntVar(&c.ServerPID, "server-pid", 0, "parleyd's process id (of the first node with several): report its RSS and CPU time from /proc")
	srcs := fs.String("source-addrs", "", "local loopback addresses to connect from, e.g. 127.0.0.1-127.0.0.8")
	fs.DurationVar(&c.SetupTimeout, "setup-timeout", 5*time.Minute, "bound on registering and connecting all devices")
	fs.DurationVar(&c.Drain, "drain", 10*time.Second, "after sending, how long to wait for deliveries still in flight")
	fs.IntVar(&c.SetupConcurrency, "setup-concurrency", 16, "devices registered and connected at once")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", 10*time.Second, "bound on each request and echo round trip")
	fs.StringVar(&c.FsyncDir, "fsync-dir", "", "first measure fsync'd 4 KiB appends in this folder (give parleyd's data folder): the disk baseline")
	fs.DurationVar(&c.FsyncTime, "fsync-time", 3*time.Second, "how long the disk baseline runs")
	fs.BoolVar(&o.json, "json", false, "print the report as JSON")
	fs.BoolVar(&o.verbose, "v", false, "log each failed request")
	fs.StringVar(&o.cpuProfile, "cpu-profile", "", "write the tool's own CPU profile (Go pprof) of the whole run to this file")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("%w: unexpected argument %q", loadgen.ErrConfig, fs.Arg(0))
	}
	addrs, err := loadgen.ParseSourceAddrs(*srcs)
	if err != nil {
		return o, err
	}
	c.SourceAddrs = addrs
	c.Defaults()
	if err := c.Validate(); err != nil {
		return o, err
	}
	return o, nil
}
