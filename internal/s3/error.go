package s3

import (
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrNotFound is wrapped by the error of a Get (or of the size check behind
// a Get) whose key does not exist: a 404 with code NoSuchKey, or a 404
// without a body.
var ErrNotFound = errors.New("s3: no such key")

// Error is an S3 error response: HTTP status plus the XML
// <Error><Code>..</Code><Message>..</Message><RequestId>..</RequestId></Error>
// fields. A response without a parsable XML body (HEAD, a proxy's HTML page)
// has an empty Code; its Message is then a printable excerpt of the body.
type Error struct {
	Status    int
	Code      string
	Message   string
	RequestID string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("s3: ")
	if e.Code != "" {
		b.WriteString(printable(e.Code))
		b.WriteString(" (HTTP ")
	} else {
		b.WriteString("HTTP ")
	}
	fmt.Fprintf(&b, "%d", e.Status)
	if t := http.StatusText(e.Status); t != "" {
		b.WriteByte(' ')
		b.WriteString(t)
	}
	if e.Code != "" {
		b.WriteByte(')')
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(printable(e.Message))
	}
	if e.RequestID != "" {
		b.WriteString(" (request ")
		b.WriteString(printable(e.RequestID))
		b.WriteByte(')')
	}
	return b.String()
}

// printable replaces control and other non-printing characters, so a
// server's message cannot forge log lines or terminal escapes.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r == utf8.RuneError || !unicode.IsPrint(r) && r != ' ' {
			return '?'
		}
		return r
	}, s)
}

// Bounds on an error response: how much of its body is read, and how long a
// decoded field may be.
const (
	maxErrorBody  = 64 << 10
	maxErrorField = 1 << 10
	excerptLen    = 200
)

// errorXML is the body of an S3 error response ("Error responses", Amazon
// S3 API Reference). Other elements (HostId, Resource, StringToSign, ...)
// are ignored.
type errorXML struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
	RequestID string   `xml:"RequestId"`
}

// decodeError turns a non-2xx response into an *Error. body is at most
// maxErrorBody bytes (the caller bounds the read); requestID is the
// x-amz-request-id header, used when the body has none. Each field of the
// result is at most maxErrorField bytes of valid UTF-8.
func decodeError(status int, body []byte, requestID string) *Error {
	e := &Error{Status: status}
	if len(body) > maxErrorBody {
		body = body[:maxErrorBody]
	}
	var x errorXML
	if len(body) > 0 && xml.Unmarshal(body, &x) == nil {
		e.Code = clip(x.Code, maxErrorField)
		e.Message = clip(x.Message, maxErrorField)
		e.RequestID = clip(x.RequestID, maxErrorField)
	} else if len(body) > 0 {
		e.Message = clip(printable(strings.Join(strings.Fields(string(body)), " ")), excerptLen)
	}
	if e.RequestID == "" {
		e.RequestID = clip(requestID, maxErrorField)
	}
	return e
}

// clip returns s cut to at most n bytes without splitting a rune, with
// invalid UTF-8 replaced.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}
