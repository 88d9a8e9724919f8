// Package pgtest gives tests their own PostgreSQL database or schema on
// the server the development and CI machines run (127.0.0.1:5432, user
// postgres, trust), or on the one PARLEY_TEST_POSTGRES names. Tests that
// need PostgreSQL fail, not skip, when it is missing.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultAdminDSN is the server tests use unless PARLEY_TEST_POSTGRES
// names another; it must allow CREATE DATABASE.
const DefaultAdminDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// AdminDSN is the database tests create their databases from.
func AdminDSN() string {
	if s := os.Getenv("PARLEY_TEST_POSTGRES"); s != "" {
		return s
	}
	return DefaultAdminDSN
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Redact drops the password from a URL DSN, for messages.
func Redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable DSN)"
	}
	return u.Redacted()
}

// Database creates an empty database parley_test_<random> for the test,
// dropped (with any session still in it) when the test ends, and returns
// its DSN.
func Database(t testing.TB) string {
	t.Helper()
	c := ctx(t)
	admin, err := pgx.Connect(c, AdminDSN())
	if err != nil {
		t.Fatalf("this test needs PostgreSQL at %s (set PARLEY_TEST_POSTGRES to another): %v", Redact(AdminDSN()), err)
	}
	defer admin.Close(c)
	name := "parley_test_" + randomHex(8)
	if _, err := admin.Exec(c, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("CREATE DATABASE %s: %v", name, err)
	}
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		admin, err := pgx.Connect(c, AdminDSN())
		if err != nil {
			t.Errorf("dropping %s: %v", name, err)
			return
		}
		defer admin.Close(c)
		if _, err := admin.Exec(c, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("DROP DATABASE %s: %v", name, err)
		}
	})
	u, err := url.Parse(AdminDSN())
	if err != nil {
		t.Fatalf("PARLEY_TEST_POSTGRES must be a postgres:// URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// WithParams returns dsn with query parameters (key, value, ...) set.
func WithParams(t testing.TB, dsn string, kv ...string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// Schema creates an empty schema in the database at dsn and returns a DSN
// whose sessions use it, with a pool of four connections: a fresh store
// costs a CREATE SCHEMA and its migrations (milliseconds) instead of a
// CREATE DATABASE, and several test binaries stay within max_connections.
func Schema(t testing.TB, dsn string) string {
	t.Helper()
	c := ctx(t)
	conn, err := pgx.Connect(c, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(c)
	name := "s_" + randomHex(8)
	if _, err := conn.Exec(c, "CREATE SCHEMA "+name); err != nil {
		t.Fatal(err)
	}
	return WithParams(t, dsn, "search_path", name, "pool_max_conns", "4")
}
