package config

import (
	"bytes"
	"fmt"
	"strings"
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

// FuzzSplitBlobS3: any blob_s3 value is refused or split, never a panic,
// and a split one joins back into a value that splits the same way.
func FuzzSplitBlobS3(f *testing.F) {
	for _, s := range []string{"https://s3.eu-west-1.amazonaws.com/parley-files", "http://127.0.0.1:7070/b",
		"https://s3.example", "https://k:s@h/b", "https://h/a/b", "s3://b", "https:///b", "https://h/b?x#y", "%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		endpoint, bucket, err := SplitBlobS3(v)
		if err != nil {
			return
		}
		if bucket == "" || strings.Contains(bucket, "/") {
			t.Fatalf("%q split into bucket %q", v, bucket)
		}
		e2, b2, err := SplitBlobS3(endpoint + "/" + bucket)
		if err != nil || e2 != endpoint || b2 != bucket {
			t.Fatalf("%q -> %q %q, which splits into %q %q, %v", v, endpoint, bucket, e2, b2, err)
		}
	})
}

func TestParseTrustedProxies(t *testing.T) {
	got, err := ParseTrustedProxies(" 10.0.0.0/8, 192.0.2.7 ,::ffff:198.51.100.1, 2001:db8::/32, 10.1.2.3/8")
	want := "[10.0.0.0/8 192.0.2.7/32 198.51.100.1/32 2001:db8::/32 10.0.0.0/8]"
	if err != nil || fmt.Sprint(got) != want {
		t.Fatalf("ParseTrustedProxies = %v, %v; want %s", got, err, want)
	}
	if got, err := ParseTrustedProxies(""); err != nil || got != nil {
		t.Fatalf("empty: %v, %v", got, err)
	}
	for _, bad := range []string{"10.0.0.0/33", "proxy.example", "10.0.0.1,", "fe80::1%eth0", "1.2.3"} {
		if _, err := ParseTrustedProxies(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// FuzzParseTrustedProxies: a value parses or is refused, and a parsed one
// prints as prefixes that parse to themselves.
func FuzzParseTrustedProxies(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8,192.0.2.7", "::1", "2001:db8::/32, 127.0.0.1", "", ",", "1.2.3.4/40", "fe80::1%lo"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		ps, err := ParseTrustedProxies(v)
		if err != nil {
			return
		}
		var parts []string
		for _, p := range ps {
			if !p.IsValid() || p != p.Masked() {
				t.Fatalf("%q gave %v", v, p)
			}
			parts = append(parts, p.String())
		}
		again, err := ParseTrustedProxies(strings.Join(parts, ","))
		if err != nil || fmt.Sprint(again) != fmt.Sprint(ps) {
			t.Fatalf("%q -> %v -> %v, %v", v, ps, again, err)
		}
	})
}
