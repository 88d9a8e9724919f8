package config

import (
	"bytes"
	"testing"
)

// FuzzConfigFile parses arbitrary config files; whatever parses prints as
// JSON that parses back to the same configuration and prints identically.
func FuzzConfigFile(f *testing.F) {
	f.Add(Defaults().JSON())
	f.Add([]byte(`{"addr": "127.0.0.1:1", "insecure_http": true, "token_ttl": "1h30m"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := Defaults()
		if err := c.applyFile(b); err != nil {
			return
		}
		out := c.JSON()
		d := Defaults()
		if err := d.applyFile(out); err != nil {
			t.Fatalf("printed config does not parse: %v\n%s", err, out)
		}
		if d != c {
			t.Fatalf("round trip changed the config:\n%+v\n%+v", c, d)
		}
		if again := d.JSON(); !bytes.Equal(again, out) {
			t.Fatalf("printing is not stable:\n%s\n%s", out, again)
		}
	})
}
