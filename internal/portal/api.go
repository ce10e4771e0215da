package portal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// API versions the portal sends; each is one the resource manager accepts
// for the type.
const (
	resourcesAPI  = "2021-04-01"
	hubAPI        = "2023-06-30"
	authAPI       = "2022-04-01"
	msiAPI        = "2023-01-31"
	storageAPI    = "2023-01-01"
	eventHubAPI   = "2024-01-01"
	serviceBusAPI = "2021-11-01"
	hubDataAPI    = "2021-04-12"
)

// APIError is a refusal of the API the portal called, in the words of that
// API: the ARM envelope's code and message, IoT Hub's ErrorCode, or the
// token endpoint's error description.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string { return e.Code + ": " + e.Message }

// apiResponse is what an in-process call answered.
type apiResponse struct {
	status int
	header http.Header
	body   []byte
}

// decode unmarshals the response body into v.
func (r *apiResponse) decode(v any) error {
	if err := json.Unmarshal(r.body, v); err != nil {
		return fmt.Errorf("portal: decode API response: %w", err)
	}
	return nil
}

// responseBuffer is the http.ResponseWriter of an in-process call.
type responseBuffer struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *responseBuffer) Header() http.Header { return b.header }
func (b *responseBuffer) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}
func (b *responseBuffer) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

// call is one request to Outpost's public API, served in process: the same
// handler, authentication and authorization as over the network.
type call struct {
	method string
	host   string // Host header: the portal's own host, or a hub's
	path   string // already escaped
	query  url.Values
	token  string // a bearer token
	auth   string // or a whole Authorization header (a hub's SAS)
	body   any    // JSON-encoded; url.Values is sent as a form
	header http.Header
	remote string
}

func (h *Handler) do(ctx context.Context, c call) (*apiResponse, error) {
	var body []byte
	contentType := ""
	switch b := c.body.(type) {
	case nil:
	case url.Values:
		body, contentType = []byte(b.Encode()), "application/x-www-form-urlencoded"
	default:
		var err error
		if body, err = json.Marshal(b); err != nil {
			return nil, fmt.Errorf("portal: encode request: %w", err)
		}
		contentType = "application/json"
	}
	target := "https://" + c.host + c.path
	if len(c.query) > 0 {
		target += "?" + c.query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, c.method, target, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("portal: build %s %s: %w", c.method, c.path, err)
	}
	req.Host = c.host
	req.RemoteAddr = c.remote
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	switch {
	case c.auth != "":
		req.Header.Set("Authorization", c.auth)
	case c.token != "":
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", "outpost-portal")
	rec := &responseBuffer{header: http.Header{}}
	h.api.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	resp := &apiResponse{status: rec.status, header: rec.header, body: rec.body.Bytes()}
	if resp.status >= 400 {
		return resp, parseAPIError(resp)
	}
	return resp, nil
}

// parseAPIError reads whichever error shape the API answered with.
func parseAPIError(r *apiResponse) *APIError {
	e := &APIError{Status: r.status, Code: http.StatusText(r.status)}
	var arm struct {
		Error json.RawMessage `json:"error"`
		// OAuth2
		Description string `json:"error_description"`
		// IoT Hub data plane ("Message"), or the IoT Hub resource
		// provider's own envelope ("code", "message" at the top).
		Message string          `json:"Message"`
		Code    json.RawMessage `json:"code"`
	}
	if json.Unmarshal(r.body, &arm) != nil {
		e.Message = strings.TrimSpace(string(r.body))
		return e
	}
	var env struct{ Code, Message string }
	var oauth string
	switch {
	case json.Unmarshal(arm.Error, &env) == nil && env.Code != "":
		e.Code, e.Message = env.Code, env.Message
	case json.Unmarshal(arm.Error, &oauth) == nil && oauth != "":
		e.Code, e.Message = oauth, arm.Description
	case strings.HasPrefix(arm.Message, "ErrorCode:"):
		code, msg, _ := strings.Cut(strings.TrimPrefix(arm.Message, "ErrorCode:"), ";")
		e.Code, e.Message = code, msg
	case len(arm.Code) > 0 && arm.Message != "":
		var code string
		if json.Unmarshal(arm.Code, &code) != nil {
			code = strings.Trim(string(arm.Code), `"`)
		}
		e.Code, e.Message = code, arm.Message
	default:
		e.Message = strings.TrimSpace(string(r.body))
	}
	return e
}

// armCall is a resource manager request with the session's ARM token.
func (h *Handler) arm(ctx context.Context, s *session, method, path, apiVersion string, body any) (*apiResponse, error) {
	q := url.Values{"api-version": {apiVersion}}
	if p, raw, ok := strings.Cut(path, "?"); ok {
		extra, err := url.ParseQuery(raw)
		if err != nil {
			return nil, fmt.Errorf("portal: query of %s: %w", path, err)
		}
		for k, v := range extra {
			q[k] = v
		}
		path = p
	}
	resp, err := h.do(ctx, call{method: method, host: s.host, path: escapePath(path), query: q, token: s.armToken, body: body, remote: s.remote})
	if err != nil {
		return resp, err
	}
	if method != http.MethodGet {
		// A long-running type answers 200 or 201 and names the operation.
		if op := resp.header.Get("Azure-AsyncOperation"); op != "" {
			return resp, h.waitOperation(ctx, s, op)
		}
	}
	return resp, nil
}

// waitOperation polls a long-running operation until it ends, as the
// Azure portal does before it says "Saved".
func (h *Handler) waitOperation(ctx context.Context, s *session, opURL string) error {
	u, err := url.Parse(opURL)
	if err != nil {
		return fmt.Errorf("portal: operation URL %q: %w", opURL, err)
	}
	ctx, cancel := context.WithTimeout(ctx, h.operationTimeout)
	defer cancel()
	for {
		resp, err := h.do(ctx, call{method: http.MethodGet, host: s.host, path: u.EscapedPath(), query: u.Query(), token: s.armToken, remote: s.remote})
		if err != nil {
			return err
		}
		var st struct {
			Status string `json:"status"`
			Error  struct{ Code, Message string }
		}
		if err := resp.decode(&st); err != nil {
			return err
		}
		switch st.Status {
		case "Succeeded":
			return nil
		case "Failed", "Canceled":
			return &APIError{Status: http.StatusConflict, Code: st.Error.Code, Message: st.Error.Message}
		}
		select {
		case <-ctx.Done():
			return &APIError{Status: http.StatusGatewayTimeout, Code: "OperationStillRunning",
				Message: "The change was accepted but has not finished yet; reload the page to see its outcome."}
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// list reads every page of an ARM collection.
func (h *Handler) list(ctx context.Context, s *session, path, apiVersion string) ([]map[string]any, error) {
	return listAs[map[string]any](ctx, h, s, path, apiVersion)
}

// listAs reads every page of an ARM collection into T (a struct decodes
// much faster than a map for long lists).
func listAs[T any](ctx context.Context, h *Handler, s *session, path, apiVersion string) ([]T, error) {
	var out []T
	next := path
	q := ""
	for {
		p := next
		if q != "" {
			p += "?" + q
		}
		resp, err := h.arm(ctx, s, http.MethodGet, p, apiVersion, nil)
		if err != nil {
			return nil, err
		}
		var page struct {
			Value    []T    `json:"value"`
			NextLink string `json:"nextLink"`
		}
		if err := resp.decode(&page); err != nil {
			return nil, err
		}
		out = append(out, page.Value...)
		if page.NextLink == "" {
			return out, nil
		}
		u, err := url.Parse(page.NextLink)
		if err != nil {
			return nil, fmt.Errorf("portal: nextLink: %w", err)
		}
		nq := u.Query()
		nq.Del("api-version")
		next, q = u.Path, nq.Encode()
	}
}

// escapePath escapes each segment of an ARM path (resource names may hold
// characters a URL must escape).
func escapePath(p string) string {
	seg := strings.Split(p, "/")
	for i, s := range seg {
		seg[i] = url.PathEscape(s)
	}
	return strings.Join(seg, "/")
}

// asAPIError returns err as an *APIError, wrapping anything else as an
// internal failure a person can report.
func asAPIError(err error) *APIError {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae
	}
	return &APIError{Status: http.StatusInternalServerError, Code: "PortalError", Message: err.Error()}
}
