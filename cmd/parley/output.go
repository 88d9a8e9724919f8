package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/parleychat/parley/internal/client"
	"github.com/parleychat/parley/internal/tui"
)

// jsonTime is the one time format of --json output: RFC 3339, UTC, with
// milliseconds.
const jsonTime = "2006-01-02T15:04:05.000Z07:00"

func formatJSONTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(jsonTime)
}

// jsonMessage is a message in --json output (send, sync, history).
type jsonMessage struct {
	Type       string `json:"type"` // always "message"
	ID         string `json:"id"`
	Peer       string `json:"peer"`
	From       string `json:"from"`
	Device     uint32 `json:"device"`
	SentAt     string `json:"sent_at"`
	ReceivedAt string `json:"received_at,omitempty"`
	Text       string `json:"text"`
	Outgoing   bool   `json:"outgoing"`
	Status     string `json:"status"`
	Request    bool   `json:"request,omitempty"`
	// Files and vanishing messages (files.go).
	Kind       string          `json:"kind,omitempty"`       // "timer": the vanishing timer changed (timer: the new one, 0 off); "deleted": deleted for everyone
	Timer      int64           `json:"timer,omitempty"`      // seconds a vanishing message lives once read
	ExpiresAt  string          `json:"expires_at,omitempty"` // when it vanishes here
	EditedAt   string          `json:"edited_at,omitempty"`  // when its text was last edited
	Attachment *jsonAttachment `json:"attachment,omitempty"`
	ReplyTo    string          `json:"reply_to,omitempty"` // the id of the message it answers
	Quote      *jsonQuote      `json:"quote,omitempty"`    // that message as this device has it
	Reactions  []jsonReaction  `json:"reactions,omitempty"`
}

// jsonReaction is one account's reaction to a message.
type jsonReaction struct {
	From  string `json:"from"`
	Emoji string `json:"emoji"`
}

// jsonQuote is the message a reply answers.
type jsonQuote struct {
	From    string `json:"from"`
	Text    string `json:"text"`
	Deleted bool   `json:"deleted,omitempty"`
	File    string `json:"file,omitempty"`
}

func toJSONMessage(m client.Message) jsonMessage {
	j := jsonMessage{
		Type:       "message",
		ID:         m.ID,
		Peer:       m.Peer,
		From:       m.From,
		Device:     m.Device,
		SentAt:     formatJSONTime(m.SentAt),
		ReceivedAt: formatJSONTime(m.ReceivedAt),
		Text:       m.Text,
		Outgoing:   m.Outgoing,
		Status:     m.Status,
		Request:    m.Request,
	}
	addFileFields(&j, m) // files.go
	return j
}

// jsonEvent is any other sync event in --json output.
type jsonEvent struct {
	Type   string   `json:"type"`
	Peer   string   `json:"peer,omitempty"`
	Device uint32   `json:"device,omitempty"`
	Refs   []string `json:"refs,omitempty"`
	Typing *bool    `json:"typing,omitempty"`
	Detail string   `json:"detail,omitempty"`
	Count  int      `json:"count,omitempty"` // history: messages imported
}

func toJSONEvent(e client.Event) any {
	if e.Type == "message" && e.Message != nil {
		return toJSONMessage(*e.Message)
	}
	if j, ok := callJSON(e); ok {
		return j
	}
	j := jsonEvent{Type: e.Type, Peer: e.Peer, Device: e.Device, Refs: e.Refs, Detail: e.Detail, Count: e.Count}
	if e.Type == "typing" {
		typing := e.Typing
		j.Typing = &typing
	}
	return j
}

// jsonContact, jsonRequest, jsonDevice, jsonSafety are the list items.
type jsonContact struct {
	Handle     string `json:"handle"`
	State      string `json:"state"`
	Verified   bool   `json:"verified"`
	KeyChanged bool   `json:"key_changed"`
}

type jsonRequest struct {
	Handle   string `json:"handle"`
	Messages int    `json:"messages"`
	First    string `json:"first"`
}

type jsonDevice struct {
	ID      uint32 `json:"id"`
	Name    string `json:"name"`
	Created string `json:"created"`
	Current bool   `json:"current"`
}

// jsonLinked is link new's answer: the device, and the history sent to it.
type jsonLinked struct {
	jsonDevice
	History      *int   `json:"history_messages,omitempty"`
	HistoryError string `json:"history_error,omitempty"`
}

func toJSONDevice(d client.Device) jsonDevice {
	return jsonDevice{ID: d.ID, Name: d.Name, Created: formatJSONTime(d.Created), Current: d.Current}
}

type jsonSafety struct {
	Peer       string `json:"peer"`
	Number     string `json:"number"`
	QR         string `json:"qr"` // hex
	Verified   bool   `json:"verified"`
	KeyChanged bool   `json:"key_changed"`
}

// jsonResult is the answer of a command that changes something.
type jsonResult struct {
	OK           bool   `json:"ok"`
	Command      string `json:"command"`
	Handle       string `json:"handle,omitempty"`
	Device       uint32 `json:"device,omitempty"`
	Typing       *bool  `json:"typing,omitempty"`
	ReadReceipts *bool  `json:"read_receipts,omitempty"`
	RelayOnly    *bool  `json:"relay_only,omitempty"`
}

// writeJSON writes v as one line. The writer is the process's stdout,
// unbuffered, so the line is out before the next step starts.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// printJSON writes v as one JSON line on stdout.
func (a *app) printJSON(v any) error { return writeJSON(a.stdout, v) }

// println writes one human line on stdout.
func (a *app) println(format string, args ...any) {
	fmt.Fprintf(a.stdout, format+"\n", args...)
}

// warn writes a warning for a person on stderr, whatever the output mode.
func (a *app) warn(format string, args ...any) {
	fmt.Fprintf(a.stderr, "parley: warning: "+format+"\n", args...)
}

// formatLine renders a message for a person: "15:04 bob: hi",
// "15:04 you → bob: hi ✓" (sent from this account), with the date when
// withDate. Continuation lines of a multi-line text are indented.
func formatLine(m client.Message, withDate bool) string {
	layout := "15:04"
	if withDate {
		layout = "2006-01-02 15:04"
	}
	if m.Kind == client.KindTimer {
		return formatTimerLine(m, withDate) // files.go
	}
	var who string
	switch {
	case m.Outgoing && withDate:
		who = "you"
	case m.Outgoing:
		who = "you → " + m.Peer
	default:
		who = m.From
		if m.Request {
			who += " [request]"
		}
	}
	return formatAs(m, layout, who)
}

// formatSearchLine renders a message found among all conversations: the
// date, and both ends ("bob → you", "you → bob").
func formatSearchLine(m client.Message) string {
	who := m.From + " → you"
	if m.Outgoing {
		who = "you → " + m.Peer
	}
	return formatAs(m, "2006-01-02 15:04", who)
}

// formatAs is a message line with its time in layout and its sender as who.
func formatAs(m client.Message, layout, who string) string {
	t := m.SentAt
	if t.IsZero() {
		t = m.ReceivedAt
	}
	var b strings.Builder
	b.WriteString(t.Local().Format(layout))
	b.WriteString(" " + who + ": ")
	b.WriteString(strings.ReplaceAll(messageText(m), "\n", "\n    ")) // files.go
	if mark := tui.StatusMark(m.Status); m.Outgoing && mark != "" {
		b.WriteString("  " + mark)
	}
	return b.String()
}

// groupDigits writes a 60-digit safety number as 3 lines of 4 groups of 5.
func groupDigits(number string) []string {
	var groups []string
	for i := 0; i < len(number); i += 5 {
		groups = append(groups, number[i:min(i+5, len(number))])
	}
	var lines []string
	for i := 0; i < len(groups); i += 4 {
		lines = append(lines, strings.Join(groups[i:min(i+4, len(groups))], " "))
	}
	return lines
}
