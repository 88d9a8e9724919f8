package pinbackup_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// pure are the packages that must stay bytes in, bytes out, so that the
// browser client (js/wasm) runs the same PIN-backup code.
var pure = []string{
	"github.com/parleychat/parley/internal/toprf",
	"github.com/parleychat/parley/internal/pinbackup",
}

func goTool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// allowed reports why a pure package may not depend on pkg, or "".
func allowed(pkg string, standard bool) string {
	switch {
	case pkg == "net" || strings.HasPrefix(pkg, "net/"):
		return "network access"
	case pkg == "database" || strings.HasPrefix(pkg, "database/"):
		return "database access"
	case pkg == "log" || strings.HasPrefix(pkg, "log/"):
		return "logging"
	case standard,
		strings.HasPrefix(pkg, "golang.org/x/crypto/"),
		pkg == "golang.org/x/sys/cpu",
		strings.HasPrefix(pkg, "github.com/cloudflare/circl/"),
		strings.HasPrefix(pkg, "github.com/bwesterb/go-ristretto"),
		pkg == "github.com/parleychat/parley/internal/identity",
		pkg == "github.com/parleychat/parley/internal/toprf",
		pkg == "github.com/parleychat/parley/internal/pinbackup":
		return ""
	}
	return "a package outside the standard library, x/crypto, circl and the protocol core"
}

func TestPureImports(t *testing.T) {
	cmd := exec.Command(goTool(t), append([]string{"list", "-deps", "-json=ImportPath,Standard"}, pure...)...)
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
		if why := allowed(p.ImportPath, p.Standard); why != "" {
			t.Errorf("%v depend on %s: %s", pure, p.ImportPath, why)
		}
	}
	if seen < len(pure) {
		t.Fatalf("go list returned %d packages", seen)
	}
}

func TestBuildWasm(t *testing.T) {
	if testing.Short() {
		t.Skip("builds for js/wasm")
	}
	cmd := exec.Command(goTool(t), append([]string{"build", "-o", os.DevNull}, pure...)...)
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("GOOS=js GOARCH=wasm go build: %v\n%s", err, out)
	}
}
