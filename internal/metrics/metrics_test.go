package metrics_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/parleychat/parley/internal/metrics"
)

// scrape serves m over HTTP and parses the text exposition.
func scrape(t *testing.T, m *metrics.Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
		t.Fatalf("scrape: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parsing the exposition: %v", err)
	}
	return fams
}

// value returns the value of the sample of family name whose labels
// include want (gauge, counter, or a histogram's count).
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
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
	t.Fatalf("no sample of %s with labels %v", name, want)
	return 0
}

func TestExposition(t *testing.T) {
	m := metrics.New()
	m.WebSockets.Inc()
	m.WebSockets.Inc()
	m.WebSockets.Dec()
	m.Deliveries.Add(3)
	m.ObserveSend(time.Now().Add(-5*time.Millisecond), false, 4)
	m.ObserveSend(time.Now(), true, 4)
	m.ObserveHTTP("POST /v1/messages", 200, "", 3*time.Millisecond)
	m.ObserveHTTP("POST /v1/messages", 409, "device_mismatch", time.Millisecond)
	m.ObserveHTTP("", 404, "not_found", time.Millisecond)
	m.DeliveryLatency.Observe(0.002)

	fams := scrape(t, m)
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"parley_websockets", nil, 1},
		{"parley_deliveries_total", nil, 3},
		{"parley_sends_total", map[string]string{"outcome": "stored"}, 1},
		{"parley_sends_total", map[string]string{"outcome": "duplicate"}, 1},
		{"parley_envelopes_stored_total", nil, 4},
		{"parley_send_duration_seconds", nil, 2},
		{"parley_delivery_latency_seconds", nil, 1},
		{"parley_errors_total", map[string]string{"code": "device_mismatch"}, 1},
		{"parley_errors_total", map[string]string{"code": "not_found"}, 1},
		{"parley_http_request_duration_seconds", map[string]string{"route": "POST /v1/messages", "status": "200"}, 1},
		{"parley_http_request_duration_seconds", map[string]string{"route": "unmatched", "status": "404"}, 1},
		{"parley_websocket_unacked_envelopes", nil, 0},
		{"parley_acks_total", nil, 0},
		{"parley_delivery_poll_finds_total", nil, 0},
	}
	for _, c := range checks {
		if got := value(t, fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for _, name := range []string{"go_goroutines", "go_memstats_heap_inuse_bytes", "process_resident_memory_bytes"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("no %s", name)
		}
	}
	if _, ok := fams["parley_queued_envelopes"]; ok {
		t.Error("queue depth exported without a counter")
	}
}

// The queue count runs at scrape time, at most every ten seconds.
func TestQueueDepthSampled(t *testing.T) {
	m := metrics.New()
	calls := 0
	m.QueueDepth(func(ctx context.Context) (int64, error) {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("count called without a deadline")
		}
		calls++
		return int64(40 + calls), nil
	})
	if v := value(t, scrape(t, m), "parley_queued_envelopes", nil); v != 41 {
		t.Fatalf("queued = %v, want 41", v)
	}
	if v := value(t, scrape(t, m), "parley_queued_envelopes", nil); v != 41 || calls != 1 {
		t.Fatalf("second scrape: queued = %v after %d counts, want the cached 41 after 1", v, calls)
	}

	// A failing count before any success reports 0 and retries next time.
	m2 := metrics.New()
	m2.QueueDepth(func(context.Context) (int64, error) { return 0, errors.New("database away") })
	if v := value(t, scrape(t, m2), "parley_queued_envelopes", nil); v != 0 {
		t.Fatalf("queued after a failed count = %v", v)
	}
}

func TestBusMetrics(t *testing.T) {
	m := metrics.New()
	connected := true
	m.Bus(func() bool { return connected }, func() uint64 { return 3 }, func() uint64 { return 1 })
	fams := scrape(t, m)
	if v := value(t, fams, "parley_bus_connected", nil); v != 1 {
		t.Errorf("connected = %v", v)
	}
	if v := value(t, fams, "parley_bus_reconnects_total", nil); v != 3 {
		t.Errorf("reconnects = %v", v)
	}
	if v := value(t, fams, "parley_bus_dropped_total", nil); v != 1 {
		t.Errorf("dropped = %v", v)
	}
	connected = false
	if v := value(t, scrape(t, m), "parley_bus_connected", nil); v != 0 {
		t.Errorf("connected after disconnect = %v", v)
	}
}
