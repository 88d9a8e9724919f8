package server_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	natsserver "github.com/nats-io/nats-server/v2/server"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/fanout"
	"github.com/parleychat/parley/internal/fanout/natsbus"
	"github.com/parleychat/parley/internal/linking"
	"github.com/parleychat/parley/internal/server"
	"github.com/parleychat/parley/internal/store"
	"github.com/parleychat/parley/internal/store/sqlitestore"
)

// sharedStore lets several in-process nodes use one store; only the first
// node closes it. (Nodes in separate processes share PostgreSQL instead:
// internal/e2e TestCluster.)
type sharedStore struct{ store.Store }

func (sharedStore) Close() error { return nil }

// startNodes runs n servers on one SQLite store, each with the bus newBus
// returns.
func startNodes(t *testing.T, n int, newBus func(t *testing.T) server.Bus, mod func(*config.Config)) []*testServer {
	t.Helper()
	cfg := testConfig(t)
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := sqlitestore.Open(ctx, filepath.Join(cfg.DataDir, server.DBFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	var nodes []*testServer
	for i := range n {
		var st store.Store = db
		if i > 0 {
			st = sharedStore{db}
		}
		srv, err := server.NewWithOptions(cfg, server.Options{
			Store: st, Bus: newBus(t), Logger: testLogger(t).With("node", i),
		})
		if err != nil {
			t.Fatal(err)
		}
		ts := runServer(t, srv) // stopped in reverse order: node 0, which closes the store, last
		ts.cfg = cfg
		nodes = append(nodes, ts)
	}
	return nodes
}

func natsURL() string {
	if u := os.Getenv("PARLEY_TEST_NATS"); u != "" {
		return u
	}
	return "nats://127.0.0.1:4222"
}

// natsBuses returns a bus factory: NATS connections at url sharing one
// random subject prefix, closed when the test ends.
func natsBuses(url string) func(t *testing.T) server.Bus {
	var b [6]byte
	rand.Read(b[:])
	prefix := "parleytest." + hex.EncodeToString(b[:])
	return func(t *testing.T) server.Bus {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		bus, err := natsbus.Open(ctx, natsbus.Options{URL: url, Prefix: prefix, ReconnectWait: 50 * time.Millisecond})
		if err != nil {
			t.Fatalf("connecting to NATS at %s: %v", url, err)
		}
		t.Cleanup(func() { bus.Close() })
		return bus
	}
}

// Two nodes on one store and NATS: every hint crosses nodes. Polling is
// off, so only the bus can deliver.
func TestNodesOverNATS(t *testing.T) {
	nodes := startNodes(t, 2, natsBuses(natsURL()), func(c *config.Config) { c.PollInterval = 0 })
	n0, n1 := nodes[0], nodes[1]
	a := n0.register("alice")
	b := n0.register("bob")
	ad, bd := a.devices[0], b.devices[0]

	// Messages both ways, each received on the other node.
	bws := n1.dialWS(bd)
	bws.readUntilDrained()
	aws := n0.dialWS(ad)
	aws.readUntilDrained()
	n0.mustDo("POST", api.PathMessages, ad.token, sendReq(a, ad, b, "via node 0"), nil)
	if f := bws.mustRead(); f.Type != api.FrameEnvelope || string(f.Envelope.Ciphertext) != "via node 0" {
		t.Fatalf("bob on node 1 got %+v", f)
	}
	n1.mustDo("POST", api.PathMessages, bd.token, sendReq(b, bd, a, "via node 1"), nil)
	if f := aws.mustRead(); f.Type != api.FrameEnvelope || string(f.Envelope.Ciphertext) != "via node 1" {
		t.Fatalf("alice on node 0 got %+v", f)
	}

	// Linking across nodes: the creator waits on node 0 while the new
	// device joins on node 1.
	id, code := n0.createLink(ad)
	status := make(chan api.LinkStatus, 1)
	go func() {
		var st api.LinkStatus
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", n0.url+"/v1/links/"+id+"?wait=20s", nil)
		req.Header.Set("Authorization", "Bearer "+ad.token)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
		}
		status <- st
	}()
	time.Sleep(300 * time.Millisecond) // let the long poll start waiting (it succeeds either way)
	nd := newDevice(t, 5000+randUint32()%1000)
	j, _, err := linking.NewJoin(code, nd.key, nd.id, "new")
	if err != nil {
		t.Fatal(err)
	}
	n1.mustDo("POST", "/v1/links/"+id+"/join", "", api.JoinLinkRequest{Join: j.Marshal()}, nil)
	select {
	case st := <-status:
		if !st.Joined {
			t.Fatal("the long poll on node 0 did not see the join on node 1")
		}
	case <-time.After(40 * time.Second):
		t.Fatal("long poll did not return")
	}

	// A device list change on node 0 reaches bob's connection on node 1.
	b2 := n0.addDevice(b, bd)
	if f := bws.mustRead(); f.Type != server.FrameDeviceList {
		t.Fatalf("bob on node 1 got %+v, want device_list", f)
	}
	// And removing a device closes its connection on the other node.
	b2ws := n1.dialWS(b2)
	b2ws.readUntilDrained()
	n0.mustDo("PUT", api.PathDeviceList, bd.token, api.PutDeviceListRequest{DeviceList: b.signedList(t, b.version+1, bd)}, nil)
	if err := readUntilClosed(b2ws); websocket.CloseStatus(err) != server.CloseDeviceRemoved {
		t.Fatalf("removed device's connection on node 1 ended with %v", err)
	}
}

// readUntilClosed reads frames until the connection ends and returns why.
func readUntilClosed(w *wsConn) error {
	for {
		if _, err := w.read(); err != nil {
			return err
		}
	}
}

// Nodes whose buses do not reach each other (two in-process buses) lose
// every cross-node hint; the idle poll still delivers everything, and the
// metrics say so.
func TestLostHintsArePolled(t *testing.T) {
	nodes := startNodes(t, 2, func(*testing.T) server.Bus { return fanout.NewLocal() },
		func(c *config.Config) { c.PollInterval = 200 * time.Millisecond })
	n0, n1 := nodes[0], nodes[1]
	a := n0.register("alice")
	b := n0.register("bob")
	ad, bd := a.devices[0], b.devices[0]
	ws := n1.dialWS(bd)
	ws.readUntilDrained()
	for _, text := range []string{"one", "two", "three"} {
		n0.mustDo("POST", api.PathMessages, ad.token, sendReq(a, ad, b, text), nil)
	}
	var got []string
	for len(got) < 3 {
		f := ws.mustRead() // bounded: 20s each
		if f.Type == api.FrameEnvelope {
			got = append(got, string(f.Envelope.Ciphertext))
			ws.ack(f.Envelope.Seq)
		}
	}
	if got[0] != "one" || got[1] != "two" || got[2] != "three" {
		t.Fatalf("got %q", got)
	}
	if v := metricValue(t, scrapeMetrics(t, n1.url), "parley_delivery_poll_finds_total", nil); v < 1 {
		t.Fatalf("poll finds = %v, want at least 1", v)
	}
}

// A NATS restart loses no message: a send while NATS is down is delivered
// to the other node once it is back (polling off: the reconnection does it).
func TestDeliveryAcrossNATSRestart(t *testing.T) {
	ns := runNATS(t, -1)
	port := ns.Addr().(*net.TCPAddr).Port
	nodes := startNodes(t, 2, natsBuses(ns.ClientURL()), func(c *config.Config) { c.PollInterval = 0 })
	n0, n1 := nodes[0], nodes[1]
	a := n0.register("alice")
	b := n0.register("bob")
	ad, bd := a.devices[0], b.devices[0]
	ws := n1.dialWS(bd)
	ws.readUntilDrained()

	ns.Shutdown()
	ns.WaitForShutdown()
	n0.mustDo("POST", api.PathMessages, ad.token, sendReq(a, ad, b, "while NATS was down"), nil)
	runNATS(t, port)
	if f := ws.mustRead(); f.Type != api.FrameEnvelope || string(f.Envelope.Ciphertext) != "while NATS was down" {
		t.Fatalf("got %+v", f)
	}
	n0.mustDo("POST", api.PathMessages, ad.token, sendReq(a, ad, b, "after"), nil)
	if f := ws.mustRead(); f.Type != api.FrameEnvelope || string(f.Envelope.Ciphertext) != "after" {
		t.Fatalf("got %+v", f)
	}
}

func runNATS(t *testing.T, port int) *natsserver.Server {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(20 * time.Second) {
		ns.Shutdown()
		t.Fatal("nats-server not ready within 20s")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

// /metrics after real traffic.
func TestMetricsAfterTraffic(t *testing.T) {
	ts := startServer(t, nil)
	a := ts.register("alice")
	b := ts.register("bob")
	ad, bd := a.devices[0], b.devices[0]
	ws := ts.dialWS(bd)
	ws.readUntilDrained()

	var last api.SendRequest
	for i := range 5 {
		last = sendReq(a, ad, b, "m"+itoa(uint32(i)))
		ts.mustDo("POST", api.PathMessages, ad.token, last, nil)
		f := ws.mustRead()
		ws.ack(f.Envelope.Seq)
	}
	ts.mustDo("POST", api.PathMessages, ad.token, last, nil) // a retry: duplicate
	ts.wantErr(404, api.CodeNotFound, "GET", "/v1/accounts/nobody", ad.token, nil)
	ts.wantErr(401, api.CodeUnauthorized, "GET", api.PathKeys, "", nil)

	m := scrapeMetrics(t, ts.url)
	checks := []struct {
		name   string
		labels map[string]string
		min    float64
		max    float64
	}{
		{"parley_websockets", nil, 1, 1},
		{"parley_sends_total", map[string]string{"outcome": "stored"}, 5, 5},
		{"parley_sends_total", map[string]string{"outcome": "duplicate"}, 1, 1},
		{"parley_envelopes_stored_total", nil, 5, 5},
		{"parley_send_duration_seconds", nil, 6, 6},
		{"parley_deliveries_total", nil, 5, 6}, // the duplicate's wake-up may redeliver the unacked last one
		{"parley_delivery_latency_seconds", nil, 5, 6},
		{"parley_errors_total", map[string]string{"code": "not_found"}, 1, 1},
		{"parley_errors_total", map[string]string{"code": "unauthorized"}, 1, 1},
		{"parley_http_request_duration_seconds", map[string]string{"route": "POST /v1/messages", "status": "200"}, 6, 6},
		{"parley_http_request_duration_seconds", map[string]string{"route": "POST /v1/accounts", "status": "200"}, 2, 2},
	}
	for _, c := range checks {
		if v := metricValue(t, m, c.name, c.labels); v < c.min || v > c.max {
			t.Errorf("%s%v = %v, want %v..%v", c.name, c.labels, v, c.min, c.max)
		}
	}
	if _, ok := m["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}
	for _, f := range m["parley_http_request_duration_seconds"].Metric {
		for _, l := range f.Label {
			if l.GetName() == "route" && l.GetValue() == "GET "+api.PathWebSocket {
				if s := labelValue(f, "status"); s == "101" {
					t.Error("a WebSocket's lifetime was recorded as a request duration")
				}
			}
		}
	}

	// Once bob's connection closes, the gauges come back to zero.
	ws.close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		m = scrapeMetrics(t, ts.url)
		if metricValue(t, m, "parley_websockets", nil) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("parley_websockets did not return to 0 within 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if v := metricValue(t, m, "parley_websocket_unacked_envelopes", nil); v != 0 {
		t.Errorf("unacked after close = %v", v)
	}
}

// With metrics_addr, /metrics moves to its own listener.
func TestMetricsListener(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.MetricsAddr = "127.0.0.1:0" })
	ts.wantErr(404, api.CodeNotFound, "GET", server.PathMetrics, "", nil)
	addr := ts.srv.MetricsAddr()
	if addr == nil {
		t.Fatal("no metrics listener")
	}
	m := scrapeMetrics(t, "http://"+addr.String())
	if _, ok := m["parley_websockets"]; !ok {
		t.Fatal("no parley_websockets on the metrics listener")
	}
}

func scrapeMetrics(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+server.PathMetrics, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	m, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return m
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.Label {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// metricValue is the value of the sample of family name with the given
// labels: a gauge's or counter's value, a histogram's count.
func metricValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
next:
	for _, m := range f.Metric {
		for k, v := range labels {
			if labelValue(m, k) != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("no sample of %s with labels %v", name, labels)
	return 0
}

// New connects to NATS when the configuration names it, and refuses to
// start when it cannot.
func TestNewWithNATS(t *testing.T) {
	var b [6]byte
	rand.Read(b[:])
	ts := startServer(t, func(c *config.Config) { c.NATS = natsURL(); c.NATSPrefix = "parleytest." + hex.EncodeToString(b[:]) })
	if v := metricValue(t, scrapeMetrics(t, ts.url), "parley_bus_connected", nil); v != 1 {
		t.Fatalf("parley_bus_connected = %v", v)
	}
	a := ts.register("alice")
	bob := ts.register("bob")
	ws := ts.dialWS(bob.devices[0])
	ws.readUntilDrained()
	ts.mustDo("POST", api.PathMessages, a.devices[0].token, sendReq(a, a.devices[0], bob, "over NATS"), nil)
	if f := ws.mustRead(); f.Type != api.FrameEnvelope || string(f.Envelope.Ciphertext) != "over NATS" {
		t.Fatalf("got %+v", f)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "nats://" + ln.Addr().String()
	ln.Close()
	cfg := testConfig(t)
	cfg.NATS = dead
	if srv, err := server.New(cfg, testLogger(t)); err == nil {
		srv.Close()
		t.Fatal("New succeeded without a reachable NATS")
	}
	// The store it opened was closed again: the same data opens fine.
	cfg.NATS = ""
	srv, err := server.New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
}

// countingStore counts the queues of the devices it is told about, with
// the store's own Pending: a store backend would count in one query.
type countingStore struct {
	store.Store
	mu      sync.Mutex
	devices map[string]uint32
}

func (c *countingStore) QueuedEnvelopes(ctx context.Context) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	for h, d := range c.devices {
		envs, err := c.Pending(ctx, h, d, 0, 100000)
		if err != nil {
			return 0, err
		}
		n += int64(len(envs))
	}
	return n, nil
}

// A store that can count its queues gets parley_queued_envelopes.
func TestQueueDepthMetric(t *testing.T) {
	cfg := testConfig(t)
	db, err := sqlitestore.Open(context.Background(), filepath.Join(cfg.DataDir, server.DBFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	cs := &countingStore{Store: db, devices: map[string]uint32{}}
	var _ server.QueueCounter = cs
	srv, err := server.NewWithOptions(cfg, server.Options{Store: cs, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ts := runServer(t, srv)
	a := ts.register("alice")
	b := ts.register("bob")
	cs.mu.Lock()
	cs.devices["bob"] = b.devices[0].id
	cs.mu.Unlock()
	for range 3 {
		ts.mustDo("POST", api.PathMessages, a.devices[0].token, sendReq(a, a.devices[0], b, "queued"), nil)
	}
	if v := metricValue(t, scrapeMetrics(t, ts.url), "parley_queued_envelopes", nil); v != 3 {
		t.Fatalf("parley_queued_envelopes = %v, want 3", v)
	}
}
