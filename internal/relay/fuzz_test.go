package relay

import (
	"testing"
	"time"
)

// FuzzParseUsername: a TURN username comes from the network. Whatever parses
// must name the same expiry, account and device once written again by
// NewCredentials (the parser also accepts non-canonical numbers, which is
// harmless: the password is an HMAC of the exact string).
func FuzzParseUsername(f *testing.F) {
	f.Add(NewCredentials([]byte("secret"), "alice", 7, time.Unix(1795626728, 0)).Username)
	f.Add("1795626728:bob_2.4294967295")
	f.Add("0:alice.1")
	f.Add("1795626728:alice")
	f.Add("x:alice.1")
	f.Add("+17:a.b.c.1")
	f.Fuzz(func(t *testing.T, username string) {
		exp, handle, device, err := ParseUsername(username)
		if err != nil {
			return
		}
		again := NewCredentials(nil, handle, device, exp).Username
		exp2, handle2, device2, err := ParseUsername(again)
		if err != nil || !exp2.Equal(exp) || handle2 != handle || device2 != device {
			t.Fatalf("%q parsed as (%v, %q, %d), rewritten %q parsed as (%v, %q, %d, %v)",
				username, exp, handle, device, again, exp2, handle2, device2, err)
		}
	})
}
