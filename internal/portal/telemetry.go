package portal

import (
	"net/http"
	"net/url"
)

// telemetry is Hub → Telemetry: the hub's device messages as they arrive
// (the built-in events endpoint, what `az iot hub monitor-events` shows).
// The page's script reads ?stream=1, which relays Outpost's own
// /outpost/iothubs/{hub}/events stream — JSON lines, authorized by the
// signed-in principal's right to the hub's keys — to the browser.
func (h *Handler) telemetry(w http.ResponseWriter, r *http.Request, s *session) error {
	ref, err := h.refFromQuery(r)
	if err != nil {
		return err
	}
	if ref.Kind != "hub" {
		return &APIError{Status: http.StatusNotFound, Code: "NoTelemetryPage", Message: "Telemetry is a hub's page."}
	}
	if r.Method == http.MethodPost {
		return &APIError{Status: http.StatusMethodNotAllowed, Code: "MethodNotAllowed", Message: "The telemetry view has no changes to post."}
	}
	if r.URL.Query().Get("stream") == "" {
		h.render(w, http.StatusOK, "telemetry", &page{Title: "Telemetry — " + ref.Name, Session: s, Resource: ref, Blade: "telemetry"})
		return nil
	}
	q := url.Values{}
	if r.URL.Query().Get("fromStart") == "true" {
		q.Set("fromStart", "true")
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, "https://"+s.host+"/outpost/iothubs/"+url.PathEscape(ref.Name)+"/events?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	req.Host, req.RemoteAddr = s.host, s.remote
	req.Header.Set("Authorization", "Bearer "+s.armToken)
	// The API writes straight to the browser: the stream ends when the
	// browser goes away (the request's context).
	h.api.ServeHTTP(streamWriter{w}, req)
	return nil
}

// streamWriter passes an in-process API's streamed answer through, with
// the portal's own security headers kept and flushes forwarded.
type streamWriter struct{ w http.ResponseWriter }

func (s streamWriter) Header() http.Header         { return s.w.Header() }
func (s streamWriter) WriteHeader(status int)      { s.w.WriteHeader(status) }
func (s streamWriter) Write(p []byte) (int, error) { return s.w.Write(p) }
func (s streamWriter) Flush() {
	_ = http.NewResponseController(s.w).Flush()
}
