package s3

// AWS Signature Version 4 for S3 with the Authorization header and a payload
// sent in a single chunk, following "Signature Calculations for the
// Authorization Header: Transferring Payload in a Single Chunk" (Amazon S3
// API Reference, sig-v4-header-based-auth.html): Task 1 the canonical
// request, Task 2 the string to sign, Task 3 the signature.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

const (
	sigAlgorithm   = "AWS4-HMAC-SHA256"
	sigService     = "s3"
	sigTimeFormat  = "20060102T150405Z"
	sigDateFormat  = "20060102"
	sigTerminator  = "aws4_request"
	emptySHA256Hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

// signer holds what a signature needs besides the request.
type signer struct {
	accessKey string
	secretKey string
	region    string
}

// sign sets X-Amz-Date, X-Amz-Content-Sha256 and Authorization on req, as
// of now. payloadHash is the lowercase hex SHA-256 of the body. It signs
// host plus every header of req that S3 lets a client sign and this package
// sends: Content-MD5, Content-Type, Date, Range and X-Amz-*. The host signed
// is req.Host if set, else req.URL.Host: what net/http sends.
func (s signer) sign(req *http.Request, payloadHash string, now time.Time) {
	now = now.UTC()
	amzDate := now.Format(sigTimeFormat)
	req.Header.Set("X-Amz-Date", amzDate)
	req.Header.Set("X-Amz-Content-Sha256", payloadHash)

	creq, signedHeaders := canonicalRequest(req, payloadHash)
	scope := now.Format(sigDateFormat) + "/" + s.region + "/" + sigService + "/" + sigTerminator
	sts := stringToSign(amzDate, scope, creq)
	key := signingKey(s.secretKey, now.Format(sigDateFormat), s.region, sigService)
	sig := hex.EncodeToString(hmacSHA256(key, []byte(sts)))
	req.Header.Set("Authorization", sigAlgorithm+
		" Credential="+s.accessKey+"/"+scope+
		",SignedHeaders="+signedHeaders+
		",Signature="+sig)
}

// canonicalRequest is Task 1:
//
//	HTTPMethod \n CanonicalURI \n CanonicalQueryString \n
//	CanonicalHeaders \n SignedHeaders \n HashedPayload
//
// where CanonicalHeaders ends with its own newline. It returns the request
// and the SignedHeaders list.
func canonicalRequest(req *http.Request, payloadHash string) (creq, signedHeaders string) {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	type header struct{ name, value string }
	hs := []header{{"host", canonicalValue(host)}}
	for name, values := range req.Header {
		lower := strings.ToLower(name)
		switch {
		case lower == "content-md5", lower == "content-type", lower == "date", lower == "range",
			strings.HasPrefix(lower, "x-amz-"):
		default:
			continue
		}
		vs := make([]string, len(values))
		for i, v := range values {
			vs[i] = canonicalValue(v)
		}
		hs = append(hs, header{lower, strings.Join(vs, ",")})
	}
	slices.SortFunc(hs, func(a, b header) int { return strings.Compare(a.name, b.name) })

	var b strings.Builder
	b.WriteString(req.Method)
	b.WriteByte('\n')
	b.WriteString(canonicalURI(req.URL.Path))
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(req.URL.RawQuery))
	b.WriteByte('\n')
	names := make([]string, len(hs))
	for i, h := range hs {
		b.WriteString(h.name)
		b.WriteByte(':')
		b.WriteString(h.value)
		b.WriteByte('\n')
		names[i] = h.name
	}
	b.WriteByte('\n')
	signedHeaders = strings.Join(names, ";")
	b.WriteString(signedHeaders)
	b.WriteByte('\n')
	b.WriteString(payloadHash)
	return b.String(), signedHeaders
}

// canonicalValue trims a header value and collapses runs of spaces, as
// Trim() in the CanonicalHeaders definition asks.
func canonicalValue(v string) string {
	return strings.Join(strings.Fields(v), " ")
}

// canonicalURI is the URI-encoded absolute path. For S3 each path segment
// is encoded once and '/' stays: unlike other services, S3 does not
// normalise or double-encode the path.
func canonicalURI(path string) string {
	if path == "" {
		return "/"
	}
	return uriEncode(path, false)
}

// canonicalQuery sorts the URI-encoded name=value pairs by name, then value.
// A name without a value gets an empty one ("lifecycle" → "lifecycle=").
func canonicalQuery(raw string) string {
	if raw == "" {
		return ""
	}
	var pairs []string
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		if uk, err := url.QueryUnescape(k); err == nil {
			k = uk
		}
		if uv, err := url.QueryUnescape(v); err == nil {
			v = uv
		}
		pairs = append(pairs, uriEncode(k, true)+"="+uriEncode(v, true))
	}
	// Encoded names contain no '=', so sorting "name=value" strings sorts by
	// name first except where one name is a prefix of another; compare the
	// parts to be exact.
	slices.SortFunc(pairs, func(a, b string) int {
		ak, av, _ := strings.Cut(a, "=")
		bk, bv, _ := strings.Cut(b, "=")
		if c := strings.Compare(ak, bk); c != 0 {
			return c
		}
		return strings.Compare(av, bv)
	})
	return strings.Join(pairs, "&")
}

// uriEncode is UriEncode() of the SigV4 specification: every byte except
// the unreserved characters A-Z a-z 0-9 '-' '.' '_' '~' becomes %XX with
// uppercase hex; '/' is kept unless encodeSlash.
func uriEncode(s string, encodeSlash bool) string {
	const hexUpper = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~':
			b.WriteByte(c)
		case c == '/' && !encodeSlash:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexUpper[c>>4])
			b.WriteByte(hexUpper[c&15])
		}
	}
	return b.String()
}

// stringToSign is Task 2:
//
//	"AWS4-HMAC-SHA256" \n TimeStamp \n Scope \n Hex(SHA256Hash(CanonicalRequest))
func stringToSign(amzDate, scope, creq string) string {
	h := sha256.Sum256([]byte(creq))
	return sigAlgorithm + "\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(h[:])
}

// signingKey is the key derivation of Task 3:
//
//	DateKey              = HMAC-SHA256("AWS4"+"<SecretAccessKey>", "<YYYYMMDD>")
//	DateRegionKey        = HMAC-SHA256(DateKey, "<aws-region>")
//	DateRegionServiceKey = HMAC-SHA256(DateRegionKey, "<aws-service>")
//	SigningKey           = HMAC-SHA256(DateRegionServiceKey, "aws4_request")
func signingKey(secret, date, region, service string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), []byte(date))
	k = hmacSHA256(k, []byte(region))
	k = hmacSHA256(k, []byte(service))
	return hmacSHA256(k, []byte(sigTerminator))
}

func hmacSHA256(key, data []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return m.Sum(nil)
}
