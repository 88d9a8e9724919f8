package relay

import (
	"bytes"
	"errors"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/turn/v4"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func TestCredentials(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := NewCredentials(testSecret, "alice", 42, now.Add(time.Hour))
	if c.Username != "1700003600:alice.42" {
		t.Fatalf("username %q", c.Username)
	}
	// The TURN REST convention, as pion and coturn compute it.
	_, pionPass, err := turn.GenerateLongTermTURNRESTCredentials(string(testSecret), "alice.42", time.Hour)
	if err != nil || len(pionPass) != len(c.Password) {
		t.Fatalf("pion's REST password %q: %v", pionPass, err)
	}
	if err := CheckCredentials(testSecret, c.Username, c.Password, now); err != nil {
		t.Fatal(err)
	}
	if err := CheckCredentials(testSecret, c.Username, c.Password, now.Add(time.Hour)); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired: %v", err)
	}
	if err := CheckCredentials([]byte("another secret, 16+ bytes"), c.Username, c.Password, now); err == nil {
		t.Fatal("a password from another secret passed")
	}
	// The expiry is part of what the password covers.
	forged := strings.Replace(c.Username, "1700003600", "1800000000", 1)
	if err := CheckCredentials(testSecret, forged, c.Password, now); err == nil {
		t.Fatal("a username with a later expiry passed with the old password")
	}
	for _, u := range []string{"", "alice.1", "x:alice.1", "-5:alice.1", "100:alice", "100:alice.0", "100:alice.x",
		"100:Al.1", "100:a.1", "100:alice.4294967296", "100:alice.1.2"} {
		if _, _, _, err := ParseUsername(u); !errors.Is(err, ErrBadUsername) {
			t.Errorf("ParseUsername(%q) = %v", u, err)
		}
	}
	exp, h, d, err := ParseUsername("100:bob_2.7")
	if err != nil || h != "bob_2" || d != 7 || exp.Unix() != 100 {
		t.Fatalf("ParseUsername: %v %q %d %v", exp, h, d, err)
	}
}

func TestPeerAllowed(t *testing.T) {
	for _, tc := range []struct {
		ip                    string
		plain, loopback, priv bool
	}{
		{"192.0.2.7", true, true, true},
		{"2001:db8::1", true, true, true},
		{"127.0.0.1", false, true, false},
		{"127.9.9.9", false, true, false},
		{"::1", false, true, false},
		{"::ffff:127.0.0.1", false, true, false},
		{"10.1.2.3", false, false, true},
		{"172.16.0.1", false, false, true},
		{"172.32.0.1", true, true, true},
		{"192.168.1.1", false, false, true},
		{"100.64.0.1", false, false, true},
		{"fd00::1", false, false, true},
		{"169.254.169.254", false, false, false},
		{"fe80::1", false, false, false},
		{"0.0.0.0", false, false, false},
		{"::", false, false, false},
		{"224.0.0.1", false, false, false},
		{"255.255.255.255", false, false, false},
	} {
		ip := net.ParseIP(tc.ip)
		if got := PeerAllowed(ip, false, false); got != tc.plain {
			t.Errorf("%s: allowed = %v", tc.ip, got)
		}
		if got := PeerAllowed(ip, true, false); got != tc.loopback {
			t.Errorf("%s with loopback: allowed = %v", tc.ip, got)
		}
		if got := PeerAllowed(ip, false, true); got != tc.priv {
			t.Errorf("%s with private: allowed = %v", tc.ip, got)
		}
	}
	if PeerAllowed(nil, true, true) || PeerAllowed([]byte{1, 2, 3}, true, true) {
		t.Error("a malformed address is allowed")
	}
}

// startRelay runs a relay on loopback sockets.
func startRelay(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.Secret == nil {
		cfg.Secret = testSecret
	}
	if cfg.RelayIP == nil {
		cfg.RelayIP = net.IPv4(127, 0, 0, 1)
	}
	s, err := Listen(cfg, "127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// turnClient is a pion TURN client on a fresh loopback socket.
func turnClient(t *testing.T, server net.Addr, user, pass string) *turn.Client {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: server.String(), TURNServerAddr: server.String(),
		Username: user, Password: pass, Realm: DefaultRealm, Conn: conn,
		RTO: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); conn.Close() })
	return c
}

// echoPeer is a UDP socket on loopback that echoes every datagram.
func echoPeer(t *testing.T) net.PacketConn {
	t.Helper()
	p, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 2000)
		for {
			n, from, err := p.ReadFrom(buf)
			if err != nil {
				return
			}
			p.WriteTo(buf[:n], from)
		}
	}()
	t.Cleanup(func() { p.Close() })
	return p
}

func TestRelayWithRightCredentials(t *testing.T) {
	s := startRelay(t, Config{AllowLoopback: true})
	cred := NewCredentials(testSecret, "alice", 1, time.Now().Add(time.Hour))
	c := turnClient(t, s.UDPAddr(), cred.Username, cred.Password)

	// STUN binding works without credentials' help.
	mapped, err := c.SendBindingRequest()
	if err != nil || !strings.HasPrefix(mapped.String(), "127.0.0.1:") {
		t.Fatalf("binding: %v %v", mapped, err)
	}
	relayConn, err := c.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer relayConn.Close()
	if ra := relayConn.LocalAddr().(*net.UDPAddr); !ra.IP.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("relayed address %v", ra)
	}
	peer := echoPeer(t)
	const n = 20
	got := 0
	buf := make([]byte, 1500)
	for i := range n {
		msg := bytes.Repeat([]byte{byte(i)}, 100)
		if _, err := relayConn.WriteTo(msg, peer.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		relayConn.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, from, err := relayConn.ReadFrom(buf)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !bytes.Equal(buf[:k], msg) || from.String() != peer.LocalAddr().String() {
			t.Fatalf("message %d: got %d bytes from %v", i, k, from)
		}
		got++
	}
	// The relay counts a datagram after handing it on, so the echo of the
	// last one can reach us before its count is in: wait for it (bounded).
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := s.Stats()
		if st.Allocations == 1 && st.PacketsToPeers >= n && st.PacketsToUs >= n && st.BytesToPeers >= 100*n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRelayRefusesBadCredentials(t *testing.T) {
	now := time.Now()
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	s := startRelay(t, Config{AllowLoopback: true, Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	good := NewCredentials(testSecret, "alice", 1, now.Add(time.Minute))
	for name, cred := range map[string]Credentials{
		"wrong password":  {Username: good.Username, Password: Password([]byte("not the server's secret!!"), good.Username)},
		"expired":         NewCredentials(testSecret, "alice", 1, now.Add(-time.Second)),
		"not a parley id": {Username: "alice", Password: Password(testSecret, "alice")},
	} {
		c := turnClient(t, s.UDPAddr(), cred.Username, cred.Password)
		if conn, err := c.Allocate(); err == nil {
			conn.Close()
			t.Errorf("%s: allocated", name)
		}
	}
	// Credentials that were good expire with time.
	clock.Store(now.Add(2 * time.Minute).UnixNano())
	c := turnClient(t, s.UDPAddr(), good.Username, good.Password)
	if conn, err := c.Allocate(); err == nil {
		conn.Close()
		t.Error("allocated with credentials past their expiry")
	}
	if st := s.Stats(); st.AuthFailures < 4 || st.AllocationsAll != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRelayAllocationLimitPerAccount(t *testing.T) {
	s := startRelay(t, Config{AllowLoopback: true, MaxAllocations: 2})
	exp := time.Now().Add(time.Hour)
	// Two devices of alice take the account's two allocations.
	for _, dev := range []uint32{1, 2} {
		cred := NewCredentials(testSecret, "alice", dev, exp)
		if _, err := turnClient(t, s.UDPAddr(), cred.Username, cred.Password).Allocate(); err != nil {
			t.Fatalf("device %d: %v", dev, err)
		}
	}
	cred := NewCredentials(testSecret, "alice", 3, exp)
	if conn, err := turnClient(t, s.UDPAddr(), cred.Username, cred.Password).Allocate(); err == nil {
		conn.Close()
		t.Fatal("a third allocation of alice was granted")
	}
	// Bob has his own allowance.
	cred = NewCredentials(testSecret, "bob", 1, exp)
	conn, err := turnClient(t, s.UDPAddr(), cred.Username, cred.Password).Allocate()
	if err != nil {
		t.Fatalf("bob: %v", err)
	}
	if st := s.Stats(); st.QuotaRefusals != 1 || st.Allocations != 3 {
		t.Fatalf("stats %+v", st)
	}
	// Freeing an allocation frees the quota.
	conn.Close()
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().Allocations != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the closed allocation is still counted: %+v", s.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRelayRefusesLoopbackPeers(t *testing.T) {
	s := startRelay(t, Config{}) // loopback peers not allowed
	cred := NewCredentials(testSecret, "alice", 1, time.Now().Add(time.Hour))
	c := turnClient(t, s.UDPAddr(), cred.Username, cred.Password)
	relayConn, err := c.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer relayConn.Close()
	peer := echoPeer(t)
	if err := c.CreatePermission(peer.LocalAddr()); err == nil {
		t.Fatal("permission to a loopback peer granted")
	}
	// Nothing reaches the peer.
	relayConn.WriteTo([]byte("hello"), peer.LocalAddr())
	relayConn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, _, err := relayConn.ReadFrom(make([]byte, 100)); err == nil {
		t.Fatal("a datagram came back from a loopback peer")
	}
	if st := s.Stats(); st.PeerRefusals == 0 || st.PacketsToPeers != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestConfigErrors(t *testing.T) {
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	ip := net.IPv4(127, 0, 0, 1)
	for name, cfg := range map[string]Config{
		"short secret": {Secret: []byte("short"), RelayIP: ip},
		"no relay ip":  {Secret: testSecret},
		"unspecified":  {Secret: testSecret, RelayIP: net.IPv4zero},
		"ipv6":         {Secret: testSecret, RelayIP: net.ParseIP("2001:db8::1")},
		"port range":   {Secret: testSecret, RelayIP: ip, MinPort: 5000},
		"inverted":     {Secret: testSecret, RelayIP: ip, MinPort: 6000, MaxPort: 5000},
	} {
		if _, err := New(cfg, []net.PacketConn{udp}, nil); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := New(Config{Secret: testSecret, RelayIP: ip}, nil, nil); !errors.Is(err, ErrConfig) {
		t.Errorf("no sockets: %v", err)
	}
}

func TestRelayPortRange(t *testing.T) {
	// Find a free span by binding one port and using its neighbourhood;
	// allocation skips ports in use, so a busy neighbour is fine.
	probe, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := probe.LocalAddr().(*net.UDPAddr).Port
	probe.Close()
	lo, hi := base, min(base+20, 65535)
	s := startRelay(t, Config{AllowLoopback: true, MinPort: lo, MaxPort: hi})
	cred := NewCredentials(testSecret, "alice", 1, time.Now().Add(time.Hour))
	conn, err := turnClient(t, s.UDPAddr(), cred.Username, cred.Password).Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if p := conn.LocalAddr().(*net.UDPAddr).Port; p < lo || p > hi {
		t.Fatalf("relayed port %d outside %d..%d", p, lo, hi)
	}
}

// Clients spread over the shared UDP sockets all relay.
func TestRelayManyClients(t *testing.T) {
	s := startRelay(t, Config{AllowLoopback: true})
	if runtime.GOOS == "linux" && len(s.udp) != min(runtime.NumCPU(), 16) {
		t.Fatalf("%d UDP sockets on %d CPUs", len(s.udp), runtime.NumCPU())
	}
	peer := echoPeer(t)
	for i := range 8 {
		cred := NewCredentials(testSecret, "alice", uint32(i+1), time.Now().Add(time.Hour))
		rc, err := turnClient(t, s.UDPAddr(), cred.Username, cred.Password).Allocate()
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		defer rc.Close()
		if _, err := rc.WriteTo([]byte{byte(i)}, peer.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		rc.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 10)
		if n, _, err := rc.ReadFrom(buf); err != nil || n != 1 || buf[0] != byte(i) {
			t.Fatalf("client %d: %d %v", i, n, err)
		}
	}
}
