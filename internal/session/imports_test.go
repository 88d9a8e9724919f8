package session

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// protocolPackages is the protocol core: bytes in, bytes out.
var protocolPackages = []string{
	"github.com/parleychat/parley/internal/identity",
	"github.com/parleychat/parley/internal/devicelist",
	"github.com/parleychat/parley/internal/pqxdh",
	"github.com/parleychat/parley/internal/ratchet",
	"github.com/parleychat/parley/internal/session",
	"github.com/parleychat/parley/internal/content",
	"github.com/parleychat/parley/internal/safetynumber",
	"github.com/parleychat/parley/internal/linking",
}

// goTool returns the go command that runs this test.
func goTool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("go")
	if err != nil {
		if p2 := filepath.Join(os.Getenv("GOROOT"), "bin", "go"); os.Getenv("GOROOT") != "" {
			if _, err := os.Stat(p2); err == nil {
				return p2
			}
		}
		t.Skip("go is not on PATH")
	}
	return p
}

// forbidden reports why the protocol core may not depend on pkg, or "".
func forbidden(pkg string, standard bool) string {
	switch {
	case pkg == "net" || strings.HasPrefix(pkg, "net/"):
		return "network access"
	case pkg == "database" || strings.HasPrefix(pkg, "database/"):
		return "database access"
	case pkg == "log" || strings.HasPrefix(pkg, "log/"):
		return "logging"
	case standard:
		return ""
	case strings.HasPrefix(pkg, "golang.org/x/crypto/"):
		return ""
	case pkg == "golang.org/x/sys/cpu":
		return "" // x/crypto's own CPU feature detection
	case strings.HasPrefix(pkg, "github.com/parleychat/parley/"):
		for _, p := range protocolPackages {
			if pkg == p {
				return ""
			}
		}
		return "a package of this module outside the protocol core"
	}
	return "a module outside the standard library and golang.org/x/crypto"
}

// TestProtocolImports keeps the protocol core free of network, database
// and logging imports and of outside modules, so that it builds for the
// browser unchanged.
func TestProtocolImports(t *testing.T) {
	cmd := exec.Command(goTool(t), append([]string{"list", "-deps", "-json=ImportPath,Standard,DepsErrors,Error"}, protocolPackages...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	seen := 0
	for {
		var p struct {
			ImportPath string
			Standard   bool
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		seen++
		if why := forbidden(p.ImportPath, p.Standard); why != "" {
			t.Errorf("the protocol core depends on %s: %s", p.ImportPath, why)
		}
	}
	if seen < len(protocolPackages) {
		t.Fatalf("go list returned %d packages", seen)
	}
}

func TestForbidden(t *testing.T) {
	for pkg, bad := range map[string]bool{
		"net": true, "net/http": true, "database/sql": true, "log": true, "log/slog": true,
		"github.com/coder/websocket": true, "modernc.org/sqlite": true,
		"github.com/parleychat/parley/internal/api":     true,
		"golang.org/x/crypto/cryptobyte":                false,
		"github.com/parleychat/parley/internal/ratchet": false,
	} {
		if got := forbidden(pkg, !strings.Contains(pkg, ".")) != ""; got != bad {
			t.Errorf("forbidden(%s) = %v", pkg, got)
		}
	}
}

// TestBuildWasm builds the protocol core for the browser client.
func TestBuildWasm(t *testing.T) {
	if testing.Short() {
		t.Skip("builds for js/wasm")
	}
	cmd := exec.Command(goTool(t), append([]string{"build", "-o", os.DevNull}, protocolPackages...)...)
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("GOOS=js GOARCH=wasm go build: %v\n%s", err, out)
	}
}
