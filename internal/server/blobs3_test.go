package server_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/pgtest"
	"github.com/parleychat/parley/internal/s3/s3test"
	"github.com/parleychat/parley/internal/server"
)

// parleyd with blob_s3 checks the bucket and its credentials at start and
// refuses to start, saying why, rather than failing the first upload.
func TestBlobS3AtStart(t *testing.T) {
	dsn := pgtest.Schema(t, pgtest.Database(t))
	bucket := s3test.Start(t)
	secret := func(s string) string {
		p := filepath.Join(t.TempDir(), "secret")
		if err := os.WriteFile(p, []byte(s+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	base := func() config.Config {
		cfg := testConfig(t)
		cfg.DB = dsn
		cfg.BlobS3 = bucket.Endpoint + "/" + bucket.Bucket
		cfg.BlobS3Region = bucket.Region
		cfg.BlobS3KeyID = bucket.AccessKey
		cfg.BlobS3Secret = secret(bucket.SecretKey)
		return cfg
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	for name, tc := range map[string]struct {
		mod  func(*config.Config)
		want string
	}{
		"wrong secret":      {func(c *config.Config) { c.BlobS3Secret = secret("not-the-secret") }, "SignatureDoesNotMatch"},
		"no secret":         {func(c *config.Config) { c.BlobS3Secret = "" }, "blob_s3 needs credentials"},
		"missing file":      {func(c *config.Config) { c.BlobS3Secret = filepath.Join(t.TempDir(), "none") }, "blob_s3_secret_file"},
		"nothing listens":   {func(c *config.Config) { c.BlobS3 = "http://127.0.0.1:1/" + bucket.Bucket }, "blob_s3 http://127.0.0.1:1/"},
		"not a postgres db": {func(c *config.Config) { c.DB = "" }, "set db"},
	} {
		cfg := base()
		tc.mod(&cfg)
		srv, err := server.New(cfg, nil)
		if err == nil {
			srv.Close()
			t.Errorf("%s: parleyd started", name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, tc.want)
		}
		if strings.Contains(err.Error(), bucket.SecretKey) {
			t.Errorf("%s: the error shows the secret key", name)
		}
	}

	// The right settings, and the same from the environment.
	srv, err := server.New(base(), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", bucket.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", bucket.SecretKey)
	cfg := base()
	cfg.BlobS3KeyID, cfg.BlobS3Secret = "", ""
	if srv, err = server.New(cfg, nil); err != nil {
		t.Fatalf("credentials from the environment: %v", err)
	}
	srv.Close()
}
