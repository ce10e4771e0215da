package registry

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/outpost-iot/outpost/internal/store"
)

// Error is a registry error with the IoT Hub error code clients map to
// exceptions (DeviceNotFound, DeviceAlreadyExists, PreconditionFailed, …).
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// AsError turns any error into an *Error (unknown errors become 500).
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(err, store.ErrUnavailable) {
		// Retryable: the SDKs retry a 503 with backoff.
		return &Error{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable",
			Message: "The device registry's database cannot be reached; retry later."}
	}
	return &Error{Status: http.StatusInternalServerError, Code: "ServerError", Message: "The registry failed; retry, and see the Outpost log if it persists."}
}
