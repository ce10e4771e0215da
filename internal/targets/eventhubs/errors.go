package eventhubs

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Error is a data-plane refusal, rendered as the service does:
//
//	<Error><Code>401</Code><Detail>… TrackingId:…, SystemTracker:…, Timestamp:…</Detail></Error>
type Error struct {
	Status int
	Detail string
}

func (e *Error) Error() string { return fmt.Sprintf("%d: %s", e.Status, e.Detail) }

func errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Detail: fmt.Sprintf(format, args...)}
}

// escapeText escapes what XML character data must: '&', '<' and '>'.
// Quotes stay literal, as in the service's errors (encoding/xml would write
// &#39; for every apostrophe of "'Send' claim(s)").
var escapeText = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// writeError renders err; anything but *Error is a 500 whose cause stays in
// the log. tracker is the SystemTracker ("{host}:{entity}").
func writeError(w http.ResponseWriter, err error, tracker string, now time.Time) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Status: http.StatusInternalServerError,
			Detail: "The server was unable to process the request; retry it. If it keeps failing, see the Outpost log for this tracking id."}
	}
	tracking := w.Header().Get("x-ms-request-id")
	if tracking == "" {
		tracking = uuid.NewString()
	}
	detail := fmt.Sprintf("%s TrackingId:%s_G0, SystemTracker:%s, Timestamp:%s",
		e.Detail, tracking, tracker, now.UTC().Format("2006-01-02T15:04:05"))
	body := "<Error><Code>" + strconv.Itoa(e.Status) + "</Code><Detail>" + escapeText.Replace(detail) + "</Detail></Error>"
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.WriteHeader(e.Status)
	_, _ = io.WriteString(w, body)
}
