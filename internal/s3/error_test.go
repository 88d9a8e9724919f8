package s3

import (
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// An error body as AWS documents it ("Error responses", Amazon S3 API
// Reference), and one as Versity Gateway v1.8.0 sent it to these tests.
const (
	awsNoSuchKey = `<?xml version="1.0" encoding="UTF-8"?>
<Error>
  <Code>NoSuchKey</Code>
  <Message>The resource you requested does not exist</Message>
  <Resource>/mybucket/myfoto.jpg</Resource>
  <RequestId>4442587FB7D0A2F9</RequestId>
</Error>`
	vgwAccessDenied = `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>AccessDenied</Code><Message>Access Denied.</Message><RequestId>978RAZTLF04YU6UN</RequestId><HostId>WZvTwV0BTZec7xpjp7+8jFMknVVHKsixvdXq9K3HgaUA+eoEVpbgSwG0N24BXXaUFrYwhLM08U5q7gJk4y53zpU=</HostId></Error>`
)

func TestDecodeError(t *testing.T) {
	for _, c := range []struct {
		status int
		body   string
		header string
		want   Error
	}{
		{404, awsNoSuchKey, "other", Error{404, "NoSuchKey", "The resource you requested does not exist", "4442587FB7D0A2F9"}},
		{403, vgwAccessDenied, "", Error{403, "AccessDenied", "Access Denied.", "978RAZTLF04YU6UN"}},
		{404, "", "REQ1", Error{404, "", "", "REQ1"}},
		{502, "<html><body>\n<h1>502 Bad   Gateway</h1>\n</body></html>", "", Error{502, "", "<html><body> <h1>502 Bad Gateway</h1> </body></html>", ""}},
		{500, "<Other><Code>X</Code></Other>", "", Error{500, "", "<Other><Code>X</Code></Other>", ""}},
		{400, "<Error><Code>A&amp;B</Code><Message>x &lt; y</Message></Error>", "H", Error{400, "A&B", "x < y", "H"}},
		{400, "\x1b[31mred\x00", "", Error{400, "", "?[31mred?", ""}},
	} {
		got := decodeError(c.status, []byte(c.body), c.header)
		if *got != c.want {
			t.Errorf("decodeError(%d, %q) = %+v, want %+v", c.status, c.body, *got, c.want)
		}
	}
}

func TestDecodeErrorBounds(t *testing.T) {
	long := strings.Repeat("é", maxErrorField) // 2 bytes a rune
	body := "<Error><Code>" + long + "</Code><Message>" + long + "</Message></Error>"
	e := decodeError(400, []byte(body), "")
	if len(e.Code) > maxErrorField || len(e.Message) > maxErrorField || !utf8.ValidString(e.Code) {
		t.Errorf("fields not clipped to %d bytes of UTF-8: %d, %d", maxErrorField, len(e.Code), len(e.Message))
	}
	if !strings.HasPrefix(long, e.Code) || len(e.Code) < maxErrorField-1 {
		t.Errorf("clipped code is not a prefix of the original: %d bytes", len(e.Code))
	}
	e = decodeError(502, []byte(strings.Repeat("x", 10*maxErrorBody)), "")
	if len(e.Message) > excerptLen {
		t.Errorf("excerpt of a non-XML body is %d bytes", len(e.Message))
	}
}

func TestErrorString(t *testing.T) {
	for _, c := range []struct {
		e    Error
		want string
	}{
		{Error{403, "SignatureDoesNotMatch", "The request signature we calculated does not match", "R1"},
			"s3: SignatureDoesNotMatch (HTTP 403 Forbidden): The request signature we calculated does not match (request R1)"},
		{Error{Status: 404}, "s3: HTTP 404 Not Found"},
		{Error{Status: 599, Message: "odd"}, "s3: HTTP 599: odd"},
		{Error{500, "Bad\nCode", "line\r\nbreak\x1b[0m", ""}, "s3: Bad?Code (HTTP 500 Internal Server Error): line??break?[0m"},
	} {
		if got := c.e.Error(); got != c.want {
			t.Errorf("%+v.Error() = %q, want %q", c.e, got, c.want)
		}
	}
}

func TestNotFoundWrapping(t *testing.T) {
	for _, c := range []struct {
		e    Error
		want bool
	}{
		{Error{Status: 404, Code: "NoSuchKey"}, true},
		{Error{Status: 404}, true},
		{Error{Status: 404, Code: "NoSuchBucket"}, false},
		{Error{Status: 404, Code: "XAdminUserNotFound"}, false},
		{Error{Status: 403, Code: "AccessDenied"}, false},
	} {
		err := fmt.Errorf("s3: get %q: %w", "k", notFound(&c.e))
		if got := errors.Is(err, ErrNotFound); got != c.want {
			t.Errorf("%+v: errors.Is(ErrNotFound) = %v, want %v", c.e, got, c.want)
		}
		var e *Error
		if !errors.As(err, &e) || *e != c.e {
			t.Errorf("%+v: errors.As lost the *Error: %v", c.e, err)
		}
	}
}

// FuzzDecodeError feeds arbitrary bodies to the decoder, which must not
// panic and must return bounded, valid UTF-8 fields; and it builds a
// well-formed error document from three fuzzed strings, which must decode
// to exactly those strings when they are representable in XML text.
func FuzzDecodeError(f *testing.F) {
	f.Add([]byte(awsNoSuchKey), "NoSuchKey", "The resource you requested does not exist", "4442587FB7D0A2F9")
	f.Add([]byte(vgwAccessDenied), "AccessDenied", "Access Denied.", "978RAZTLF04YU6UN")
	f.Add([]byte("<Error><Code>A&amp;B</Code></Error>"), "A&B", "x < y > z \"'", "")
	f.Add([]byte("<html>502</html>"), "", "", "")
	f.Add([]byte("<Error><Code><![CDATA[x]]></Code><Code>y</Code>"), "ключ", "日本語", "é")
	f.Add([]byte("<!DOCTYPE Error [<!ENTITY x \"y\">]><Error><Code>&x;</Code></Error>"), "\t", " ", "]]>")
	f.Fuzz(func(t *testing.T, body []byte, code, message, requestID string) {
		e := decodeError(418, body, requestID)
		for _, s := range []string{e.Code, e.Message, e.RequestID} {
			if len(s) > maxErrorField || !utf8.ValidString(s) {
				t.Fatalf("unbounded or invalid field %q", s)
			}
		}
		if e.Status != 418 {
			t.Fatalf("status %d", e.Status)
		}
		_ = e.Error()

		// Round trip of well-formed input.
		for _, s := range []string{code, message, requestID} {
			if !xmlText(s) || len(s) > maxErrorField {
				return
			}
		}
		var b strings.Builder
		b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>`)
		xml.EscapeText(&b, []byte(code))
		b.WriteString("</Code><Message>")
		xml.EscapeText(&b, []byte(message))
		b.WriteString("</Message><Resource>/b/k</Resource><RequestId>")
		xml.EscapeText(&b, []byte(requestID))
		b.WriteString("</RequestId><HostId>h</HostId></Error>")
		e = decodeError(404, []byte(b.String()), "header-id")
		want := Error{404, code, message, requestID}
		if requestID == "" {
			want.RequestID = "header-id"
		}
		if *e != want {
			t.Fatalf("decoded %+v from %q, want %+v", *e, b.String(), want)
		}
	})
}

// xmlText reports whether s survives as XML character data unchanged: valid
// UTF-8 of XML Char (XML 1.0 §2.2) and no CR, which parsers turn into LF.
func xmlText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		switch {
		case r == '\t' || r == '\n':
		case r == '\r':
			return false
		case r >= 0x20 && r <= 0xD7FF, r >= 0xE000 && r <= 0xFFFD, r >= 0x10000 && r <= 0x10FFFF:
		default:
			return false
		}
	}
	return true
}
