package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/parleychat/parley/internal/client"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// otherwise the module version from the build info is used.
var version string

// handleArg cleans a handle typed by a person ("@Bob " -> "Bob"); the
// client normalises case.
func handleArg(s string) string {
	return strings.TrimPrefix(strings.TrimSpace(s), "@")
}

// oneHandle parses a command that takes exactly one HANDLE and sets the
// subject for error sentences.
func (a *app) oneHandle(cmd string, pos []string) (string, error) {
	if len(pos) != 1 || handleArg(pos[0]) == "" {
		return "", usagef(cmd, "%s needs exactly one HANDLE", cmd)
	}
	a.subject = handleArg(pos[0])
	return a.subject, nil
}

func noArgs(cmd string, pos []string) error {
	if len(pos) != 0 {
		return usagef(cmd, "%s takes no arguments, got %q", cmd, strings.Join(pos, " "))
	}
	return nil
}

// result prints the outcome of a command that changes something: the
// sentence for a person, or a jsonResult.
func (a *app) result(r jsonResult, format string, args ...any) error {
	if a.json {
		r.OK = true
		return a.printJSON(r)
	}
	a.println(format, args...)
	return nil
}

func defaultDeviceName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		return "parley"
	}
	return "parley on " + host
}

func cmdRegister(ctx context.Context, a *app, args []string) error {
	fs := a.flags("register")
	name := fs.String("name", "", "device `NAME` (default: parley on HOSTNAME)")
	pinStdin := fs.Bool("pin-stdin", false, "set a PIN read from standard input (pin.go)")
	invite := fs.String("invite", "", "the server operator's invite `CODE`, where registration is by invitation")
	pos, err := parse(fs, "register", args, -1)
	if err != nil {
		return err
	}
	handle, err := a.oneHandle("register", pos)
	if err != nil {
		return err
	}
	if *name == "" {
		*name = defaultDeviceName()
	}
	c, err := a.open(ctx, *name)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.RegisterInvited(ctx, handle, *invite); err != nil {
		return err
	}
	if err := a.result(jsonResult{Command: "register", Handle: c.Handle(), Device: c.DeviceID()},
		"Registered @%s; this is device %d.", c.Handle(), c.DeviceID()); err != nil {
		return err
	}
	return a.offerPIN(ctx, c, *pinStdin)
}

func cmdSend(ctx context.Context, a *app, args []string) error {
	fs := a.flags("send")
	ff := a.addFileFlags(fs) // files.go
	replyTo := fs.String("reply-to", "", "answer the message `ID` (before HANDLE; 'parley history HANDLE --json' shows the ids)")
	maxPos := 1
	if hasFileFlag(args) {
		maxPos = -1 // send HANDLE --file PATH: flags may follow HANDLE
	}
	pos, err := parse(fs, "send", args, maxPos)
	if err != nil {
		return err
	}
	if ff.file != "" {
		if *replyTo != "" {
			return usagef("send", "--reply-to goes with a text, not with --file")
		}
		return a.sendFile(ctx, pos, ff)
	}
	if ff.caption != "" || ff.keepMeta || ff.viewOnce || ff.rate != "" {
		return usagef("send", "--caption, --keep-metadata, --view-once and --limit-rate go with --file")
	}
	if len(pos) == 0 || handleArg(pos[0]) == "" {
		return usagef("send", "send needs a HANDLE and the TEXT to send")
	}
	a.subject = handleArg(pos[0])
	text := strings.Join(pos[1:], " ")
	if len(pos) == 1 {
		if a.stdinTTY {
			return usagef("send", "nothing to send: put the TEXT after the handle")
		}
		b, err := io.ReadAll(a.stdin)
		if err != nil {
			return fmt.Errorf("cannot read the message from standard input: %w", err)
		}
		text = strings.TrimRight(string(b), "\r\n")
	}
	if strings.TrimSpace(text) == "" {
		return usagef("send", "nothing to send: the message is empty")
	}
	c, err := a.openRegistered(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	m, err := c.SendReply(ctx, a.subject, text, *replyTo)
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(toJSONMessage(m))
	}
	a.println("Sent to @%s.", m.Peer)
	return nil
}

func cmdSync(ctx context.Context, a *app, args []string) error {
	fs := a.flags("sync")
	wait := fs.Duration("wait", 0, "keep receiving for `DURATION` after the backlog")
	follow := fs.Bool("follow", false, "keep receiving until interrupted")
	noDownload := fs.Bool("no-download", false, "leave files on the server")
	pos, err := parse(fs, "sync", args, -1)
	if err != nil {
		return err
	}
	if err := noArgs("sync", pos); err != nil {
		return err
	}
	if *wait < 0 {
		return usagef("sync", "--wait must not be negative")
	}
	c, err := a.openRegistered(ctx)
	if err != nil {
		return err
	}
	defer c.Close()

	var (
		mu       sync.Mutex
		messages int
	)
	dl := a.newDownloader(c, &mu) // files.go
	fn := func(e client.Event) {
		mu.Lock()
		defer mu.Unlock()
		if e.Type == "message" && e.Message != nil {
			messages++
		}
		if !*noDownload {
			dl.notice(e)
		}
		if !*follow && (e.Type == "connected" || e.Type == "disconnected") {
			// One sync is one connection: its state is no news.
			return
		}
		a.printEvent(e)
	}
	if *follow {
		stop := func() {}
		if !*noDownload {
			stop = dl.start(ctx)
		}
		err = c.Run(ctx, fn)
		stop()
	} else {
		err = c.Sync(ctx, *wait, fn)
		if err == nil && ctx.Err() == nil && !*noDownload {
			dl.once(ctx)
			err = dl.result()
		}
	}
	if ctx.Err() != nil {
		// Interrupted: what arrived was printed and acknowledged; stopping
		// is the normal way to end a long sync.
		return nil
	}
	if err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	if !a.json && messages == 0 {
		a.println("No new messages.")
	}
	return nil
}

// printEvent prints one sync event: every event as JSON with --json;
// messages and warnings for a person otherwise.
func (a *app) printEvent(e client.Event) {
	if e.Type == "key_changed" {
		a.warn("the safety number with @%s has changed: compare it with 'parley verify %s'", e.Peer, e.Peer)
	}
	if s := describePINEvent(e); s != "" {
		a.warn("%s", s)
	}
	if a.json {
		a.printJSON(toJSONEvent(e))
		return
	}
	switch e.Type {
	case "message":
		if e.Message != nil {
			a.println("%s", formatLine(*e.Message, false))
		}
	case "dropped":
		a.warn("a message from @%s could not be read and was dropped (%s)", e.Peer, e.Detail)
	case "replay":
		a.warn("ignored a message from @%s that was delivered twice (%s)", e.Peer, e.Detail)
	case "disconnected":
		a.warn("lost the connection to the server (%s); reconnecting", e.Detail)
	case "history":
		a.println("Imported %d messages of history from your device %d.", e.Count, e.Device)
	case "deleted":
		a.println("@%s: %d message(s) deleted for everyone.", e.Peer, len(e.Refs))
	case "edited", "reaction":
		if e.Message != nil {
			a.println("%s", formatLine(*e.Message, false))
		}
	case "call", "missed_call":
		a.printCallSignal(e)
	}
}

func cmdHistory(ctx context.Context, a *app, args []string) error {
	fs := a.flags("history")
	limit := fs.Int("limit", 50, "show the last `N` messages")
	pos, err := parse(fs, "history", args, -1)
	if err != nil {
		return err
	}
	handle, err := a.oneHandle("history", pos)
	if err != nil {
		return err
	}
	if *limit <= 0 {
		return usagef("history", "--limit must be at least 1")
	}
	c, err := a.openRegistered(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	msgs, err := c.History(ctx, handle, *limit)
	if err != nil {
		return err
	}
	if err := c.MarkRead(ctx, handle); err != nil {
		return err
	}
	for _, m := range msgs {
		if a.json {
			if err := a.printJSON(toJSONMessage(m)); err != nil {
				return err
			}
			continue
		}
		a.println("%s", formatLine(m, true))
	}
	if !a.json && len(msgs) == 0 {
		a.println("No messages with @%s yet.", handle)
	}
	return nil
}

// subcommand splits "contacts add bob" into "add" and its arguments; no
// subcommand means list.
func subcommand(pos []string) (string, []string) {
	if len(pos) == 0 {
		return "list", nil
	}
	return pos[0], pos[1:]
}

func cmdContacts(ctx context.Context, a *app, args []string) error {
	fs := a.flags("contacts")
	pos, err := parse(fs, "contacts", args, -1)
	if err != nil {
		return err
	}
	sub, rest := subcommand(pos)
	switch sub {
	case "list", "ls":
		if err := noArgs("contacts", rest); err != nil {
			return err
		}
		c, err := a.openRegistered(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		list, err := c.Contacts(ctx)
		if err != nil {
			return err
		}
		return a.printContacts(list)
	case "add", "remove", "rm":
		handle, err := a.oneHandle("contacts", rest)
		if err != nil {
			return err
		}
		c, err := a.openRegistered(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		if sub == "add" {
			if err := c.AddContact(ctx, handle); err != nil {
				return err
			}
			return a.result(jsonResult{Command: "contacts add", Handle: handle}, "Added @%s to your contacts.", handle)
		}
		if err := c.RemoveContact(ctx, handle); err != nil {
			return err
		}
		return a.result(jsonResult{Command: "contacts remove", Handle: handle}, "Removed @%s from your contacts.", handle)
	}
	return usagef("contacts", "unknown contacts command %q (want list, add or remove)", sub)
}

func (a *app) printContacts(list []client.Contact) error {
	if a.json {
		for _, ct := range list {
			if err := a.printJSON(jsonContact{Handle: ct.Handle, State: ct.State, Verified: ct.Verified, KeyChanged: ct.KeyChanged}); err != nil {
				return err
			}
		}
		return nil
	}
	if len(list) == 0 {
		a.println("No contacts yet. Add one with 'parley contacts add HANDLE'.")
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HANDLE\tSTATE\tSAFETY NUMBER")
	for _, ct := range list {
		safety := "not verified"
		switch {
		case ct.KeyChanged:
			safety = "CHANGED: run 'parley verify " + ct.Handle + "'"
		case ct.Verified:
			safety = "verified"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", ct.Handle, ct.State, safety)
	}
	return tw.Flush()
}

func cmdRequests(ctx context.Context, a *app, args []string) error {
	fs := a.flags("requests")
	pos, err := parse(fs, "requests", args, -1)
	if err != nil {
		return err
	}
	sub, rest := subcommand(pos)
	switch sub {
	case "list", "ls":
		if err := noArgs("requests", rest); err != nil {
			return err
		}
		c, err := a.openRegistered(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		list, err := c.Requests(ctx)
		if err != nil {
			return err
		}
		if a.json {
			for _, r := range list {
				if err := a.printJSON(jsonRequest{Handle: r.Handle, Messages: r.Messages, First: formatJSONTime(r.First)}); err != nil {
					return err
				}
			}
			return nil
		}
		if len(list) == 0 {
			a.println("No message requests.")
			return nil
		}
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "HANDLE\tMESSAGES\tSINCE")
		for _, r := range list {
			fmt.Fprintf(tw, "%s\t%d\t%s\n", r.Handle, r.Messages, r.First.Local().Format("2006-01-02 15:04"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		a.println("Read them with 'parley history HANDLE'; answer with 'parley requests accept|reject HANDLE' or 'parley block HANDLE'.")
		return nil
	case "accept", "reject":
		handle, err := a.oneHandle("requests", rest)
		if err != nil {
			return err
		}
		c, err := a.openRegistered(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		if sub == "accept" {
			if err := c.AcceptRequest(ctx, handle); err != nil {
				return err
			}
			return a.result(jsonResult{Command: "requests accept", Handle: handle}, "Accepted @%s: they are now a contact.", handle)
		}
		if err := c.RejectRequest(ctx, handle); err != nil {
			return err
		}
		return a.result(jsonResult{Command: "requests reject", Handle: handle}, "Rejected the request from @%s.", handle)
	}
	return usagef("requests", "unknown requests command %q (want list, accept or reject)", sub)
}

func cmdBlock(ctx context.Context, a *app, args []string) error {
	return blockOrUnblock(ctx, a, "block", args)
}

func cmdUnblock(ctx context.Context, a *app, args []string) error {
	return blockOrUnblock(ctx, a, "unblock", args)
}

func blockOrUnblock(ctx context.Context, a *app, cmd string, args []string) error {
	fs := a.flags(cmd)
	pos, err := parse(fs, cmd, args, -1)
	if err != nil {
		return err
	}
	handle, err := a.oneHandle(cmd, pos)
	if err != nil {
		return err
	}
	c, err := a.openRegistered(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if cmd == "block" {
		if err := c.Block(ctx, handle); err != nil {
			return err
		}
		return a.result(jsonResult{Command: "block", Handle: handle}, "Blocked @%s: their messages will be dropped.", handle)
	}
	if err := c.Unblock(ctx, handle); err != nil {
		return err
	}
	return a.result(jsonResult{Command: "unblock", Handle: handle}, "Unblocked @%s.", handle)
}

func cmdDevices(ctx context.Context, a *app, args []string) error {
	fs := a.flags("devices")
	pos, err := parse(fs, "devices", args, -1)
	if err != nil {
		return err
	}
	sub, rest := subcommand(pos)
	switch sub {
	case "list", "ls":
		if err := noArgs("devices", rest); err != nil {
			return err
		}
		c, err := a.openRegistered(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		list, err := c.Devices(ctx)
		if err != nil {
			return err
		}
		if a.json {
			for _, d := range list {
				if err := a.printJSON(toJSONDevice(d)); err != nil {
					return err
				}
			}
			return nil
		}
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tADDED\t")
		for _, d := range list {
			current := ""
			if d.Current {
				current = "(this device)"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", d.ID, d.Name, d.Created.Local().Format("2006-01-02 15:04"), current)
		}
		return tw.Flush()
	case "remove", "rm":
		if len(rest) != 1 {
			return usagef("devices", "devices remove needs exactly one device ID")
		}
		id, err := strconv.ParseUint(rest[0], 10, 32)
		if err != nil || id == 0 {
			return usagef("devices", "%q is not a device ID; 'parley devices list' shows them", rest[0])
		}
		c, err := a.openRegistered(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		if uint32(id) == c.DeviceID() {
			return errors.New("this is the device you are using; remove it from another of your devices")
		}
		if err := c.RemoveDevice(ctx, uint32(id)); err != nil {
			return err
		}
		return a.result(jsonResult{Command: "devices remove", Device: uint32(id)}, "Removed device %d from @%s.", id, c.Handle())
	}
	return usagef("devices", "unknown devices command %q (want list or remove)", sub)
}

func cmdLink(ctx context.Context, a *app, args []string) error {
	fs := a.flags("link")
	timeout := fs.Duration("timeout", 10*time.Minute, "with new: wait at most `DURATION` for the new device")
	name := fs.String("name", "", "with CODE: this device's `NAME` (default: parley on HOSTNAME)")
	noHistory := fs.Bool("no-history", false, "with new: do not send the conversations on this device to the new one")
	pos, err := parse(fs, "link", args, -1)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("link", "link needs 'new' (on the existing device) or the CODE (on the new device)")
	}
	if pos[0] == "new" {
		if len(pos) != 1 {
			return usagef("link", "link new takes no arguments")
		}
		if *timeout <= 0 {
			return usagef("link", "--timeout must be positive")
		}
		return linkNew(ctx, a, *timeout, *noHistory)
	}
	code := strings.Join(pos, " ")
	if *name == "" {
		*name = defaultDeviceName()
	}
	c, err := a.open(ctx, *name)
	if err != nil {
		return err
	}
	defer c.Close()
	if c.Registered() {
		return fmt.Errorf("this home already holds @%s; link the new device with a fresh --home (or PARLEY_HOME)", c.Handle())
	}
	if err := c.Link(ctx, code); err != nil {
		return err
	}
	return a.result(jsonResult{Command: "link", Handle: c.Handle(), Device: c.DeviceID()},
		"Linked: this is device %d of @%s.", c.DeviceID(), c.Handle())
}

func linkNew(ctx context.Context, a *app, timeout time.Duration, noHistory bool) error {
	c, err := a.openRegistered(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var showErr error
	history := -1 // messages of history sent; -1: none
	var historyErr error
	o := client.LinkOptions{NoHistory: noHistory, History: func(n int, err error) {
		history, historyErr = n, err
		if err == nil && !a.json {
			a.println("Sent the %d messages on this device to the new one.", n)
		}
	}}
	d, err := c.LinkNewWith(wctx, func(code string) {
		if a.json {
			showErr = a.printJSON(struct {
				Code string `json:"code"`
			}{code})
			return
		}
		a.println("Link code: %s", code)
		if a.stdoutTTY {
			if qr, err := renderQR([]byte(code)); err == nil {
				fmt.Fprint(a.stdout, qr)
			}
		}
		a.println("On the new device run: parley link %s", code)
		a.println("Waiting up to %s for it…", timeout)
	}, o)
	if showErr != nil {
		return showErr
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return fmt.Errorf("no device joined within %s; run 'parley link new' again", timeout)
		}
		return err
	}
	if a.json {
		j := jsonLinked{jsonDevice: toJSONDevice(d)}
		if history >= 0 && historyErr == nil {
			j.History = &history
		}
		if historyErr != nil {
			j.HistoryError = a.sentence(historyErr)
		}
		return a.printJSON(j)
	}
	if historyErr != nil {
		a.warn("the conversations on this device were not sent to the new one: %s", a.sentence(historyErr))
	}
	a.println("Linked device %d (%s) to @%s.", d.ID, d.Name, c.Handle())
	return nil
}

func cmdVerify(ctx context.Context, a *app, args []string) error {
	fs := a.flags("verify")
	mark := fs.Bool("mark", false, "mark the safety number as verified (also accepts a changed one)")
	pos, err := parse(fs, "verify", args, -1)
	if err != nil {
		return err
	}
	handle, err := a.oneHandle("verify", pos)
	if err != nil {
		return err
	}
	c, err := a.openRegistered(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if *mark {
		if err := c.MarkVerified(ctx, handle); err != nil {
			return err
		}
		return a.result(jsonResult{Command: "verify", Handle: handle}, "Marked @%s as verified.", handle)
	}
	sn, err := c.SafetyNumber(ctx, handle)
	if err != nil {
		return err
	}
	if sn.KeyChanged {
		a.warn("the safety number with @%s has changed since you last saw it", handle)
	}
	if a.json {
		return a.printJSON(jsonSafety{Peer: sn.Peer, Number: sn.Number, QR: hex.EncodeToString(sn.QR), Verified: sn.Verified, KeyChanged: sn.KeyChanged})
	}
	a.println("Safety number with @%s:", handle)
	a.println("")
	for _, line := range groupDigits(sn.Number) {
		a.println("    %s", line)
	}
	a.println("")
	a.println("QR payload: %s", hex.EncodeToString(sn.QR))
	if a.stdoutTTY {
		if qr, err := renderQR(sn.QR); err == nil {
			fmt.Fprint(a.stdout, qr)
		}
	}
	switch {
	case sn.KeyChanged:
		a.println("Status: CHANGED since you last verified.")
	case sn.Verified:
		a.println("Status: verified.")
	default:
		a.println("Status: not verified.")
	}
	if !sn.Verified || sn.KeyChanged {
		a.println("Compare it with @%s in person or over a channel you trust, then run 'parley verify %s --mark'.", handle, handle)
	}
	return nil
}

func cmdTyping(ctx context.Context, a *app, args []string) error {
	fs := a.flags("typing")
	stop := fs.Bool("stop", false, "say you stopped typing")
	pos, err := parse(fs, "typing", args, -1)
	if err != nil {
		return err
	}
	handle, err := a.oneHandle("typing", pos)
	if err != nil {
		return err
	}
	c, err := a.openRegistered(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	typing := !*stop
	if err := c.SendTyping(ctx, handle, typing); err != nil {
		return err
	}
	if typing {
		return a.result(jsonResult{Command: "typing", Handle: handle, Typing: &typing}, "Told @%s you are typing.", handle)
	}
	return a.result(jsonResult{Command: "typing", Handle: handle, Typing: &typing}, "Told @%s you stopped typing.", handle)
}

func cmdSettings(ctx context.Context, a *app, args []string) error {
	fs := a.flags("settings")
	pos, err := parse(fs, "settings", args, -1)
	if err != nil {
		return err
	}
	if len(pos) > 0 && pos[0] != "read-receipts" && pos[0] != "relay-only" {
		return usagef("settings", "unknown setting %q (known: read-receipts, relay-only)", pos[0])
	}
	if len(pos) > 2 {
		return usagef("settings", "settings %s takes on or off", pos[0])
	}
	var set *bool
	if len(pos) == 2 {
		var on bool
		switch strings.ToLower(pos[1]) {
		case "on", "true", "yes":
			on = true
		case "off", "false", "no":
		default:
			return usagef("settings", "%s must be on or off, not %q", pos[0], pos[1])
		}
		set = &on
	}
	c, err := a.openRegistered(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if set != nil && pos[0] == "relay-only" {
		if err := c.SetRelayOnly(ctx, *set); err != nil {
			return err
		}
		return a.result(jsonResult{Command: "settings", RelayOnly: set}, "Relay-only calls are now %s.", onOff(*set))
	}
	if set != nil {
		if err := c.SetReadReceipts(ctx, *set); err != nil {
			return err
		}
		return a.result(jsonResult{Command: "settings", ReadReceipts: set}, "Read receipts are now %s.", onOff(*set))
	}
	on, relay := c.ReadReceipts(), c.RelayOnly()
	if a.json {
		return a.printJSON(struct {
			ReadReceipts bool `json:"read_receipts"`
			RelayOnly    bool `json:"relay_only"`
		}{on, relay})
	}
	a.println("read-receipts: %s", onOff(on))
	a.println("relay-only: %s", onOff(relay))
	return nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// cmdUnsend is 'parley unsend ID': delete one's own message for everyone.
func cmdUnsend(ctx context.Context, a *app, args []string) error {
	fs := a.flags("unsend")
	pos, err := parse(fs, "unsend", args, -1)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("unsend", "unsend needs the ID of one of your messages ('parley history HANDLE --json' shows them)")
	}
	c, err := a.openRegistered(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.DeleteForEveryone(ctx, pos[0]); err != nil {
		return err
	}
	return a.result(jsonResult{Command: "unsend"}, "Deleted the message for everyone.")
}

// cmdEdit is 'parley edit ID TEXT...': correct one's own message.
func cmdEdit(ctx context.Context, a *app, args []string) error {
	fs := a.flags("edit")
	pos, err := parse(fs, "edit", args, -1)
	if err != nil {
		return err
	}
	if len(pos) < 2 {
		return usagef("edit", "edit needs the ID of one of your messages and its new text")
	}
	c, err := a.openRegistered(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	m, err := c.EditMessage(ctx, pos[0], strings.Join(pos[1:], " "))
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(toJSONMessage(m))
	}
	a.println("Edited: %s", formatLine(m, false))
	return nil
}

// cmdSearch is 'parley search [--with HANDLE] TEXT...'.
func cmdSearch(ctx context.Context, a *app, args []string) error {
	fs := a.flags("search")
	with := fs.String("with", "", "only the conversation with `HANDLE`")
	pos, err := parse(fs, "search", args, -1)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("search", "search needs the TEXT to look for")
	}
	c, err := a.openRegistered(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	a.subject = handleArg(*with)
	ms, err := c.Search(ctx, strings.Join(pos, " "), a.subject)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if a.json {
			if err := a.printJSON(toJSONMessage(m)); err != nil {
				return err
			}
			continue
		}
		a.println("%s", formatSearchLine(m))
	}
	if len(ms) == 0 && !a.json {
		a.println("No message here has that text.")
	}
	return nil
}

// cmdReact is 'parley react ID EMOJI' or 'parley react ID --remove'.
func cmdReact(ctx context.Context, a *app, args []string) error {
	fs := a.flags("react")
	remove := fs.Bool("remove", false, "take your reaction back")
	pos, err := parse(fs, "react", args, -1)
	if err != nil {
		return err
	}
	if (*remove && len(pos) != 1) || (!*remove && len(pos) != 2) {
		return usagef("react", "react needs a message ID and an EMOJI, or the ID and --remove")
	}
	emoji := ""
	if !*remove {
		emoji = pos[1]
	}
	c, err := a.openRegistered(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	m, err := c.React(ctx, pos[0], emoji)
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(toJSONMessage(m))
	}
	a.println("%s", formatLine(m, false))
	return nil
}

// cmdAccount is 'parley account delete HANDLE': the handle, typed again,
// is the confirmation.
func cmdAccount(ctx context.Context, a *app, args []string) error {
	fs := a.flags("account")
	pos, err := parse(fs, "account", args, -1)
	if err != nil {
		return err
	}
	if len(pos) != 2 || pos[0] != "delete" {
		return usagef("account", "account takes 'delete' and your handle")
	}
	c, err := a.openRegistered(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if h := strings.ToLower(handleArg(pos[1])); h != c.Handle() {
		return usagef("account", "to delete @%s, type its handle: parley account delete %s", c.Handle(), c.Handle())
	}
	a.subject = c.Handle()
	if err := c.DeleteAccount(ctx); err != nil {
		return err
	}
	return a.result(jsonResult{Command: "account delete", Handle: a.subject},
		"Deleted @%s: the server holds nothing of it any more, its devices are signed out, and this home holds no account.", a.subject)
}

func cmdVersion(ctx context.Context, a *app, args []string) error {
	fs := a.flags("version")
	pos, err := parse(fs, "version", args, -1)
	if err != nil {
		return err
	}
	if err := noArgs("version", pos); err != nil {
		return err
	}
	if a.json {
		return a.printJSON(struct {
			Version string `json:"version"`
			Go      string `json:"go"`
		}{versionString(), runtime.Version()})
	}
	a.println("parley %s (%s)", versionString(), runtime.Version())
	return nil
}

func cmdHelp(ctx context.Context, a *app, args []string) error {
	fs := a.flags("help")
	pos, err := parse(fs, "help", args, -1)
	if err != nil {
		return err
	}
	switch len(pos) {
	case 0:
		return &errHelp{}
	case 1:
		if findCommand(pos[0]) == nil {
			return usagef("", "unknown command %q", pos[0])
		}
		return &errHelp{cmd: pos[0]}
	}
	return usagef("help", "help takes at most one COMMAND")
}
