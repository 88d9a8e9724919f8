package s3

import (
	"fmt"
	"strings"
	"testing"
)

var goodConfig = Config{
	Endpoint:  "http://127.0.0.1:7070",
	Bucket:    "parley-blobs",
	AccessKey: "AKIAIOSFODNN7EXAMPLE",
	SecretKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}

func TestValidate(t *testing.T) {
	if err := goodConfig.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for _, c := range []struct {
		change func(*Config)
		want   string // in the error
	}{
		{func(c *Config) { c.Endpoint = "" }, "endpoint is missing"},
		{func(c *Config) { c.Endpoint = "127.0.0.1:7070" }, "must start with http:// or https://"},
		{func(c *Config) { c.Endpoint = "ftp://h" }, "must start with http:// or https://"},
		{func(c *Config) { c.Endpoint = "https://" }, "has no host"},
		{func(c *Config) { c.Endpoint = "https://h/prefix" }, "must not have a path"},
		{func(c *Config) { c.Endpoint = "https://h?x=1" }, "must not have a query"},
		{func(c *Config) { c.Endpoint = "https://h#f" }, "must not have a query or fragment"},
		{func(c *Config) { c.Endpoint = "https://u:p@h" }, "must not contain user information"},
		{func(c *Config) { c.Endpoint = "https://h:0" }, "invalid port"},
		{func(c *Config) { c.Endpoint = "https://h:99999" }, "invalid port"},
		{func(c *Config) { c.Endpoint = "https://bücher.example" }, "must be ASCII"},
		{func(c *Config) { c.Endpoint = "http://[::1" }, "is not a URL"},
		{func(c *Config) { c.Region = "eu/west" }, "is not a region name"},
		{func(c *Config) { c.Region = "EU-WEST-1" }, "is not a region name"},
		{func(c *Config) { c.Bucket = "" }, "bucket name is missing"},
		{func(c *Config) { c.Bucket = "ab" }, "3 to 63"},
		{func(c *Config) { c.Bucket = strings.Repeat("a", 64) }, "3 to 63"},
		{func(c *Config) { c.Bucket = "Parley" }, "only lowercase"},
		{func(c *Config) { c.Bucket = "parley_blobs" }, "only lowercase"},
		{func(c *Config) { c.Bucket = "-parley" }, "begin and end"},
		{func(c *Config) { c.Bucket = "parley." }, "begin and end"},
		{func(c *Config) { c.Bucket = "par..ley" }, "two adjacent periods"},
		{func(c *Config) { c.Bucket = "192.168.5.4" }, "IP address"},
		{func(c *Config) { c.Bucket = "xn--parley" }, "prefix xn--"},
		{func(c *Config) { c.Bucket = "parley-s3alias" }, "suffix -s3alias"},
		{func(c *Config) { c.AccessKey = "" }, "access key is missing"},
		{func(c *Config) { c.AccessKey = "AK/IA" }, "access key contains"},
		{func(c *Config) { c.AccessKey = "AK IA" }, "access key contains"},
		{func(c *Config) { c.SecretKey = "" }, "secret key is missing"},
		{func(c *Config) { c.SecretKey = "se\ncret" }, "secret key contains a control character"},
	} {
		cfg := goodConfig
		c.change(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: Validate() = %v, want an error containing %q", cfg, err, c.want)
		}
		if _, nerr := New(cfg, nil); nerr == nil {
			t.Errorf("%+v: New accepted it", cfg)
		}
	}

	// Several problems are all reported.
	err := Config{Endpoint: "x"}.Validate()
	for _, want := range []string{"must start with http", "bucket name is missing", "access key is missing", "secret key is missing"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate of an almost empty config = %v, want %q in it", err, want)
		}
	}

	for _, ok := range []func(*Config){
		func(c *Config) { c.Endpoint = "https://s3.eu-west-1.amazonaws.com" },
		func(c *Config) { c.Endpoint = "https://s3.eu-west-1.amazonaws.com/" },
		func(c *Config) { c.Endpoint = "http://[::1]:9000" },
		func(c *Config) { c.Region = "eu-west-1" },
		func(c *Config) { c.Region = "garage" },
		func(c *Config) { c.Bucket = "my.dotted.bucket-1" },
		func(c *Config) { c.Bucket = "abc" },
	} {
		cfg := goodConfig
		ok(&cfg)
		if err := cfg.Validate(); err != nil {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
}

func TestEndpointNormalised(t *testing.T) {
	for in, want := range map[string]string{
		"https://S3.Example.com:443/": "https://s3.example.com",
		"http://h:80":                 "http://h",
		"http://h:443":                "http://h:443",
		"https://h:8443":              "https://h:8443",
	} {
		u, err := parseEndpoint(in)
		if err != nil || u.String() != want {
			t.Errorf("parseEndpoint(%q) = %v, %v; want %s", in, u, err, want)
		}
	}
}

func TestSecretNotPrinted(t *testing.T) {
	c, err := New(goodConfig, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		fmt.Sprint(goodConfig), fmt.Sprintf("%v", goodConfig), fmt.Sprintf("%+v", goodConfig),
		fmt.Sprintf("%#v", goodConfig), fmt.Sprintf("%s", goodConfig),
		fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%v", []*Client{c}),
		fmt.Sprintf("%v", struct{ C Config }{goodConfig}),
	} {
		if strings.Contains(s, goodConfig.SecretKey) || strings.Contains(s, "bPxRfiCY") {
			t.Errorf("secret printed: %s", s)
		}
	}
	if s := fmt.Sprint(goodConfig); !strings.Contains(s, "REDACTED") || !strings.Contains(s, goodConfig.AccessKey) {
		t.Errorf("String() = %s", s)
	}
}
