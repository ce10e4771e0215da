package blob

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Error is a Blob service error: rendered as the storage XML error body
// with the x-ms-error-code header, the shape every storage SDK parses.
type Error struct {
	Status int
	Code   string
	// Message is the first line of <Message>; RequestId and Time lines are
	// appended when rendered, as Azure does.
	Message string
	// AuthDetail fills <AuthenticationErrorDetail> (why a signature or token
	// was refused).
	AuthDetail string
	// Header carries extra response headers (WWW-Authenticate).
	Header http.Header
	cause  error
}

func (e *Error) Error() string {
	s := e.Code + ": " + e.Message
	if e.AuthDetail != "" {
		s += " (" + e.AuthDetail + ")"
	}
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.cause }

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// The messages are Azure's where it has a fixed one (clients and people
// search for them), followed by what to do when that is not obvious.
const (
	msgAuthFailed = "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature."
	msgPermission = "This request is not authorized to perform this operation using this permission."
)

func errAuthenticationFailed(detail string) *Error {
	return &Error{Status: http.StatusForbidden, Code: "AuthenticationFailed", Message: msgAuthFailed, AuthDetail: detail}
}

func errPermissionMismatch(why string) *Error {
	return &Error{Status: http.StatusForbidden, Code: "AuthorizationPermissionMismatch", Message: msgPermission + " " + why}
}

func errContainerNotFound() *Error {
	return errorf(http.StatusNotFound, "ContainerNotFound", "The specified container does not exist.")
}

func errBlobNotFound() *Error {
	return errorf(http.StatusNotFound, "BlobNotFound", "The specified blob does not exist.")
}

func errInvalidHeader(name, value, want string) *Error {
	return errorf(http.StatusBadRequest, "InvalidHeaderValue",
		"The value for one of the HTTP headers is not in the correct format. Header %s: '%s'; %s.", name, value, want)
}

func errInvalidQuery(name, value, want string) *Error {
	return errorf(http.StatusBadRequest, "InvalidQueryParameterValue",
		"Value for one of the query parameters specified in the request URI is invalid. Parameter %s: '%s'; %s.", name, value, want)
}

// xmlDecl starts every XML body, spelled as Azure does.
const xmlDecl = `<?xml version="1.0" encoding="utf-8"?>`

var xmlText = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "\"", "&quot;", "'", "&apos;")

// asError turns any error into an *Error; unknown errors become a 500 that
// does not leak internals (the log has them).
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		// Not retried by the SDKs as a 500 would be: it lasts until
		// someone frees space.
		return &Error{Status: http.StatusInsufficientStorage, Code: "InsufficientStorage",
			Message: "The blob store's disk is full: no space is left for this upload. Delete blobs or free space on the Outpost data directory's disk, then retry.", cause: err}
	}
	return &Error{Status: http.StatusInternalServerError, Code: "InternalError",
		Message: "The server encountered an internal error. Please retry the request; if it keeps failing, see the Outpost log for this request id.", cause: err}
}

// writeError renders err; HEAD responses carry only the headers.
func writeError(w http.ResponseWriter, r *http.Request, err error, now time.Time) {
	e := asError(err)
	h := w.Header()
	for k, v := range e.Header {
		h[k] = v
	}
	h.Set("x-ms-error-code", e.Code)
	msg := e.Message + "\nRequestId:" + h.Get("x-ms-request-id") + "\nTime:" + now.UTC().Format("2006-01-02T15:04:05.0000000Z")
	if r.Method == http.MethodHead {
		w.WriteHeader(e.Status)
		return
	}
	// Built by hand: encoding/xml would turn the message's line breaks into
	// &#xA;, and Azure sends them as they are.
	body := []byte(xmlDecl + "<Error><Code>" + xmlText.Replace(e.Code) + "</Code><Message>" + xmlText.Replace(msg) + "</Message>")
	if e.AuthDetail != "" {
		body = append(body, "<AuthenticationErrorDetail>"+xmlText.Replace(e.AuthDetail)+"</AuthenticationErrorDetail>"...)
	}
	body = append(body, "</Error>"...)
	h.Set("Content-Type", "application/xml")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(e.Status)
	_, _ = w.Write(body)
}
