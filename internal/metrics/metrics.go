// Package metrics is parleyd's Prometheus instrumentation
// (github.com/prometheus/client_golang): one registry per server, no
// global state, exposed in the text format by Handler on GET /metrics.
//
// Every name starts with parley_. Labels have small fixed sets of values
// (routes, HTTP statuses, API error codes): never a handle, device or
// address. docs/OPERATIONS.md lists the metrics and what to watch.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Buckets of the latency histograms, in seconds: 250µs to 30s.
var latencyBuckets = []float64{
	0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
}

// Metrics are one server's metrics. The exported fields are updated by the
// server; they are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	// WebSockets counts the delivery connections open on this node.
	WebSockets prometheus.Gauge
	// Unacked counts envelopes written to this node's WebSockets and not
	// acknowledged yet.
	Unacked prometheus.Gauge
	// Deliveries counts envelopes written to WebSockets (redeliveries too).
	Deliveries prometheus.Counter
	// Acks counts envelopes acknowledged (deleted) by devices.
	Acks prometheus.Counter
	// PollFinds counts envelopes that an idle connection's periodic re-read
	// found: their fan-out hint was lost or late.
	PollFinds prometheus.Counter
	// DeliveryLatency observes, for envelopes delivered live (after the
	// connection's backlog was drained), the time from the server
	// timestamp taken just before the commit to the end of the WebSocket
	// write.
	DeliveryLatency prometheus.Histogram
	// Sends counts accepted sends by outcome: "stored" or "duplicate".
	Sends *prometheus.CounterVec
	// Envelopes counts envelopes stored by accepted sends.
	Envelopes prometheus.Counter
	// SendLatency observes accepted sends from the request reaching the
	// send handler to the commit.
	SendLatency prometheus.Histogram
	// Errors counts error responses by API error code.
	Errors *prometheus.CounterVec
	// HTTP observes request durations by route pattern and status (not
	// WebSocket connections, whose "duration" is their lifetime).
	HTTP *prometheus.HistogramVec
}

// New returns metrics on a fresh registry, with the Go runtime and
// process collectors.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		WebSockets: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_websockets",
			Help: "Delivery WebSocket connections open on this node.",
		}),
		Unacked: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_websocket_unacked_envelopes",
			Help: "Envelopes written to this node's WebSockets and not acknowledged yet.",
		}),
		Deliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_deliveries_total",
			Help: "Envelopes written to WebSockets, redeliveries included.",
		}),
		Acks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_acks_total",
			Help: "Envelopes acknowledged by devices (and deleted).",
		}),
		PollFinds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_delivery_poll_finds_total",
			Help: "Envelopes found by an idle connection's periodic re-read: their fan-out hint was lost or late.",
		}),
		DeliveryLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "parley_delivery_latency_seconds",
			Help:    "Live deliveries: from the message's server timestamp (taken just before its commit) to the end of the WebSocket write.",
			Buckets: latencyBuckets,
		}),
		Sends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_sends_total",
			Help: "Accepted sends by outcome: stored, or duplicate (a retry of a stored message id).",
		}, []string{"outcome"}),
		Envelopes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_envelopes_stored_total",
			Help: "Envelopes stored by accepted sends (one per recipient device).",
		}),
		SendLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "parley_send_duration_seconds",
			Help:    "Accepted sends: from the request reaching the send handler to the commit.",
			Buckets: latencyBuckets,
		}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_errors_total",
			Help: "Error responses by API error code.",
		}, []string{"code"}),
		HTTP: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "parley_http_request_duration_seconds",
			Help:    "HTTP request durations by route pattern and status (WebSocket upgrades excluded).",
			Buckets: latencyBuckets,
		}, []string{"route", "status"}),
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.WebSockets, m.Unacked, m.Deliveries, m.Acks, m.PollFinds, m.DeliveryLatency,
		m.Sends, m.Envelopes, m.SendLatency, m.Errors, m.HTTP,
	)
	// Show the outcomes at zero before the first send.
	m.Sends.WithLabelValues("stored")
	m.Sends.WithLabelValues("duplicate")
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// ObserveHTTP records one finished request: its route pattern, status,
// duration, and the API error code of an error response ("" for none).
func (m *Metrics) ObserveHTTP(route string, status int, code string, d time.Duration) {
	if route == "" {
		route = "unmatched"
	}
	m.HTTP.WithLabelValues(route, strconv.Itoa(status)).Observe(d.Seconds())
	if code != "" {
		m.Errors.WithLabelValues(code).Inc()
	}
}

// ObserveSend records one accepted send that started at start.
func (m *Metrics) ObserveSend(start time.Time, duplicate bool, envelopes int) {
	m.SendLatency.Observe(time.Since(start).Seconds())
	if duplicate {
		m.Sends.WithLabelValues("duplicate").Inc()
		return
	}
	m.Sends.WithLabelValues("stored").Inc()
	m.Envelopes.Add(float64(envelopes))
}

// queueSampleEvery is the least time between two queue counts: scrapes in
// between see the last count.
const queueSampleEvery = 10 * time.Second

// QueueDepth adds the gauge parley_queued_envelopes: all envelopes waiting
// in the store for any device (the whole deployment's, as the store is
// shared). count is called at scrape time, at most every ten seconds
// (bounded by five seconds); if it fails, the last value stays.
func (m *Metrics) QueueDepth(count func(ctx context.Context) (int64, error)) {
	var (
		mu   sync.Mutex
		last float64
		at   time.Time
	)
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "parley_queued_envelopes",
		Help: "Envelopes waiting in the store for any device (sampled at most every 10s).",
	}, func() float64 {
		mu.Lock()
		defer mu.Unlock()
		if !at.IsZero() && time.Since(at) < queueSampleEvery {
			return last
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if n, err := count(ctx); err == nil {
			last, at = float64(n), time.Now()
		}
		return last
	}))
}

// Bus adds the metrics of a fan-out bus between nodes: whether it is
// connected, how often it reconnected, and how often hints were dropped.
func (m *Metrics) Bus(connected func() bool, reconnects, dropped func() uint64) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "parley_bus_connected",
			Help: "1 while the fan-out bus to the other nodes (NATS) is connected.",
		}, func() float64 {
			if connected() {
				return 1
			}
			return 0
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "parley_bus_reconnects_total",
			Help: "Reconnections of the fan-out bus to NATS.",
		}, func() float64 { return float64(reconnects()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "parley_bus_dropped_total",
			Help: "Times NATS dropped hints because this node fell behind (subscribers re-read).",
		}, func() float64 { return float64(dropped()) }),
	)
}
