package config

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Realm is one PIN-backup realm as the configuration names it.
type Realm struct {
	URL       string            // base URL, no trailing slash
	PublicKey ed25519.PublicKey // the realm's Ed25519 key
}

// Bounds of a realm set (as internal/pinbackup.Setup.Validate).
const (
	minRealmThreshold = 2
	maxRealms         = 16
)

// PINEnabled reports whether PIN backup is configured (realms is set).
func (c Config) PINEnabled() bool { return strings.TrimSpace(c.Realms) != "" }

// RealmList parses Realms: comma-separated KEY@URL entries, KEY the
// standard base64 of the realm's 32-byte Ed25519 public key (base64 has no
// '@', so the first '@' ends it), URL an http or https base URL. An empty
// Realms gives an empty list.
func (c Config) RealmList() ([]Realm, error) {
	var out []Realm
	if !c.PINEnabled() {
		return nil, nil
	}
	for entry := range strings.SplitSeq(c.Realms, ",") {
		entry = strings.TrimSpace(entry)
		key, raw, ok := strings.Cut(entry, "@")
		if !ok {
			return nil, fmt.Errorf("realm %q is not KEY@URL", entry)
		}
		pub, err := base64.StdEncoding.DecodeString(key)
		if err != nil || len(pub) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("realm %q: the key is not the base64 of a 32-byte Ed25519 public key", entry)
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("realm %q: %q is not an http:// or https:// base URL", entry, raw)
		}
		for _, r := range out {
			if r.PublicKey.Equal(ed25519.PublicKey(pub)) {
				return nil, fmt.Errorf("realm key %s is listed twice", key)
			}
		}
		out = append(out, Realm{URL: strings.TrimRight(raw, "/"), PublicKey: pub})
	}
	return out, nil
}

// validatePIN checks the PIN-backup fields.
func (c Config) validatePIN() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
	}
	realms, err := c.RealmList()
	if err != nil {
		return bad("realms: %v", err)
	}
	if n := len(realms); n > 0 && (c.RealmThreshold < minRealmThreshold || c.RealmThreshold > n || n > maxRealms) {
		return bad("realm_threshold %d with %d realms: want %d <= threshold <= realms <= %d",
			c.RealmThreshold, n, minRealmThreshold, maxRealms)
	}
	if c.RealmTokenTTL < 10*time.Second || c.RealmTokenTTL > time.Hour {
		return bad("realm_token_ttl %s is outside 10s..1h", c.RealmTokenTTL)
	}
	for _, r := range []struct {
		name  string
		rate  float64
		burst int
	}{{"recover", c.RecoverRate, c.RecoverBurst}, {"recover_addr", c.RecoverAddrRate, c.RecoverAddrBurst}} {
		if !(r.rate > 0 && r.rate <= 1e6) {
			return bad("%s_rate %v must be above 0 and at most 1000000 per hour", r.name, r.rate)
		}
		if r.burst < 1 || r.burst > 1e6 {
			return bad("%s_burst %d must be between 1 and 1000000", r.name, r.burst)
		}
	}
	return nil
}
