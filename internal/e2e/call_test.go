package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"

	"github.com/parleychat/parley/internal/call"
)

// callLine is a line of `parley call --json` or `parley answer --json`.
type callLine struct {
	Type   string `json:"type"`
	CallID string `json:"call_id"`
	Peer   string `json:"peer"`
	Path   *struct {
		Local, Remote string
	} `json:"path"`
	Reason     string   `json:"reason"`
	Error      string   `json:"error"`
	Connected  bool     `json:"connected"`
	Recordings []string `json:"recordings"`
	Stats      struct {
		AudioSent int `json:"audio_sent"`
		VideoSent int `json:"video_sent"`
		AudioRecv int `json:"audio_recv"`
		VideoRecv int `json:"video_recv"`
	} `json:"stats"`
}

func callLines(t *testing.T, out string) map[string]callLine {
	t.Helper()
	m := map[string]callLine{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var l callLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("not a JSON line: %q", line)
		}
		if _, seen := m[l.Type]; !seen {
			m[l.Type] = l
		}
	}
	return m
}

func writeMedia(t *testing.T, packets, frames int) (ogg, ivf string) {
	t.Helper()
	dir := t.TempDir()
	var a, v bytes.Buffer
	if err := call.WriteOpusSilence(&a, packets); err != nil {
		t.Fatal(err)
	}
	if err := call.WriteVP8IVF(&v, frames, 320, 240); err != nil {
		t.Fatal(err)
	}
	ogg, ivf = filepath.Join(dir, "in.ogg"), filepath.Join(dir, "in.ivf")
	os.WriteFile(ogg, a.Bytes(), 0o644)
	os.WriteFile(ivf, v.Bytes(), 0o644)
	return ogg, ivf
}

func oggPackets(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, _, err := oggreader.NewWith(f)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		p, _, err := r.ParseNextPage()
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(p) > 0 && !bytes.HasPrefix(p, []byte("OpusTags")) {
			n++
		}
	}
}

func ivfFrames(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, _, err := ivfreader.NewWith(f)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		if _, _, err := r.ParseNextFrame(); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			return n
		}
		n++
	}
}

// checkRecordings requires the callee's recordings to hold every packet
// and frame the caller sent.
func checkRecordings(t *testing.T, ended callLine, packets, frames int) {
	t.Helper()
	var gotA, gotV = -1, -1
	for _, p := range ended.Recordings {
		switch {
		case strings.HasSuffix(p, "-audio.ogg"):
			gotA = oggPackets(t, p)
		case strings.HasSuffix(p, "-video.ivf"):
			gotV = ivfFrames(t, p)
		}
	}
	t.Logf("recorded %d audio packets and %d video frames (sent %d and %d)", gotA, gotV, packets, frames)
	// Loopback loses nothing unless the machine drops a datagram under
	// load: allow 2%.
	if gotA > packets || gotV > frames || gotA < packets-packets/50 || gotV < frames-max(1, frames/50) {
		t.Fatalf("recordings %v hold %d audio packets and %d video frames, want %d and %d", ended.Recordings, gotA, gotV, packets, frames)
	}
}

// An audio and video call between two parley processes, media forced
// through parleyd's TURN relay (both relay-only); the callee's recordings
// hold all the media.
func TestCallThroughTURN(t *testing.T) {
	srv := startServer(t, "", "--turn-udp-addr", "127.0.0.1:0", "--turn-tcp-addr", "127.0.0.1:0", "--turn-allow-loopback")
	if !strings.Contains(srv.stderr.String(), "msg=\"turn listening\"") {
		t.Fatalf("parleyd runs no TURN relay:\n%s", srv.stderr.String())
	}
	alice, bob := registerPair(t, srv)
	const packets, frames = 150, 90 // three seconds
	ogg, ivf := writeMedia(t, packets, frames)
	rec := t.TempDir()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	answer := bob.command(ctx, "answer", "--relay-only", "--record", rec, "--wait", "60s")
	var answerOut, answerErr syncBuffer
	answer.Stdout, answer.Stderr = &answerOut, &answerErr
	if err := answer.Start(); err != nil {
		t.Fatal(err)
	}
	out := alice.run("call", "bob", "--relay-only", "--audio-in", ogg, "--video-in", ivf)
	if err := answer.Wait(); err != nil {
		t.Fatalf("answer: %v\n%s\n%s", err, answerOut.String(), answerErr.String())
	}
	a, b := callLines(t, out), callLines(t, answerOut.String())
	for who, l := range map[string]map[string]callLine{"alice": a, "bob": b} {
		c := l["call_connected"]
		if c.Path == nil || c.Path.Local != "relay" || c.Path.Remote != "relay" {
			t.Fatalf("%s: connected over %+v, want relay ⇄ relay", who, c.Path)
		}
	}
	if e := a["call_ended"]; e.Reason != "hangup" || !e.Connected || e.Stats.AudioSent != packets || e.Stats.VideoSent != frames {
		t.Fatalf("alice's call ended %+v", e)
	}
	if e := b["call_ended"]; e.Reason != "remote_hangup" || !e.Connected {
		t.Fatalf("bob's call ended %+v", e)
	}
	checkRecordings(t, b["call_ended"], packets, frames)
}

// netns is a network namespace for the test, removed at cleanup.
func netns(t *testing.T, name string) {
	t.Helper()
	ipCmd(t, "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	ipCmd(t, "-n", name, "link", "set", "lo", "up")
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// veth links namespace a (address addrA) and b (addrB), /24.
func veth(t *testing.T, a, ifA, addrA, b, ifB, addrB string) {
	t.Helper()
	ipCmd(t, "link", "add", ifA, "netns", a, "type", "veth", "peer", "name", ifB, "netns", b)
	ipCmd(t, "-n", a, "addr", "add", addrA+"/24", "dev", ifA)
	ipCmd(t, "-n", b, "addr", "add", addrB+"/24", "dev", ifB)
	ipCmd(t, "-n", a, "link", "set", ifA, "up")
	ipCmd(t, "-n", b, "link", "set", ifB, "up")
}

// Two clients in separate network namespaces, each linked only to the
// server's namespace (which does not forward between them): they cannot
// reach each other directly, and the call connects through the relay
// without either side asking for relay-only.
func TestCallAcrossNetworkNamespaces(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip")
	}
	id := fmt.Sprintf("%06x", rand.IntN(1<<24))
	ns := map[string]string{"srv": "pl-s-" + id, "a": "pl-a-" + id, "b": "pl-b-" + id}
	for _, n := range ns {
		netns(t, n)
	}
	o := 10 + rand.IntN(200)
	netA, netB := fmt.Sprintf("10.213.%d.", o), fmt.Sprintf("10.213.%d.", o+1)
	veth(t, ns["srv"], "sa", netA+"1", ns["a"], "ca", netA+"2")
	veth(t, ns["srv"], "sb", netB+"1", ns["b"], "cb", netB+"2")
	// No route from a to b, and the server's namespace does not forward.
	if out, err := exec.Command("ip", "-n", ns["a"], "route", "get", netB+"2").CombinedOutput(); err == nil {
		t.Fatalf("namespace a has a route to b: %s", out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	data := t.TempDir()
	srv := exec.CommandContext(ctx, "ip", "netns", "exec", ns["srv"], parleydBin,
		"--addr", "0.0.0.0:8080", "--insecure-http", "--data", data,
		"--turn-udp-addr", "0.0.0.0:3478", "--turn-tcp-addr", "0.0.0.0:3478",
		"--turn-relay-ip", netA+"1", "--turn-allow-private")
	var srvLog syncBuffer
	srv.Stdout, srv.Stderr = &srvLog, &srvLog
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Process.Kill()
		srv.Wait()
		if t.Failed() {
			t.Logf("parleyd:\n%s", srvLog.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(srvLog.String(), "msg=listening") {
		if time.Now().After(deadline) {
			t.Fatalf("parleyd did not start:\n%s", srvLog.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	homes := t.TempDir()
	run := func(who, server string, args ...string) *exec.Cmd {
		all := append([]string{"netns", "exec", ns[who], parleyBin, "--home", filepath.Join(homes, who),
			"--server", "http://" + server + ":8080", "--json"}, args...)
		cmd := exec.CommandContext(ctx, "ip", all...)
		cmd.Env = append(os.Environ(), "PARLEY_HOME=", "PARLEY_SERVER=")
		return cmd
	}
	must := func(who, server string, args ...string) string {
		t.Helper()
		out, err := run(who, server, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: parley %s: %v\n%s", who, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	must("a", netA+"1", "register", "alice")
	must("b", netB+"1", "register", "bob")
	must("a", netA+"1", "contacts", "add", "bob")
	must("b", netB+"1", "contacts", "add", "alice")

	const packets, frames = 100, 60
	ogg, ivf := writeMedia(t, packets, frames)
	rec := t.TempDir()
	answer := run("b", netB+"1", "answer", "--record", rec, "--wait", "60s")
	var answerOut syncBuffer
	answer.Stdout, answer.Stderr = &answerOut, &answerOut
	if err := answer.Start(); err != nil {
		t.Fatal(err)
	}
	out := must("a", netA+"1", "call", "bob", "--audio-in", ogg, "--video-in", ivf)
	if err := answer.Wait(); err != nil {
		t.Fatalf("answer: %v\n%s", err, answerOut.String())
	}
	a, b := callLines(t, out), callLines(t, answerOut.String())
	for who, l := range map[string]map[string]callLine{"alice": a, "bob": b} {
		c := l["call_connected"]
		if c.Path == nil || (c.Path.Local != "relay" && c.Path.Remote != "relay") {
			t.Fatalf("%s: connected over %+v without the relay", who, c.Path)
		}
		t.Logf("%s connected %s ⇄ %s", who, c.Path.Local, c.Path.Remote)
	}
	if e := a["call_ended"]; e.Reason != "hangup" || e.Stats.AudioSent != packets {
		t.Fatalf("alice's call ended %+v", e)
	}
	checkRecordings(t, b["call_ended"], packets, frames)
}
