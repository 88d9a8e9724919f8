package s3

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// DefaultRegion is the region a Config with an empty Region signs for.
const DefaultRegion = "us-east-1"

// Config names a bucket on an S3-compatible service. Requests are path-style:
// Endpoint + "/" + Bucket + "/" + Key (works with AWS, MinIO, Garage,
// SeaweedFS, versitygw).
//
// A Config holds a secret: String and GoString print it redacted, so %v,
// %+v and %#v are safe to log.
type Config struct {
	Endpoint  string // e.g. "https://s3.eu-west-1.amazonaws.com" or "http://127.0.0.1:7070"; no path, no query
	Region    string // "" means "us-east-1"
	Bucket    string
	AccessKey string
	SecretKey string
}

// String returns c with the secret key redacted.
func (c Config) String() string {
	return fmt.Sprintf("{Endpoint:%s Region:%s Bucket:%s AccessKey:%s SecretKey:%s}",
		c.Endpoint, c.region(), c.Bucket, c.AccessKey, redacted(c.SecretKey))
}

// GoString returns c with the secret key redacted, for %#v.
func (c Config) GoString() string {
	return fmt.Sprintf("s3.Config{Endpoint:%q, Region:%q, Bucket:%q, AccessKey:%q, SecretKey:%q}",
		c.Endpoint, c.Region, c.Bucket, c.AccessKey, redacted(c.SecretKey))
}

func redacted(secret string) string {
	if secret == "" {
		return ""
	}
	return "REDACTED"
}

func (c Config) region() string {
	if c.Region == "" {
		return DefaultRegion
	}
	return c.Region
}

// Validate reports what is wrong with c: an endpoint that is not an http or
// https URL without path, query or credentials; a region that is not a
// region name; a bucket name that S3 would refuse; missing or malformed
// keys. All problems are reported, joined.
func (c Config) Validate() error {
	var errs []error
	if _, err := parseEndpoint(c.Endpoint); err != nil {
		errs = append(errs, err)
	}
	if err := validRegion(c.Region); err != nil {
		errs = append(errs, err)
	}
	if err := validBucketName(c.Bucket); err != nil {
		errs = append(errs, err)
	}
	switch {
	case c.AccessKey == "":
		errs = append(errs, errors.New("s3: access key is missing"))
	case strings.ContainsFunc(c.AccessKey, func(r rune) bool {
		return r <= ' ' || r == 0x7f || r == '/' || r == ',' || r == '='
	}):
		// It goes into "Credential=<key>/<scope>," of the Authorization header.
		errs = append(errs, errors.New("s3: access key contains a space, control character, '/', ',' or '='"))
	}
	switch {
	case c.SecretKey == "":
		errs = append(errs, errors.New("s3: secret key is missing"))
	case strings.ContainsFunc(c.SecretKey, func(r rune) bool { return r < ' ' || r == 0x7f }):
		errs = append(errs, errors.New("s3: secret key contains a control character"))
	}
	return errors.Join(errs...)
}

// parseEndpoint checks an endpoint URL and returns it with a default port
// (":80" for http, ":443" for https) and a trailing "/" removed, so the Host
// header sent and the host signed agree.
func parseEndpoint(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("s3: endpoint is missing (e.g. https://s3.eu-west-1.amazonaws.com)")
	}
	if l := strings.ToLower(s); !strings.HasPrefix(l, "http://") && !strings.HasPrefix(l, "https://") {
		return nil, fmt.Errorf("s3: endpoint %q must start with http:// or https://", s)
	}
	u, err := url.Parse(s)
	if err != nil {
		// Not echoed whole: a malformed URL may hold credentials.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("s3: endpoint is not a URL: %v", err)
	}
	switch {
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("s3: endpoint %q has no host", s)
	case u.User != nil:
		return nil, fmt.Errorf("s3: endpoint %q must not contain user information; set AccessKey and SecretKey", redactURL(u))
	case u.Path != "" && u.Path != "/", u.RawPath != "":
		return nil, fmt.Errorf("s3: endpoint %q must not have a path (requests are path-style: endpoint/bucket/key)", s)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, fmt.Errorf("s3: endpoint %q must not have a query or fragment", s)
	case strings.ContainsFunc(u.Host, func(r rune) bool { return r > 0x7e || r <= ' ' }):
		return nil, fmt.Errorf("s3: endpoint %q: host must be ASCII (use its punycode form)", s)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n <= 0 || n > 65535 {
			return nil, fmt.Errorf("s3: endpoint %q has an invalid port", s)
		}
		if (u.Scheme == "http" && p == "80") || (u.Scheme == "https" && p == "443") {
			u.Host = strings.TrimSuffix(u.Host, ":"+p)
		}
	}
	u.Host = strings.ToLower(u.Host)
	u.Path = ""
	return u, nil
}

func redactURL(u *url.URL) string {
	v := *u
	v.User = nil
	return v.String()
}

// validRegion accepts "" (meaning DefaultRegion) and names like "eu-west-1"
// or "garage": lowercase letters, digits and hyphens. The region is part of
// the signature's credential scope, so a '/' there would corrupt it.
func validRegion(r string) error {
	if r == "" {
		return nil
	}
	if len(r) > 64 || strings.ContainsFunc(r, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_')
	}) {
		return fmt.Errorf("s3: region %q is not a region name (lowercase letters, digits, '-', e.g. eu-west-1)", r)
	}
	return nil
}

// validBucketName checks that name follows the naming rules for S3
// general purpose buckets ("Bucket naming rules", Amazon S3 User Guide):
// 3 to 63 characters of lowercase letters, digits, '.' and '-'; beginning
// and ending with a letter or digit; no two adjacent periods; not an IP
// address; none of the reserved prefixes and suffixes.
func validBucketName(name string) error {
	bad := func(why string) error { return fmt.Errorf("s3: bucket name %q is not valid: %s", name, why) }
	switch {
	case name == "":
		return errors.New("s3: bucket name is missing")
	case len(name) < 3 || len(name) > 63:
		return bad("it must be 3 to 63 characters long")
	case strings.ContainsFunc(name, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-')
	}):
		return bad("only lowercase letters, digits, '.' and '-' are allowed")
	case !alnum(name[0]) || !alnum(name[len(name)-1]):
		return bad("it must begin and end with a letter or digit")
	case strings.Contains(name, ".."):
		return bad("it must not contain two adjacent periods")
	case net.ParseIP(name) != nil:
		return bad("it must not be formatted as an IP address")
	}
	for _, p := range []string{"xn--", "sthree-", "amzn-s3-demo-"} {
		if strings.HasPrefix(name, p) {
			return bad("the prefix " + p + " is reserved")
		}
	}
	for _, s := range []string{"-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"} {
		if strings.HasSuffix(name, s) {
			return bad("the suffix " + s + " is reserved")
		}
	}
	return nil
}

func alnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
