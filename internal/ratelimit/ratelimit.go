// Package ratelimit keeps one token bucket per key (a client address, an
// account) with bounded memory: a bucket that has been idle long enough to
// be full again is the same as a new one, so it is forgotten.
package ratelimit

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultMaxKeys bounds the number of buckets kept by New.
const DefaultMaxKeys = 100_000

// Limiter is a set of token buckets, one per key. It is safe for
// concurrent use.
type Limiter struct {
	limit   rate.Limit
	burst   int
	maxKeys int
	refill  time.Duration // time an empty bucket takes to fill

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

// New returns a limiter allowing perMinute events per minute per key, with
// bursts of burst events, keeping at most maxKeys buckets (DefaultMaxKeys
// if maxKeys <= 0).
func New(perMinute float64, burst, maxKeys int) *Limiter {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	limit := rate.Limit(perMinute / 60)
	refill := time.Duration(float64(burst) / float64(limit) * float64(time.Second))
	return &Limiter{
		limit:   limit,
		burst:   burst,
		maxKeys: maxKeys,
		refill:  refill,
		buckets: make(map[string]*bucket),
	}
}

// Allow takes one token from key's bucket and reports whether there was one.
func (l *Limiter) Allow(key string) bool { return l.AllowAt(key, time.Now()) }

// AllowAt is Allow at a given time, for tests.
func (l *Limiter) AllowAt(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= l.maxKeys || now.Sub(l.lastSweep) > l.refill {
			l.sweep(now)
		}
		b = &bucket{lim: rate.NewLimiter(l.limit, l.burst)}
		l.buckets[key] = b
	}
	b.last = now
	return b.lim.AllowN(now, 1)
}

// Len returns the number of buckets held.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// sweep forgets full buckets; if the map is still at its bound, it forgets
// the least recently used half, which lets those keys start afresh (the
// price of bounded memory under a flood of distinct keys).
func (l *Limiter) sweep(now time.Time) {
	l.lastSweep = now
	for k, b := range l.buckets {
		if now.Sub(b.last) >= l.refill {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) < l.maxKeys {
		return
	}
	// Find the median last-use time by sampling all; delete older ones.
	times := make([]time.Time, 0, len(l.buckets))
	for _, b := range l.buckets {
		times = append(times, b.last)
	}
	cut := nthOldest(times, len(times)/2)
	for k, b := range l.buckets {
		if !b.last.After(cut) {
			delete(l.buckets, k)
		}
	}
}

// nthOldest returns the n-th smallest time (quickselect).
func nthOldest(ts []time.Time, n int) time.Time {
	lo, hi := 0, len(ts)-1
	for lo < hi {
		p := ts[(lo+hi)/2]
		i, j := lo, hi
		for i <= j {
			for ts[i].Before(p) {
				i++
			}
			for p.Before(ts[j]) {
				j--
			}
			if i <= j {
				ts[i], ts[j] = ts[j], ts[i]
				i++
				j--
			}
		}
		switch {
		case n <= j:
			hi = j
		case n >= i:
			lo = i
		default:
			return ts[n]
		}
	}
	return ts[n]
}
