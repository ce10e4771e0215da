package arm

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Error is an ARM error: rendered as {"error":{"code","message",...}} with
// Status, the shape azcore's ResponseError and az parse.
type Error struct {
	Status  int
	Code    string
	Message string
	Target  string
	Details []Error
	// Flat renders the error in IoT Hub's resource-provider shape,
	// {"code","httpStatusCode","message","details"}, instead of the ARM
	// envelope: the IotHubs provider's own validation errors look like that.
	Flat bool
	// cause is kept for logs, never rendered.
	cause error
}

func (e *Error) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.cause)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.cause }

// ErrCanceled is the cause of an error that ends a long-running operation
// Canceled rather than Failed (a deployment cancelled while it ran).
var ErrCanceled = errors.New("operation canceled")

// CanceledErrorf builds an Error whose operation, and resource, end
// Canceled.
func CanceledErrorf(status int, code, format string, args ...any) *Error {
	e := Errorf(status, code, format, args...)
	e.cause = ErrCanceled
	return e
}

// Errorf builds an Error with a formatted message.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorBody is the wire form of an error object (inside the envelope, in
// operation status documents and in deployment error trees).
type ErrorBody struct {
	Code    string      `json:"code"`
	Message string      `json:"message"`
	Target  string      `json:"target,omitempty"`
	Details []ErrorBody `json:"details,omitempty"`
}

// Body returns the wire form.
func (e *Error) Body() ErrorBody {
	b := ErrorBody{Code: e.Code, Message: e.Message, Target: e.Target}
	for i := range e.Details {
		b.Details = append(b.Details, e.Details[i].Body())
	}
	return b
}

// AsError turns any error into an *Error; unknown errors become a 500 that
// does not leak internals.
func AsError(err error) *Error {
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	return &Error{Status: http.StatusInternalServerError, Code: "InternalServerError",
		Message: "Encountered an internal server error. Retry the request; if it keeps failing, see the Outpost log for this request id.", cause: err}
}

// WriteError renders err in the ARM envelope (or flat, see Error.Flat).
func WriteError(w http.ResponseWriter, err error) {
	ae := AsError(err)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if ae.Flat {
		w.Header().Set("x-ms-failure-cause", "service")
		w.WriteHeader(ae.Status)
		details := ""
		if len(ae.Details) > 0 {
			details = ae.Details[0].Message
		}
		_ = json.NewEncoder(w).Encode(map[string]string{
			"code": ae.Code, "httpStatusCode": strings.ReplaceAll(http.StatusText(ae.Status), " ", ""), "message": ae.Message, "details": details,
		})
		return
	}
	w.Header().Set("x-ms-failure-cause", "gateway")
	w.WriteHeader(ae.Status)
	_ = json.NewEncoder(w).Encode(struct {
		Error ErrorBody `json:"error"`
	}{ae.Body()})
}

// Common errors, with messages that tell the caller what to fix.

func errResourceNotFound(id ResourceID) *Error {
	where := "subscription '" + id.Subscription + "'"
	if id.ResourceGroup != "" {
		where = "resource group '" + id.ResourceGroup + "'"
	}
	return Errorf(http.StatusNotFound, "ResourceNotFound",
		"The Resource '%s/%s' under %s was not found.", id.FullType(), joinNames(id), where)
}

func joinNames(id ResourceID) string {
	s := ""
	for i, n := range id.Names {
		if i > 0 {
			s += "/"
		}
		s += n
	}
	return s
}

func errGroupNotFound(name string) *Error {
	return Errorf(http.StatusNotFound, "ResourceGroupNotFound", "Resource group '%s' could not be found.", name)
}

func errSubscriptionNotFound(sub string) *Error {
	return Errorf(http.StatusNotFound, "SubscriptionNotFound", "The subscription '%s' could not be found.", sub)
}

func errInvalidContent(err error) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "InvalidRequestContent",
		Message: fmt.Sprintf("The request content was invalid and could not be deserialized: '%v'. Send a JSON object.", err)}
}

func errMethod(method, what string) *Error {
	return Errorf(http.StatusMethodNotAllowed, "HttpMethodNotSupported",
		"The requested resource '%s' does not support http method '%s'.", what, method)
}

func errPrecondition(etag string) *Error {
	return Errorf(http.StatusPreconditionFailed, "PreconditionFailed",
		"The If-Match header '%s' does not match the resource's current ETag. GET the resource and retry with its etag.", etag)
}
