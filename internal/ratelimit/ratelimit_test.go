package ratelimit

import (
	"fmt"
	"testing"
	"time"
)

func TestBurstThenRefill(t *testing.T) {
	l := New(60, 3, 0) // one per second, burst 3
	t0 := time.Unix(1000, 0)
	for i := range 3 {
		if !l.AllowAt("a", t0) {
			t.Fatalf("event %d of the burst refused", i)
		}
	}
	if l.AllowAt("a", t0) {
		t.Fatal("fourth event in the same instant allowed")
	}
	if !l.AllowAt("b", t0) {
		t.Fatal("another key is limited by the first")
	}
	if !l.AllowAt("a", t0.Add(time.Second)) {
		t.Fatal("no token after one second")
	}
	if l.AllowAt("a", t0.Add(time.Second)) {
		t.Fatal("two tokens after one second")
	}
}

func TestIdleKeysForgotten(t *testing.T) {
	l := New(60, 2, 0)
	t0 := time.Unix(1000, 0)
	for i := range 1000 {
		l.AllowAt(fmt.Sprint(i), t0)
	}
	if l.Len() != 1000 {
		t.Fatalf("Len = %d", l.Len())
	}
	// After the refill time every bucket is full again: a new key sweeps.
	l.AllowAt("new", t0.Add(3*time.Second))
	if l.Len() != 1 {
		t.Fatalf("Len after idle sweep = %d, want 1", l.Len())
	}
}

func TestBoundedUnderFlood(t *testing.T) {
	l := New(1, 1, 100)
	t0 := time.Unix(1000, 0)
	for i := range 10_000 {
		l.AllowAt(fmt.Sprint(i), t0.Add(time.Duration(i)*time.Millisecond))
		if l.Len() > 100 {
			t.Fatalf("Len = %d after %d keys, bound 100", l.Len(), i+1)
		}
	}
	// The most recent key is still limited.
	if l.AllowAt("9999", t0.Add(10*time.Second)) {
		t.Fatal("recent key's bucket was forgotten")
	}
}

func TestNthOldest(t *testing.T) {
	t0 := time.Unix(0, 0)
	for n := 1; n < 40; n++ {
		ts := make([]time.Time, n)
		for i := range ts {
			ts[i] = t0.Add(time.Duration((i*7919)%n) * time.Second)
		}
		for k := range n {
			cp := append([]time.Time(nil), ts...)
			if got := nthOldest(cp, k); !got.Equal(t0.Add(time.Duration(k) * time.Second)) {
				t.Fatalf("n=%d k=%d: got %v", n, k, got)
			}
		}
	}
}
