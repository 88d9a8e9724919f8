package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/server"
	"github.com/parleychat/parley/internal/store"
)

const inviteUsage = `usage: parleyd invite create [--uses N] [--expires DURATION] [--for HANDLE] [config flags]
       parleyd invite list [config flags]
       parleyd invite revoke CODE|ID [config flags]

Invites let accounts register when parleyd runs with --registration invite.
create prints a new code (default: one use, valid 7 days; --expires 0 never
expires; DURATION as 36h or 30d); --for binds it to one handle, as for an
entitlement granted to a named user. list shows each invite's ID (the start
of its hash: the code itself is not stored), handle, uses left and expiry;
revoke deletes one by its code or its ID. The config flags (or PARLEY_*
variables, or --config) name the store, as for parleyd itself; the commands
may run while parleyd serves.`

// inviteCmd is `parleyd invite ...`.
func inviteCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) (string, bool)) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, inviteUsage)
		return map[bool]int{true: 0, false: 2}[len(args) > 0]
	}
	sub, rest := args[0], args[1:]
	var own map[string]string
	var pos []string
	var err error
	switch sub {
	case "create":
		own, rest, err = takeFlags(rest, "uses", "expires", "for")
	case "list":
	case "revoke":
		if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
			pos, rest = rest[:1], rest[1:]
		}
		if len(pos) != 1 {
			err = errors.New("revoke needs the invite's code or ID")
		}
	default:
		err = fmt.Errorf("unknown invite command %q", sub)
	}
	if err != nil {
		fmt.Fprintf(stderr, "parleyd invite: %v\n%s\n", err, inviteUsage)
		return 2
	}
	inv, err := newInvite(own)
	if err != nil {
		fmt.Fprintf(stderr, "parleyd invite: %v\n", err)
		return 2
	}
	cfg, code, ok := loadConfig(rest, getenv, stderr)
	if !ok {
		return code
	}
	if cfg.LogLevel == config.Defaults().LogLevel {
		cfg.LogLevel = "warn" // a command's output, not a server's log
	}
	st, err := server.OpenStore(ctx, cfg, cfg.Logger(stderr))
	if err != nil {
		fmt.Fprintln(stderr, "parleyd:", err)
		return 1
	}
	defer st.Close()
	switch sub {
	case "create":
		err = createInvite(ctx, st, inv, stdout)
	case "list":
		err = listInvites(ctx, st, stdout)
	case "revoke":
		err = revokeInvite(ctx, st, pos[0], stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "parleyd invite:", err)
		return 1
	}
	if sub == "create" && cfg.Registration != "invite" {
		fmt.Fprintln(stderr, "parleyd invite: note: registration is open in this configuration; invites matter with --registration invite")
	}
	return 0
}

// takeFlags removes the flags named from args (as --name VALUE or
// --name=VALUE, one or two dashes) and returns them with the rest.
func takeFlags(args []string, names ...string) (map[string]string, []string, error) {
	got := map[string]string{}
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		known := strings.HasPrefix(a, "-") && func() bool {
			for _, n := range names {
				if n == name {
					return true
				}
			}
			return false
		}()
		if !known {
			rest = append(rest, a)
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				return nil, nil, fmt.Errorf("--%s needs a value", name)
			}
			i++
			value = args[i]
		}
		got[name] = value
	}
	return got, rest, nil
}

// newInvite is the invite create's flags ask for (without its hash).
func newInvite(flags map[string]string) (store.Invite, error) {
	inv := store.Invite{Uses: 1, Expires: time.Now().Add(7 * 24 * time.Hour)}
	if v, ok := flags["uses"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return inv, fmt.Errorf("--uses %q is not a whole number of at least 1", v)
		}
		inv.Uses = n
	}
	if v, ok := flags["expires"]; ok {
		d, err := parseDays(v)
		if err != nil || d < 0 {
			return inv, fmt.Errorf("--expires %q is not a duration such as 36h or 30d (0: never)", v)
		}
		inv.Expires = time.Time{}
		if d > 0 {
			inv.Expires = time.Now().Add(d)
		}
	}
	if v, ok := flags["for"]; ok {
		h, err := store.NormaliseHandle(strings.TrimPrefix(v, "@"))
		if err != nil {
			return inv, fmt.Errorf("--for %q is not a handle (3 to 32 of a-z, 0-9 and _)", v)
		}
		inv.Handle = h
	}
	return inv, nil
}

// parseDays is time.ParseDuration that also takes whole days ("30d").
func parseDays(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		d, err := strconv.Atoi(n)
		if err != nil {
			return 0, err
		}
		return time.Duration(d) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

func createInvite(ctx context.Context, st store.Store, inv store.Invite, out io.Writer) error {
	code := server.NewInviteCode()
	inv.Hash = server.InviteHash(code)
	if err := st.CreateInvite(ctx, inv); err != nil {
		return err
	}
	fmt.Fprintln(out, code)
	return nil
}

// inviteIDLen is how many hex digits of an invite's hash list shows as
// its ID.
const inviteIDLen = 10

func listInvites(ctx context.Context, st store.Store, out io.Writer) error {
	invs, err := st.Invites(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tFOR\tUSES LEFT\tEXPIRES\tCREATED")
	for _, inv := range invs {
		who, exp := inv.Handle, "never"
		if who == "" {
			who = "anyone"
		} else {
			who = "@" + who
		}
		if !inv.Expires.IsZero() {
			exp = inv.Expires.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", hex.EncodeToString(inv.Hash)[:inviteIDLen], who, inv.Uses, exp, inv.Created.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

// revokeInvite deletes the invite whose code is arg, or whose ID (as list
// shows it, or longer) arg is.
func revokeInvite(ctx context.Context, st store.Store, arg string, out io.Writer) error {
	hash := server.InviteHash(arg)
	if _, isCode := server.NormaliseInviteCode(arg); !isCode {
		id := strings.ToLower(arg)
		if len(id) < inviteIDLen {
			return fmt.Errorf("%q is neither an invite code nor an ID of at least %d hex digits ('parleyd invite list' shows them)", arg, inviteIDLen)
		}
		invs, err := st.Invites(ctx)
		if err != nil {
			return err
		}
		hash = nil
		for _, inv := range invs {
			if strings.HasPrefix(hex.EncodeToString(inv.Hash), id) {
				hash = inv.Hash
			}
		}
		if hash == nil {
			return fmt.Errorf("no invite has the ID %s", arg)
		}
	}
	if err := st.DeleteInvite(ctx, hash); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errors.New("no such invite (used up, expired or revoked already?)")
		}
		return err
	}
	fmt.Fprintf(out, "Revoked invite %s.\n", hex.EncodeToString(hash)[:inviteIDLen])
	return nil
}
