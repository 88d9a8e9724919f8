package s3

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Bounds on a listing.
const (
	// MaxListKeys is the most keys one List page asks for (S3's own
	// upper bound and default).
	MaxListKeys = 1000
	// maxListBody bounds the body of a List response that is read: a
	// page of MaxListKeys keys of MaxKeyLen bytes, each escaped in the
	// worst case, with their other elements, fits several times.
	maxListBody = 32 << 20
	// maxListToken bounds a continuation token accepted from the service
	// (it is sent back in the next request's query).
	maxListToken = 16 << 10
)

// ListOptions say what List lists.
type ListOptions struct {
	// Prefix limits the listing to keys that begin with it.
	Prefix string
	// ContinuationToken is a previous page's NextToken: the page after
	// it. "" is the first page.
	ContinuationToken string
	// MaxKeys is the most keys the page holds, 1 to MaxListKeys; 0 is
	// MaxListKeys. The service may return fewer even when more follow.
	MaxKeys int
}

// Object is one object of a listing.
type Object struct {
	Key          string
	Size         int64
	LastModified time.Time
}

// ListPage is one page of a listing.
type ListPage struct {
	Objects []Object // in the service's order (by key on S3)
	// NextToken is the ContinuationToken of the next page; "" when this
	// page is the last.
	NextToken string
}

// List returns one page of the bucket's objects whose keys begin with
// o.Prefix (ListObjectsV2: GET /bucket?list-type=2&prefix=...). Callers
// page with NextToken until it is "". The response body is read up to a
// bound, and a response that says more follows without saying where is an
// error, so a listing cannot loop or stop early without the caller
// knowing.
func (c *Client) List(ctx context.Context, o ListOptions) (ListPage, error) {
	if o.MaxKeys < 0 || o.MaxKeys > MaxListKeys {
		return ListPage{}, fmt.Errorf("s3: list: MaxKeys %d is not within 0 to %d", o.MaxKeys, MaxListKeys)
	}
	if len(o.Prefix) > MaxKeyLen {
		return ListPage{}, fmt.Errorf("s3: list: prefix longer than %d bytes", MaxKeyLen)
	}
	req, err := c.newRequest(ctx, http.MethodGet, "", nil)
	if err != nil {
		return ListPage{}, err
	}
	// The query is written in the encoding of the signature's canonical
	// query, so what is sent is what is signed.
	q := []string{"list-type=2", "prefix=" + uriEncode(o.Prefix, true)}
	if o.ContinuationToken != "" {
		q = append(q, "continuation-token="+uriEncode(o.ContinuationToken, true))
	}
	if o.MaxKeys > 0 {
		q = append(q, "max-keys="+strconv.Itoa(o.MaxKeys))
	}
	req.URL.RawQuery = strings.Join(q, "&")
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := c.do(req, emptySHA256Hex)
	if err != nil {
		return ListPage{}, fmt.Errorf("s3: list %q: %w", o.Prefix, err)
	}
	if resp.StatusCode != http.StatusOK {
		return ListPage{}, fmt.Errorf("s3: list %q: %w", o.Prefix, c.errorOf(resp))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxListBody+1))
	if err != nil {
		return ListPage{}, fmt.Errorf("s3: list %q: reading the response: %w", o.Prefix, err)
	}
	page, err := decodeList(body)
	if err != nil {
		return ListPage{}, fmt.Errorf("s3: list %q: %w", o.Prefix, err)
	}
	return page, nil
}

// listXML is the body of a ListObjectsV2 response (Amazon S3 API
// Reference, "ListObjectsV2"). Other elements (Name, KeyCount, ETag,
// StorageClass, CommonPrefixes, ...) are ignored.
type listXML struct {
	XMLName               xml.Name `xml:"ListBucketResult"`
	IsTruncated           string   `xml:"IsTruncated"`
	NextContinuationToken string   `xml:"NextContinuationToken"`
	Contents              []struct {
		Key          string `xml:"Key"`
		LastModified string `xml:"LastModified"`
		Size         string `xml:"Size"`
	} `xml:"Contents"`
}

// decodeList decodes a ListObjectsV2 response body. It refuses a body
// longer than maxListBody, an object without a key, a size that is not a
// non-negative integer, a LastModified that is not an RFC 3339 time, and a
// truncated page without a continuation token (or with one longer than
// maxListToken).
func decodeList(body []byte) (ListPage, error) {
	if len(body) > maxListBody {
		return ListPage{}, fmt.Errorf("response longer than %d bytes", maxListBody)
	}
	var x listXML
	if err := xml.Unmarshal(body, &x); err != nil {
		return ListPage{}, fmt.Errorf("decoding the response: %w", err)
	}
	var page ListPage
	truncated, err := strconv.ParseBool(strings.TrimSpace(x.IsTruncated))
	if err != nil && x.IsTruncated != "" {
		return ListPage{}, fmt.Errorf("IsTruncated %q is not a boolean", clip(x.IsTruncated, excerptLen))
	}
	if truncated {
		if x.NextContinuationToken == "" {
			return ListPage{}, errors.New("a truncated page without NextContinuationToken")
		}
		if len(x.NextContinuationToken) > maxListToken {
			return ListPage{}, fmt.Errorf("NextContinuationToken longer than %d bytes", maxListToken)
		}
		page.NextToken = x.NextContinuationToken
	}
	page.Objects = make([]Object, 0, len(x.Contents))
	for _, c := range x.Contents {
		if c.Key == "" {
			return ListPage{}, errors.New("an object without a key")
		}
		size, err := strconv.ParseInt(strings.TrimSpace(c.Size), 10, 64)
		if err != nil || size < 0 {
			return ListPage{}, fmt.Errorf("object %q: size %q", clip(c.Key, excerptLen), clip(c.Size, excerptLen))
		}
		mod, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(c.LastModified))
		if err != nil {
			return ListPage{}, fmt.Errorf("object %q: LastModified %q", clip(c.Key, excerptLen), clip(c.LastModified, excerptLen))
		}
		page.Objects = append(page.Objects, Object{Key: c.Key, Size: size, LastModified: mod})
	}
	return page, nil
}
