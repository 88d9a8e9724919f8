package server

import (
	"bytes"
	"strings"
	"testing"
)

func TestInviteCode(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		c := NewInviteCode()
		norm, ok := NormaliseInviteCode(c)
		if !ok || len(c) != inviteCodeLen+6 || seen[c] {
			t.Fatalf("NewInviteCode gave %q (normalised %q, ok %v, seen before %v)", c, norm, ok, seen[c])
		}
		seen[c] = true
		for _, other := range []string{strings.ToUpper(c), strings.ReplaceAll(c, "-", " "), norm} {
			if !bytes.Equal(InviteHash(other), InviteHash(c)) {
				t.Fatalf("%q and %q hash differently", other, c)
			}
		}
	}
	for _, bad := range []string{"", "abcd", strings.Repeat("a", inviteCodeLen+1), strings.Repeat("1", inviteCodeLen), strings.Repeat("é", inviteCodeLen/2)} {
		if _, ok := NormaliseInviteCode(bad); ok {
			t.Errorf("NormaliseInviteCode(%q) took it", bad)
		}
	}
}

// FuzzNormaliseInviteCode: any input is either refused or normalised to a
// fixed point that hashes like the input.
func FuzzNormaliseInviteCode(f *testing.F) {
	for _, s := range []string{NewInviteCode(), "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GG", "", "----", "a b c", strings.Repeat("z", 40)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		norm, ok := NormaliseInviteCode(s)
		if !ok {
			return
		}
		again, ok2 := NormaliseInviteCode(norm)
		if !ok2 || again != norm || len(norm) != inviteCodeLen {
			t.Fatalf("%q normalised to %q, then to %q (%v)", s, norm, again, ok2)
		}
		if !bytes.Equal(InviteHash(s), InviteHash(norm)) {
			t.Fatalf("%q and its normal form %q hash differently", s, norm)
		}
	})
}
