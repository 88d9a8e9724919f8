package call_test

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/call"
	"github.com/parleychat/parley/internal/client"
	"github.com/parleychat/parley/internal/content"
)

const step = 30 * time.Second // bound of each wait

// An audio and video call, both sides relay-only: media goes through
// parleyd's TURN, and the callee's recordings hold every packet and frame
// the caller sent.
func TestCallThroughTURN(t *testing.T) {
	srv := startServer(t)
	alice := register(t, srv.url, "alice")
	bob := register(t, srv.url, "bob")
	befriend(t, alice, bob)
	a := start(t, alice, "alice", nil)
	b := start(t, bob, "bob", nil)

	const packets, frames = 100, 60 // two seconds of each
	ogg, ivf := mediaFiles(t, packets, frames)
	rec := t.TempDir()
	c, err := a.e.Place(ctxFor(t, step), "bob", call.Media{
		Video: true, AudioIn: ogg, VideoIn: ivf, RelayOnly: true, HangupAfterInput: true, RecordDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ring := b.wait(call.EventRinging, step)
	if !ring.Video || ring.CallID != c.ID || ring.Peer != "alice" || ring.Device != alice.DeviceID() {
		t.Fatalf("ringing %+v", ring)
	}
	if ev := a.wait(call.EventRemoteRinging, step); ev.Device != bob.DeviceID() {
		t.Fatalf("remote ringing from %d", ev.Device)
	}
	if err := ring.Call.Answer(call.Media{RelayOnly: true, RecordDir: rec}); err != nil {
		t.Fatal(err)
	}
	if ev := a.wait(call.EventAnswered, step); ev.Device != bob.DeviceID() {
		t.Fatalf("answered by %d", ev.Device)
	}
	for _, d := range []*device{a, b} {
		p := d.wait(call.EventConnected, step).Path
		if p == nil || p.Local != "relay" || p.Remote != "relay" {
			t.Fatalf("%s connected over %+v, want relay to relay", d.name, p)
		}
	}
	ra := a.wait(call.EventEnded, step).Result
	rb := b.wait(call.EventEnded, step).Result
	if ra.Reason != call.ReasonHangup || !ra.Connected || ra.Stats.AudioSent != packets || ra.Stats.VideoSent != frames {
		t.Fatalf("alice: %s", describe(ra))
	}
	if rb.Reason != call.ReasonRemoteHangup || !rb.Connected {
		t.Fatalf("bob: %s", describe(rb))
	}
	gotA, gotV := countOgg(t, recording(t, rb, "-audio.ogg")), countIVF(t, recording(t, rb, "-video.ivf"))
	t.Logf("sent %d audio packets, %d video frames; bob recorded %d and %d (%d video RTP packets); alice got %d audio packets from bob",
		ra.Stats.AudioSent, ra.Stats.VideoSent, gotA, gotV, rb.Stats.VideoRecv, ra.Stats.AudioRecv)
	// Loopback through the relay loses nothing unless the machine drops a
	// datagram under load; allow 2% (NACK recovers video, not audio).
	if gotA > packets || gotV > frames || gotA < packets-packets/50 || gotV < frames-max(1, frames/50) {
		t.Fatalf("bob recorded %d audio packets and %d video frames, want %d and %d", gotA, gotV, packets, frames)
	}
	// Recordings are as private as the call: readable by the user alone.
	for _, suffix := range []string{"-audio.ogg", "-video.ivf"} {
		fi, err := os.Stat(recording(t, rb, suffix))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("recording %s: mode %v, %v; want 0600", suffix, fi.Mode(), err)
		}
	}
	// bob sent silence back (no video: he has none to send).
	if ra.Stats.AudioRecv == 0 || ra.Stats.VideoRecv != 0 || rb.Stats.AudioSent == 0 {
		t.Fatalf("bob's media: alice %s; bob %s", describe(ra), describe(rb))
	}
	// Relay-only hides the addresses: the SDPs carry relay candidates only.
	offer, answer := a.sent.of(content.CallOffer), b.sent.of(content.CallAnswer)
	if len(offer) != 1 || len(answer) != 1 {
		t.Fatalf("%d offers, %d answers", len(offer), len(answer))
	}
	for _, sdp := range []string{offer[0].SDP, answer[0].SDP} {
		if !strings.Contains(sdp, "typ relay") || strings.Contains(sdp, "typ host") || strings.Contains(sdp, "typ srflx") {
			t.Fatalf("relay-only SDP with other candidates:\n%s", sdp)
		}
		if !strings.Contains(sdp, "a=fingerprint:sha-256 ") {
			t.Fatalf("SDP without a fingerprint:\n%s", sdp)
		}
	}
	if st := srv.srv.TURNStats(); st.PacketsToPeers < packets+frames || st.AllocationsAll < 2 {
		t.Fatalf("TURN stats %+v", st)
	} else {
		t.Logf("TURN relayed %d datagrams (%d bytes) to peers", st.PacketsToPeers, st.BytesToPeers)
	}
	// A call that connected is not a missed call.
	h, err := bob.History(ctxFor(t, step), "alice", 0)
	if err != nil || len(h) != 0 {
		t.Fatalf("bob's history %+v %v", h, err)
	}
}

// A callee with two devices: both ring; the first to answer takes the
// call and the other stops ringing.
func TestCallRingsEveryDevice(t *testing.T) {
	srv := startServer(t)
	alice := register(t, srv.url, "alice")
	bob1 := register(t, srv.url, "bob")
	bob2 := link(t, bob1, srv.url, "bob-2")
	befriend(t, alice, bob1)
	a := start(t, alice, "alice", nil)
	b1 := start(t, bob1, "bob1", nil)
	b2 := start(t, bob2, "bob2", nil)

	c, err := a.e.Place(ctxFor(t, step), "bob", call.Media{})
	if err != nil {
		t.Fatal(err)
	}
	r1 := b1.wait(call.EventRinging, step)
	r2 := b2.wait(call.EventRinging, step)
	if r1.CallID != c.ID || r2.CallID != c.ID {
		t.Fatal("rang for another call")
	}
	seen := map[uint32]bool{}
	for len(seen) < 2 {
		seen[a.wait(call.EventRemoteRinging, step).Device] = true
	}
	if !seen[bob1.DeviceID()] || !seen[bob2.DeviceID()] {
		t.Fatalf("remote ringing from %v", seen)
	}

	if err := r1.Call.Answer(call.Media{}); err != nil {
		t.Fatal(err)
	}
	if ev := b2.wait(call.EventAnsweredElsewhere, step); ev.Device != bob1.DeviceID() {
		t.Fatalf("bob2: answered elsewhere by %d", ev.Device)
	}
	if r := b2.wait(call.EventEnded, step).Result; r.Reason != call.ReasonAnsweredElsewhere || r.Connected {
		t.Fatalf("bob2: %s", describe(r))
	}
	if err := r2.Call.Answer(call.Media{}); err == nil {
		t.Fatal("bob2 answered a call taken elsewhere")
	}
	if ev := a.wait(call.EventAnswered, step); ev.Device != bob1.DeviceID() {
		t.Fatalf("answered by %d", ev.Device)
	}
	a.wait(call.EventConnected, step)
	b1.wait(call.EventConnected, step)
	c.Hangup()
	if r := a.wait(call.EventEnded, step).Result; r.Reason != call.ReasonHangup {
		t.Fatalf("alice: %s", describe(r))
	}
	if r := b1.wait(call.EventEnded, step).Result; r.Reason != call.ReasonRemoteHangup {
		t.Fatalf("bob1: %s", describe(r))
	}
	// Neither of bob's devices counts a missed call.
	for _, d := range []*device{b1, b2} {
		if h, _ := d.c.History(ctxFor(t, step), "alice", 0); len(h) != 0 {
			t.Fatalf("%s history %+v", d.name, h)
		}
	}
}

// Both devices answer at once: the caller keeps one; the other learns it
// lost and hangs up.
func TestCallAnswerRace(t *testing.T) {
	srv := startServer(t)
	alice := register(t, srv.url, "alice")
	bob1 := register(t, srv.url, "bob")
	bob2 := link(t, bob1, srv.url, "bob-2")
	befriend(t, alice, bob1)
	a := start(t, alice, "alice", nil)
	b1 := start(t, bob1, "bob1", nil)
	b2 := start(t, bob2, "bob2", nil)
	if _, err := a.e.Place(ctxFor(t, step), "bob", call.Media{}); err != nil {
		t.Fatal(err)
	}
	r1 := b1.wait(call.EventRinging, step)
	r2 := b2.wait(call.EventRinging, step)
	errs := make(chan error, 2)
	go func() { errs <- r1.Call.Answer(call.Media{}) }()
	go func() { errs <- r2.Call.Answer(call.Media{}) }()
	<-errs
	<-errs
	winner := a.wait(call.EventAnswered, step).Device
	a.wait(call.EventConnected, step)
	loser := b2
	if winner == bob2.DeviceID() {
		loser = b1
	}
	if r := loser.wait(call.EventEnded, step).Result; r.Reason != call.ReasonAnsweredElsewhere {
		t.Fatalf("%s: %s", loser.name, describe(r))
	}
}

// A ringing call the caller gives up on is a missed call on every callee
// device; a declined or busy call ends the caller's side.
func TestMissedDeclinedBusy(t *testing.T) {
	srv := startServer(t)
	alice := register(t, srv.url, "alice")
	bob := register(t, srv.url, "bob")
	carol := register(t, srv.url, "carol")
	befriend(t, alice, bob)
	befriend(t, carol, bob)
	a := start(t, alice, "alice", nil)
	b := start(t, bob, "bob", nil)
	cr := start(t, carol, "carol", nil)

	// Missed.
	c, err := a.e.Place(ctxFor(t, step), "bob", call.Media{Video: true})
	if err != nil {
		t.Fatal(err)
	}
	b.wait(call.EventRinging, step)
	c.Hangup()
	if r := a.wait(call.EventEnded, step).Result; r.Reason != call.ReasonHangup {
		t.Fatalf("alice: %s", describe(r))
	}
	if r := b.wait(call.EventEnded, step).Result; r.Reason != call.ReasonRemoteHangup || r.Connected {
		t.Fatalf("bob: %s", describe(r))
	}
	missed := b.waitClient(client.EventMissedCall, step)
	if missed.Message == nil || missed.Message.Text != "Missed video call" || missed.Peer != "alice" {
		t.Fatalf("missed call event %+v", missed)
	}

	// Declined.
	c, err = a.e.Place(ctxFor(t, step), "bob", call.Media{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.wait(call.EventRinging, step).Call.Decline(); err != nil {
		t.Fatal(err)
	}
	if r := a.wait(call.EventEnded, step).Result; r.Reason != call.ReasonDeclined {
		t.Fatalf("alice: %s", describe(r))
	}
	if r := b.wait(call.EventEnded, step).Result; r.Reason != call.ReasonDeclined {
		t.Fatalf("bob: %s", describe(r))
	}

	// Busy: bob is in a call with alice when carol calls.
	c, err = a.e.Place(ctxFor(t, step), "bob", call.Media{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.wait(call.EventRinging, step).Call.Answer(call.Media{}); err != nil {
		t.Fatal(err)
	}
	a.wait(call.EventConnected, step)
	if _, err := cr.e.Place(ctxFor(t, step), "bob", call.Media{}); err != nil {
		t.Fatal(err)
	}
	if r := cr.wait(call.EventEnded, step).Result; r.Reason != call.ReasonBusy {
		t.Fatalf("carol: %s", describe(r))
	}
	c.Hangup()
	b.wait(call.EventEnded, step)
	h, _ := bob.History(ctxFor(t, step), "carol", 0)
	if len(h) != 1 || h[0].Text != "Missed voice call" {
		t.Fatalf("bob's history with carol: %+v", h)
	}
}

// RFC 8827: the DTLS fingerprint travels inside the end-to-end-encrypted
// offer and answer. If it were changed on the way (as a server in the
// middle would have to), the handshake fails and the call never connects.
func TestTamperedFingerprintFails(t *testing.T) {
	// "verification-off": a SettingEngine that turns pion's check off
	// does not turn it off: the engine forces it on.
	for _, side := range []string{"offer", "answer", "verification-off"} {
		t.Run(side, func(t *testing.T) {
			srv := startServer(t)
			alice := register(t, srv.url, "alice")
			bob := register(t, srv.url, "bob")
			befriend(t, alice, bob)
			var mod func(*call.Options)
			if side == "verification-off" {
				mod = func(o *call.Options) { o.SettingEngine.DisableCertificateFingerprintVerification(true) }
			}
			a := start(t, alice, "alice", mod)
			b := start(t, bob, "bob", mod)
			tamper := func(c *content.Call) {
				if c.SDP != "" {
					c.SDP = flipFingerprint(t, c.SDP)
				}
			}
			if side != "answer" {
				a.sent.tamper = tamper
			} else {
				b.sent.tamper = tamper
			}
			if _, err := a.e.Place(ctxFor(t, step), "bob", call.Media{}); err != nil {
				t.Fatal(err)
			}
			if err := b.wait(call.EventRinging, step).Call.Answer(call.Media{}); err != nil {
				t.Fatal(err)
			}
			// The handshake fails: neither side connects, and at least one
			// ends with a failure (the other may learn it first from the
			// hang-up).
			failed := 0
			for _, d := range []*device{a, b} {
				r := waitEnd(t, d).Result
				if r.Connected || (r.Reason != call.ReasonFailed && r.Reason != call.ReasonRemoteHangup) {
					t.Fatalf("%s: %s", d.name, describe(r))
				}
				if r.Reason == call.ReasonFailed {
					failed++
				}
			}
			if failed == 0 {
				t.Fatal("no side saw the handshake fail")
			}
		})
	}
}

// waitEnd waits for the end of the call and fails if it connected first.
func waitEnd(t *testing.T, d *device) call.Event {
	t.Helper()
	deadline := time.After(2 * step)
	for {
		select {
		case ev := <-d.events:
			if ev.Type == call.EventConnected {
				t.Fatalf("%s connected with a tampered fingerprint", d.name)
			}
			if ev.Type == call.EventEnded {
				return ev
			}
		case <-deadline:
			t.Fatalf("%s: the call did not end", d.name)
		}
	}
}

// flipFingerprint changes one hex digit of the SDP's sha-256 fingerprint.
func flipFingerprint(t *testing.T, sdp string) string {
	const attr = "a=fingerprint:sha-256 "
	i := strings.Index(sdp, attr)
	if i < 0 {
		t.Fatalf("no fingerprint in\n%s", sdp)
	}
	j := i + len(attr)
	d := sdp[j]
	nd := byte('0')
	if d == '0' {
		nd = '1'
	}
	return sdp[:j] + string(nd) + sdp[j+1:]
}

// Relay-only with a server that runs no relay fails before ringing.
func TestRelayOnlyWithoutRelay(t *testing.T) {
	srv := startServer(t)
	alice := register(t, srv.url, "alice")
	bob := register(t, srv.url, "bob")
	befriend(t, alice, bob)
	a := start(t, alice, "alice", func(o *call.Options) { o.ICEServers = nil })
	if _, err := a.e.Place(ctxFor(t, step), "bob", call.Media{RelayOnly: true}); !errors.Is(err, call.ErrNoRelay) {
		t.Fatalf("Place = %v", err)
	}
}
