package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/parleychat/parley/internal/client"
	"github.com/parleychat/parley/internal/pinbackup"
	"github.com/parleychat/parley/internal/realm"
	"github.com/parleychat/parley/internal/realm/realmclient"
)

// PIN backup commands: pin set | change | remove | status, restore, and
// the PIN offered by register.

const pinDetail = `A PIN (4 digits at least; longer PINs and passphrases are stronger) protects
a backup of this account's identity key, contacts and settings. A new device
restores the account with 'parley --home NEW restore HANDLE' and the PIN.
After 10 wrong PINs the backup is destroyed for good.
Commands:
  set      create the backup (a new one if it exists)
  change   change the PIN of the backup
  remove   delete the backup at every realm and at the server
  status   show the backup's state (costs no guess)
Flags:
  --pin-stdin       read the PIN from the first line of standard input
                    (otherwise from the terminal, without echo, twice)
  --accept-realms   accept and pin a realm set that differs from the pinned one
  --realm-keys K1,K2,...
                    require exactly these realm public keys (base64, in order)`

const restoreDetail = `Restores the account HANDLE on this fresh device (use a new --home) from its
PIN backup: the same identity key, contacts and settings, so safety numbers
do not change. This device is added to the account's devices; the account's
other devices are told that a recovery happened. A wrong PIN uses up one of
the backup's guesses.
A fresh home has no realm set pinned yet: pass the realm keys your server's
operator publishes (or that 'parley pin status' showed on your old device)
with --realm-keys, so that a server cannot name realms of its own.
Flags:
  --pin-stdin       read the PIN from the first line of standard input
  --realm-keys K1,K2,...
                    require exactly these realm public keys (base64, in order)
  --accept-realms   accept and pin a realm set that differs from the pinned one
  --name NAME       this device's name (default: parley on HOSTNAME)`

// jsonPINStatus is pin status in --json output.
type jsonPINStatus struct {
	Type           string   `json:"type"` // "pin_status"
	State          string   `json:"state"`
	Realms         int      `json:"realms"`
	Threshold      int      `json:"threshold"`
	Answered       int      `json:"answered"`
	Holding        int      `json:"holding"`
	AllowedGuesses int      `json:"allowed_guesses"`
	GuessesLeft    int      `json:"guesses_left"`
	HasKey         bool     `json:"has_key"`
	BlobStored     bool     `json:"blob_stored"`
	BlobUpdated    string   `json:"blob_updated,omitempty"`
	BlobStale      bool     `json:"blob_stale,omitempty"`
	LastAttempt    string   `json:"last_recovery_attempt,omitempty"`
	RealmKeys      []string `json:"realm_keys"`
}

func cmdPin(ctx context.Context, a *app, args []string) error {
	fs := a.flags("pin")
	pinStdin := fs.Bool("pin-stdin", false, "read the PIN from standard input")
	accept := fs.Bool("accept-realms", false, "accept a changed realm set")
	keys := fs.String("realm-keys", "", "expected realm public keys")
	pos, err := parse(fs, "pin", args, -1)
	if err != nil {
		return err
	}
	expect, err := parseRealmKeys("pin", *keys)
	if err != nil {
		return err
	}
	sub, rest := subcommand(pos)
	if err := noArgs("pin", rest); err != nil {
		return err
	}
	o := client.PINOptions{AcceptRealms: *accept, ExpectKeys: expect}
	switch sub {
	case "set", "change":
		c, err := a.openRegistered(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		pin, err := a.readPIN(*pinStdin, true)
		if err != nil {
			return err
		}
		if sub == "set" {
			err = c.SetPIN(ctx, pin, o)
		} else {
			err = c.ChangePIN(ctx, pin, o)
		}
		if err != nil {
			return err
		}
		if sub == "set" {
			return a.result(jsonResult{Command: "pin set", Handle: c.Handle()},
				"PIN set: @%s can be restored on a new device with 'parley restore %s' and this PIN.", c.Handle(), c.Handle())
		}
		return a.result(jsonResult{Command: "pin change", Handle: c.Handle()}, "PIN changed.")
	case "remove", "rm":
		c, err := a.openRegistered(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		if err := c.RemovePIN(ctx, o); err != nil {
			return err
		}
		return a.result(jsonResult{Command: "pin remove", Handle: c.Handle()},
			"PIN backup removed from every realm and from the server.")
	case "status", "":
		c, err := a.openRegistered(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		st, err := c.PINStatus(ctx, o)
		if err != nil {
			return err
		}
		a.subject = c.Handle()
		if err := a.printPINStatus(st); err != nil {
			return err
		}
		if (st.State == client.PINDestroyed || st.State == client.PINNone) && a.stdinTTY && !a.json {
			if ok, err := a.confirm("Create a new PIN backup now? [y/N] ", false); err != nil || !ok {
				return err
			}
			pin, err := a.readPIN(false, true)
			if err != nil {
				return err
			}
			if err := c.SetPIN(ctx, pin, o); err != nil {
				return err
			}
			a.println("PIN set.")
		}
		return nil
	}
	return usagef("pin", "unknown pin command %q (want set, change, remove or status)", sub)
}

func (a *app) printPINStatus(st client.PINStatus) error {
	if a.json {
		j := jsonPINStatus{Type: "pin_status", State: st.State, Realms: st.Realms, Threshold: st.Threshold,
			Answered: st.Answered, Holding: st.Holding, AllowedGuesses: st.AllowedGuesses, GuessesLeft: st.GuessesLeft,
			HasKey: st.HasKey, BlobStored: st.BlobStored, BlobStale: st.BlobStale,
			BlobUpdated: formatJSONTime(st.BlobUpdated), LastAttempt: formatJSONTime(st.LastAttempt), RealmKeys: realmKeys(st.RealmSet)}
		return a.printJSON(j)
	}
	switch st.State {
	case client.PINSet:
		a.println("PIN backup: set (%d of %d realms hold it; %d are needed to restore).", st.Holding, st.Realms, st.Threshold)
		a.println("Wrong PINs left before it is destroyed: %d of %d.", st.GuessesLeft, st.AllowedGuesses)
	case client.PINDestroyed:
		a.println("PIN backup: DESTROYED after too many wrong PINs; it can no longer be restored.")
		a.println("Create a new one with 'parley pin set'.")
	case client.PINNone:
		a.println("PIN backup: none. Create one with 'parley pin set'.")
	default:
		a.println("PIN backup: unknown (%d of %d realms answered; %d are needed).", st.Answered, st.Realms, st.Threshold)
	}
	switch {
	case st.BlobStored && st.BlobStale:
		a.println("Sealed account at the server: stored %s, older than this device's contacts (run 'parley pin change' to refresh).", st.BlobUpdated.Local().Format("2006-01-02 15:04"))
	case st.BlobStored:
		a.println("Sealed account at the server: stored %s.", st.BlobUpdated.Local().Format("2006-01-02 15:04"))
	case st.State == client.PINSet:
		a.println("Sealed account at the server: MISSING; run 'parley pin set' to make a new backup.")
	}
	if !st.LastAttempt.IsZero() {
		a.println("Last recovery attempt announced here: %s.", st.LastAttempt.Local().Format("2006-01-02 15:04:05"))
	}
	a.println("Realms: %s.", st.RealmSet)
	a.println("To restore on a new device: parley restore %s --realm-keys %s", a.subjectOr(), strings.Join(realmKeys(st.RealmSet), ","))
	return nil
}

func (a *app) subjectOr() string {
	if a.subject != "" {
		return a.subject
	}
	return "HANDLE"
}

func realmKeys(s client.RealmSet) []string {
	out := []string{}
	for _, r := range s.Realms {
		out = append(out, base64.StdEncoding.EncodeToString(r.PublicKey))
	}
	return out
}

// parseRealmKeys parses --realm-keys: comma-separated base64 keys.
func parseRealmKeys(cmd, s string) ([][]byte, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out [][]byte
	for k := range strings.SplitSeq(s, ",") {
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(k))
		if err != nil || len(b) != 32 {
			return nil, usagef(cmd, "--realm-keys: %q is not the base64 of a 32-byte realm public key", strings.TrimSpace(k))
		}
		out = append(out, b)
	}
	return out, nil
}

func cmdRestore(ctx context.Context, a *app, args []string) error {
	fs := a.flags("restore")
	pinStdin := fs.Bool("pin-stdin", false, "read the PIN from standard input")
	accept := fs.Bool("accept-realms", false, "accept a changed realm set")
	keys := fs.String("realm-keys", "", "expected realm public keys")
	name := fs.String("name", "", "device `NAME` (default: parley on HOSTNAME)")
	pos, err := parse(fs, "restore", args, -1)
	if err != nil {
		return err
	}
	expect, err := parseRealmKeys("restore", *keys)
	if err != nil {
		return err
	}
	handle, err := a.oneHandle("restore", pos)
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
	if c.Registered() {
		return fmt.Errorf("this home already holds @%s; restore into a fresh --home (or PARLEY_HOME)", c.Handle())
	}
	o := client.PINOptions{AcceptRealms: *accept, ExpectKeys: expect}
	if len(expect) == 0 {
		// Nothing to check the server's realms against on first use: say
		// which ones are trusted, before the PIN is typed.
		if offered, pinned, err := c.FetchRealms(ctx); err == nil && len(pinned.Realms) == 0 {
			a.warn("this home has no realm set pinned; trusting the server's: %s (pass --realm-keys to check them)", offered)
		}
	}
	pin, err := a.readPIN(*pinStdin, false)
	if err != nil {
		return err
	}
	if err := c.Restore(ctx, handle, pin, o); err != nil {
		return err
	}
	return a.result(jsonResult{Command: "restore", Handle: c.Handle(), Device: c.DeviceID()},
		"Restored @%s from its PIN backup: this is device %d. Contacts and safety numbers are as they were.", c.Handle(), c.DeviceID())
}

// offerPIN runs after register: with --pin-stdin it sets the PIN read from
// stdin; in a terminal it offers to set one when the server has realms.
func (a *app) offerPIN(ctx context.Context, c *client.Client, pinStdin bool) error {
	if !pinStdin {
		if !a.stdinTTY || a.json {
			return nil
		}
		if _, _, err := c.FetchRealms(ctx); err != nil {
			return nil // no realms (or unreachable): nothing to offer
		}
		ok, err := a.confirm("Set a PIN to back up this account (restore it on a new device with handle + PIN)? [Y/n] ", true)
		if err != nil || !ok {
			if err == nil {
				a.println("No PIN set; run 'parley pin set' later.")
			}
			return err
		}
	}
	pin, err := a.readPIN(pinStdin, true)
	if err != nil {
		return err
	}
	if err := c.SetPIN(ctx, pin, client.PINOptions{}); err != nil {
		return &pinAfterRegisterError{handle: c.Handle(), err: err}
	}
	return a.result(jsonResult{Command: "pin set", Handle: c.Handle()}, "PIN set.")
}

// pinAfterRegisterError is a PIN that could not be set after a
// successful registration.
type pinAfterRegisterError struct {
	handle string
	err    error
}

func (e *pinAfterRegisterError) Error() string {
	return fmt.Sprintf("registered @%s, but setting the PIN failed: %v", e.handle, e.err)
}

func (e *pinAfterRegisterError) Unwrap() error { return e.err }

// readPIN reads a PIN: the first line of stdin with fromStdin, else from
// the terminal without echo (twice when twice).
func (a *app) readPIN(fromStdin, twice bool) ([]byte, error) {
	if fromStdin {
		line, err := bufio.NewReader(a.stdin).ReadString('\n')
		if err != nil && line == "" {
			return nil, errors.New("no PIN on standard input")
		}
		pin := []byte(strings.TrimRight(line, "\r\n"))
		return pin, pinbackup.ValidPIN(pin)
	}
	f, ok := a.stdin.(*os.File)
	if !ok || !a.stdinTTY {
		return nil, errors.New("no terminal to read the PIN from: pass --pin-stdin and give the PIN on standard input")
	}
	read := func(prompt string) ([]byte, error) {
		fmt.Fprint(a.stderr, prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(a.stderr)
		if err != nil {
			return nil, fmt.Errorf("reading the PIN: %w", err)
		}
		return b, nil
	}
	pin, err := read("PIN: ")
	if err != nil {
		return nil, err
	}
	if err := pinbackup.ValidPIN(pin); err != nil {
		return nil, err
	}
	if twice {
		again, err := read("PIN again: ")
		if err != nil {
			return nil, err
		}
		if string(again) != string(pin) {
			return nil, errors.New("the two PINs differ; nothing was changed")
		}
	}
	return pin, nil
}

// confirm asks a yes/no question on the terminal.
func (a *app) confirm(question string, def bool) (bool, error) {
	fmt.Fprint(a.stderr, question)
	line, err := bufio.NewReader(a.stdin).ReadString('\n')
	if err != nil && line == "" {
		return false, nil
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "":
		return def, nil
	case "y", "yes":
		return true, nil
	}
	return false, nil
}

// pinSentence words the PIN-backup errors; ok is false for others.
func (a *app) pinSentence(err error) (string, bool) {
	who := "this account"
	if a.subject != "" {
		who = "@" + a.subject
	}
	var wrong *realmclient.WrongPINError
	var changed *client.RealmsChangedError
	var after *pinAfterRegisterError
	switch {
	case errors.As(err, &after):
		return fmt.Sprintf("registered @%s, but setting the PIN failed: %s; run 'parley pin set' to try again", after.handle, a.sentence(after.err)), true
	case errors.As(err, &wrong):
		if wrong.GuessesLeft == 1 {
			return "wrong PIN: 1 guess is left before the backup is destroyed for good", true
		}
		return fmt.Sprintf("wrong PIN: %d guesses are left before the backup is destroyed for good", wrong.GuessesLeft), true
	case errors.Is(err, pinbackup.ErrDestroyed):
		msg := fmt.Sprintf("the PIN backup of %s was destroyed after too many wrong PINs and can no longer be restored", who)
		if strings.Contains(err.Error(), "last guess") {
			msg = "wrong PIN, and that was the last guess: " + msg
		}
		return msg + "; link this device from another device of the account, or set a new PIN there", true
	case errors.Is(err, pinbackup.ErrTooFewRealms) && realmCode(err, realm.CodeRateLimited):
		return fmt.Sprintf("the PIN-backup realms are limiting recovery attempts for %s; try again later", who), true
	case errors.Is(err, pinbackup.ErrTooFewRealms):
		detail := strings.TrimPrefix(err.Error(), pinbackup.ErrTooFewRealms.Error())
		if i := strings.Index(detail, " ("); i >= 0 {
			detail = detail[:i]
		}
		msg := "cannot reach enough PIN-backup realms" + detail + "; try again later"
		if strings.Contains(detail, "realms answered") { // refused before any realm counted a guess
			msg += " (no guess was used)"
		}
		return msg, true
	case errors.Is(err, pinbackup.ErrNotFound):
		return fmt.Sprintf("%s has no PIN backup", who), true
	case errors.Is(err, pinbackup.ErrMisbehaving), errors.Is(err, realmclient.ErrBadSignature):
		return "refusing to continue: " + strings.TrimPrefix(err.Error(), "pinbackup: "), true
	case errors.Is(err, pinbackup.ErrPIN):
		return "a PIN has at least 4 characters (digits, or a longer passphrase) and at most 128 bytes", true
	case errors.Is(err, pinbackup.ErrBlob), errors.Is(err, client.ErrBackupAccount):
		return fmt.Sprintf("the PIN was right, but the sealed account at the server does not open with it (it was replaced or damaged); %s cannot be restored from this backup", who), true
	case errors.As(err, &changed):
		if changed.Expected {
			return fmt.Sprintf("refusing to continue: the server names other PIN-backup realms (%s) than the --realm-keys given; no PIN was sent", changed.Offered), true
		}
		return fmt.Sprintf("the server now names other PIN-backup realms (%s) than the ones pinned on this device (%s); if the operator announced this change, run the command again with --accept-realms", changed.Offered, changed.Pinned), true
	case errors.Is(err, client.ErrNoRealms):
		return "this server has no PIN backup configured", true
	case errors.Is(err, client.ErrNoBackup):
		return fmt.Sprintf("%s has no usable PIN backup; create one with 'parley pin set'", who), true
	case errors.Is(err, realmclient.ErrIncomplete):
		return "not every PIN-backup realm completed the request (" + strings.TrimPrefix(err.Error(), realmclient.ErrIncomplete.Error()+": ") + "); try again when they are all reachable", true
	}
	return "", false
}

// realmCode reports whether err holds a realm's error with code.
func realmCode(err error, code string) bool {
	found := false
	var walk func(error)
	walk = func(e error) {
		if e == nil || found {
			return
		}
		if re, ok := e.(*realmclient.RealmError); ok && re.Code == code {
			found = true
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return found
}

// describePINEvent words a PIN-backup sync event for a person; "" for others.
func describePINEvent(e client.Event) string {
	when := e.Detail
	if t, err := time.Parse(time.RFC3339, e.Detail); err == nil {
		when = t.Local().Format("2006-01-02 15:04:05")
	}
	switch e.Type {
	case client.EventRecoveryAttempt:
		return fmt.Sprintf("someone began restoring this account from its PIN backup at %s; if it was not you, check 'parley pin status'", when)
	case client.EventDeviceRecovered:
		return fmt.Sprintf("device %d was added to this account by PIN recovery at %s; if it was not you, remove it with 'parley devices remove %d' and change the PIN", e.Device, when, e.Device)
	}
	return ""
}
