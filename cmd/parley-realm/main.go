// Command parley-realm is a PIN-backup realm (see internal/realm).
//
//	parley-realm --issuer-key BASE64 [flags]   serve (see parley-realm -h for the flags)
//	parley-realm key --data DIR                print the realm's id and public key (creating the key)
//	parley-realm config show [flags]           print the effective configuration as JSON
//	parley-realm version                       print the version
//
// --issuer-key is parleyd's token public key: the realm accepts only
// access tokens parleyd signed for it. Configuration comes from defaults,
// PARLEY_REALM_* environment variables and flags, in that order of
// precedence. Logs go to stderr; once serving, parley-realm logs
// msg=listening with addr=<the bound host:port>.
package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/parleychat/parley/internal/realm"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv)
	stop()
	os.Exit(code)
}

// run is parley-realm with its inputs made explicit; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) (string, bool)) int {
	if len(args) > 0 {
		switch args[0] {
		case "version":
			fmt.Fprintln(stdout, "parley-realm", realm.Version())
			return 0
		case "config":
			if len(args) < 2 || args[1] != "show" {
				fmt.Fprintln(stderr, "usage: parley-realm config show [flags]")
				return 2
			}
			cfg, code := load(args[2:], stderr, getenv)
			if code >= 0 {
				return code
			}
			stdout.Write(cfg.JSON())
			return 0
		case "key":
			return keyCmd(args[1:], stdout, stderr)
		}
	}
	cfg, code := load(args, stderr, getenv)
	if code >= 0 {
		return code
	}
	logger := cfg.Logger(stderr)
	srv, err := realm.New(cfg, logger)
	if err != nil {
		logger.Error("cannot start", "err", err)
		return 1
	}
	if err := srv.Run(ctx); err != nil {
		logger.Error("realm stopped with an error", "err", err)
		return 1
	}
	return 0
}

// load returns the configuration, or an exit code >= 0.
func load(args []string, stderr io.Writer, getenv func(string) (string, bool)) (realm.Config, int) {
	cfg, err := realm.Load(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return cfg, 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "parley-realm:", err)
		return cfg, 2
	}
	return cfg, -1
}

// keyCmd prints the realm's id and public key, creating the key if the
// data folder has none: what an operator publishes for clients to pin.
func keyCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("parley-realm key", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", realm.Defaults().DataDir, "data folder")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	pub, id, err := realm.LoadKey(*data)
	if err != nil {
		fmt.Fprintln(stderr, "parley-realm:", err)
		return 1
	}
	fmt.Fprintf(stdout, "id %x\npublic_key %s\n", id[:], base64.StdEncoding.EncodeToString(pub))
	return 0
}
