package linking

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/parleychat/parley/internal/content"
	"github.com/parleychat/parley/internal/identity"
)

func newCode(t testing.TB) Code {
	t.Helper()
	var id [16]byte
	rand.Read(id[:])
	c, err := NewCode(id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCodeString(t *testing.T) {
	c := newCode(t)
	s := c.String()
	groups := strings.Split(s, "-")
	if len(groups) != 14 || len(groups[13]) != 3 || len(strings.ReplaceAll(s, "-", "")) != CodeLen {
		t.Fatalf("code %q", s)
	}
	for _, g := range groups[:13] {
		if len(g) != 4 {
			t.Fatalf("code %q", s)
		}
	}
	if strings.ContainsAny(s, "ILOU") {
		t.Fatalf("ambiguous letters in %q", s)
	}
	for _, variant := range []string{
		s, strings.ToLower(s), strings.ReplaceAll(s, "-", ""), strings.ReplaceAll(s, "-", " "),
		"  " + strings.ReplaceAll(s, "-", "\t") + "\n",
		strings.NewReplacer("1", "I", "0", "O").Replace(s),
		strings.NewReplacer("1", "l", "0", "o").Replace(s),
	} {
		got, err := ParseCode(variant)
		if err != nil || got != c {
			t.Fatalf("ParseCode(%q) = %v, %v", variant, got, err)
		}
	}
	if c2 := newCode(t); c2.Secret == c.Secret {
		t.Fatal("two codes share a secret")
	}
}

func TestParseCodeRejects(t *testing.T) {
	// A single-character typo is refused by the alphabet, by the canonical
	// trailing bits, or by the 16-bit checksum, which lets a typo through
	// with probability 2^-16, not never. Over the 1 705 typos of each of 8
	// codes about 0.2 get through on average; more than 5 would happen by
	// chance about once in ten million runs, but at once if the checksum
	// were not checked.
	alphabet := "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	misses, typos := 0, 0
	var s string
	for range 8 {
		s = strings.ReplaceAll(newCode(t).String(), "-", "")
		for i := range s {
			for _, r := range alphabet {
				if byte(r) == s[i] {
					continue
				}
				typos++
				typo := s[:i] + string(r) + s[i+1:]
				if _, err := ParseCode(typo); err == nil {
					misses++
				} else if !errors.Is(err, ErrBadCode) {
					t.Fatal(err)
				}
			}
		}
	}
	if misses > 5 {
		t.Fatalf("%d of %d single-character typos accepted", misses, typos)
	}
	for _, bad := range []string{"", s[:len(s)-1], s + "0", strings.Replace(s, s[:1], "U", 1), "!" + s[1:]} {
		if _, err := ParseCode(bad); !errors.Is(err, ErrBadCode) {
			t.Fatalf("ParseCode(%q) = %v", bad, err)
		}
	}
}

func join(t testing.TB, c Code) (*Join, *ecdh.PrivateKey, *identity.DeviceKey) {
	t.Helper()
	dev, _ := identity.NewDeviceKey()
	j, eph, err := NewJoin(c, dev, 42, "new laptop")
	if err != nil {
		t.Fatal(err)
	}
	return j, eph, dev
}

func TestJoin(t *testing.T) {
	c := newCode(t)
	j, _, dev := join(t, c)
	if err := j.Verify(c); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(j.DHKey, dev.DHPublic()) || !bytes.Equal(j.SigningKey, dev.SigningPublic()) || j.DeviceID != 42 {
		t.Fatalf("join %+v", j)
	}
	b := j.Marshal()
	j2, err := ParseJoin(b)
	if err != nil || !reflect.DeepEqual(j, j2) {
		t.Fatalf("ParseJoin: %+v %v", j2, err)
	}
	if err := j.Verify(newCode(t)); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("other code: %v", err)
	}
	other := c
	other.LinkID[0] ^= 1
	if err := j.Verify(other); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("other link id: %v", err)
	}
	// The MAC covers every field.
	for i := range b {
		bad := bytes.Clone(b)
		bad[i] ^= 1
		jb, err := ParseJoin(bad)
		if err != nil {
			continue
		}
		if err := jb.Verify(c); !errors.Is(err, ErrBadMAC) {
			t.Fatalf("flipping byte %d: %v", i, err)
		}
	}
	for _, bad := range [][]byte{nil, b[:len(b)-1], append(bytes.Clone(b), 0)} {
		if _, err := ParseJoin(bad); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%d bytes: %v", len(bad), err)
		}
	}
	dk, _ := identity.NewDeviceKey()
	if _, _, err := NewJoin(c, dk, 0, "x"); !errors.Is(err, ErrMalformed) {
		t.Fatalf("device id 0: %v", err)
	}
	if _, _, err := NewJoin(c, dk, 1, strings.Repeat("x", 65)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("long name: %v", err)
	}
}

func transfer() *Transfer {
	return &Transfer{
		Handle:      "alice",
		AccountSeed: bytes.Repeat([]byte{7}, 32),
		Contacts: []content.Contact{
			{Handle: "bob", State: content.ContactAccepted, IdentityKey: bytes.Repeat([]byte{1}, 32), Verified: true},
			{Handle: "eve", State: content.ContactBlocked},
		},
		ReadReceipts: true,
	}
}

func TestSealOpen(t *testing.T) {
	c := newCode(t)
	j, eph, _ := join(t, c)
	tr := transfer()
	sealed, err := Seal(c, j, tr)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Open(c, j, eph, sealed)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, tr) {
		t.Fatalf("Open = %+v", got)
	}
	if s2, _ := Seal(c, j, tr); bytes.Equal(s2, sealed) {
		t.Fatal("two seals are equal: no fresh key")
	}

	// Wrong code, wrong ephemeral, tampered bytes, another join.
	if _, err := Open(newCode(t), j, eph, sealed); !errors.Is(err, ErrOpen) {
		t.Fatalf("other code: %v", err)
	}
	otherEph, _ := ecdh.X25519().GenerateKey(rand.Reader)
	if _, err := Open(c, j, otherEph, sealed); !errors.Is(err, ErrOpen) {
		t.Fatalf("other ephemeral: %v", err)
	}
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 1
		if _, err := Open(c, j, eph, bad); err == nil {
			t.Fatalf("flipping byte %d still opens", i)
		}
	}
	j2 := *j
	j2.Name = "renamed"
	if _, err := Open(c, &j2, eph, sealed); !errors.Is(err, ErrOpen) {
		t.Fatalf("join renamed after sealing: %v", err)
	}
	if _, err := Open(c, j, eph, sealed[:40]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short: %v", err)
	}
	// Seal refuses a join that the code does not authenticate.
	if _, err := Seal(newCode(t), j, tr); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("Seal with another code: %v", err)
	}
	bad := transfer()
	bad.AccountSeed = bad.AccountSeed[:31]
	if _, err := Seal(c, j, bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short seed: %v", err)
	}
}

func FuzzParseJoin(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		j, err := ParseJoin(b)
		if err != nil {
			return
		}
		if !bytes.Equal(j.Marshal(), b) {
			t.Fatal("round trip changed the bytes")
		}
	})
}

func FuzzParseCode(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCode(s)
		if err != nil {
			return
		}
		// The canonical form parses back to the same code, and equals the
		// input up to the tolerated differences.
		c2, err := ParseCode(c.String())
		if err != nil || c2 != c {
			t.Fatalf("canonical form does not round-trip: %v", err)
		}
		if normalize(s) != strings.ReplaceAll(c.String(), "-", "") {
			t.Fatalf("input %q parsed as %q", s, c.String())
		}
	})
}

func FuzzParseTransfer(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := parseTransfer(b)
		if err != nil {
			return
		}
		again, err := tr.marshal()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("round trip changed the bytes: %v", err)
		}
	})
}
