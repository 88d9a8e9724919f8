package store

import (
	"errors"
	"strings"
	"testing"
)

func TestNormaliseHandle(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"alice", "alice"},
		{"Alice", "alice"},
		{"BOB_42", "bob_42"},
		{"abc", "abc"},
		{"___", "___"},
		{"007", "007"},
		{strings.Repeat("z", 32), strings.Repeat("z", 32)},
	} {
		got, err := NormaliseHandle(c.in)
		if err != nil || got != c.want {
			t.Errorf("NormaliseHandle(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
		if !ValidHandle(c.want) {
			t.Errorf("ValidHandle(%q) = false", c.want)
		}
	}
	for _, in := range []string{
		"", "ab", strings.Repeat("z", 33), "@alice", "al ice", " alice", "alice\n", "al-ice", "al.ice",
		"ålice", "\u212Aey" /* KELVIN SIGN, lower-cases to k */, "alıce", "alice\x00",
	} {
		if got, err := NormaliseHandle(in); !errors.Is(err, ErrInvalidHandle) {
			t.Errorf("NormaliseHandle(%q) = %q, %v; want ErrInvalidHandle", in, got, err)
		}
		if ValidHandle(in) {
			t.Errorf("ValidHandle(%q) = true", in)
		}
	}
	if ValidHandle("Alice") {
		t.Error(`ValidHandle("Alice") = true: not the stored form`)
	}
}

// FuzzNormaliseHandle checks that a handle that parses is in stored form,
// the same handle case-insensitively, and normalises to itself again.
func FuzzNormaliseHandle(f *testing.F) {
	for _, s := range []string{"alice", "Bob_1", "@x", "ab", "\u212Aey"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := NormaliseHandle(in)
		if err != nil {
			if !errors.Is(err, ErrInvalidHandle) || out != "" {
				t.Fatalf("NormaliseHandle(%q) = %q, %v", in, out, err)
			}
			return
		}
		if len(out) != len(in) || !strings.EqualFold(in, out) || strings.ToLower(in) != out {
			t.Fatalf("NormaliseHandle(%q) = %q: not the same handle", in, out)
		}
		again, err := NormaliseHandle(out)
		if err != nil || again != out || !ValidHandle(out) {
			t.Fatalf("NormaliseHandle(%q) = %q, %v: not stable", out, again, err)
		}
	})
}
