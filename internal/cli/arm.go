package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
)

// API versions the client commands speak; the server accepts every version
// its clients use (internal/arm/versions.go).
const (
	apiResources  = "2021-04-01"
	apiIoTHub     = "2023-06-30"
	apiIdentity   = "2023-01-31"
	apiAuthz      = "2022-04-01"
	apiStorage    = "2023-01-01"
	apiEventHub   = "2024-01-01"
	apiServiceBus = "2022-10-01-preview"
)

// withAPI appends api-version to path.
func withAPI(path, version string) string {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return path + sep + "api-version=" + url.QueryEscape(version)
}

func (c *apiClient) subscriptionPath() string {
	return "/subscriptions/" + c.subscription
}

func (c *apiClient) groupPath(rg string) string {
	return c.subscriptionPath() + "/resourceGroups/" + url.PathEscape(rg)
}

// resourcePath is the id of a resource of type "Namespace/type[/child…]"
// named name ("parent/child" for child types) in group rg.
func (c *apiClient) resourcePath(rg, typ, name string) string {
	ns, rest, _ := strings.Cut(typ, "/")
	types := strings.Split(rest, "/")
	names := strings.Split(name, "/")
	p := c.groupPath(rg) + "/providers/" + ns
	for i, t := range types {
		n := ""
		if i < len(names) {
			n = names[i]
		}
		p += "/" + t + "/" + url.PathEscape(n)
	}
	return p
}

// getJSON GETs an ARM resource.
func (c *apiClient) getJSON(ctx context.Context, path, version string) (map[string]any, error) {
	var out map[string]any
	err := c.do(ctx, http.MethodGet, withAPI(path, version), nil, &out)
	return out, err
}

// list GETs a collection and follows nextLink to the end.
func (c *apiClient) list(ctx context.Context, path, version string) ([]any, error) {
	var all []any
	next := withAPI(path, version)
	for next != "" {
		var page struct {
			Value    []any  `json:"value"`
			NextLink string `json:"nextLink"`
		}
		if err := c.do(ctx, http.MethodGet, next, nil, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Value...)
		next = page.NextLink
	}
	if all == nil {
		all = []any{}
	}
	return all, nil
}

// listOfType lists the resources of a top-level type in group, or in the
// whole subscription when group is "".
func (c *apiClient) listOfType(ctx context.Context, group, typ, version string) ([]any, error) {
	scope := c.subscriptionPath()
	if group != "" {
		scope = c.groupPath(group)
	}
	return c.list(ctx, scope+"/providers/"+typ, version)
}

// put PUTs (or PATCHes) a resource and, when the server answers with a
// long-running operation, waits for it and returns the resource as it ended.
func (c *apiClient) put(ctx context.Context, method, path, version string, body any, progress io.Writer) (map[string]any, error) {
	return c.putHeader(ctx, method, path, version, body, nil, progress)
}

// putIfMatch is put with If-Match: etag (when not ""), the write of a
// read-modify-write: the server refuses it (412) when the resource changed
// since it was read.
func (c *apiClient) putIfMatch(ctx context.Context, path, version string, body any, etag string, progress io.Writer) (map[string]any, error) {
	var h http.Header
	if etag != "" {
		h = http.Header{"If-Match": {etag}}
	}
	return c.putHeader(ctx, http.MethodPut, path, version, body, h, progress)
}

func (c *apiClient) putHeader(ctx context.Context, method, path, version string, body any, header http.Header, progress io.Writer) (map[string]any, error) {
	resp, b, err := c.sendHeader(ctx, method, withAPI(path, version), body, header)
	if err != nil {
		return nil, err
	}
	if err := c.waitLRO(ctx, resp, progress); err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusOK && resp.Header.Get("Azure-AsyncOperation") == "" && len(b) > 0 {
		var out map[string]any
		if err := json.Unmarshal(b, &out); err != nil {
			return nil, fmt.Errorf("decode the answer: %w", err)
		}
		return out, nil
	}
	return c.getJSON(ctx, path, version)
}

// remove DELETEs a resource and waits for a long-running delete.
func (c *apiClient) remove(ctx context.Context, path, version string, progress io.Writer) error {
	resp, _, err := c.send(ctx, http.MethodDelete, withAPI(path, version), nil)
	if err != nil {
		return err
	}
	return c.waitLRO(ctx, resp, progress)
}

// post calls an ARM action and decodes its answer into out.
func (c *apiClient) post(ctx context.Context, path, version string, in, out any) error {
	return c.do(ctx, http.MethodPost, withAPI(path, version), in, out)
}

// waitLRO follows Azure-AsyncOperation (or Location) until the operation
// ends, showing a spinner on a terminal as az does; a failed operation is
// returned as its error.
func (c *apiClient) waitLRO(ctx context.Context, resp *http.Response, progress io.Writer) error {
	async := resp.Header.Get("Azure-AsyncOperation")
	location := resp.Header.Get("Location")
	accepted := resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusAccepted
	// An update of an existing resource answers 200 with
	// Azure-AsyncOperation and is still running: it is polled too, as
	// azure-core's ARMPolling does. Location alone counts on 201/202.
	if async == "" && (location == "" || !accepted) {
		return nil
	}
	spin := newSpinner(progress)
	defer spin.done()
	delay := retryAfter(resp, 200*time.Millisecond)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		spin.tick()
		if async != "" {
			pr, b, err := c.send(ctx, http.MethodGet, async, nil)
			if err != nil {
				return err
			}
			var st struct {
				Status string
				Error  *struct{ Code, Message string }
			}
			if err := json.Unmarshal(b, &st); err != nil {
				return fmt.Errorf("operation status: %w", err)
			}
			switch strings.ToLower(st.Status) {
			case "succeeded":
				return nil
			case "failed", "canceled", "cancelled":
				if st.Error != nil {
					return &apiError{Code: st.Error.Code, Message: st.Error.Message}
				}
				return &apiError{Code: "Operation" + st.Status, Message: "the operation ended " + strings.ToLower(st.Status)}
			}
			delay = retryAfter(pr, delay)
			continue
		}
		pr, _, err := c.send(ctx, http.MethodGet, location, nil)
		if err != nil {
			return err
		}
		if pr.StatusCode != http.StatusAccepted {
			return nil
		}
		delay = retryAfter(pr, delay)
	}
}

// retryAfter reads Retry-After, capped at two seconds: a local server has
// no reason to keep a person waiting longer between polls.
func retryAfter(resp *http.Response, def time.Duration) time.Duration {
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		return min(time.Duration(s)*time.Second, 2*time.Second)
	}
	return def
}

// spinner is az's " - Running .." line, drawn only on a terminal.
type spinner struct {
	w     io.Writer
	n     int
	shown bool
}

func newSpinner(w io.Writer) *spinner {
	if f, ok := w.(*os.File); !ok || !isatty.IsTerminal(f.Fd()) {
		return &spinner{}
	}
	return &spinner{w: w}
}

func (s *spinner) tick() {
	if s.w == nil {
		return
	}
	frames := `|/-\`
	fmt.Fprintf(s.w, "\r %c Running ..", frames[s.n%len(frames)])
	s.n++
	s.shown = true
}

func (s *spinner) done() {
	if s.shown {
		fmt.Fprint(s.w, "\r              \r")
	}
}
