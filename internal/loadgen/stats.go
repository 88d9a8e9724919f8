package loadgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"time"
)

// maxSamples bounds the latency samples one Recorder keeps. Past it the
// recorder keeps a uniform random sample of everything it saw (reservoir
// sampling, Algorithm R), so percentiles stay unbiased and memory bounded;
// the count and the maximum stay exact.
const maxSamples = 4 << 20

// Recorder collects latency samples from many goroutines.
type Recorder struct {
	mu      sync.Mutex
	samples []time.Duration
	count   int64
	max     time.Duration
	rng     *rand.Rand
	limit   int
}

// NewRecorder returns an empty recorder.
func NewRecorder() *Recorder {
	return &Recorder{rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())), limit: maxSamples}
}

// Add records one sample. Negative samples (clock oddities) count as zero.
func (r *Recorder) Add(d time.Duration) {
	if d < 0 {
		d = 0
	}
	r.mu.Lock()
	r.count++
	if d > r.max {
		r.max = d
	}
	if len(r.samples) < r.limit {
		r.samples = append(r.samples, d)
	} else if j := r.rng.Int64N(r.count); j < int64(r.limit) {
		r.samples[j] = d
	}
	r.mu.Unlock()
}

// Summary returns the count, p50, p90, p99 and maximum of what was recorded.
func (r *Recorder) Summary() Latency {
	r.mu.Lock()
	s := slices.Clone(r.samples)
	count, maxd := r.count, r.max
	r.mu.Unlock()
	slices.Sort(s)
	return Latency{
		Count: count,
		P50:   ms(Percentile(s, 50)),
		P90:   ms(Percentile(s, 90)),
		P99:   ms(Percentile(s, 99)),
		Max:   ms(maxd),
	}
}

// Latency summarises a latency distribution, in milliseconds.
type Latency struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest sample such that at least p% of the
// samples are less than or equal to it. It returns 0 for no samples and
// the minimum for p <= 0.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if p <= 0 {
		return sorted[0]
	}
	if p >= 100 {
		return sorted[n-1]
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}

// Errors counts errors by code: the API error codes of internal/api, or a
// short name for failures below HTTP ("timeout", "transport", ...).
type Errors struct {
	mu sync.Mutex
	m  map[string]int64
}

// Add counts one error with the given code.
func (e *Errors) Add(code string) {
	e.mu.Lock()
	if e.m == nil {
		e.m = make(map[string]int64)
	}
	e.m[code]++
	e.mu.Unlock()
}

// Map returns a copy of the counts (nil when there were none).
func (e *Errors) Map() map[string]int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.m) == 0 {
		return nil
	}
	out := make(map[string]int64, len(e.m))
	for k, v := range e.m {
		out[k] = v
	}
	return out
}

// Total returns the number of errors counted.
func (e *Errors) Total() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	var t int64
	for _, v := range e.m {
		t += v
	}
	return t
}

// sortedKeys returns m's keys in order, for stable printing.
func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
