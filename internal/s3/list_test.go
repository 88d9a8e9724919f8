package s3

import (
	"encoding/xml"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A ListObjectsV2 body as AWS documents it ("ListObjectsV2", Amazon S3 API
// Reference, second page of a listing), and one shaped as Versity Gateway
// v1.8.0 sends it.
const (
	awsListPage = `<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>bucket</Name>
  <Prefix></Prefix>
  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
  <KeyCount>2</KeyCount>
  <MaxKeys>2</MaxKeys>
  <ContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</ContinuationToken>
  <IsTruncated>true</IsTruncated>
  <Contents>
    <Key>happyface.jpg</Key>
    <LastModified>2014-11-21T19:40:05.000Z</LastModified>
    <ETag>"70ee1738b6b21e2c8a43f3a5ab0eee71"</ETag>
    <Size>11</Size>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
  <Contents>
    <Key>happyfacé &amp; co.jpg</Key>
    <LastModified>2014-11-21T19:40:05Z</LastModified>
    <ETag>"becf17f89c30367a9a44495d62ed521a-1"</ETag>
    <Size>1111</Size>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
</ListBucketResult>`
	vgwListLast = `<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>parley-x</Name><Prefix>blobs/</Prefix><MaxKeys>1000</MaxKeys><KeyCount>1</KeyCount><IsTruncated>false</IsTruncated><Contents><Key>blobs/abc/0000000000000000.0123abcd</Key><LastModified>2025-01-02T03:04:05.678Z</LastModified><ETag>"e"</ETag><Size>0</Size><StorageClass>STANDARD</StorageClass></Contents></ListBucketResult>`
)

func TestDecodeList(t *testing.T) {
	p, err := decodeList([]byte(awsListPage))
	if err != nil {
		t.Fatal(err)
	}
	mod := time.Date(2014, 11, 21, 19, 40, 5, 0, time.UTC)
	want := ListPage{
		Objects: []Object{
			{Key: "happyface.jpg", Size: 11, LastModified: mod},
			{Key: "happyfacé & co.jpg", Size: 1111, LastModified: mod},
		},
		NextToken: "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=",
	}
	if !equalPages(p, want) {
		t.Errorf("decoded %+v, want %+v", p, want)
	}

	p, err = decodeList([]byte(vgwListLast))
	if err != nil {
		t.Fatal(err)
	}
	want = ListPage{Objects: []Object{{Key: "blobs/abc/0000000000000000.0123abcd", Size: 0,
		LastModified: time.Date(2025, 1, 2, 3, 4, 5, 678e6, time.UTC)}}}
	if !equalPages(p, want) {
		t.Errorf("decoded %+v, want %+v", p, want)
	}

	p, err = decodeList([]byte(`<ListBucketResult><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>`))
	if err != nil || len(p.Objects) != 0 || p.NextToken != "" {
		t.Errorf("empty listing: %+v, %v", p, err)
	}
	// A token on a page that is not truncated is not followed.
	p, err = decodeList([]byte(`<ListBucketResult><IsTruncated>false</IsTruncated><NextContinuationToken>t</NextContinuationToken></ListBucketResult>`))
	if err != nil || p.NextToken != "" {
		t.Errorf("last page with a token: %+v, %v", p, err)
	}
}

func TestDecodeListRefuses(t *testing.T) {
	obj := func(key, mod, size string) string {
		return "<Contents><Key>" + key + "</Key><LastModified>" + mod + "</LastModified><Size>" + size + "</Size></Contents>"
	}
	for name, body := range map[string]string{
		"not XML":                 "<html>502</html>",
		"an error document":       "<Error><Code>AccessDenied</Code></Error>",
		"truncated without token": "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
		"bad IsTruncated":         "<ListBucketResult><IsTruncated>maybe</IsTruncated></ListBucketResult>",
		"huge token": "<ListBucketResult><IsTruncated>true</IsTruncated><NextContinuationToken>" +
			strings.Repeat("t", maxListToken+1) + "</NextContinuationToken></ListBucketResult>",
		"no key":        "<ListBucketResult>" + obj("", "2014-11-21T19:40:05Z", "1") + "</ListBucketResult>",
		"negative size": "<ListBucketResult>" + obj("k", "2014-11-21T19:40:05Z", "-1") + "</ListBucketResult>",
		"no size":       "<ListBucketResult>" + obj("k", "2014-11-21T19:40:05Z", "") + "</ListBucketResult>",
		"huge size":     "<ListBucketResult>" + obj("k", "2014-11-21T19:40:05Z", "99999999999999999999") + "</ListBucketResult>",
		"bad time":      "<ListBucketResult>" + obj("k", "Fri, 21 Nov 2014 19:40:05 GMT", "1") + "</ListBucketResult>",
		"too long": "<ListBucketResult>" + strings.Repeat(obj("k", "2014-11-21T19:40:05Z", "1"), maxListBody/60) +
			"</ListBucketResult>",
	} {
		if p, err := decodeList([]byte(body)); err == nil {
			t.Errorf("%s: decoded %d objects, token %q; want an error", name, len(p.Objects), p.NextToken)
		}
	}
}

func equalPages(a, b ListPage) bool {
	if a.NextToken != b.NextToken || len(a.Objects) != len(b.Objects) {
		return false
	}
	for i := range a.Objects {
		x, y := a.Objects[i], b.Objects[i]
		if x.Key != y.Key || x.Size != y.Size || !x.LastModified.Equal(y.LastModified) {
			return false
		}
	}
	return true
}

// FuzzDecodeList feeds arbitrary bodies to the listing decoder, which must
// not panic and, when it accepts a body, must return what a listing
// promises (keys present, sizes not negative, a bounded token); and it
// builds a well-formed page from fuzzed values, which must decode to
// exactly them when they are representable in XML text.
func FuzzDecodeList(f *testing.F) {
	f.Add([]byte(awsListPage), "blobs/x/0000000000000000.abcdefgh", int64(5), "token", true)
	f.Add([]byte(vgwListLast), "a b+c/é", int64(0), "", false)
	f.Add([]byte("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>"), "k", int64(-1), "t", true)
	f.Add([]byte("<ListBucketResult><Contents><Key>k</Key><Size>1</Size></Contents></ListBucketResult>"), "]]>", int64(1<<62), "<&>", true)
	f.Add([]byte("<!DOCTYPE L [<!ENTITY x \"y\">]><ListBucketResult><Contents><Key>&x;</Key></Contents>"), "\t", int64(3), " ", false)
	f.Fuzz(func(t *testing.T, body []byte, key string, size int64, token string, truncated bool) {
		if p, err := decodeList(body); err == nil {
			if len(p.NextToken) > maxListToken {
				t.Fatalf("token of %d bytes", len(p.NextToken))
			}
			for _, o := range p.Objects {
				if o.Key == "" || o.Size < 0 || o.LastModified.IsZero() {
					t.Fatalf("accepted object %+v", o)
				}
			}
		}

		// Round trip of well-formed input.
		if key == "" || !xmlText(key) || size < 0 || !xmlText(token) || len(token) > maxListToken ||
			truncated && token == "" {
			return
		}
		mod := time.Date(2025, 6, 7, 8, 9, 10, 123e6, time.UTC)
		var b strings.Builder
		b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><IsTruncated>`)
		b.WriteString(strconv.FormatBool(truncated))
		b.WriteString("</IsTruncated><NextContinuationToken>")
		xml.EscapeText(&b, []byte(token))
		b.WriteString("</NextContinuationToken>")
		for range 2 {
			b.WriteString("<Contents><Key>")
			xml.EscapeText(&b, []byte(key))
			b.WriteString("</Key><LastModified>2025-06-07T08:09:10.123Z</LastModified><ETag>\"e\"</ETag><Size>")
			b.WriteString(strconv.FormatInt(size, 10))
			b.WriteString("</Size></Contents>")
		}
		b.WriteString("</ListBucketResult>")
		p, err := decodeList([]byte(b.String()))
		if err != nil {
			t.Fatalf("decoding %q: %v", b.String(), err)
		}
		want := ListPage{Objects: []Object{{key, size, mod}, {key, size, mod}}}
		if truncated {
			want.NextToken = token
		}
		if !equalPages(p, want) {
			t.Fatalf("decoded %+v from %q, want %+v", p, b.String(), want)
		}
	})
}
