package s3

import (
	"fmt"
	"testing"
)

// FuzzRangeStart: any Content-Range header a service sends is read or
// refused, never a panic; a well-formed one gives its first byte.
func FuzzRangeStart(f *testing.F) {
	for _, s := range []string{"bytes 0-9/10", "bytes 12345-99999/100000", "bytes */100", "bytes -1-2/3", "items 0-1/2", "bytes 9223372036854775807-0/1", ""} {
		f.Add(s, int64(0))
	}
	f.Add("", int64(5<<20))
	f.Fuzz(func(t *testing.T, header string, first int64) {
		if n, ok := rangeStart(header); ok && n < 0 {
			t.Fatalf("%q gave a negative start %d", header, n)
		}
		if first < 0 {
			return
		}
		h := fmt.Sprintf("bytes %d-%d/%d", first, first+1, first+2)
		if n, ok := rangeStart(h); !ok || n != first {
			t.Fatalf("%q: %d, %v", h, n, ok)
		}
	})
}
