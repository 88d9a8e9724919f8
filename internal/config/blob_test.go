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

func TestBlobS3Settings(t *testing.T) {
	if d := Defaults(); d.BlobS3 != "" || d.BlobS3Region != "us-east-1" {
		t.Fatalf("defaults: blob_s3 %q region %q", d.BlobS3, d.BlobS3Region)
	}
	c, err := Load([]string{"--db", "postgres://db/parley", "--blob-s3", "https://s3.eu-west-1.amazonaws.com/parley-files",
		"--blob-s3-region", "eu-west-1"},
		env(map[string]string{"PARLEY_BLOB_S3_KEY_ID": "AKIA1", "PARLEY_BLOB_S3_SECRET_FILE": "/etc/parley/s3-secret"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.BlobS3 != "https://s3.eu-west-1.amazonaws.com/parley-files" || c.BlobS3Region != "eu-west-1" ||
		c.BlobS3KeyID != "AKIA1" || c.BlobS3Secret != "/etc/parley/s3-secret" {
		t.Fatalf("settings not applied: %+v", c)
	}
	endpoint, bucket, err := SplitBlobS3("http://127.0.0.1:7070/b-1")
	if err != nil || endpoint != "http://127.0.0.1:7070" || bucket != "b-1" {
		t.Fatalf("SplitBlobS3: %q %q %v", endpoint, bucket, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--blob-s3", "https://s3.example/b"}, "set db"},
		{[]string{"--db", "postgres://db/p", "--blob-s3", "https://s3.example"}, "one bucket"},
		{[]string{"--db", "postgres://db/p", "--blob-s3", "https://s3.example/a/b"}, "one bucket"},
		{[]string{"--db", "postgres://db/p", "--blob-s3", "s3://b"}, "https://"},
		{[]string{"--db", "postgres://db/p", "--blob-s3", "https:///b"}, "no host"},
		{[]string{"--db", "postgres://db/p", "--blob-s3", "https://k:s@s3.example/b"}, "credentials"},
		{[]string{"--db", "postgres://db/p", "--blob-s3", "https://s3.example/b?x=1"}, "query"},
	} {
		_, err := Load(tc.args, env(nil), io.Discard)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error saying %q", tc.args, err, tc.want)
		}
	}
}
