package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	qrcode "github.com/skip2/go-qrcode"

	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/server"
)

// TestMain lets the test binary act as parley inside the scripts.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"parley": main})
}

// TestScripts runs testdata/script/*.txtar. Each script gets its own
// parleyd, started in this process on 127.0.0.1:0 with its data in the
// script's work folder, and PARLEY_SERVER pointing at it; the parley
// commands are real processes.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup:               startServer,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"capture":  cmdCapture,
			"waitfile": cmdWaitFile,
			"exits":    cmdExits,
		},
	})
}

func startServer(env *testscript.Env) error {
	cfg := config.Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = filepath.Join(env.WorkDir, ".parleyd")
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.TURNUDPAddr, cfg.TURNTCPAddr = "127.0.0.1:0", "127.0.0.1:0" // calls (call.txtar)
	cfg.TURNAllowLoopback = true
	logFile, err := os.Create(filepath.Join(env.WorkDir, ".parleyd.log"))
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := server.New(cfg, logger)
	if err != nil {
		return err
	}
	addr, err := srv.Listen()
	if err != nil {
		srv.Close()
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	env.Defer(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				env.T().Log("parleyd:", err)
			}
		case <-time.After(30 * time.Second):
			env.T().Fatal("parleyd did not stop within 30s")
		}
		logFile.Close()
	})
	env.Setenv("PARLEY_SERVER", "http://"+addr.String())
	// The default home lives in the work folder, never in the real one.
	env.Setenv("XDG_CONFIG_HOME", filepath.Join(env.WorkDir, ".config"))
	return nil
}

// cmdCapture implements "capture NAME REGEXP": set $NAME to the first
// group of REGEXP in the last command's stdout.
func cmdCapture(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: capture NAME REGEXP")
	}
	re, err := regexp.Compile(args[1])
	ts.Check(err)
	m := re.FindStringSubmatch(ts.ReadFile("stdout"))
	if len(m) < 2 {
		ts.Fatalf("capture: no match for %q in stdout", args[1])
	}
	ts.Setenv(args[0], m[1])
}

// cmdWaitFile implements "waitfile FILE REGEXP NAME": wait (at most a
// minute) until FILE, written by a background command, matches REGEXP,
// then set $NAME to its first group.
func cmdWaitFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: waitfile FILE REGEXP NAME")
	}
	re, err := regexp.Compile(args[1])
	ts.Check(err)
	path := ts.MkAbs(args[0])
	deadline := time.Now().Add(time.Minute)
	for {
		b, _ := os.ReadFile(path)
		if m := re.FindSubmatch(b); len(m) >= 2 {
			ts.Setenv(args[2], string(m[1]))
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("waitfile: %s did not match %q within a minute; it holds:\n%s", args[0], args[1], b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cmdExits implements "exits CODE COMMAND ARGS...": run the command and
// require exit code CODE; stdout and stderr are kept for the next checks.
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits CODE COMMAND [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("exits: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("exit code %d, want %d", got, want)
	}
}

// TestParseInterspersed checks the flag parser scripts rely on.
func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		maxPos int
		want   string
		json   bool
		limit  int
	}{
		{[]string{"bob", "--limit", "5"}, -1, "[bob]", false, 5},
		{[]string{"--json", "bob"}, -1, "[bob]", true, 0},
		{[]string{"bob", "--", "--json"}, -1, "[bob --json]", false, 0},
		{[]string{"--json", "bob", "hi", "--limit", "3"}, 1, "[bob hi --limit 3]", true, 0},
		{[]string{"bob", "-5", "degrees"}, 1, "[bob -5 degrees]", false, 0},
	} {
		a := &app{}
		fs := a.flags("test")
		limit := fs.Int("limit", 0, "")
		pos, err := parse(fs, "test", tc.args, tc.maxPos)
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if got := fmt.Sprint(pos); got != tc.want || a.json != tc.json || *limit != tc.limit {
			t.Errorf("%q: got %s json=%v limit=%d, want %s json=%v limit=%d", tc.args, got, a.json, *limit, tc.want, tc.json, tc.limit)
		}
	}
}

func TestGroupDigits(t *testing.T) {
	n := "123456789012345678901234567890123456789012345678901234567890"
	lines := groupDigits(n)
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3", len(lines))
	}
	got := fmt.Sprint(lines)
	want := "[12345 67890 12345 67890 12345 67890 12345 67890 12345 67890 12345 67890]"
	if got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

// readHalfBlocks turns renderQR's output back into modules (true = dark).
func readHalfBlocks(s string) [][]bool {
	var rows [][]bool
	for _, line := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		line = strings.TrimSuffix(strings.TrimPrefix(line, "\x1b[97;40m"), "\x1b[0m")
		var top, bottom []bool
		for _, r := range line {
			top = append(top, r == ' ' || r == '▄')
			bottom = append(bottom, r == ' ' || r == '▀')
		}
		rows = append(rows, top, bottom)
	}
	return rows
}

func TestRenderQR(t *testing.T) {
	qr, err := renderQR([]byte("parley link code"))
	if err != nil {
		t.Fatal(err)
	}
	lines := regexp.MustCompile("\n").Split(qr, -1)
	if len(lines) < 10 {
		t.Fatalf("QR has %d lines", len(lines))
	}
	// Reading the half blocks back gives the encoder's bitmap.
	q, err := qrcode.New("parley link code", qrcode.Medium)
	if err != nil {
		t.Fatal(err)
	}
	want := q.Bitmap()
	got := readHalfBlocks(qr)
	if len(got) < len(want) {
		t.Fatalf("read %d rows, want %d", len(got), len(want))
	}
	for y := range want {
		for x := range want[y] {
			if got[y][x] != want[y][x] {
				t.Fatalf("module (%d,%d) differs", x, y)
			}
		}
	}
	// The quiet zone makes the first line all light modules.
	if !regexp.MustCompile(`^\x1b\[97;40m█+\x1b\[0m$`).MatchString(lines[0]) {
		t.Fatalf("first line %q is not a light quiet zone", lines[0])
	}
}
