package s3_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/s3"
	"github.com/parleychat/parley/internal/s3/s3test"
)

// TestListPages lists a prefix of the real gateway three keys a page: every
// object under the prefix comes back once, with its size and a plausible
// LastModified, objects outside it do not, and the last page has no
// token. The prefix has a space, a '+' and a non-ASCII letter, which the
// query must carry, signed, as the gateway reads it.
func TestListPages(t *testing.T) {
	c := newClient(t, s3test.Start(t))
	ctx := testContext(t)
	prefix := "list " + strings.ToLower(randomKeyPart()) + "/é+/"
	before := time.Now().Add(-2 * time.Second).Truncate(time.Second)
	var want []string
	sizes := map[string]int64{}
	for i := range 7 {
		key := fmt.Sprintf("%s%02d", prefix, i)
		if err := c.Put(ctx, key, randomBytes(i*10)); err != nil {
			t.Fatal(err)
		}
		want = append(want, key)
		sizes[key] = int64(i * 10)
	}
	for _, other := range []string{"list-other/00", strings.TrimSuffix(prefix, "/") + "x"} {
		if err := c.Put(ctx, other, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	after := time.Now().Add(2 * time.Second)

	var got []string
	pages := 0
	token := ""
	for {
		p, err := c.List(ctx, s3.ListOptions{Prefix: prefix, ContinuationToken: token, MaxKeys: 3})
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		pages++
		if len(p.Objects) > 3 {
			t.Fatalf("page %d has %d objects, asked for 3", pages, len(p.Objects))
		}
		for _, o := range p.Objects {
			if o.Size != sizes[o.Key] {
				t.Errorf("%q: size %d, want %d", o.Key, o.Size, sizes[o.Key])
			}
			if o.LastModified.Before(before) || o.LastModified.After(after) {
				t.Errorf("%q: LastModified %v, not between %v and %v", o.Key, o.LastModified, before, after)
			}
			got = append(got, o.Key)
		}
		if p.NextToken == "" {
			break
		}
		if pages > 10 {
			t.Fatalf("still paging after %d pages", pages)
		}
		token = p.NextToken
	}
	if pages < 3 {
		t.Errorf("%d pages for 7 keys three a page", pages)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("listed %q, want %q", got, want)
	}

	// Without MaxKeys, one page holds them all; a prefix without objects
	// is an empty page.
	p, err := c.List(ctx, s3.ListOptions{Prefix: prefix})
	if err != nil || len(p.Objects) != 7 || p.NextToken != "" {
		t.Errorf("one page: %d objects, token %q, %v", len(p.Objects), p.NextToken, err)
	}
	p, err = c.List(ctx, s3.ListOptions{Prefix: "nothing-here/"})
	if err != nil || len(p.Objects) != 0 || p.NextToken != "" {
		t.Errorf("empty prefix: %+v, %v", p, err)
	}
	if _, err := c.List(ctx, s3.ListOptions{MaxKeys: s3.MaxListKeys + 1}); err == nil {
		t.Error("MaxKeys above the limit accepted")
	}
}

func randomKeyPart() string {
	b := randomBytes(6)
	return fmt.Sprintf("%x", b)
}
