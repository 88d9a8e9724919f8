// Command parleyd is the Parley server.
//
//	parleyd [flags]               serve (see parleyd -h for the flags)
//	parleyd config defaults       print the built-in configuration as JSON
//	parleyd config show [flags]   print the effective configuration as JSON
//	parleyd realm-key [flags]     print the realm token public key (creating the key), for the realms' --issuer-key
//	parleyd invite create|list|revoke [flags]
//	                              invites for --registration invite (parleyd invite -h)
//	parleyd version               print the version
//
// Configuration comes from defaults, a JSON file (--config or
// PARLEY_CONFIG), PARLEY_* environment variables and flags, in that order
// of precedence (see internal/config). Logs go to stderr; once serving,
// parleyd logs msg=listening with addr=<the bound host:port>.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv)
	stop()
	os.Exit(code)
}

// run is parleyd with its inputs made explicit; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) (string, bool)) int {
	if len(args) > 0 {
		switch args[0] {
		case "version":
			fmt.Fprintln(stdout, "parleyd", server.Version())
			return 0
		case "config":
			return configCmd(args[1:], stdout, stderr, getenv)
		case "realm-key":
			return realmKeyCmd(args[1:], stdout, stderr, getenv)
		case "invite":
			return inviteCmd(ctx, args[1:], stdout, stderr, getenv)
		}
	}
	cfg, code, ok := loadConfig(args, getenv, stderr)
	if !ok {
		return code
	}
	logger := cfg.Logger(stderr)
	srv, err := server.New(cfg, logger)
	if err != nil {
		logger.Error("cannot start", "err", err)
		return 1
	}
	if err := srv.Run(ctx); err != nil {
		logger.Error("server stopped with an error", "err", err)
		return 1
	}
	return 0
}

// loadConfig is config.Load for a command: ok is false when the command
// ends there, with code (0 after -h, 2 after a bad setting, said on
// stderr).
func loadConfig(args []string, getenv func(string) (string, bool), stderr io.Writer) (cfg config.Config, code int, ok bool) {
	cfg, err := config.Load(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return cfg, 0, false
	}
	if err != nil {
		fmt.Fprintln(stderr, "parleyd:", err)
		return cfg, 2, false
	}
	return cfg, 0, true
}

func configCmd(args []string, stdout, stderr io.Writer, getenv func(string) (string, bool)) int {
	usage := "usage: parleyd config defaults | parleyd config show [flags]"
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	switch args[0] {
	case "defaults":
		if len(args) > 1 {
			fmt.Fprintln(stderr, usage)
			return 2
		}
		stdout.Write(config.Defaults().JSON())
		return 0
	case "show":
		cfg, code, ok := loadConfig(args[1:], getenv, stderr)
		if !ok {
			return code
		}
		stdout.Write(cfg.JSON())
		return 0
	default:
		fmt.Fprintln(stderr, usage)
		return 2
	}
}
