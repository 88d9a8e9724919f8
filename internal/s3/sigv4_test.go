package s3

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The four examples of "Signature Calculations for the Authorization
// Header: Transferring Payload in a Single Chunk (AWS Signature Version 4)",
// section "Examples: Signature Calculations", Amazon S3 API Reference:
// https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html
//
// The canonical requests, string-to-sign hashes and signatures below are the
// published ones, read from a verbatim copy of that page kept in
// github.com/ForeverPyrite/r2client, aws_sigv4/examples.md (commit a3176b67);
// the four signatures are also the expected values of several independent
// SigV4 implementations' test suites. Only the request is written here; every
// expected value is copied, none computed by this package.
var awsExamples = []struct {
	name    string
	method  string
	url     string
	headers map[string]string
	payload string // body; its SHA-256 is x-amz-content-sha256

	canonicalRequest string
	stringToSignHash string // last line of the StringToSign
	authorization    string
}{
	{
		name:    "GET Object",
		method:  "GET",
		url:     "https://examplebucket.s3.amazonaws.com/test.txt",
		headers: map[string]string{"Range": "bytes=0-9"},
		canonicalRequest: "GET\n/test.txt\n\n" +
			"host:examplebucket.s3.amazonaws.com\n" +
			"range:bytes=0-9\n" +
			"x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n" +
			"x-amz-date:20130524T000000Z\n\n" +
			"host;range;x-amz-content-sha256;x-amz-date\n" +
			"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		stringToSignHash: "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972",
		authorization:    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
	},
	{
		name:   "PUT Object",
		method: "PUT",
		url:    "https://examplebucket.s3.amazonaws.com/test$file.text",
		headers: map[string]string{
			"Date":                "Fri, 24 May 2013 00:00:00 GMT",
			"X-Amz-Storage-Class": "REDUCED_REDUNDANCY",
		},
		payload: "Welcome to Amazon S3.",
		canonicalRequest: "PUT\n/test%24file.text\n\n" +
			"date:Fri, 24 May 2013 00:00:00 GMT\n" +
			"host:examplebucket.s3.amazonaws.com\n" +
			"x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n" +
			"x-amz-date:20130524T000000Z\n" +
			"x-amz-storage-class:REDUCED_REDUNDANCY\n\n" +
			"date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n" +
			"44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
		stringToSignHash: "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d",
		authorization:    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
	},
	{
		name:   "GET Bucket Lifecycle",
		method: "GET",
		url:    "https://examplebucket.s3.amazonaws.com/?lifecycle",
		canonicalRequest: "GET\n/\nlifecycle=\n" +
			"host:examplebucket.s3.amazonaws.com\n" +
			"x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n" +
			"x-amz-date:20130524T000000Z\n\n" +
			"host;x-amz-content-sha256;x-amz-date\n" +
			"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		stringToSignHash: "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca",
		authorization:    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
	},
	{
		name:   "Get Bucket (List Objects)",
		method: "GET",
		url:    "https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J",
		canonicalRequest: "GET\n/\nmax-keys=2&prefix=J\n" +
			"host:examplebucket.s3.amazonaws.com\n" +
			"x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n" +
			"x-amz-date:20130524T000000Z\n\n" +
			"host;x-amz-content-sha256;x-amz-date\n" +
			"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		stringToSignHash: "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7",
		authorization:    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
	},
}

var awsExampleSigner = signer{
	accessKey: "AKIAIOSFODNN7EXAMPLE",
	secretKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
	region:    "us-east-1",
}

var awsExampleTime = time.Date(2013, 5, 24, 0, 0, 0, 0, time.UTC)

func TestSignAWSExamples(t *testing.T) {
	for _, ex := range awsExamples {
		t.Run(ex.name, func(t *testing.T) {
			req, err := http.NewRequest(ex.method, ex.url, strings.NewReader(ex.payload))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range ex.headers {
				req.Header.Set(k, v)
			}
			sum := sha256.Sum256([]byte(ex.payload))
			payloadHash := hex.EncodeToString(sum[:])

			awsExampleSigner.sign(req, payloadHash, awsExampleTime)

			creq, _ := canonicalRequest(req, payloadHash)
			if creq != ex.canonicalRequest {
				t.Errorf("canonical request:\n%s\nwant:\n%s", creq, ex.canonicalRequest)
			}
			sts := stringToSign("20130524T000000Z", "20130524/us-east-1/s3/aws4_request", creq)
			if got := sts[strings.LastIndexByte(sts, '\n')+1:]; got != ex.stringToSignHash {
				t.Errorf("string to sign hash %s, want %s", got, ex.stringToSignHash)
			}
			if got := req.Header.Get("Authorization"); got != ex.authorization {
				t.Errorf("Authorization:\n%s\nwant:\n%s", got, ex.authorization)
			}
			if got := req.Header.Get("X-Amz-Date"); got != "20130524T000000Z" {
				t.Errorf("X-Amz-Date %q", got)
			}
			if got := req.Header.Get("X-Amz-Content-Sha256"); got != payloadHash {
				t.Errorf("X-Amz-Content-Sha256 %q, want %q", got, payloadHash)
			}
		})
	}
}

// A signature in another time zone is the same instant in UTC.
func TestSignUsesUTC(t *testing.T) {
	ex := awsExamples[0]
	req, _ := http.NewRequest(ex.method, ex.url, nil)
	req.Header.Set("Range", "bytes=0-9")
	awsExampleSigner.sign(req, emptySHA256Hex, awsExampleTime.In(time.FixedZone("UTC+5", 5*3600)))
	if got := req.Header.Get("Authorization"); got != ex.authorization {
		t.Errorf("Authorization:\n%s\nwant:\n%s", got, ex.authorization)
	}
}

// Headers that are not S3's to sign (User-Agent, Accept-Encoding, which
// net/http may add or change) stay out of the signature.
func TestSignIgnoresTransportHeaders(t *testing.T) {
	ex := awsExamples[0]
	req, _ := http.NewRequest(ex.method, ex.url, nil)
	req.Header.Set("Range", "bytes=0-9")
	req.Header.Set("User-Agent", "parley")
	req.Header.Set("Accept-Encoding", "identity")
	awsExampleSigner.sign(req, emptySHA256Hex, awsExampleTime)
	if got := req.Header.Get("Authorization"); got != ex.authorization {
		t.Errorf("Authorization:\n%s\nwant:\n%s", got, ex.authorization)
	}
}

func TestURIEncode(t *testing.T) {
	for _, c := range []struct {
		in          string
		encodeSlash bool
		want        string
	}{
		{"blobs/AbC-_09~.x/000000000001", false, "blobs/AbC-_09~.x/000000000001"},
		{"a b+c%d", false, "a%20b%2Bc%25d"},
		{"a/b", false, "a/b"},
		{"a/b", true, "a%2Fb"},
		{"ключ/é", false, "%D0%BA%D0%BB%D1%8E%D1%87/%C3%A9"},
		{"!$&'()*,;=:@[]?#", false, "%21%24%26%27%28%29%2A%2C%3B%3D%3A%40%5B%5D%3F%23"},
		{"", false, ""},
	} {
		if got := uriEncode(c.in, c.encodeSlash); got != c.want {
			t.Errorf("uriEncode(%q, %v) = %q, want %q", c.in, c.encodeSlash, got, c.want)
		}
	}
}

func TestCanonicalQuery(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"lifecycle", "lifecycle="},
		{"prefix=J&max-keys=2", "max-keys=2&prefix=J"},
		{"b=2&a=2&a=1", "a=1&a=2&b=2"},
		{"prefix=a%20b%2Fc", "prefix=a%20b%2Fc"},
		{"a-b=1&a=2", "a=2&a-b=1"},
	} {
		if got := canonicalQuery(c.in); got != c.want {
			t.Errorf("canonicalQuery(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
