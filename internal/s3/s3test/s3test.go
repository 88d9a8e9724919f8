// Package s3test starts a real S3-compatible server for tests: Versity
// Gateway (versitygw, Apache-2.0), a production S3 gateway, serving a
// temporary folder through its POSIX backend.
//
// The binary is $PARLEY_TEST_S3_GATEWAY, else versitygw on $PATH. Install
// it with
//
//	go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
//
// Without it, Start skips the test, or fails it when $CI is set.
package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/s3"
)

// Install is the command that installs the gateway Start runs.
const Install = "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"

// EnvGateway names the environment variable holding the gateway binary's
// path.
const EnvGateway = "PARLEY_TEST_S3_GATEWAY"

// Bounds on the gateway's life.
const (
	startTimeout = 20 * time.Second // until it answers HTTP and the bucket exists
	stopTimeout  = 10 * time.Second // between SIGTERM and SIGKILL
	startTries   = 3                // a free port may be taken before the gateway binds it
	logTail      = 64 << 10         // bytes of its log shown when a test fails
)

// Start runs a gateway on 127.0.0.1 with a free port, a t.TempDir() root
// and random root credentials, creates a fresh bucket on it, and returns
// the Config that reaches it. The gateway stops when the test ends; if the
// test failed, the end of its log is logged (the whole log is
// versitygw.log in the temporary folder until then). Each call starts its
// own gateway.
func Start(t testing.TB) s3.Config {
	t.Helper()
	return StartWith(t, Options{})
}

// Options change what StartWith starts.
type Options struct {
	// Region is the gateway's region, and the Config's; "" is
	// s3.DefaultRegion. Another region makes EnsureBucket send a
	// LocationConstraint.
	Region string
	// Root is the folder the gateway keeps its buckets in (a folder per
	// bucket, a file per object), for tests that look at what the storage
	// holds; "" is a fresh temporary folder.
	Root string
}

// StartWith is Start with options.
func StartWith(t testing.TB, o Options) s3.Config {
	t.Helper()
	bin := gatewayBinary(t)
	if o.Region == "" {
		o.Region = s3.DefaultRegion
	}

	dir := t.TempDir()
	root := o.Root
	if root == "" {
		root = filepath.Join(dir, "root")
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		t.Fatalf("s3test: %v", err)
	}
	cfg := s3.Config{
		Region:    o.Region,
		Bucket:    "parley-" + strings.ToLower(rand.Text()[:16]),
		AccessKey: "PT" + rand.Text()[:18],
		SecretKey: rand.Text() + rand.Text()[:14],
	}
	logPath := filepath.Join(dir, "versitygw.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	t.Cleanup(func() {
		logf.Close()
		if t.Failed() {
			t.Logf("s3test: end of %s:\n%s", logPath, tail(logPath, logTail))
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	var lastErr error
	for range startTries {
		g, err := launch(bin, root, cfg, logf)
		if err != nil {
			t.Fatalf("s3test: starting %s: %v", bin, err)
		}
		cfg.Endpoint = "http://" + g.addr
		lastErr = g.ready(ctx, cfg)
		if lastErr == nil {
			t.Cleanup(func() {
				if err := g.stop(); err != nil {
					t.Errorf("s3test: stopping the gateway: %v", err)
				}
			})
			return cfg
		}
		g.stop()
		if !g.exitedEarly() || ctx.Err() != nil {
			break
		}
		// Most likely the port was taken between choosing and binding it.
		fmt.Fprintf(logf, "s3test: gateway on %s exited (%v); retrying on another port\n", g.addr, lastErr)
	}
	t.Fatalf("s3test: gateway did not start: %v\nlog %s:\n%s", lastErr, logPath, tail(logPath, logTail))
	return s3.Config{}
}

// gatewayBinary finds the gateway or ends the test.
func gatewayBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(EnvGateway); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("s3test: $%s: %v", EnvGateway, err)
		}
		return p
	}
	p, err := exec.LookPath("versitygw")
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("s3test: versitygw is not installed (and $%s is not set): %s", EnvGateway, Install)
	}
	t.Skip("versitygw is not installed: " + Install)
	return ""
}

type gateway struct {
	cmd    *exec.Cmd
	addr   string
	exited chan struct{} // closed when the process has exited
	err    error         // its Wait error, once exited is closed
}

// launch starts the gateway on a port that was free a moment ago.
func launch(bin, root string, cfg s3.Config, log *os.File) (*gateway, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()

	cmd := exec.Command(bin, "--port", addr, "--region", cfg.Region, "posix", root)
	// Credentials go through the environment, not argv, which other
	// users can read; inherited gateway settings are dropped.
	env := []string{"ROOT_ACCESS_KEY=" + cfg.AccessKey, "ROOT_SECRET_KEY=" + cfg.SecretKey}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "VGW_") || strings.HasPrefix(name, "ROOT_") ||
			name == "LOGFILE" || name == "WEBHOOK" {
			continue
		}
		env = append(env, kv)
	}
	cmd.Env = env
	cmd.Stdout = log
	cmd.Stderr = log
	fmt.Fprintf(log, "s3test: %s --port %s --region %s posix %s\n", bin, addr, cfg.Region, root)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	g := &gateway{cmd: cmd, addr: addr, exited: make(chan struct{})}
	go func() {
		g.err = cmd.Wait()
		close(g.exited)
	}()
	return g, nil
}

// ready waits until the gateway answers HTTP, then creates the bucket.
func (g *gateway) ready(ctx context.Context, cfg s3.Config) error {
	hc := &http.Client{Timeout: time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+g.addr+"/", nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err == nil {
			// Any answer will do (an unsigned request gets 403).
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			break
		}
		select {
		case <-g.exited:
			return fmt.Errorf("gateway exited: %v", g.err)
		case <-ctx.Done():
			return fmt.Errorf("no answer on %s within %v: %v", g.addr, startTimeout, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	c, err := s3.New(cfg, nil)
	if err != nil {
		return err
	}
	if err := c.EnsureBucket(ctx); err != nil {
		return fmt.Errorf("creating bucket: %w", err)
	}
	return nil
}

func (g *gateway) exitedEarly() bool {
	select {
	case <-g.exited:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, and SIGKILL if the gateway is still running
// stopTimeout later. An exit caused by our SIGTERM is not an error.
func (g *gateway) stop() error {
	select {
	case <-g.exited:
		return nil
	default:
	}
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		g.cmd.Process.Kill()
	}
	select {
	case <-g.exited:
		return nil
	case <-time.After(stopTimeout):
	}
	g.cmd.Process.Kill()
	<-g.exited
	return fmt.Errorf("gateway ignored SIGTERM for %v and was killed", stopTimeout)
}

// tail returns at most n bytes from the end of the file at path.
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err.Error()
	}
	off := max(fi.Size()-n, 0)
	b, err := io.ReadAll(io.NewSectionReader(f, off, n))
	if err != nil {
		return err.Error()
	}
	if off > 0 {
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}
