package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
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

// inviteFlags are invite create's own flags.
type inviteFlags struct {
	uses    int
	expires string
	handle  string
}

// inviteCmd is `parleyd invite ...`.
func inviteCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) (string, bool)) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, inviteUsage)
		return 2
	}
	sub := args[0]
	if sub == "-h" || sub == "--help" || sub == "help" {
		fmt.Fprintln(stderr, inviteUsage)
		return 0
	}
	var f inviteFlags
	extra, maxArgs := func(*flag.FlagSet) {}, 0
	switch sub {
	case "create":
		extra = func(fs *flag.FlagSet) {
			fs.IntVar(&f.uses, "uses", 1, "accounts the invite may create")
			fs.StringVar(&f.expires, "expires", "7d", "how long it is valid, as 36h or 30d (0: never)")
			fs.StringVar(&f.handle, "for", "", "the one `HANDLE` it registers")
		}
	case "list":
	case "revoke":
		maxArgs = 1
	default:
		fmt.Fprintf(stderr, "parleyd invite: unknown invite command %q\n%s\n", sub, inviteUsage)
		return 2
	}
	cfg, pos, err := config.LoadCommand("parleyd invite "+sub, args[1:], getenv, stderr, extra, maxArgs)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err == nil && sub == "revoke" && len(pos) != 1 {
		err = errors.New("revoke needs the invite's code or ID")
	}
	var inv store.Invite
	if err == nil && sub == "create" {
		inv, err = newInvite(f)
	}
	if err != nil {
		fmt.Fprintf(stderr, "parleyd invite: %v\n", err)
		return 2
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

// newInvite is the invite create's flags ask for (without its hash).
func newInvite(f inviteFlags) (store.Invite, error) {
	inv := store.Invite{Uses: f.uses}
	if f.uses < 1 {
		return inv, fmt.Errorf("--uses %d is not at least 1", f.uses)
	}
	d, err := parseDays(f.expires)
	if err != nil || d < 0 {
		return inv, fmt.Errorf("--expires %q is not a duration such as 36h or 30d (0: never)", f.expires)
	}
	if d > 0 {
		inv.Expires = time.Now().Add(d)
	}
	if f.handle != "" {
		h, err := store.NormaliseHandle(strings.TrimPrefix(f.handle, "@"))
		if err != nil {
			return inv, fmt.Errorf("--for %q is not a handle (3 to 32 of a-z, 0-9 and _)", f.handle)
		}
		inv.Handle = h
	}
	return inv, nil
}

// parseDays is time.ParseDuration that also takes whole days ("30d").
// Whole days beyond maxDays (a century) are refused rather than
// overflowing a time.Duration.
func parseDays(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		d, err := strconv.Atoi(n)
		if err != nil {
			return 0, err
		}
		if d < -maxDays || d > maxDays {
			return 0, fmt.Errorf("%d days is more than %d", d, maxDays)
		}
		return time.Duration(d) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

const maxDays = 36500

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
