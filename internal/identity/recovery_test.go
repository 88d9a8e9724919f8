package identity

import (
	"bytes"
	"crypto/sha256"
	"strings"
	"testing"
)

func TestRecoveryMessage(t *testing.T) {
	ch := bytes.Repeat([]byte{9}, 56)
	m := RecoveryMessage("alice", ch, nil)
	h := sha256.Sum256(nil)
	want := append([]byte("parley-recover-device-v1\x05alice\x00\x38"), ch...)
	if !bytes.Equal(m, append(want, h[:]...)) {
		t.Fatalf("message %x", m)
	}
	if bytes.Equal(m, RecoveryMessage("alice", ch, []byte("list"))) || bytes.Equal(m, RecoveryMessage("alicf", ch, nil)) {
		t.Fatal("the message does not bind the list or the handle")
	}
	if RecoveryMessage(strings.Repeat("a", 256), ch, nil) != nil || RecoveryMessage("alice", make([]byte, 70000), nil) != nil {
		t.Fatal("oversized fields were encoded")
	}
}
