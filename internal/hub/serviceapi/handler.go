package serviceapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/hub"
	"github.com/outpost-iot/outpost/internal/hub/deviceauth"
	"github.com/outpost-iot/outpost/internal/hub/registry"
	"github.com/outpost-iot/outpost/internal/hub/throttle"
)

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

// Handler serves the service REST API of every hub.
type Handler struct {
	c2d       C2D
	files     FileUploads
	methods   MethodInvoker
	devices   *deviceauth.Authenticator
	publisher Publisher
	hubs      *hub.Directory
	registry  *registry.Service
	bearer    BearerValidator
	authz     DataAuthorizer
	log       *slog.Logger
	now       func() time.Time
	jobRunner Jobs
	throttle  Throttle
}

// Config holds a Handler's dependencies.
type Config struct {
	C2D       C2D
	Files     FileUploads // file upload; nil answers 501
	Methods   MethodInvoker
	Devices   *deviceauth.Authenticator
	Publisher Publisher
	Hubs      *hub.Directory
	Registry  *registry.Service
	Bearer    BearerValidator
	Authz     DataAuthorizer
	Log       *slog.Logger
	Now       func() time.Time
	Jobs      Jobs // import/export jobs; nil answers 501
	// Throttle applies the hub's registry, twin and method rates; nil
	// throttles nothing.
	Throttle Throttle
}

// Throttle is a hub's quota check: an error matching throttle.ErrThrottled
// is answered 429 ThrottlingException.
type Throttle interface {
	Allow(kind throttle.Kind, hub, device string) error
}

// New builds the handler.
func New(c Config) *Handler {
	if c.Now == nil {
		c.Now = time.Now
	}
	return &Handler{throttle: c.Throttle, jobRunner: c.Jobs, c2d: c.C2D, files: c.Files, methods: c.Methods, devices: c.Devices, publisher: c.Publisher, hubs: c.Hubs, registry: c.Registry, bearer: c.Bearer, authz: c.Authz, log: c.Log, now: c.Now}
}

// Segments are the first path segments this surface serves.
var Segments = []string{"devices", "twins", "statistics", "messages", "jobs"}

// PathRouter is what Mount needs.
type PathRouter interface {
	Handle(segment string, h http.Handler)
}

// Mount registers the surface's path roots.
func (h *Handler) Mount(r PathRouter) {
	for _, s := range Segments {
		r.Handle(s, h)
	}
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := h.serve(w, r); err != nil {
		e := registry.AsError(err)
		// A device that doesn't answer a method in time (504) is the caller's
		// news, not a server fault.
		if e.Status >= 500 && e.Status != http.StatusGatewayTimeout {
			h.log.Error("hub service api", "method", r.Method, "path", r.URL.Path, "err", err)
		}
		writeError(w, e)
	}
}

// allow applies the hub's rate of kind: over it, 429 ThrottlingException
// with Retry-After, which the SDKs retry with backoff.
func (h *Handler) allow(w http.ResponseWriter, kind throttle.Kind, hub, device string) error {
	if h.throttle == nil {
		return nil
	}
	return throttledError(w, h.throttle.Allow(kind, hub, device))
}

// throttledError turns a throttle refusal into IoT Hub's 429; other
// errors pass through.
func throttledError(w http.ResponseWriter, err error) error {
	if !errors.Is(err, throttle.ErrThrottled) {
		return err
	}
	w.Header().Set("Retry-After", "1")
	return &registry.Error{Status: http.StatusTooManyRequests, Code: "ThrottlingException", Message: err.Error()}
}

// writeError renders IoT Hub's data-plane error body.
func writeError(w http.ResponseWriter, e *registry.Error) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("iothub-errorcode", e.Code)
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(map[string]string{
		"Message":          "ErrorCode:" + e.Code + ";" + e.Message,
		"ExceptionMessage": "Tracking ID:" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-TimeStamp:" + time.Now().UTC().Format("01/02/2006 15:04:05"),
	})
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request) error {
	target, err := h.hubs.Resolve(r.Context(), r.Host)
	var nohub hub.ErrNoHub
	if errors.As(err, &nohub) {
		return &registry.Error{Status: http.StatusNotFound, Code: "IotHubNotFound",
			Message: sprintf("No IoT hub answers to '%s'. Use the hub's host name ({hub}.{dns suffix}) from its connection string.", r.Host)}
	}
	if err != nil {
		return err
	}
	if r.URL.Query().Get("api-version") == "" {
		return &registry.Error{Status: http.StatusBadRequest, Code: "InvalidProtocolVersion", Message: "The api-version query parameter is required, e.g. api-version=2021-04-12."}
	}
	seg := pathSegments(r.URL)
	ctx := r.Context()
	name := target.Name
	switch {
	// file upload (device side) and file notifications (service side)
	case len(seg) == 3 && seg[0] == "devices" && seg[2] == "files" && r.Method == http.MethodPost:
		return h.fileStart(w, r, seg[1])
	case len(seg) == 4 && seg[0] == "devices" && seg[2] == "files" && seg[3] == "notifications" && r.Method == http.MethodPost:
		return h.fileComplete(w, r, seg[1], "")
	case len(seg) == 5 && seg[0] == "devices" && seg[2] == "files" && seg[3] == "notifications" && r.Method == http.MethodPost:
		return h.fileComplete(w, r, seg[1], seg[4])
	case len(seg) >= 3 && seg[0] == "messages" && seg[1] == "servicebound" && seg[2] == "filenotifications":
		return h.fileNotificationsAPI(w, r, target, seg[3:])
	// devices and modules
	case len(seg) == 1 && seg[0] == "devices" && r.Method == http.MethodGet:
		if err := h.authorize(r, target, registryRead); err != nil {
			return err
		}
		if err := h.allow(w, throttle.Registry, name, ""); err != nil {
			return err
		}
		top, _ := strconv.Atoi(r.URL.Query().Get("top"))
		list, err := h.registry.ListDevices(ctx, name, top)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, list, "")
	case len(seg) == 2 && seg[0] == "devices" && seg[1] == "query" && r.Method == http.MethodPost:
		if err := h.authorize(r, target, twinRead); err != nil {
			return err
		}
		return h.query(w, r, name)
	case len(seg) == 4 && seg[0] == "devices" && seg[2] == "messages" && seg[3] == "events":
		return h.deviceTelemetry(w, r, seg[1], "")
	case len(seg) == 6 && seg[0] == "devices" && seg[2] == "modules" && seg[4] == "messages" && seg[5] == "events":
		return h.deviceTelemetry(w, r, seg[1], seg[3])
	case len(seg) >= 4 && seg[0] == "devices" && seg[2] == "messages" && seg[3] == "devicebound":
		return h.deviceBound(w, r, seg[1], "", seg[4:])
	case len(seg) == 2 && seg[0] == "devices":
		return h.identity(w, r, target, seg[1], "")
	case len(seg) == 3 && seg[0] == "devices" && seg[2] == "modules" && r.Method == http.MethodGet:
		if err := h.authorize(r, target, registryRead); err != nil {
			return err
		}
		if err := h.allow(w, throttle.Registry, name, seg[1]); err != nil {
			return err
		}
		list, err := h.registry.ListModules(ctx, name, seg[1])
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, list, "")
	case len(seg) == 4 && seg[0] == "devices" && seg[2] == "modules":
		return h.identity(w, r, target, seg[1], seg[3])
	// twins
	case len(seg) == 3 && seg[0] == "twins" && seg[2] == "methods":
		return h.method(w, r, target, seg[1], "")
	case len(seg) == 5 && seg[0] == "twins" && seg[2] == "modules" && seg[4] == "methods":
		return h.method(w, r, target, seg[1], seg[3])
	case len(seg) == 2 && seg[0] == "twins":
		return h.twin(w, r, target, seg[1], "")
	case len(seg) == 4 && seg[0] == "twins" && seg[2] == "modules":
		return h.twin(w, r, target, seg[1], seg[3])
	// import/export jobs
	case seg[0] == "jobs" && len(seg) <= 2:
		return h.jobs(w, r, target, seg)
	// statistics
	case len(seg) == 2 && seg[0] == "statistics" && seg[1] == "devices" && r.Method == http.MethodGet:
		if err := h.authorize(r, target, statsRead); err != nil {
			return err
		}
		st, err := h.registry.Statistics(ctx, name)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, st, "")
	case len(seg) == 2 && seg[0] == "statistics" && seg[1] == "service" && r.Method == http.MethodGet:
		if err := h.authorize(r, target, statsRead); err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, map[string]int{"connectedDeviceCount": 0}, "")
	}
	return &registry.Error{Status: http.StatusNotFound, Code: "NotFound", Message: sprintf("No hub API at %s %s.", r.Method, r.URL.Path)}
}

// pathSegments splits the escaped path and unescapes each segment, so a
// device id containing %2F stays one segment.
func pathSegments(u *url.URL) []string {
	raw := strings.Trim(u.EscapedPath(), "/")
	parts := strings.Split(raw, "/")
	for i, p := range parts {
		if v, err := url.PathUnescape(p); err == nil {
			parts[i] = v
		}
	}
	return parts
}

func (h *Handler) identity(w http.ResponseWriter, r *http.Request, target hub.Hub, deviceID, moduleID string) error {
	ctx := r.Context()
	switch r.Method {
	case http.MethodGet:
		if err := h.authorize(r, target, registryRead); err != nil {
			return err
		}
		if err := h.allow(w, throttle.Registry, target.Name, deviceID); err != nil {
			return err
		}
		id, err := h.registry.GetIdentity(ctx, target.Name, deviceID, moduleID)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, id, id.ETag)
	case http.MethodPut:
		if err := h.authorize(r, target, registryWrite); err != nil {
			return err
		}
		if err := h.allow(w, throttle.Registry, target.Name, deviceID); err != nil {
			return err
		}
		var in registry.Identity
		if err := decode(r, &in); err != nil {
			return err
		}
		id, created, err := h.registry.PutIdentity(ctx, target.Name, deviceID, moduleID, in, r.Header.Get("If-Match"))
		if err != nil {
			return err
		}
		status := http.StatusOK
		if created && moduleID != "" {
			status = http.StatusCreated
		}
		return writeJSON(w, status, id, id.ETag)
	case http.MethodDelete:
		if err := h.authorize(r, target, registryDel); err != nil {
			return err
		}
		if err := h.allow(w, throttle.Registry, target.Name, deviceID); err != nil {
			return err
		}
		if err := h.registry.DeleteIdentity(ctx, target.Name, deviceID, moduleID, r.Header.Get("If-Match")); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return &registry.Error{Status: http.StatusMethodNotAllowed, Code: "MethodNotAllowed", Message: sprintf("%s is not supported on %s.", r.Method, r.URL.Path)}
}

func (h *Handler) twin(w http.ResponseWriter, r *http.Request, target hub.Hub, deviceID, moduleID string) error {
	ctx := r.Context()
	switch r.Method {
	case http.MethodGet:
		if err := h.authorize(r, target, twinRead); err != nil {
			return err
		}
		if err := h.allow(w, throttle.TwinRead, target.Name, deviceID); err != nil {
			return err
		}
		t, err := h.registry.GetTwin(ctx, target.Name, deviceID, moduleID)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, t, t.ETag)
	case http.MethodPatch, http.MethodPut:
		if err := h.authorize(r, target, twinWrite); err != nil {
			return err
		}
		if err := h.allow(w, throttle.TwinUpdate, target.Name, deviceID); err != nil {
			return err
		}
		var patch registry.TwinPatch
		if err := decode(r, &patch); err != nil {
			return err
		}
		t, err := h.registry.UpdateTwin(ctx, target.Name, deviceID, moduleID, patch, r.Header.Get("If-Match"), r.Method == http.MethodPut)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, t, t.ETag)
	}
	return &registry.Error{Status: http.StatusMethodNotAllowed, Code: "MethodNotAllowed", Message: sprintf("%s is not supported on %s.", r.Method, r.URL.Path)}
}

func (h *Handler) query(w http.ResponseWriter, r *http.Request, hubName string) error {
	var in struct {
		Query string `json:"query"`
	}
	if err := decode(r, &in); err != nil {
		return err
	}
	q, err := registry.ParseQuery(in.Query)
	if err != nil {
		return err
	}
	max, _ := strconv.Atoi(r.Header.Get("x-ms-max-item-count"))
	out, next, err := h.registry.RunQuery(r.Context(), hubName, q, max, r.Header.Get("x-ms-continuation"))
	if err != nil {
		return err
	}
	if next != "" {
		w.Header().Set("x-ms-continuation", next)
	}
	w.Header().Set("x-ms-item-type", "Twin")
	return writeJSON(w, http.StatusOK, out, "")
}

func decode(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &registry.Error{Status: http.StatusRequestEntityTooLarge, Code: "MessageTooLarge", Message: sprintf("The request body is larger than %d bytes.", mbe.Limit)}
		}
		return fmt.Errorf("serviceapi: read body: %w", err)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return &registry.Error{Status: http.StatusBadRequest, Code: "ArgumentInvalid", Message: sprintf("The request body is not valid JSON for this operation: %v.", err)}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any, etag string) error {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if etag != "" {
		w.Header().Set("ETag", `"`+etag+`"`)
	}
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}
