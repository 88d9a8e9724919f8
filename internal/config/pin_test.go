package config

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"io"
	"strings"
	"testing"
)

func realmKey(t *testing.T) string {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(pub)
}

func TestRealms(t *testing.T) {
	k1, k2, k3 := realmKey(t), realmKey(t), realmKey(t)
	env := map[string]string{"PARLEY_REALMS": k1 + "@https://r1.example/ , " + k2 + "@http://127.0.0.1:8091," + k3 + "@https://r3.example/base"}
	getenv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	c, err := Load(nil, getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := c.RealmList()
	if err != nil || len(rs) != 3 || !c.PINEnabled() || c.RealmThreshold != 2 {
		t.Fatalf("realms: %+v %v", rs, err)
	}
	if rs[0].URL != "https://r1.example" || rs[2].URL != "https://r3.example/base" || base64.StdEncoding.EncodeToString(rs[1].PublicKey) != k2 {
		t.Fatalf("parsed: %+v", rs)
	}
	if _, err := Load([]string{"--realm-threshold", "3"}, getenv, io.Discard); err != nil {
		t.Fatalf("3 of 3: %v", err)
	}

	if c := Defaults(); c.PINEnabled() {
		t.Fatal("PIN backup is on by default")
	}
	for name, realms := range map[string]string{
		"no key":      "@https://r1.example",
		"short key":   base64.StdEncoding.EncodeToString(make([]byte, 31)) + "@https://r1.example",
		"no url":      k1,
		"ftp":         k1 + "@ftp://r1.example",
		"no host":     k1 + "@https://",
		"twice":       k1 + "@https://a.example," + k1 + "@https://b.example",
		"query":       k1 + "@https://a.example/?x=1",
		"one realm":   k1 + "@https://a.example",
		"threshold>n": k1 + "@https://a.example," + k2 + "@https://b.example",
	} {
		args := []string{"--realms", realms}
		if name == "threshold>n" {
			args = append(args, "--realm-threshold", "3")
		}
		if _, err := Load(args, getenv, io.Discard); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		} else if !strings.Contains(err.Error(), "realm") {
			t.Errorf("%s: the error does not name the field: %v", name, err)
		}
	}
	if _, err := Load([]string{"--realm-token-ttl", "2h"}, getenv, io.Discard); !errors.Is(err, ErrInvalid) {
		t.Errorf("long token ttl: %v", err)
	}
	if _, err := Load([]string{"--recover-rate", "0"}, getenv, io.Discard); !errors.Is(err, ErrInvalid) {
		t.Errorf("zero recover rate: %v", err)
	}
}
