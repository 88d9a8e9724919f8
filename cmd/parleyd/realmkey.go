package main

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"io"

	"github.com/parleychat/parley/internal/server"
)

// realmKeyCmd prints parleyd's realm token public key, creating the key
// file (realm_token_key_file, default <data_dir>/realm-token.key) if
// needed: what every PIN-backup realm is started with as --issuer-key.
func realmKeyCmd(args []string, stdout, stderr io.Writer, getenv func(string) (string, bool)) int {
	cfg, code, ok := loadConfig(args, getenv, stderr)
	if !ok {
		return code
	}
	key, err := server.LoadRealmTokenKey(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "parleyd:", err)
		return 1
	}
	fmt.Fprintln(stdout, base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey)))
	return 0
}
