package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/client"
)

// Files and vanishing messages: send --file, download, open, uploads,
// timer, and what sync does with files.

const sendDetail = `Flags go before HANDLE; everything after HANDLE is the message.
Exits 0 once the server has committed the message.
  --reply-to ID      answer message ID of the conversation, which is shown quoted
                     ('parley history HANDLE --json' shows the ids)

With --file (flags may then follow HANDLE):
  --file PATH        send a file of any type and size; JPEG and PNG photos lose
                     their metadata (EXIF, GPS, XMP) first
  --caption TEXT     a text to go with the file
  --keep-metadata    send photos with their metadata
  --view-once        the recipient may open it once ('parley open ID')
  --limit-rate RATE  at most RATE bytes a second (e.g. 500K, 10M)
The file is encrypted on this device; the upload resumes where it stopped
if interrupted: run the same command again, or 'parley uploads resume'.
A progress bar shows on standard error in a terminal.`

const downloadDetail = `Fetches the file of message ID (shown by 'parley history HANDLE --json'),
checks it and saves it under a new name in the home's downloads folder
(or DIR). An interrupted download resumes. A file altered on the server is
refused and nothing is saved. 'parley sync' downloads files by itself.
Flags:
  --to DIR           save into DIR
  --limit-rate RATE  at most RATE bytes a second (e.g. 500K, 10M)`

const openDetail = `Writes the file of message ID to standard output, or with --to saves a
copy into DIR. View-once media can be opened once: then the file is
deleted and only a placeholder remains in the history.
Flags:
  --to DIR   save into DIR instead of writing to standard output`

const uploadsDetail = `Uploads that were interrupted (a lost connection, a killed parley) wait
here until they are resumed: with 'parley uploads resume' (all, or one
ID), or by sending the same file again. 'cancel' drops one.
Flags:
  --limit-rate RATE  at most RATE bytes a second (e.g. 500K, 10M)`

const timerDetail = `Sets how long messages in the conversation with HANDLE live: from 30s to
4w (30s, 10m, 1h, 1d, 4w, ...), or off. Both sides see the change and
either may make it. A vanishing message is deleted from each device, with
its file, its time after it was read there (the sender's: after sending),
and the server drops what was not fetched by then. Without DURATION it
shows the current timer.`

// fileFlags are the flags of send --file.
type fileFlags struct {
	file, caption, rate string
	keepMeta, viewOnce  bool
}

func (a *app) addFileFlags(fs *flag.FlagSet) *fileFlags {
	ff := &fileFlags{}
	fs.StringVar(&ff.file, "file", "", "send the file at `PATH`")
	fs.StringVar(&ff.caption, "caption", "", "a `TEXT` to go with the file")
	fs.BoolVar(&ff.keepMeta, "keep-metadata", false, "send photos with their metadata")
	fs.BoolVar(&ff.viewOnce, "view-once", false, "the recipient may open it once")
	fs.StringVar(&ff.rate, "limit-rate", "", "at most `RATE` bytes a second")
	return ff
}

// hasFileFlag reports whether a send command line sends a file, so that
// its flags may follow HANDLE.
func hasFileFlag(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "--file" || a == "-file" || strings.HasPrefix(a, "--file=") || strings.HasPrefix(a, "-file=") {
			return true
		}
	}
	return false
}

// parseRate reads a rate in bytes a second: 1000, 500K, 10M, 1G (powers
// of 1024); "" is no limit.
func parseRate(s string) (int64, error) {
	s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(s), "/S"), "B"))
	if s == "" {
		return 0, nil
	}
	mult := int64(1)
	switch s[len(s)-1] {
	case 'K':
		mult = 1 << 10
	case 'M':
		mult = 1 << 20
	case 'G':
		mult = 1 << 30
	}
	if mult > 1 {
		s = s[:len(s)-1]
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v <= 0 || v*float64(mult) > 1<<50 {
		return 0, fmt.Errorf("invalid rate")
	}
	return int64(v * float64(mult)), nil
}

func (a *app) rateFlag(cmd, s string) (int64, error) {
	r, err := parseRate(s)
	if err != nil {
		return 0, usagef(cmd, "--limit-rate wants bytes a second such as 500K or 10M, not %q", s)
	}
	return r, nil
}

// sendFile is send --file.
func (a *app) sendFile(ctx context.Context, pos []string, ff *fileFlags) error {
	if len(pos) != 1 || handleArg(pos[0]) == "" {
		return usagef("send", "send --file takes one HANDLE; put a text in --caption")
	}
	a.subject = handleArg(pos[0])
	rate, err := a.rateFlag("send", ff.rate)
	if err != nil {
		return err
	}
	c, err := a.openRegistered(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	bar := a.newProgress()
	res, err := c.SendFile(ctx, a.subject, ff.file, client.FileOptions{
		Caption: ff.caption, KeepMetadata: ff.keepMeta, ViewOnce: ff.viewOnce, Progress: bar.report(), RateLimit: rate,
	})
	bar.done()
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(jsonSentFile{jsonMessage: toJSONMessage(res.Message), ResumedFrom: res.ResumedFrom, MetadataRemoved: res.Removed})
	}
	m := res.Message
	if res.ResumedFrom > 0 {
		a.println("Resumed the upload after %s.", humanBytes(res.ResumedFrom))
	}
	if len(res.Removed) > 0 {
		a.println("Removed the photo's metadata: %s.", strings.Join(res.Removed, ", "))
	}
	what := "file"
	if ff.viewOnce {
		what = "view-once file"
	}
	a.println("Sent the %s %s (%s) to @%s.", what, m.Attachment.Name, humanBytes(m.Attachment.Size), m.Peer)
	return nil
}

// jsonSentFile is send --file's answer: the message, and what happened.
type jsonSentFile struct {
	jsonMessage
	ResumedFrom     int64    `json:"resumed_from,omitempty"`
	MetadataRemoved []string `json:"metadata_removed,omitempty"`
}

// jsonAttachment is a message's file in --json output.
type jsonAttachment struct {
	Name      string `json:"name"`
	MediaType string `json:"media_type"`
	Size      int64  `json:"size"`
	ViewOnce  bool   `json:"view_once,omitempty"`
	State     string `json:"state"`
	Path      string `json:"path,omitempty"`
	Error     string `json:"error,omitempty"`
}

// addFileFields adds a message's kind, timer and file to its JSON form.
func addFileFields(j *jsonMessage, m client.Message) {
	if m.Kind == client.KindTimer || m.Kind == client.KindDeleted {
		j.Kind = m.Kind
	}
	j.Timer = int64(m.Timer / time.Second)
	j.ExpiresAt = formatJSONTime(m.ExpiresAt)
	j.EditedAt = formatJSONTime(m.EditedAt)
	j.ReplyTo = m.ReplyTo
	for _, r := range m.Reactions {
		j.Reactions = append(j.Reactions, jsonReaction{From: r.From, Emoji: r.Emoji})
	}
	if q := m.Quote; q != nil {
		j.Quote = &jsonQuote{From: q.From, Text: q.Text, Deleted: q.Deleted, File: q.File}
	}
	if at := m.Attachment; at != nil {
		j.Attachment = &jsonAttachment{Name: at.Name, MediaType: at.MediaType, Size: at.Size, ViewOnce: at.ViewOnce,
			State: at.State, Path: at.Path, Error: at.Error}
	}
}

// messageText is what a person sees of a message's body: its text, with
// its file in brackets.
func messageText(m client.Message) string {
	return quoteText(m) + bodyText(m) + reactionsText(m)
}

// reactionsText is a message's reactions: "  [👍 bob, 🍜 you]".
func reactionsText(m client.Message) string {
	if len(m.Reactions) == 0 {
		return ""
	}
	parts := make([]string, len(m.Reactions))
	for i, r := range m.Reactions {
		who := r.From // the peer, or this account
		if who != m.Peer {
			who = "you"
		}
		parts[i] = r.Emoji + " " + who
	}
	return "  [" + strings.Join(parts, ", ") + "]"
}

// quoteText is how a reply shows what it answers: `[↪ bob: "the
// start of it"] `.
func quoteText(m client.Message) string {
	if m.ReplyTo == "" {
		return ""
	}
	q := m.Quote
	if q == nil {
		return "[↪ a message not on this device] "
	}
	return fmt.Sprintf("[↪ %s: %q] ", q.From, q.Snippet(40))
}

// bodyText is a message's own text, with its file in brackets.
func bodyText(m client.Message) string {
	if m.Kind == client.KindDeleted {
		if m.Outgoing {
			return "(you deleted this message)"
		}
		return "(this message was deleted)"
	}
	edited := ""
	if !m.EditedAt.IsZero() {
		edited = " (edited)"
	}
	at := m.Attachment
	if at == nil {
		return m.Text + edited + vanishMark(m)
	}
	var s string
	switch {
	case at.ViewOnce && at.State == client.AttachmentOpened:
		s = "[view-once media (opened)]"
	case at.ViewOnce && m.Outgoing:
		s = fmt.Sprintf("[view-once media: %s, %s]", at.Name, humanBytes(at.Size))
	case at.ViewOnce:
		s = fmt.Sprintf("[view-once media: 'parley open %s']", m.ID)
	case at.State == client.AttachmentSaved:
		s = fmt.Sprintf("[file %s, %s: %s]", at.Name, humanBytes(at.Size), at.Path)
	case at.State == client.AttachmentFailed:
		s = fmt.Sprintf("[file %s, %s: not saved (%s); 'parley download %s' tries again]", at.Name, humanBytes(at.Size), at.Error, m.ID)
	case at.State == client.AttachmentPending:
		s = fmt.Sprintf("[file %s, %s: 'parley download %s']", at.Name, humanBytes(at.Size), m.ID)
	default:
		s = fmt.Sprintf("[file %s, %s]", at.Name, humanBytes(at.Size))
	}
	if m.Text != "" {
		s += " " + m.Text
	}
	return s + edited + vanishMark(m)
}

// vanishMark notes that a message vanishes.
func vanishMark(m client.Message) string {
	if m.Timer <= 0 || m.Kind == client.KindTimer {
		return ""
	}
	if m.ExpiresAt.IsZero() {
		return "  (vanishes " + client.FormatTimer(m.Timer) + " after reading)"
	}
	left := time.Until(m.ExpiresAt).Round(time.Second)
	return "  (vanishes in " + client.FormatTimer(max(left, time.Second)) + ")"
}

// formatTimerLine renders a timer change: "15:04 alice set the timer to 1h".
func formatTimerLine(m client.Message, withDate bool) string {
	layout := "15:04"
	if withDate {
		layout = "2006-01-02 15:04"
	}
	who := m.From
	if m.Outgoing {
		who = "you"
	}
	return m.SentAt.Local().Format(layout) + " " + who + " " + m.Text
}

// downloader fetches the files of received messages during sync: at the
// end of a sync, or while --follow runs, each time a message with a file
// arrives.
type downloader struct {
	a    *app
	c    *client.Client
	mu   *sync.Mutex // the output's lock
	bar  *progressBar
	wake chan struct{}
	done chan struct{}
	// failed counts the files not saved (under mu).
	failed int
}

func (a *app) newDownloader(c *client.Client, mu *sync.Mutex) *downloader {
	return &downloader{a: a, c: c, mu: mu, bar: a.newProgress(), wake: make(chan struct{}, 1)}
}

// notice wakes a running downloader for a message with a file.
func (d *downloader) notice(e client.Event) {
	if e.Type == client.EventMessage && e.Message != nil && e.Message.Attachment != nil {
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
}

// start downloads in the background until stop.
func (d *downloader) start(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	d.done = make(chan struct{})
	go func() {
		defer close(d.done)
		d.once(ctx)
		for {
			select {
			case <-ctx.Done():
				return
			case <-d.wake:
				d.once(ctx)
			}
		}
	}()
	return func() {
		cancel()
		<-d.done
	}
}

// once downloads every pending file and reports each.
func (d *downloader) once(ctx context.Context) {
	err := d.c.DownloadPending(ctx, client.DownloadOptions{Progress: d.bar.report()}, func(r client.Downloaded) {
		d.bar.done()
		d.mu.Lock()
		defer d.mu.Unlock()
		if r.Err != nil {
			d.failed++
		}
		d.a.printDownload(r)
	})
	if err != nil && ctx.Err() == nil {
		d.mu.Lock()
		d.failed++
		d.a.warn("downloading files: %s", d.a.sentence(err))
		d.mu.Unlock()
	}
}

// result is the error a sync ends with when files were not saved: the
// messages are received, but a script must learn that a file is missing.
func (d *downloader) result() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch d.failed {
	case 0:
		return nil
	case 1:
		return errors.New("the messages were received, but a file was not saved (said above)")
	}
	return fmt.Errorf("the messages were received, but %d files were not saved (said above)", d.failed)
}

// jsonDownload is a download's outcome in --json output.
type jsonDownload struct {
	Type     string `json:"type"` // "download" or "download_failed"
	ID       string `json:"id"`
	Peer     string `json:"peer"`
	From     string `json:"from"`
	Name     string `json:"name"`
	Size     int64  `json:"size"`
	ViewOnce bool   `json:"view_once,omitempty"`
	Path     string `json:"path,omitempty"`
	Detail   string `json:"detail,omitempty"`
}

func (a *app) printDownload(r client.Downloaded) {
	if a.json {
		j := jsonDownload{Type: "download", ID: r.ID, Peer: r.Peer, From: r.From, Name: r.Name, Size: r.Size, ViewOnce: r.ViewOnce, Path: r.Path}
		if r.Err != nil {
			j.Type, j.Detail, j.Path = "download_failed", a.sentence(r.Err), ""
		}
		a.printJSON(j)
		return
	}
	switch {
	case r.Err != nil:
		a.warn("the file %s from @%s was not saved: %s", r.Name, r.From, a.sentence(r.Err))
	case r.ViewOnce:
		a.println("View-once media from @%s: open it once with 'parley open %s'.", r.From, r.ID)
	default:
		a.println("Saved %s (%s) from @%s to %s", r.Name, humanBytes(r.Size), r.From, r.Path)
	}
}

func cmdDownload(ctx context.Context, a *app, args []string) error {
	fs := a.flags("download")
	to := fs.String("to", "", "save into `DIR`")
	rateS := fs.String("limit-rate", "", "at most `RATE` bytes a second")
	pos, err := parse(fs, "download", args, -1)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("download", "download needs exactly one message ID")
	}
	rate, err := a.rateFlag("download", *rateS)
	if err != nil {
		return err
	}
	c, err := a.openRegistered(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	bar := a.newProgress()
	r, err := c.Download(ctx, pos[0], client.DownloadOptions{Dir: *to, Progress: bar.report(), RateLimit: rate})
	bar.done()
	if err != nil {
		return err
	}
	a.printDownload(r)
	return nil
}

func cmdOpen(ctx context.Context, a *app, args []string) error {
	fs := a.flags("open")
	to := fs.String("to", "", "save into `DIR`")
	pos, err := parse(fs, "open", args, -1)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("open", "open needs exactly one message ID")
	}
	if a.json && *to == "" {
		return usagef("open", "with --json, open needs --to DIR (standard output carries the JSON)")
	}
	c, err := a.openRegistered(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if *to == "" {
		_, err := c.Open(ctx, pos[0], a.stdout, client.DownloadOptions{Progress: a.newProgress().report()})
		return err
	}
	// Into a file named after the original, never replacing one.
	tmp, err := os.CreateTemp(*to, ".parley-open-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	r, err := c.Open(ctx, pos[0], tmp, client.DownloadOptions{Progress: a.newProgress().report()})
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	dst, err := freeName(*to, client.SafeFileName(r.Name))
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return err
	}
	if a.json {
		return a.printJSON(struct {
			Type     string `json:"type"`
			ID       string `json:"id"`
			Path     string `json:"path"`
			ViewOnce bool   `json:"view_once,omitempty"`
		}{"open", r.ID, dst, r.ViewOnce})
	}
	if r.ViewOnce {
		a.println("Saved the view-once media to %s; it is gone from parley now.", dst)
	} else {
		a.println("Saved %s to %s", r.Name, dst)
	}
	return nil
}

// freeName returns a path in dir named name, or "name (2)", ... if taken.
func freeName(dir, name string) (string, error) {
	ext := filepath.Ext(name)
	stem := strings.TrimSuffix(name, ext)
	for n := 1; n < 10000; n++ {
		cand := name
		if n > 1 {
			cand = fmt.Sprintf("%s (%d)%s", stem, n, ext)
		}
		p := filepath.Join(dir, cand)
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			return p, nil
		}
	}
	return "", fmt.Errorf("no free name for %s in %s", name, dir)
}

// jsonUpload is an unfinished upload in --json output.
type jsonUpload struct {
	Type    string `json:"type"` // "upload"
	ID      string `json:"id"`
	Peer    string `json:"peer"`
	Path    string `json:"path"`
	Name    string `json:"name"`
	Size    int64  `json:"size"`
	Created string `json:"created"`
}

func cmdUploads(ctx context.Context, a *app, args []string) error {
	fs := a.flags("uploads")
	rateS := fs.String("limit-rate", "", "at most `RATE` bytes a second")
	pos, err := parse(fs, "uploads", args, -1)
	if err != nil {
		return err
	}
	rate, err := a.rateFlag("uploads", *rateS)
	if err != nil {
		return err
	}
	sub, rest := subcommand(pos)
	switch sub {
	case "list", "ls":
		if err := noArgs("uploads", rest); err != nil {
			return err
		}
	case "resume":
		if len(rest) > 1 {
			return usagef("uploads", "uploads resume takes at most one ID")
		}
	case "cancel":
		if len(rest) != 1 {
			return usagef("uploads", "uploads cancel needs one ID")
		}
	default:
		return usagef("uploads", "unknown uploads command %q (want list, resume or cancel)", sub)
	}
	c, err := a.openRegistered(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	switch sub {
	case "cancel":
		if err := c.CancelUpload(ctx, rest[0]); err != nil {
			return err
		}
		return a.result(jsonResult{Command: "uploads cancel"}, "Cancelled the upload %s.", rest[0])
	case "resume":
		ids := rest
		if len(ids) == 0 {
			ups, err := c.Uploads(ctx)
			if err != nil {
				return err
			}
			for _, u := range ups {
				ids = append(ids, u.ID)
			}
			if len(ids) == 0 && !a.json {
				a.println("No unfinished uploads.")
			}
		}
		for _, id := range ids {
			bar := a.newProgress()
			res, err := c.ResumeUpload(ctx, id, client.FileOptions{Progress: bar.report(), RateLimit: rate})
			bar.done()
			if err != nil {
				return err
			}
			if a.json {
				if err := a.printJSON(jsonSentFile{jsonMessage: toJSONMessage(res.Message), ResumedFrom: res.ResumedFrom}); err != nil {
					return err
				}
				continue
			}
			a.println("Sent %s (%s) to @%s, resumed after %s.", res.Message.Attachment.Name, humanBytes(res.Message.Attachment.Size),
				res.Message.Peer, humanBytes(res.ResumedFrom))
		}
		return nil
	}
	ups, err := c.Uploads(ctx)
	if err != nil {
		return err
	}
	if a.json {
		for _, u := range ups {
			if err := a.printJSON(jsonUpload{Type: "upload", ID: u.ID, Peer: u.Peer, Path: u.Path, Name: u.Name, Size: u.Size, Created: formatJSONTime(u.Created)}); err != nil {
				return err
			}
		}
		return nil
	}
	if len(ups) == 0 {
		a.println("No unfinished uploads.")
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTO\tFILE\tSIZE\tSTARTED")
	for _, u := range ups {
		fmt.Fprintf(tw, "%s\t@%s\t%s\t%s\t%s\n", u.ID, u.Peer, u.Path, humanBytes(u.Size), u.Created.Local().Format("2006-01-02 15:04"))
	}
	return tw.Flush()
}

func cmdTimer(ctx context.Context, a *app, args []string) error {
	fs := a.flags("timer")
	pos, err := parse(fs, "timer", args, -1)
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 || handleArg(pos[0]) == "" {
		return usagef("timer", "timer needs a HANDLE and, to change it, a DURATION or off")
	}
	a.subject = handleArg(pos[0])
	var d time.Duration
	if len(pos) == 2 {
		if d, err = client.ParseTimer(pos[1]); err != nil {
			return usagef("timer", "%q is not a duration: use 30s to 4w (30s, 10m, 1h, 1d, 4w) or off", pos[1])
		}
	}
	c, err := a.openRegistered(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if len(pos) == 1 {
		cur, err := c.Timer(ctx, a.subject)
		if err != nil {
			return err
		}
		if a.json {
			return a.printJSON(struct {
				Peer  string `json:"peer"`
				Timer int64  `json:"timer"`
			}{a.subject, int64(cur / time.Second)})
		}
		if cur == 0 {
			a.println("Messages with @%s do not vanish.", a.subject)
		} else {
			a.println("Messages with @%s vanish %s after they are read.", a.subject, client.FormatTimer(cur))
		}
		return nil
	}
	m, err := c.SetTimer(ctx, a.subject, d)
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(toJSONMessage(m))
	}
	if d == 0 {
		a.println("Turned the timer off for @%s: new messages do not vanish.", m.Peer)
	} else {
		a.println("Set the timer for @%s to %s: new messages vanish %s after they are read.", m.Peer, client.FormatTimer(d), client.FormatTimer(d))
	}
	return nil
}

// minTimerEnv is the shortest vanishing timer allowed, lowered by
// PARLEY_MIN_TIMER (undocumented; tests use it for timers of seconds);
// 0 keeps the default.
func (a *app) minTimerEnv() (time.Duration, error) {
	v := a.getenv("PARLEY_MIN_TIMER")
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < time.Second {
		return 0, fmt.Errorf("PARLEY_MIN_TIMER=%q is not a duration of a second or more", v)
	}
	return d, nil
}

// fileSentence words the errors of files and timers.
func (a *app) fileSentence(err error) (string, bool) {
	var ae *client.APIError
	switch {
	case errors.Is(err, client.ErrNoAttachment):
		return "no message with a file has that id; 'parley history HANDLE --json' shows the ids", true
	case errors.Is(err, client.ErrOpened):
		return "this view-once media was already opened; only a placeholder remains", true
	case errors.Is(err, client.ErrTampered):
		return "the file failed its integrity check: it was altered on the server or on the way, so nothing was saved (" +
			strings.TrimPrefix(innermost(err), "stream: ") + ")", true
	case errors.Is(err, client.ErrBlobGone):
		return "the file is no longer on the server (it expired, or every device fetched it); ask the sender to send it again", true
	case errors.Is(err, client.ErrNoUpload):
		return "there is no unfinished upload with that id; 'parley uploads' lists them", true
	case errors.Is(err, client.ErrFileChanged):
		return strings.TrimPrefix(client.ErrFileChanged.Error(), "client: "), true
	case errors.Is(err, client.ErrTimerRange):
		return "a timer is from 30 seconds to 4 weeks (30s, 10m, 1h, 1d, 4w), or off", true
	case errors.As(err, &ae) && ae.Code == api.CodeQuotaExceeded:
		return "the server holds as many of your files as it allows: " + ae.Message, true
	case errors.As(err, &ae) && ae.Code == api.CodeTooLarge && strings.Contains(err.Error(), "creating the upload"):
		return "the file is larger than this server accepts: " + ae.Message, true
	}
	return "", false
}
