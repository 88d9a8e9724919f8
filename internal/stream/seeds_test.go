package stream_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriteFuzzSeeds regenerates testdata/fuzz when PARLEY_WRITE_SEEDS=1
// (the seeds of FuzzDecrypt are ciphertexts under fuzzKey, so they are
// generated, not typed).
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("PARLEY_WRITE_SEEDS") != "1" {
		t.Skip("set PARLEY_WRITE_SEEDS=1 to rewrite testdata/fuzz")
	}
	ct := func(s string) []byte { return encrypt(t, fuzzKey, []byte(s), 0) }
	long := encrypt(t, fuzzKey, []byte(strings.Repeat("x", 300)), 0)
	seeds := map[string][]any{
		"FuzzDecrypt/empty-plaintext": {ct(""), uint16(0)},
		"FuzzDecrypt/hello":           {ct("hello, world"), uint16(0)},
		"FuzzDecrypt/long":            {long, uint16(0)},
		"FuzzDecrypt/cut":             {long[:100], uint16(0)},
		"FuzzDecrypt/trailing":        {append(ct("hi"), 0, 1), uint16(0)},
		"FuzzDecrypt/resumed-index":   {ct("at one"), uint16(1)},
		"FuzzDecrypt/no-chunks":       {[]byte{}, uint16(0)},
		"FuzzDecrypt/short":           {[]byte("0123456789abcde"), uint16(0)},
		"FuzzModify/unchanged":        {[]byte("abc"), uint16(0), uint32(0), byte(0), uint32(0), []byte{}},
		"FuzzModify/flip-chunk-1":     {[]byte("abcdefgh"), uint16(30000), uint32(70000), byte(1), uint32(0), []byte{}},
		"FuzzModify/cut-boundary":     {[]byte("0123456789"), uint16(20000), uint32(0), byte(0), uint32(65552), []byte{}},
		"FuzzModify/extend":           {[]byte("x"), uint16(65535), uint32(0), byte(0), uint32(0), []byte{0}},
		"FuzzModify/exact-chunk":      {[]byte("0123456789abcdef"), uint16(4096), uint32(5), byte(0x80), uint32(0), []byte{}},
		"FuzzWriteRead/small":         {[]byte("hello"), uint16(1), uint16(3), uint32(1)},
		"FuzzWriteRead/multi-chunk":   {[]byte("0123456789abcdef"), uint16(4096), uint16(65535), uint32(8193)},
		"FuzzWriteRead/bytewise":      {[]byte{0xff}, uint16(65535), uint16(0), uint32(2)},
	}
	for name, vals := range seeds {
		var b strings.Builder
		b.WriteString("go test fuzz v1\n")
		for _, v := range vals {
			switch v := v.(type) {
			case []byte:
				fmt.Fprintf(&b, "[]byte(%q)\n", v)
			case uint16:
				fmt.Fprintf(&b, "uint16(%d)\n", v)
			case uint32:
				fmt.Fprintf(&b, "uint32(%d)\n", v)
			case byte:
				fmt.Fprintf(&b, "byte(%q)\n", v)
			}
		}
		p := filepath.Join("testdata", "fuzz", filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
