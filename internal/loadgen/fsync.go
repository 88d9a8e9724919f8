package loadgen

import (
	"context"
	"fmt"
	"os"
	"time"
)

// Fsync is the disk baseline: appends of 4 KiB, each followed by fsync, in
// one file in the given folder (put it on the filesystem of parleyd's data
// folder), one at a time. parleyd makes sends and acks durable with an
// fsync of SQLite's write-ahead log, so this says how fast its one writer
// could commit one write at a time.
type Fsync struct {
	Dir     string  `json:"dir"`
	Seconds float64 `json:"seconds"`
	PerSec  float64 `json:"syncs_per_s"`
	Latency Latency `json:"latency"`
}

// measureFsync runs the disk baseline for d in a temporary file inside dir,
// removed afterwards.
func measureFsync(ctx context.Context, dir string, d time.Duration) (*Fsync, error) {
	f, err := os.CreateTemp(dir, "parley-load-fsync-*")
	if err != nil {
		return nil, fmt.Errorf("loadgen: fsync baseline: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	rec := NewRecorder()
	start := time.Now()
	var n int64
	for time.Since(start) < d && ctx.Err() == nil {
		t := time.Now()
		if _, err := f.Write(buf); err != nil {
			return nil, fmt.Errorf("loadgen: fsync baseline: %w", err)
		}
		if err := f.Sync(); err != nil {
			return nil, fmt.Errorf("loadgen: fsync baseline: %w", err)
		}
		rec.Add(time.Since(t))
		n++
	}
	secs := time.Since(start).Seconds()
	return &Fsync{Dir: dir, Seconds: secs, PerSec: float64(n) / secs, Latency: rec.Summary()}, nil
}
