package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/loadgen"
)

func TestParseArgs(t *testing.T) {
	var stderr bytes.Buffer
	o, err := parseArgs(strings.Fields("--server http://127.0.0.1:18080 --devices 200 --senders 50 --duration 20s "+
		"--size 200 --rate 1500 --source-addrs 127.0.0.1-127.0.0.8 --server-pid 42 --json --fsync-dir /tmp --fsync-time 1s "+
		"--devices-per-account 4 --send-over http"), &stderr)
	if err != nil {
		t.Fatal(err)
	}
	c := o.cfg
	if c.Server != "http://127.0.0.1:18080" || c.Devices != 200 || c.Senders != 50 || c.Duration != 20*time.Second ||
		c.Size != 200 || c.Rate != 1500 || len(c.SourceAddrs) != 8 || c.ServerPID != 42 || !o.json || !c.Echo ||
		c.FsyncDir != "/tmp" || c.FsyncTime != time.Second || c.DevicesPerAccount != 4 || c.SendOver != loadgen.SendOverHTTP {
		t.Fatalf("parsed %+v", o)
	}
	if c.SetupTimeout == 0 || c.Drain == 0 || c.RequestTimeout == 0 || c.SetupConcurrency == 0 {
		t.Fatalf("defaults not applied: %+v", c)
	}
	if o, err := parseArgs([]string{"--server", "http://127.0.0.1:1"}, &stderr); err != nil ||
		o.cfg.DevicesPerAccount != 1 || o.cfg.SendOver != loadgen.SendOverWS {
		t.Fatalf("defaults: %+v, %v", o.cfg, err)
	}

	for _, bad := range []string{
		"--server http://192.0.2.1:80",
		"--server http://127.0.0.1:1 --devices 1",
		"--server http://127.0.0.1:1 --senders 0",
		"--server http://127.0.0.1:1 --size 3",
		"--server http://127.0.0.1:1 --rate -5",
		"--server http://127.0.0.1:1 --duration 0s",
		"--server http://127.0.0.1:1 --source-addrs 10.1.1.1",
		"--server http://127.0.0.1:1 extra",
		"--server http://127.0.0.1:1 --fsync-time 2m",
		"--echo=false",
		"--server http://127.0.0.1:1 --devices 10 --devices-per-account 3",
		"--server http://127.0.0.1:1 --devices 2 --devices-per-account 2",
		"--server http://127.0.0.1:1 --devices 34 --devices-per-account 17",
		"--server http://127.0.0.1:1 --devices-per-account -1",
		"--server http://127.0.0.1:1 --send-over grpc",
	} {
		if _, err := parseArgs(strings.Fields(bad), &stderr); !errors.Is(err, loadgen.ErrConfig) {
			t.Errorf("%q: got %v, want ErrConfig", bad, err)
		}
	}
	if _, err := parseArgs([]string{"--nope"}, &stderr); err == nil {
		t.Error("unknown flag accepted")
	}
	if _, err := parseArgs([]string{"-h"}, &stderr); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
	if code := run([]string{"--devices", "1"}, &stderr, &stderr); code != 2 {
		t.Errorf("bad arguments exit %d, want 2", code)
	}
}

// TestEchoOnly runs the tool end to end against its own echo baseline:
// a short run whose report must be valid JSON with every echo back.
func TestEchoOnly(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(strings.Fields("--devices 4 --senders 2 --duration 300ms --size 64 --json"), &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var rep loadgen.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, stdout.String())
	}
	e := rep.Echo
	if e == nil || e.Connections != 4 || e.Acked == 0 || e.DeliveredTotal < e.Acked || e.Check.Missing != 0 || len(e.Errors) != 0 {
		t.Fatalf("echo phase %+v", e)
	}
}
