package realm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"crypto/ed25519"

	"github.com/parleychat/parley/internal/pinbackup"
)

// FuzzParseToken: a token that parses re-encodes to the same bytes.
func FuzzParseToken(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		tok, sig, err := parseToken(b)
		if err != nil {
			return
		}
		body, err := tok.body()
		if err != nil {
			t.Fatalf("parsed token does not encode: %v", err)
		}
		if got := append(body, sig...); !bytes.Equal(got, b) {
			t.Fatalf("re-encoded %x, parsed %x", got, b)
		}
	})
}

// FuzzDecodeRegistration: what the realm accepts as a registration
// survives a JSON round trip unchanged (the realm stores the decoded
// fields, so re-encoding must not change them).
func FuzzDecodeRegistration(f *testing.F) {
	realm := pinbackup.RealmID{1}
	f.Fuzz(func(t *testing.T, b []byte) {
		var r pinbackup.Registration
		if decode(b, &r) != nil || r.Check(realm) != nil {
			return
		}
		again, err := json.Marshal(&r)
		if err != nil {
			t.Fatal(err)
		}
		var r2 pinbackup.Registration
		if err := decode(again, &r2); err != nil || !reflect.DeepEqual(r, r2) || r2.Check(realm) != nil {
			t.Fatalf("round trip changed the registration: %v", err)
		}
	})
}

// TestWriteFuzzSeeds regenerates testdata/fuzz when PARLEY_WRITE_SEEDS=1.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("PARLEY_WRITE_SEEDS") != "1" {
		t.Skip("set PARLEY_WRITE_SEEDS=1 to rewrite testdata/fuzz")
	}
	_, priv, _ := ed25519.GenerateKey(nil)
	tok, _ := SignToken(priv, Token{Handle: "alice", Realm: pinbackup.RealmID{1}, Expires: time.UnixMilli(1700000000000)})
	raw, _ := decodeB64(tok)
	setup := pinbackup.Setup{Realms: []pinbackup.RealmID{{1}, {2}, {3}}, Threshold: 2}
	regs, err := pinbackup.Register(setup, "alice", []byte("1234"), pinbackup.NewBackupKey(), pinbackup.Params{Time: 1, MemoryKiB: 64, Threads: 1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	reg, _ := json.Marshal(regs[0])
	seeds := map[string][][]byte{
		"FuzzParseToken":         {raw, raw[:len(raw)-1], append([]byte{2}, raw[1:]...)},
		"FuzzDecodeRegistration": {reg, []byte(`{}`), []byte(`{"version":"AAAA"}`), append(reg, '{')},
	}
	for name, list := range seeds {
		dir := filepath.Join("testdata", "fuzz", name)
		os.RemoveAll(dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, s := range list {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%d", i)), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
