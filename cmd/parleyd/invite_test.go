package main

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzParseDays: --expires parses as a Go duration or as whole days, and
// never wraps around (a century of days at most).
func FuzzParseDays(f *testing.F) {
	for _, s := range []string{"7d", "36h", "0", "-1d", "d", "1.5d", "99999999999999d", "36500d", "1h30m"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseDays(s)
		if err != nil {
			return
		}
		if n, ok := strings.CutSuffix(s, "d"); ok {
			days, _ := strconv.Atoi(n)
			if d != time.Duration(days)*24*time.Hour || days > maxDays || days < -maxDays {
				t.Fatalf("%q parsed as %v", s, d)
			}
			return
		}
		if want, err := time.ParseDuration(s); err != nil || want != d {
			t.Fatalf("%q parsed as %v, time.ParseDuration says %v, %v", s, d, want, err)
		}
	})
}
