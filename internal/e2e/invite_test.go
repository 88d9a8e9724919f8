package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/api"
)

// parleydCmd runs a parleyd subcommand (not the server) and returns its
// stdout, failing the test on a non-zero exit.
func parleydCmd(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, parleydBin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("parleyd %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.String()
}

var inviteCodeRE = regexp.MustCompile(`^[a-z2-7]{4}(-[a-z2-7]{1,4}){6}\n$`)

// TestInviteOnlyRegistration: a server started with --registration invite
// registers only with a code the operator made with `parleyd invite`
// beside the running server; a code is good for its uses and, if bound,
// for its handle only; revoked codes stop working; the server's files
// never hold a code; /healthz says how registration works.
func TestInviteOnlyRegistration(t *testing.T) {
	srv := startServer(t, "", "--registration", "invite")
	data := []string{"--data", srv.data}

	var h api.Health
	resp, err := http.Get(srv.URL() + api.PathHealth)
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if h.Registration != "invite" {
		t.Fatalf("healthz registration %q, want invite", h.Registration)
	}

	two := parleydCmd(t, append([]string{"invite", "create", "--uses", "2"}, data...)...)
	forCarol := parleydCmd(t, append([]string{"invite", "create", "--for", "@Carol", "--expires", "30d"}, data...)...)
	for _, c := range []string{two, forCarol} {
		if !inviteCodeRE.MatchString(c) {
			t.Fatalf("invite code %q is not 26 base32 letters in groups of four", c)
		}
	}
	two, forCarol = strings.TrimSpace(two), strings.TrimSpace(forCarol)

	register := func(handle string, args ...string) (string, error) {
		_, errOut, err := newDevice(t, srv, handle).try(append(append([]string{"register"}, args...), handle)...)
		return errOut, err
	}
	refused := func(handle, want string, args ...string) {
		t.Helper()
		errOut, err := register(handle, args...)
		if err == nil || !strings.Contains(errOut, want) {
			t.Fatalf("register %s %v: %v, stderr %q; want it refused with %q", handle, args, err, errOut, want)
		}
	}
	accepted := func(handle string, args ...string) {
		t.Helper()
		if errOut, err := register(handle, args...); err != nil {
			t.Fatalf("register %s %v: %v\n%s", handle, args, err, errOut)
		}
	}

	refused("alice", "registers accounts by invitation only")
	refused("alice", "did not take that invite code", "--invite", "aaaa-bbbb-cccc-dddd-eeee-ffff-gg")
	accepted("alice", "--invite", two)
	// Codes are read without regard to case and dashes.
	accepted("bob", "--invite", strings.ToUpper(strings.ReplaceAll(two, "-", "")))
	refused("dave", "did not take that invite code", "--invite", two) // used up
	refused("dave", "made for another handle than @dave", "--invite", forCarol)
	accepted("carol", "--invite", forCarol)

	// list shows what is left; revoke by the ID it shows ends an invite.
	if out := parleydCmd(t, append([]string{"invite", "list"}, data...)...); strings.Count(out, "\n") != 1 {
		t.Fatalf("invite list after every use:\n%s", out)
	}
	third := strings.TrimSpace(parleydCmd(t, append([]string{"invite", "create", "--expires", "0"}, data...)...))
	list := parleydCmd(t, append([]string{"invite", "list"}, data...)...)
	row := regexp.MustCompile(`(?m)^([0-9a-f]{10})\s+anyone\s+1\s+never\s+\S+$`).FindStringSubmatch(list)
	if row == nil {
		t.Fatalf("invite list does not show the new invite:\n%s", list)
	}
	if out := parleydCmd(t, append([]string{"invite", "revoke", row[1]}, data...)...); !strings.Contains(out, "Revoked invite "+row[1]) {
		t.Fatalf("revoke said %q", out)
	}
	refused("erin", "did not take that invite code", "--invite", third)

	// The codes never reach the server's files, in any spelling.
	err = filepath.WalkDir(srv.data, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, code := range []string{two, forCarol, third} {
			for _, form := range []string{code, strings.ReplaceAll(code, "-", ""), strings.ToUpper(strings.ReplaceAll(code, "-", ""))} {
				if bytes.Contains(b, []byte(form)) {
					t.Errorf("%s holds the invite code %s", path, form)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
