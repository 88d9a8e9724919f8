package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/parleychat/parley/internal/client"
	"github.com/parleychat/parley/internal/tui"
)

// Exit codes.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// app is one run of the program: its streams, environment and global
// flags. main fills it from the process; everything else reads it.
type app struct {
	stdin     io.Reader
	stdout    io.Writer
	stderr    io.Writer
	getenv    func(string) string
	stdinTTY  bool
	stdoutTTY bool

	// Global flags, accepted before and after the command name.
	home   string
	server string
	json   bool

	// subject is the handle the running command is about, used to word
	// errors ("there is no account @bob").
	subject string
	// usedServer is the server the opened client talks to, for errors.
	usedServer string
}

// command is one subcommand.
type command struct {
	name    string
	args    string // synopsis after "parley NAME"
	summary string
	detail  string // extra help text, may be empty
	run     func(ctx context.Context, a *app, args []string) error
}

// commands lists the subcommands in the order help shows them. It is
// filled in init-free fashion by commandList to avoid an initialisation
// cycle (help refers to the list).
func commandList() []*command {
	return []*command{
		{name: "register", args: "[--name NAME] [--invite CODE] [--pin-stdin] HANDLE", summary: "create an account with this device as its first",
			detail: "Flags:\n  --name NAME     this device's name in the device list (default: parley on HOSTNAME)\n  --invite CODE   the invite code the server's operator gave you, where registration is by invitation\n  --pin-stdin     then set a PIN (see 'parley help pin') read from standard input;\n                  in a terminal, register offers to set one",
			run:    cmdRegister},
		{name: "send", args: "[--reply-to ID] HANDLE TEXT... | HANDLE --file PATH [--caption TEXT] [--keep-metadata] [--view-once]",
			summary: "send a message (TEXT from stdin if omitted) or a file",
			detail:  sendDetail, run: cmdSend},
		{name: "sync", args: "[--wait DURATION] [--follow] [--no-download]", summary: "receive pending messages and print them",
			detail: "Flags:\n  --wait DURATION   keep receiving for DURATION after the backlog (e.g. 30s)\n  --follow          keep receiving until interrupted\n  --no-download     leave files on the server ('parley download ID' fetches one)\nMessages are acknowledged to the server only after they are stored here.\nFiles from contacts are downloaded into the home's downloads folder; if one cannot be saved, sync says so\n(and, without --follow, exits 1 at the end).",
			run:    cmdSync},
		{name: "history", args: "HANDLE [--limit N]", summary: "show a conversation and mark it read", detail: "Flags:\n  --limit N   show the last N messages (default 50)",
			run: cmdHistory},
		{name: "search", args: "[--with HANDLE] TEXT...", summary: "find messages on this device by their text",
			detail: "Lists the messages on this device whose text contains TEXT (letters a-z without\nregard to case), newest first, at most 200. The server holds no text: only\nthis device's history is searched.\nFlags:\n  --with HANDLE   only the conversation with HANDLE",
			run:    cmdSearch},
		{name: "react", args: "ID EMOJI | ID --remove", summary: "react to a message with an emoji, or take it back",
			detail: "Sets your reaction to message ID ('parley history HANDLE --json' shows the ids)\non your devices and the other side's: one per person and message, the newest\nwins. --remove takes it back.",
			run:    cmdReact},
		{name: "edit", args: "ID TEXT...", summary: "correct the text of one of your messages (within 24 hours)",
			detail: "Replaces the text of your message ID ('parley history HANDLE --json' shows the\nids) on your devices and the other side's, where it shows as edited. Only your\nown messages of the last 24 hours, not deleted ones.",
			run:    cmdEdit},
		{name: "unsend", args: "ID", summary: "delete one of your messages for everyone (within 24 hours)",
			detail: "Deletes your message ID ('parley history HANDLE --json' shows the ids) on\nyour devices and the other side's, with its file; it shows as deleted there.\nOnly your own messages of the last 24 hours. A file the other side already\nsaved stays in their downloads folder, and a modified client could keep a copy.",
			run:    cmdUnsend},
		{name: "download", args: "ID [--to DIR] [--limit-rate RATE]", summary: "download the file of a message", detail: downloadDetail, run: cmdDownload},
		{name: "open", args: "ID [--to DIR]", summary: "show a file, or view-once media (once)", detail: openDetail, run: cmdOpen},
		{name: "uploads", args: "[list | resume [ID] | cancel ID]", summary: "list, resume or cancel unfinished uploads", detail: uploadsDetail, run: cmdUploads},
		{name: "timer", args: "HANDLE [DURATION | off]", summary: "show or set the vanishing-message timer", detail: timerDetail, run: cmdTimer},
		{name: "contacts", args: "[list | add HANDLE | remove HANDLE]", summary: "manage contacts", run: cmdContacts},
		{name: "requests", args: "[list | accept HANDLE | reject HANDLE]", summary: "manage message requests", run: cmdRequests},
		{name: "block", args: "HANDLE", summary: "block an account", run: cmdBlock},
		{name: "unblock", args: "HANDLE", summary: "unblock an account", run: cmdUnblock},
		{name: "devices", args: "[list | remove ID]", summary: "list or remove this account's devices", run: cmdDevices},
		{name: "link", args: "new [--timeout D] [--no-history] | [--name NAME] CODE", summary: "link a new device to this account",
			detail: "On the existing device run 'parley link new' and type the code it shows\ninto 'parley link CODE' on the new device (with a fresh --home). Then the\nexisting device sends the new one its conversations, end-to-end encrypted\n(not files, view-once media or vanished messages); the new device imports\nthem at its next sync.\nFlags:\n  --timeout D    with new: wait at most D for the new device (default 10m)\n  --no-history   with new: do not send the conversations\n  --name NAME    with CODE: this device's name (default: parley on HOSTNAME)",
			run:    cmdLink},
		{name: "verify", args: "HANDLE [--mark]", summary: "show the safety number with HANDLE; --mark to mark it verified", detail: "Flags:\n  --mark   mark the safety number verified (also accepts a changed one)",
			run: cmdVerify},
		{name: "typing", args: "HANDLE [--stop]", summary: "send a typing indicator", detail: "Flags:\n  --stop   say you stopped typing",
			run: cmdTyping},
		{name: "call", args: "HANDLE [--video] [--audio-in FILE.ogg] [--video-in FILE.ivf] [--record DIR] [--for DURATION] [--relay-only]",
			summary: "make a voice or video call", detail: callDetail, run: cmdCall},
		{name: "answer", args: "[--wait DURATION] [--record DIR] [--for DURATION] [--relay-only]",
			summary: "wait for a call and answer it", detail: answerDetail, run: cmdAnswer},
		{name: "settings", args: "[read-receipts on|off | relay-only on|off]", summary: "show or change settings", run: cmdSettings},
		{name: "pin", args: "set | change | remove | status [--pin-stdin] [--accept-realms] [--realm-keys K1,...]", summary: "manage the PIN backup of this account",
			detail: pinDetail, run: cmdPin},
		{name: "restore", args: "[--pin-stdin] [--realm-keys K1,K2,...] [--name NAME] HANDLE", summary: "restore an account on this new device from its PIN backup",
			detail: restoreDetail, run: cmdRestore},
		{name: "account", args: "delete HANDLE", summary: "delete this account everywhere (type its handle to confirm)",
			detail: "Deletes the account at the server with everything it holds of it (devices,\nkeys, queued messages, the PIN backup; the realms' shares too), signs every\ndevice out, frees the handle, and erases this device's database. Files saved\nin the downloads folder stay. Contacts see a new safety number if someone\nregisters the handle again.",
			run:    cmdAccount},
		{name: "version", summary: "print the version", run: cmdVersion},
		{name: "help", args: "[COMMAND]", summary: "show help", run: cmdHelp},
	}
}

func findCommand(name string) *command {
	for _, c := range commandList() {
		if c.name == name {
			return c
		}
	}
	return nil
}

// usageError is a mistake in the command line: exit code 2.
type usageError struct {
	cmd string // command name, may be empty
	msg string
}

func (e *usageError) Error() string { return e.msg }

func usagef(cmd, format string, args ...any) error {
	return &usageError{cmd: cmd, msg: fmt.Sprintf(format, args...)}
}

// errHelp asks for a command's help on stdout and exit 0.
type errHelp struct{ cmd string }

func (e *errHelp) Error() string { return "help requested" }

// registerGlobals adds the global flags to fs, bound to a's fields.
func (a *app) registerGlobals(fs *flag.FlagSet) {
	fs.StringVar(&a.home, "home", a.home, "client `DIR` (default $PARLEY_HOME, else the user config dir)")
	fs.StringVar(&a.server, "server", a.server, "server `URL` (default $PARLEY_SERVER, else the home's, else http://127.0.0.1:8080)")
	fs.BoolVar(&a.json, "json", a.json, "machine-readable output, one JSON object a line")
}

// flags returns a flag set for cmd with the global flags on it.
func (a *app) flags(cmd string) *flag.FlagSet {
	fs := flag.NewFlagSet("parley "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	a.registerGlobals(fs)
	return fs
}

// parse parses args with flags anywhere among the positional arguments
// ("parley history bob --limit 5"). After maxPos positional arguments
// (maxPos < 0: no limit) the rest is taken verbatim, as it is after "--".
func parse(fs *flag.FlagSet, cmd string, args []string, maxPos int) ([]string, error) {
	var pos []string
	for {
		if maxPos >= 0 && len(pos) >= maxPos {
			return append(pos, args...), nil
		}
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, &errHelp{cmd: cmd}
			}
			return nil, usagef(cmd, "%s", flagErrorSentence(err))
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if i := len(args) - len(rest); i > 0 && args[i-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func flagErrorSentence(err error) string {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return "unknown flag --" + strings.TrimPrefix(name, "-")
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return "flag --" + strings.TrimPrefix(name, "-") + " needs a value"
	}
	// invalid value "x" for flag -limit: parse error
	if m := invalidValue.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("invalid value %s for --%s", m[1], m[2])
	}
	return msg
}

var invalidValue = regexp.MustCompile(`^invalid (?:boolean )?value (".*") for (?:flag )?-+([\w-]+)`)

// main runs the program and returns its exit code.
func (a *app) main(ctx context.Context, args []string) int {
	err := a.dispatch(ctx, args)
	return a.report(ctx, err)
}

func (a *app) dispatch(ctx context.Context, args []string) error {
	fs := a.flags("")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return &errHelp{}
		}
		return usagef("", "%s", flagErrorSentence(err))
	}
	rest := fs.Args()
	if len(rest) == 0 {
		if a.stdinTTY && a.stdoutTTY && !a.json {
			return a.runTUI(ctx)
		}
		return usagef("", "no command given")
	}
	cmd := findCommand(rest[0])
	if cmd == nil {
		return usagef("", "unknown command %q", rest[0])
	}
	return cmd.run(ctx, a, rest[1:])
}

// report prints err as a sentence and returns the exit code.
func (a *app) report(ctx context.Context, err error) int {
	var help *errHelp
	var usage *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &help):
		a.printHelp(a.stdout, help.cmd)
		return exitOK
	case errors.As(err, &usage):
		fmt.Fprintf(a.stderr, "parley: %s\n", usage.msg)
		if usage.cmd != "" {
			fmt.Fprintf(a.stderr, "usage: parley %s %s\n", usage.cmd, findCommand(usage.cmd).args)
			fmt.Fprintf(a.stderr, "Run 'parley help %s' for more.\n", usage.cmd)
		} else {
			a.printHelp(a.stderr, "")
		}
		return exitUsage
	case ctx.Err() != nil:
		// Interrupted (Ctrl-C): whatever failed, failed because of it.
		fmt.Fprintln(a.stderr, "parley: interrupted")
		return exitInterrupted
	default:
		fmt.Fprintf(a.stderr, "parley: %s\n", a.sentence(err))
		return exitError
	}
}

func (a *app) printHelp(w io.Writer, name string) {
	if name != "" {
		if c := findCommand(name); c != nil {
			fmt.Fprintf(w, "usage: parley %s %s\n\n%s.\n", c.name, c.args, capitalise(c.summary))
			if c.detail != "" {
				fmt.Fprintf(w, "\n%s\n", c.detail)
			}
			fmt.Fprint(w, globalHelp)
			return
		}
	}
	fmt.Fprint(w, "usage: parley [--home DIR] [--server URL] [--json] COMMAND [ARGS]\n\n")
	fmt.Fprint(w, "With no command, in a terminal, parley opens its terminal UI.\n\nCommands:\n")
	for _, c := range commandList() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, globalHelp)
	fmt.Fprint(w, "\nRun 'parley help COMMAND' for a command's arguments.\n")
}

const globalHelp = `
Global flags (before or after the command):
  --home DIR     client state (default $PARLEY_HOME, else the user config dir + /parley)
  --server URL   server (default $PARLEY_SERVER, else the home's, else http://127.0.0.1:8080)
  --json         one JSON object a line on stdout
`

func capitalise(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// defaultServer is used when neither flag, environment nor home names one.
const defaultServer = "http://127.0.0.1:8080"

// homeDir resolves the client home: flag, then PARLEY_HOME, then the
// user config dir.
func (a *app) homeDir() (string, error) {
	if a.home != "" {
		return a.home, nil
	}
	if h := a.getenv("PARLEY_HOME"); h != "" {
		return h, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("cannot find a place for the client's state (%v); set --home or PARLEY_HOME", err)
	}
	return filepath.Join(dir, "parley"), nil
}

// serverURL resolves the server: flag, then PARLEY_SERVER; empty means
// the one stored in the home (the client falls back to defaultServer).
func (a *app) serverURL() string {
	if a.server != "" {
		return a.server
	}
	return a.getenv("PARLEY_SERVER")
}

// logger returns a logger to w at the level in PARLEY_LOG (debug, info,
// warn, error); without PARLEY_LOG it discards everything.
func (a *app) logger(w io.Writer) *slog.Logger {
	var level slog.Level
	switch strings.ToLower(a.getenv("PARLEY_LOG")) {
	case "":
		return slog.New(slog.DiscardHandler)
	case "debug":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	case "warn", "warning":
		level = slog.LevelWarn
	default:
		level = slog.LevelError
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// open opens the client in the home. deviceName is used by register and
// link; other commands pass "".
func (a *app) open(ctx context.Context, deviceName string) (*client.Client, error) {
	return a.openWith(ctx, deviceName, a.logger(a.stderr))
}

// openWith opens the client with the server from the flag or environment,
// else the one stored in the home, else defaultServer.
func (a *app) openWith(ctx context.Context, deviceName string, logger *slog.Logger) (*client.Client, error) {
	home, err := a.homeDir()
	if err != nil {
		return nil, err
	}
	minTimer, err := a.minTimerEnv() // files.go
	if err != nil {
		return nil, err
	}
	o := client.Options{Home: home, Server: a.serverURL(), Logger: logger, DeviceName: deviceName, MinTimer: minTimer}
	c, err := client.Open(ctx, o)
	if err != nil {
		return nil, err
	}
	if c.Server() == "" {
		// A fresh home and no server named: use the default.
		c.Close()
		o.Server = defaultServer
		if c, err = client.Open(ctx, o); err != nil {
			return nil, err
		}
	}
	a.usedServer = c.Server()
	return c, nil
}

// openRegistered opens the client and requires a registered device.
func (a *app) openRegistered(ctx context.Context) (*client.Client, error) {
	c, err := a.open(ctx, "")
	if err != nil {
		return nil, err
	}
	if !c.Registered() {
		c.Close()
		return nil, client.ErrNotRegistered
	}
	return c, nil
}

func (a *app) runTUI(ctx context.Context) error {
	home, err := a.homeDir()
	if err != nil {
		return err
	}
	// The screen belongs to the UI: logs go to a file in the home.
	logw := io.Discard
	if a.getenv("PARLEY_LOG") != "" {
		if err := os.MkdirAll(home, 0o700); err == nil {
			if f, err := os.OpenFile(filepath.Join(home, "tui.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600); err == nil {
				defer f.Close()
				logw = f
			}
		}
	}
	c, err := a.openWith(ctx, "", a.logger(logw))
	if err != nil {
		return err
	}
	defer c.Close()
	if !c.Registered() {
		return client.ErrNotRegistered
	}
	err = tui.Run(ctx, c)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
