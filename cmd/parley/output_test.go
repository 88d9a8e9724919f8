package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/client"
)

// TestPrintEvent pins the --json form of every event type and the
// warnings on stderr (a key change cannot be provoked against an honest
// server, so the scripts never see one).
func TestPrintEvent(t *testing.T) {
	at := time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.UTC)
	m := &client.Message{ID: "0123456789abcdef0123456789abcdef", Peer: "bob", From: "bob", Device: 7,
		SentAt: at, ReceivedAt: at.Add(time.Second), Text: "hi <b>", Status: "received", Request: true}
	for _, tc := range []struct {
		e            client.Event
		stdout       string
		stderr       string
		humanStdout  string
		humanStderrs string
	}{
		{
			e:           client.Event{Type: "message", Message: m, Peer: "bob", Device: 7},
			stdout:      `{"type":"message","id":"0123456789abcdef0123456789abcdef","peer":"bob","from":"bob","device":7,"sent_at":"2025-06-01T12:00:00.123Z","received_at":"2025-06-01T12:00:01.123Z","text":"hi <b>","outgoing":false,"status":"received","request":true}` + "\n",
			humanStdout: at.Local().Format("15:04") + " bob [request]: hi <b>\n",
		},
		{
			e:      client.Event{Type: "delivered", Peer: "bob", Device: 7, Refs: []string{"a", "b"}},
			stdout: `{"type":"delivered","peer":"bob","device":7,"refs":["a","b"]}` + "\n",
		},
		{
			e:      client.Event{Type: "typing", Peer: "bob", Device: 7, Typing: false},
			stdout: `{"type":"typing","peer":"bob","device":7,"typing":false}` + "\n",
		},
		{
			e:            client.Event{Type: "key_changed", Peer: "bob"},
			stdout:       `{"type":"key_changed","peer":"bob"}` + "\n",
			stderr:       "parley: warning: the safety number with @bob has changed: compare it with 'parley verify bob'\n",
			humanStderrs: "parley: warning: the safety number with @bob has changed: compare it with 'parley verify bob'\n",
		},
		{
			e:            client.Event{Type: "dropped", Peer: "bob", Device: 7, Detail: "decryption failed"},
			stdout:       `{"type":"dropped","peer":"bob","device":7,"detail":"decryption failed"}` + "\n",
			humanStderrs: "parley: warning: a message from @bob could not be read and was dropped (decryption failed)\n",
		},
	} {
		for _, json := range []bool{true, false} {
			var out, errb bytes.Buffer
			a := &app{stdout: &out, stderr: &errb, json: json}
			a.printEvent(tc.e)
			wantOut, wantErr := tc.stdout, tc.stderr
			if !json {
				wantOut, wantErr = tc.humanStdout, tc.humanStderrs
			}
			if out.String() != wantOut || errb.String() != wantErr {
				t.Errorf("%s json=%v:\nstdout %q\nwant   %q\nstderr %q\nwant   %q", tc.e.Type, json, out.String(), wantOut, errb.String(), wantErr)
			}
		}
	}
}
