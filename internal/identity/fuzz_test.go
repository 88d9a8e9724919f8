package identity

import (
	"bytes"
	"testing"
)

// FuzzUnmarshalDeviceKey: the device key is read back from the client's
// store; whatever decodes re-encodes to the identical bytes.
func FuzzUnmarshalDeviceKey(f *testing.F) {
	k, err := NewDeviceKey()
	if err != nil {
		f.Fatal(err)
	}
	good, _ := k.MarshalBinary()
	f.Add(good)
	f.Add(make([]byte, DeviceKeySize))
	f.Add(good[:DeviceKeySize-1])
	f.Add(append(append([]byte{}, good...), 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := UnmarshalDeviceKey(b)
		if err != nil {
			return
		}
		again, err := k.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("%x re-encoded as %x (%v)", b, again, err)
		}
	})
}
