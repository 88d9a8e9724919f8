// Package e2e runs the real parleyd and parley binaries against each other:
// TestMain builds both, each test starts its own parleyd on 127.0.0.1:0 with
// a fresh data folder, and each user is a parley home folder.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	parleydBin string
	parleyBin  string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "parley-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	parleydBin = filepath.Join(dir, "parleyd")
	parleyBin = filepath.Join(dir, "parley")
	for bin, pkg := range map[string]string{parleydBin: "../../cmd/parleyd", parleyBin: "../../cmd/parley"} {
		out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: building %s: %v\n%s", pkg, err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer is a bytes.Buffer safe for a process writer and a test reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// server is a running parleyd process.
type server struct {
	t      *testing.T
	data   string
	addr   string
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan error
}

var listeningRE = regexp.MustCompile(`msg=listening.*addr=([0-9.]+:[0-9]+)`)

// startServer starts parleyd on 127.0.0.1:0 with data in dir (a fresh one
// if dir is empty) and waits until it says where it listens.
func startServer(t *testing.T, dir string, args ...string) *server {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	s := &server{t: t, data: dir, stderr: &syncBuffer{}, done: make(chan error, 1)}
	all := append([]string{"--addr", "127.0.0.1:0", "--data", dir, "--log-format", "text"}, args...)
	s.cmd = exec.Command(parleydBin, all...)
	s.cmd.Stderr = s.stderr
	s.cmd.Stdout = s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting parleyd: %v", err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if m := listeningRE.FindStringSubmatch(s.stderr.String()); m != nil {
			s.addr = m[1]
			break
		}
		select {
		case err := <-s.done:
			t.Fatalf("parleyd exited before listening: %v\n%s", err, s.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.cmd.Process.Kill()
			t.Fatalf("parleyd did not report its address within 20s:\n%s", s.stderr.String())
		}
	}
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			s.cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() {
			t.Logf("parleyd log:\n%s", s.stderr.String())
		}
	})
	return s
}

// URL is the server's base URL.
func (s *server) URL() string { return "http://" + s.addr }

// kill9 kills the server with SIGKILL and waits for it to be gone.
func (s *server) kill9() {
	s.t.Helper()
	s.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.t.Fatal("parleyd did not die after SIGKILL")
	}
}

// stop sends SIGTERM and requires a clean exit.
func (s *server) stop() {
	s.t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Fatalf("parleyd exited with %v after SIGTERM:\n%s", err, s.stderr.String())
		}
	case <-time.After(30 * time.Second):
		s.t.Fatal("parleyd did not stop within 30s of SIGTERM")
	}
}

// device is one parley home folder talking to a server.
type device struct {
	t    *testing.T
	name string
	home string
	srv  *server
}

func newDevice(t *testing.T, srv *server, name string) *device {
	return &device{t: t, name: name, home: filepath.Join(t.TempDir(), name), srv: srv}
}

// run runs parley with --json and returns stdout; a non-zero exit fails the test.
func (d *device) run(args ...string) string {
	d.t.Helper()
	out, errOut, err := d.try(args...)
	if err != nil {
		d.t.Fatalf("%s: parley %s: %v\nstdout:\n%s\nstderr:\n%s", d.name, strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// try runs parley with --json and returns stdout, stderr and the exit error.
func (d *device) try(args ...string) (string, string, error) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := d.command(ctx, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

func (d *device) command(ctx context.Context, args ...string) *exec.Cmd {
	all := append([]string{"--home", d.home, "--server", d.srv.URL(), "--json"}, args...)
	cmd := exec.CommandContext(ctx, parleyBin, all...)
	cmd.Env = append(os.Environ(), "PARLEY_HOME=", "PARLEY_SERVER=")
	return cmd
}

// msg is a line of `parley --json sync` or `history`.
type msg struct {
	Type    string   `json:"type"`
	ID      string   `json:"id"`
	From    string   `json:"from"`
	Device  uint32   `json:"device"`
	SentAt  string   `json:"sent_at"`
	Text    string   `json:"text"`
	Peer    string   `json:"peer"`
	Request bool     `json:"request"`
	Status  string   `json:"status"`
	Refs    []string `json:"refs"`
	Detail  string   `json:"detail"`
}

func parseLines(t *testing.T, out string) []msg {
	t.Helper()
	var msgs []msg
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var m msg
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON line: %q: %v", line, err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// sync runs `parley sync` (with an optional wait) and returns the text messages received.
func (d *device) sync(wait string) []msg {
	d.t.Helper()
	args := []string{"sync"}
	if wait != "" {
		args = append(args, "--wait", wait)
	}
	var texts []msg
	for _, m := range parseLines(d.t, d.run(args...)) {
		if m.Type == "message" {
			texts = append(texts, m)
		}
	}
	return texts
}

// texts returns the texts of msgs in order.
func texts(msgs []msg) []string {
	var s []string
	for _, m := range msgs {
		s = append(s, m.Text)
	}
	return s
}

// link links a new device (fresh home) to from's account, driving
// `parley link new` on from and `parley link CODE` on the new device.
func link(t *testing.T, from *device, name string) *device {
	t.Helper()
	nd := newDevice(t, from.srv, name)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := from.command(ctx, "link", "new")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(stdout)
	line, err := rd.ReadString('\n')
	if err != nil {
		t.Fatalf("link new: reading the code: %v\nstderr: %s", err, stderr.String())
	}
	var first struct {
		Code string `json:"code"`
	}
	if err := json.Unmarshal([]byte(line), &first); err != nil || first.Code == "" {
		t.Fatalf("link new: first line %q is not {\"code\":...}: %v", line, err)
	}
	nd.run("link", first.Code)
	rest, _ := io.ReadAll(rd)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("link new: %v\nstdout: %s\nstderr: %s", err, rest, stderr.String())
	}
	return nd
}
