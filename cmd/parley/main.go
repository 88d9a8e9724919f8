// Command parley is Parley's client for people who live in a terminal and
// for scripts and bots: subcommands with --json output and, run with no
// command in a terminal, an interactive terminal UI.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	a := &app{
		stdin:     os.Stdin,
		stdout:    os.Stdout,
		stderr:    os.Stderr,
		getenv:    os.Getenv,
		stdinTTY:  term.IsTerminal(int(os.Stdin.Fd())),
		stdoutTTY: term.IsTerminal(int(os.Stdout.Fd())),
	}
	code := a.main(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
