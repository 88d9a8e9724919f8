package loadgen

import (
	"slices"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ten := make([]time.Duration, 10) // 1..10 ms
	for i := range ten {
		ten[i] = time.Duration(i+1) * time.Millisecond
	}
	hundred := make([]time.Duration, 100) // 1..100
	for i := range hundred {
		hundred[i] = time.Duration(i + 1)
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one p50", []time.Duration{7}, 50, 7},
		{"one p99", []time.Duration{7}, 99, 7},
		{"ten p0", ten, 0, 1 * time.Millisecond},
		{"ten p10", ten, 10, 1 * time.Millisecond},
		{"ten p11", ten, 11, 2 * time.Millisecond},
		{"ten p50", ten, 50, 5 * time.Millisecond},
		{"ten p90", ten, 90, 9 * time.Millisecond},
		{"ten p99", ten, 99, 10 * time.Millisecond},
		{"ten p100", ten, 100, 10 * time.Millisecond},
		{"hundred p50", hundred, 50, 50},
		{"hundred p90", hundred, 90, 90},
		{"hundred p99", hundred, 99, 99},
		{"hundred p99.5", hundred, 99.5, 100},
		{"two p50", []time.Duration{1, 2}, 50, 1},
		{"two p51", []time.Duration{1, 2}, 51, 2},
	}
	for _, tt := range tests {
		if got := Percentile(tt.sorted, tt.p); got != tt.want {
			t.Errorf("%s: Percentile(p=%v) = %v, want %v", tt.name, tt.p, got, tt.want)
		}
	}
}

func TestRecorderSummary(t *testing.T) {
	r := NewRecorder()
	// 1000 samples 1..1000 µs in scrambled order, plus a negative one.
	for i := range 1000 {
		r.Add(time.Duration((i*7919)%1000+1) * time.Microsecond)
	}
	r.Add(-time.Second)
	s := r.Summary()
	if s.Count != 1001 {
		t.Fatalf("count %d, want 1001", s.Count)
	}
	// Sorted: 0, 1µs..1000µs; nearest rank: p50 ceil(500.5)=501 -> 500µs,
	// p90 ceil(900.9)=901 -> 900µs, p99 ceil(990.99)=991 -> 990µs.
	want := Latency{Count: 1001, P50: 0.5, P90: 0.9, P99: 0.99, Max: 1}
	if s != want {
		t.Fatalf("summary %+v, want %+v", s, want)
	}
}

func TestRecorderReservoir(t *testing.T) {
	r := NewRecorder()
	r.limit = 100
	for i := range 10000 {
		r.Add(time.Duration(i + 1))
	}
	s := r.Summary()
	if s.Count != 10000 || len(r.samples) != 100 {
		t.Fatalf("count %d samples %d, want 10000 and 100", s.Count, len(r.samples))
	}
	if s.Max != ms(10000) {
		t.Fatalf("max %v, want exact maximum", s.Max)
	}
	// The sample is uniform over 1..10000: its median lies far from
	// either end (a loose bound, never flaky in practice).
	sorted := slices.Clone(r.samples)
	slices.Sort(sorted)
	if med := Percentile(sorted, 50); med < 2000 || med > 8000 {
		t.Fatalf("reservoir median %d, want near 5000", med)
	}
}

func TestErrors(t *testing.T) {
	var e Errors
	if e.Map() != nil || e.Total() != 0 {
		t.Fatal("empty Errors not empty")
	}
	e.Add("timeout")
	e.Add("rate_limited")
	e.Add("timeout")
	m := e.Map()
	if m["timeout"] != 2 || m["rate_limited"] != 1 || e.Total() != 3 {
		t.Fatalf("counts %v", m)
	}
	if got := formatErrors(m); got != "rate_limited=1 timeout=2" {
		t.Fatalf("formatErrors = %q", got)
	}
}

func TestTracker(t *testing.T) {
	tr := newTracker()
	id := func(sender, seq uint32) msgID { i, _ := messageID(42, sender, seq); return i }
	tr.acked(id(1, 1), 7)
	tr.delivered(id(1, 1), 7)
	tr.acked(id(1, 2), 7) // never delivered
	tr.acked(id(2, 1), 7)
	tr.delivered(id(2, 1), 7)
	tr.delivered(id(2, 1), 7) // duplicate
	tr.delivered(id(3, 1), 7) // delivered, never acked
	// One message, three envelopes: devices 4 and 5 got theirs, 6 did
	// not; 5 got it twice; 8 got one it was not sent.
	for _, dev := range []uint32{4, 5, 6} {
		tr.acked(id(4, 1), dev)
	}
	tr.delivered(id(4, 1), 4)
	tr.delivered(id(4, 1), 5)
	tr.delivered(id(4, 1), 5)
	tr.delivered(id(4, 1), 8)
	got := tr.check()
	want := Check{Missing: 2, Duplicates: 2, Unacknowledged: 2}
	if got != want {
		t.Fatalf("check %+v, want %+v", got, want)
	}
}
