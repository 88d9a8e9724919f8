package config

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestBlobSettings(t *testing.T) {
	d := Defaults()
	if d.MaxBlobBytes != 4<<30+65536*16 || d.BlobQuotaBytes != 10<<30 || d.BlobTTL != 30*24*time.Hour ||
		d.BlobUploadTTL != 7*24*time.Hour || d.BlobDir != "" {
		t.Fatalf("blob defaults: %+v", d)
	}
	c, err := Load([]string{"--blob-ttl", "1h", "--max-blob-bytes", "1000", "--blob-dir", "/srv/blobs"},
		env(map[string]string{"PARLEY_BLOB_QUOTA_BYTES": "5000", "PARLEY_BLOB_UPLOAD_TTL": "90s"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.BlobTTL != time.Hour || c.MaxBlobBytes != 1000 || c.BlobQuotaBytes != 5000 || c.BlobUploadTTL != 90*time.Second || c.BlobDir != "/srv/blobs" {
		t.Fatalf("blob settings not applied: %+v", c)
	}
	for _, args := range [][]string{
		{"--max-blob-bytes", "0"},
		{"--blob-quota-bytes", "-1"},
		{"--blob-ttl", "0s"},
		{"--blob-upload-ttl", "500ms"},
		{"--blob-ttl", "50000h"},
	} {
		_, err := Load(args, env(nil), io.Discard)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), strings.ReplaceAll(strings.TrimPrefix(args[0], "--"), "-", "_")) {
			t.Errorf("%v: %v", args, err)
		}
	}
}
