package blob_test

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"

	"github.com/parleychat/parley/internal/blob"
)

func TestIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id := blob.NewID()
		if len(id) != 43 || !blob.ValidID(id) || seen[id] {
			t.Fatalf("NewID() = %q", id)
		}
		seen[id] = true
	}
	good := blob.NewID()
	for _, bad := range []string{
		"", good[:42], good + "A", good[:42] + "=", strings.Repeat("/", 43), strings.Repeat("+", 43),
		"../" + good[3:], good[:42] + "B", // B in the last place sets bits past the 256th
	} {
		if blob.ValidID(bad) {
			t.Errorf("ValidID(%q) = true", bad)
		}
	}
}

func TestSortDevices(t *testing.T) {
	in := []blob.Device{{"bob", 2}, {"alice", 9}, {"bob", 1}, {"alice", 9}, {"alice", 10}}
	want := []blob.Device{{"alice", 9}, {"alice", 10}, {"bob", 1}, {"bob", 2}}
	if got := blob.SortDevices(in); !slices.Equal(got, want) {
		t.Fatalf("SortDevices = %v", got)
	}
	if in[0].Handle != "bob" {
		t.Fatal("SortDevices changed its argument")
	}
}

// FuzzValidID: every id ValidID accepts is the canonical encoding of 32
// bytes, so decoding and encoding it gives it back.
func FuzzValidID(f *testing.F) {
	f.Add(blob.NewID())
	f.Fuzz(func(t *testing.T, id string) {
		if !blob.ValidID(id) {
			return
		}
		b, err := base64.RawURLEncoding.DecodeString(id)
		if err != nil || len(b) != blob.IDSize {
			t.Fatalf("valid id %q decodes to %d bytes, %v", id, len(b), err)
		}
		if again := base64.RawURLEncoding.EncodeToString(b); again != id {
			t.Fatalf("valid id %q re-encodes as %q", id, again)
		}
	})
}
