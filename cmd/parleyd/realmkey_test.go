package main

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// realm-key creates the key once and prints the same public key after.
func TestRealmKey(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := runCmd([]string{"realm-key", "--data", dir}, nil)
	if code != 0 {
		t.Fatalf("realm-key: %d %s", code, errOut)
	}
	pub, err := base64.StdEncoding.DecodeString(strings.TrimSpace(out))
	if err != nil || len(pub) != 32 {
		t.Fatalf("realm-key printed %q", out)
	}
	fi, err := os.Stat(filepath.Join(dir, "realm-token.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	if _, again, _ := runCmd([]string{"realm-key", "--data", dir}, nil); again != out {
		t.Fatalf("realm-key changed: %q then %q", out, again)
	}
	if code, _, _ := runCmd([]string{"realm-key", "--realms", "nonsense"}, nil); code != 2 {
		t.Fatalf("bad config: exit %d", code)
	}
}
