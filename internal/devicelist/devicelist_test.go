package devicelist

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/parleychat/parley/internal/identity"
)

func device(t testing.TB, id uint32, name string) Device {
	t.Helper()
	k, err := identity.NewDeviceKey()
	if err != nil {
		t.Fatal(err)
	}
	return Device{ID: id, SigningKey: k.SigningPublic(), DHKey: k.DHPublic(), Name: name, Created: 1700000000000 + int64(id)}
}

func TestSignVerify(t *testing.T) {
	ak, _ := identity.NewAccountKey()
	l := &List{Handle: "alice", Version: 3, Devices: []Device{device(t, 9, "laptop"), device(t, 2, "phone ☎")}}
	signed, err := l.Sign(ak)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Verify(signed, ak.Public())
	if err != nil {
		t.Fatal(err)
	}
	if got.Handle != "alice" || got.Version != 3 || len(got.Devices) != 2 {
		t.Fatalf("got %+v", got)
	}
	if ids := got.IDs(); ids[0] != 9 || ids[1] != 2 {
		t.Fatalf("IDs = %v, want list order [9 2]", ids)
	}
	d, ok := got.Device(2)
	if !ok || d.Name != "phone ☎" || !bytes.Equal(d.DHKey, l.Devices[1].DHKey) || !d.SigningKey.Equal(l.Devices[1].SigningKey) || d.Created != l.Devices[1].Created {
		t.Fatalf("Device(2) = %+v, %v", d, ok)
	}
	if _, ok := got.Device(5); ok {
		t.Fatal("Device(5) found")
	}
	p, err := Parse(signed)
	if err != nil || p.Version != 3 {
		t.Fatalf("Parse = %+v, %v", p, err)
	}
}

func TestVerifyRejects(t *testing.T) {
	ak, _ := identity.NewAccountKey()
	other, _ := identity.NewAccountKey()
	l := &List{Handle: "alice", Version: 1, Devices: []Device{device(t, 1, "a")}}
	signed, err := l.Sign(ak)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(signed, other.Public()); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("wrong key: %v", err)
	}
	if _, err := Verify(signed, nil); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("nil key: %v", err)
	}
	for i := range signed {
		bad := bytes.Clone(signed)
		bad[i] ^= 0x01
		if _, err := Verify(bad, ak.Public()); err == nil {
			t.Fatalf("flipping byte %d still verifies", i)
		}
	}
	if _, err := Verify(append(bytes.Clone(signed), 0), ak.Public()); !errors.Is(err, ErrMalformed) {
		t.Fatalf("trailing byte: %v", err)
	}
	if _, err := Verify(signed[:len(signed)-1], ak.Public()); !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated: %v", err)
	}
	// A list signed by another account's key under our handle.
	forged, _ := l.Sign(other)
	if _, err := Verify(forged, ak.Public()); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("forged: %v", err)
	}
}

func TestSignValidates(t *testing.T) {
	ak, _ := identity.NewAccountKey()
	d := device(t, 1, "a")
	bad := []*List{
		{Handle: "Al", Version: 1, Devices: []Device{d}},
		{Handle: "alice!", Version: 1, Devices: []Device{d}},
		{Handle: strings.Repeat("a", 33), Version: 1, Devices: []Device{d}},
		{Handle: "alice", Version: 0, Devices: []Device{d}},
		{Handle: "alice", Version: 1},
		{Handle: "alice", Version: 1, Devices: []Device{{ID: 0, SigningKey: d.SigningKey, DHKey: d.DHKey}}},
		{Handle: "alice", Version: 1, Devices: []Device{d, d}},
		{Handle: "alice", Version: 1, Devices: []Device{{ID: 1, SigningKey: d.SigningKey[:31], DHKey: d.DHKey}}},
		{Handle: "alice", Version: 1, Devices: []Device{{ID: 1, SigningKey: d.SigningKey, DHKey: nil}}},
		{Handle: "alice", Version: 1, Devices: []Device{{ID: 1, SigningKey: d.SigningKey, DHKey: d.DHKey, Name: strings.Repeat("x", 65)}}},
		{Handle: "alice", Version: 1, Devices: []Device{{ID: 1, SigningKey: d.SigningKey, DHKey: d.DHKey, Name: "\xff"}}},
	}
	many := &List{Handle: "alice", Version: 1}
	for i := range MaxDevices + 1 {
		many.Devices = append(many.Devices, Device{ID: uint32(i + 1), SigningKey: d.SigningKey, DHKey: d.DHKey})
	}
	bad = append(bad, many)
	for i, l := range bad {
		if _, err := l.Sign(ak); !errors.Is(err, ErrMalformed) {
			t.Errorf("case %d: Sign = %v, want ErrMalformed", i, err)
		}
	}
	many.Devices = many.Devices[:MaxDevices]
	if _, err := many.Sign(ak); err != nil {
		t.Fatalf("MaxDevices devices: %v", err)
	}
}

// TestVerifyRejectsInvalidSigned checks that Verify applies the same rules
// as Sign to a list that is correctly signed but invalid (a buggy or
// malicious client signed it by hand).
func TestVerifyRejectsInvalidSigned(t *testing.T) {
	ak, _ := identity.NewAccountKey()
	d := device(t, 7, "a")
	l := &List{Handle: "alice", Version: 1, Devices: []Device{d, d}}
	body, err := l.body()
	if err != nil {
		t.Fatal(err)
	}
	signed, err := encode(body, ak.Sign(signedMessage(body)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(signed, ak.Public()); !errors.Is(err, ErrMalformed) {
		t.Fatalf("duplicate ids: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	// Seeds live in testdata/fuzz/FuzzParse.
	f.Fuzz(func(t *testing.T, b []byte) {
		l, body, sig, err := parse(b)
		if err != nil {
			return
		}
		if err := l.Validate(); err != nil {
			t.Fatalf("parse accepted an invalid list: %v", err)
		}
		again, err := l.encodeWithSignature(sig)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("round trip changed the bytes:\n%x\n%x", b, again)
		}
		if b2, _ := l.body(); !bytes.Equal(b2, body) {
			t.Fatal("body differs")
		}
	})
}
