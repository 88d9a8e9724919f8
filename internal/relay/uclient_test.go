package relay

import (
	"context"
	"net"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// uclient runs coturn's turnutils_uclient (an independent TURN client)
// against the relay: two clients (-m 1 -y: client to client), each sends n
// messages of 200 bytes to the other through its allocation.
func uclient(t *testing.T, s *Server, args ...string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("turnutils_uclient")
	if err != nil {
		t.Skip("turnutils_uclient is not installed (apt-get install coturn)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	port := strconv.Itoa(s.UDPAddr().(*net.UDPAddr).Port)
	if slices.Contains(args, "-t") {
		port = strconv.Itoa(s.TCPAddr().(*net.TCPAddr).Port)
	}
	all := append([]string{"-p", port}, args...)
	all = append(all, "127.0.0.1")
	out, err := exec.CommandContext(ctx, bin, all...).CombinedOutput()
	return string(out), err
}

var (
	uclientSent = regexp.MustCompile(`Total transmit time is \d+`)
	uclientLost = regexp.MustCompile(`Total lost packets (\d+) \(([0-9.]+)%\)`)
	uclientRecv = regexp.MustCompile(`tot_recv_msgs=(\d+)`)
)

func TestUClientRelays(t *testing.T) {
	t.Run("udp", func(t *testing.T) { testUClientRelays(t) })
	t.Run("tcp", func(t *testing.T) { testUClientRelays(t, "-t") })
	// -W: the client derives the password from the secret itself, as
	// coturn's REST API clients do: the same convention as ours.
	t.Run("rest-secret", func(t *testing.T) { testUClientRelays(t, "-W", string(testSecret), "-u", "alice.1") })
}

func testUClientRelays(t *testing.T, extra ...string) {
	s := startRelay(t, Config{AllowLoopback: true})
	cred := NewCredentials(testSecret, "alice", 1, time.Now().Add(time.Hour))
	args := append([]string{"-y", "-u", cred.Username, "-w", cred.Password, "-n", "50", "-m", "1", "-l", "200", "-z", "5"}, extra...)
	out, err := uclient(t, s, args...)
	if err != nil {
		t.Fatalf("turnutils_uclient: %v\n%s", err, out)
	}
	m := uclientLost.FindStringSubmatch(out)
	if m == nil || !uclientSent.MatchString(out) {
		t.Fatalf("unexpected turnutils_uclient output:\n%s", out)
	}
	if lost, _ := strconv.Atoi(m[1]); lost != 0 {
		t.Fatalf("%d packets lost:\n%s", lost, out)
	}
	r := uclientRecv.FindAllStringSubmatch(out, -1)
	if len(r) == 0 {
		t.Fatalf("no receive count in the output:\n%s", out)
	}
	if n, _ := strconv.Atoi(r[len(r)-1][1]); n < 100 {
		t.Fatalf("received %d messages, want 100 (50 each way):\n%s", n, out)
	}
	if st := s.Stats(); st.PacketsToPeers < 100 || st.AllocationsAll < 2 {
		t.Fatalf("stats %+v", st)
	}
	t.Logf("turnutils_uclient: %s", m[0])
}

func TestUClientRefused(t *testing.T) {
	s := startRelay(t, Config{AllowLoopback: true})
	good := NewCredentials(testSecret, "alice", 1, time.Now().Add(time.Hour))
	expired := NewCredentials(testSecret, "alice", 1, time.Now().Add(-time.Minute))
	for name, cred := range map[string]Credentials{
		"wrong password": {Username: good.Username, Password: "bm90IHRoZSBwYXNzd29yZA=="},
		"expired":        expired,
	} {
		out, err := uclient(t, s, "-y", "-u", cred.Username, "-w", cred.Password, "-n", "5", "-m", "1", "-l", "100")
		if err == nil || uclientLost.MatchString(out) || !strings.Contains(out, "error 400") {
			t.Errorf("%s: turnutils_uclient was not refused with error 400: %v\n%s", name, err, out)
		}
	}
	if st := s.Stats(); st.AllocationsAll != 0 || st.PacketsToPeers != 0 {
		t.Fatalf("stats %+v", st)
	}
}
