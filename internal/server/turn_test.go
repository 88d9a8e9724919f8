package server_test

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/turn/v4"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/relay"
	"github.com/parleychat/parley/internal/server"
)

func withTURN(c *config.Config) {
	c.TURNUDPAddr, c.TURNTCPAddr = "127.0.0.1:0", "127.0.0.1:0"
	c.TURNAllowLoopback = true
}

func TestTURNOff(t *testing.T) {
	ts := startServer(t, nil)
	a := ts.register("alice")
	var got api.TURNCredentials
	ts.mustDo("GET", api.PathTURN, a.devices[0].token, nil, &got)
	if got.ICEServers == nil || len(got.ICEServers) != 0 {
		t.Fatalf("without a relay: %+v", got)
	}
	if udp, tcp := ts.srv.TURNAddrs(); udp != nil || tcp != nil {
		t.Fatalf("relay addresses %v %v", udp, tcp)
	}
}

func TestTURNCredentials(t *testing.T) {
	ts := startServer(t, withTURN)
	a := ts.register("alice")
	ts.wantErr(401, api.CodeUnauthorized, "GET", api.PathTURN, "", nil)

	var got api.TURNCredentials
	before := time.Now()
	ts.mustDo("GET", api.PathTURN, a.devices[0].token, nil, &got)
	udp, tcp := ts.srv.TURNAddrs()
	if udp == nil || tcp == nil {
		t.Fatal("no relay addresses")
	}
	udpPort := strconv.Itoa(udp.(*net.UDPAddr).Port)
	tcpPort := strconv.Itoa(tcp.(*net.TCPAddr).Port)
	if len(got.ICEServers) != 2 ||
		strings.Join(got.ICEServers[0].URLs, " ") != "stun:127.0.0.1:"+udpPort ||
		strings.Join(got.ICEServers[1].URLs, " ") != "turn:127.0.0.1:"+udpPort+"?transport=udp turn:127.0.0.1:"+tcpPort+"?transport=tcp" {
		t.Fatalf("ICE servers %+v", got.ICEServers)
	}
	if got.TTL != int64(ts.cfg.TURNCredentialTTL/time.Second) {
		t.Fatalf("ttl %d", got.TTL)
	}
	ice := got.ICEServers[1]
	exp, h, dev, err := relay.ParseUsername(ice.Username)
	if err != nil || h != "alice" || dev != a.devices[0].id ||
		exp.Before(before.Add(ts.cfg.TURNCredentialTTL-2*time.Second)) || exp.UnixMilli() != got.ExpiresAt {
		t.Fatalf("username %q: %v %q %d %v", ice.Username, exp, h, dev, err)
	}

	// The credentials allocate on the relay; altered ones do not.
	if err := allocate(udp, ice.Username, ice.Credential); err != nil {
		t.Fatalf("allocating with the served credentials: %v", err)
	}
	if err := allocate(udp, ice.Username, "AAAA"+ice.Credential[4:]); err == nil {
		t.Fatal("allocated with a wrong password")
	}
	other := strings.Replace(ice.Username, "alice.", "bob_1.", 1)
	if err := allocate(udp, other, ice.Credential); err == nil {
		t.Fatal("allocated with another account's name and alice's password")
	}

	// The secret was generated in the data folder, private, and survives a
	// restart: credentials handed out before still work.
	path := filepath.Join(ts.cfg.DataDir, server.TURNSecretFile)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v %v", fi, err)
	}
	if err := ts.stop(); err != nil {
		t.Fatal(err)
	}
	cfg := ts.cfg
	srv, err := server.New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ts2 := runServer(t, srv)
	udp2, _ := ts2.srv.TURNAddrs()
	if err := allocate(udp2, ice.Username, ice.Credential); err != nil {
		t.Fatalf("credentials from before the restart: %v", err)
	}
}

func TestTURNSecretFileAndPublicHost(t *testing.T) {
	secretPath := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretPath, []byte("a shared secret of the cluster\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, func(c *config.Config) {
		c.TURNUDPAddr = "127.0.0.1:0"
		c.TURNSecretFile = secretPath
		c.TURNPublicHost = "turn.example"
	})
	a := ts.register("alice")
	var got api.TURNCredentials
	ts.mustDo("GET", api.PathTURN, a.devices[0].token, nil, &got)
	udp, tcp := ts.srv.TURNAddrs()
	if tcp != nil || len(got.ICEServers) != 2 {
		t.Fatalf("%+v", got)
	}
	port := strconv.Itoa(udp.(*net.UDPAddr).Port)
	if u := got.ICEServers[1].URLs; len(u) != 1 || u[0] != "turn:turn.example:"+port+"?transport=udp" {
		t.Fatalf("urls %v", u)
	}
	if relay.Password([]byte("a shared secret of the cluster"), got.ICEServers[1].Username) != got.ICEServers[1].Credential {
		t.Fatal("the password is not made with the configured secret")
	}
	if _, err := os.Stat(filepath.Join(ts.cfg.DataDir, server.TURNSecretFile)); !os.IsNotExist(err) {
		t.Fatalf("a secret was generated although one is configured: %v", err)
	}
}

func TestTURNShortSecretRefused(t *testing.T) {
	secretPath := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secretPath, []byte("short\n"), 0o600)
	cfg := testConfig(t)
	withTURN(&cfg)
	cfg.TURNSecretFile = secretPath
	srv, err := server.New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "shorter than 16") {
		t.Fatalf("Run = %v", err)
	}
}

// allocate makes one TURN allocation with a pion client and frees it.
func allocate(server net.Addr, user, pass string) error {
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer conn.Close()
	c, err := turn.NewClient(&turn.ClientConfig{
		TURNServerAddr: server.String(), STUNServerAddr: server.String(),
		Username: user, Password: pass, Realm: "parley", Conn: conn, RTO: 200 * time.Millisecond,
	})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Listen(); err != nil {
		return err
	}
	rc, err := c.Allocate()
	if err != nil {
		return err
	}
	return rc.Close()
}
