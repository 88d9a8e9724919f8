package api

import "net/http"

// httpStatus pairs each error code above with its HTTP status.
var httpStatus = map[string]int{
	CodeBadRequest:       http.StatusBadRequest,
	CodeInvalidHandle:    http.StatusBadRequest,
	CodeBadSignature:     http.StatusBadRequest,
	CodeUnauthorized:     http.StatusUnauthorized,
	CodeChallengeExpired: http.StatusUnauthorized,
	CodeForbidden:        http.StatusForbidden,
	CodeInviteRequired:   http.StatusForbidden,
	CodeInviteInvalid:    http.StatusForbidden,
	CodeNotFound:         http.StatusNotFound,
	CodeHandleTaken:      http.StatusConflict,
	CodeDeviceMismatch:   http.StatusConflict,
	CodeStaleDeviceList:  http.StatusConflict,
	CodeLinkUsed:         http.StatusConflict,
	CodeLinkExpired:      http.StatusGone,
	CodeTooLarge:         http.StatusRequestEntityTooLarge,
	CodeRateLimited:      http.StatusTooManyRequests,
	CodeQueueFull:        http.StatusInsufficientStorage,
	CodeInternal:         http.StatusInternalServerError,
	CodeUnavailable:      http.StatusServiceUnavailable,
}

// HTTPStatus is the HTTP status that answers an error with code (one of
// the codes above), and false for another code. An error frame on the
// WebSocket carries a code whose status the same request over HTTP would
// have had.
func HTTPStatus(code string) (int, bool) {
	st, ok := httpStatus[code]
	return st, ok
}
