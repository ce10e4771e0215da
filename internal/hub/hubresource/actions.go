package hubresource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/store"
)

// Action implements arm.ActionType: POST listkeys, exportDevices and
// importDevices, and the GET reads (TypeInfo.Reads) on one hub.
func (h *IotHubs) Action(ctx context.Context, res store.Resource, action string, body json.RawMessage) (any, error) {
	if len(action) > len("jobs/") && strings.EqualFold(action[:len("jobs/")], "jobs/") {
		return h.getJob(ctx, res, action[len("jobs/"):])
	}
	switch strings.ToLower(action) {
	case "listkeys":
		ps, err := policiesOf(res)
		if err != nil {
			return nil, err
		}
		if ps == nil {
			ps = []Policy{}
		}
		return map[string]any{"value": ps, "nextLink": nil}, nil
	case "iothubstats":
		c, err := h.cfg.Devices.Count(ctx, strings.ToLower(res.Name))
		if err != nil {
			return nil, fmt.Errorf("hubresource: count devices of %s: %w", res.Name, err)
		}
		return map[string]int64{"totalDeviceCount": c.Total, "enabledDeviceCount": c.Enabled, "disabledDeviceCount": c.Disabled}, nil
	case "skus":
		return validSKUs(res), nil
	case "quotametrics":
		return h.quotaMetrics(ctx, res)
	case "exportdevices", "importdevices":
		return h.startJob(ctx, res, strings.ToLower(action), body)
	case "jobs":
		return h.listJobs(ctx, res)
	case "routingendpointshealth":
		// Endpoint health is the routing engine's to report.
		var value any = []any{}
		if h.cfg.RoutingHealth != nil {
			value = h.cfg.RoutingHealth(strings.ToLower(res.Name))
		}
		return map[string]any{"value": value, "nextLink": nil}, nil
	}
	return nil, arm.Errorf(http.StatusMethodNotAllowed, "HttpMethodNotSupported",
		"The IoT hub '%s' has no operation '%s'.", res.Name, action)
}

func storedSKU(res store.Resource) skuLimits {
	var doc struct {
		SKU skuInfo `json:"sku"`
	}
	_ = json.Unmarshal(res.Body, &doc)
	s, ok := findSKU(doc.SKU.Name)
	if !ok {
		s, _ = findSKU("S1")
	}
	return s
}

func storedUnits(res store.Resource) int64 {
	var doc struct {
		SKU skuInfo `json:"sku"`
	}
	_ = json.Unmarshal(res.Body, &doc)
	if doc.SKU.Capacity < 1 {
		return 1
	}
	return doc.SKU.Capacity
}

// validSKUs answers GetValidSkus: the skus the hub can move to.
func validSKUs(res store.Resource) map[string]any {
	cur := storedSKU(res)
	var out []map[string]any
	for _, s := range skus {
		switch {
		case cur.free() != s.free():
			continue
		case cur.Tier == "Standard" && s.Tier == "Basic":
			continue
		}
		scale := "Manual"
		if s.free() {
			scale = "None"
		}
		out = append(out, map[string]any{
			"resourceType": Type,
			"sku":          map[string]string{"name": s.Name, "tier": s.Tier},
			"capacity":     map[string]any{"minimum": 1, "maximum": s.MaxUnits, "default": 1, "scaleType": scale},
		})
	}
	return map[string]any{"value": out, "nextLink": nil}
}

// maxDevices is IoT Hub's device registry quota per hub.
const maxDevices = 1000000

func (h *IotHubs) quotaMetrics(ctx context.Context, res store.Resource) (any, error) {
	c, err := h.cfg.Devices.Count(ctx, strings.ToLower(res.Name))
	if err != nil {
		return nil, fmt.Errorf("hubresource: count devices of %s: %w", res.Name, err)
	}
	s := storedSKU(res)
	// Outpost does not meter messages; the quota is what the sku allows.
	return map[string]any{"value": []map[string]any{
		{"name": "TotalMessages", "currentValue": 0, "maxValue": s.MessagesPerUnit * storedUnits(res)},
		{"name": "TotalDeviceCount", "currentValue": c.Total, "maxValue": maxDevices},
	}, "nextLink": nil}, nil
}

// ProviderActions are the Microsoft.Devices operations on a subscription
// rather than a hub: checkNameAvailability and usages. Register them with
// arm.Registry.AddProviderAction.
func (h *IotHubs) ProviderActions() []arm.ProviderAction {
	return []arm.ProviderAction{
		{
			Namespace: "Microsoft.Devices", Name: "checkNameAvailability", Method: http.MethodPost,
			APIVersions: APIVersions(), Action: "Microsoft.Devices/checkNameAvailability/Action",
			Run: h.checkNameAvailability,
		},
		{
			Namespace: "Microsoft.Devices", Name: "usages", Method: http.MethodGet,
			APIVersions: APIVersions(), Action: "Microsoft.Devices/usages/Read",
			Run: h.usages,
		},
	}
}

// checkNameAvailability answers whether a hub name can be created. az
// relies on nameAvailable:false for a hub that exists: it is how `az iot
// hub show -g` and `identity assign` decide the hub is there.
func (h *IotHubs) checkNameAvailability(ctx context.Context, _ string, body json.RawMessage, _ arm.Principal) (any, error) {
	var in struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, invalid("The request body must be {\"name\": \"<hub name>\"}: %v.", err)
	}
	if problem := nameProblem(in.Name); problem != "" {
		return map[string]any{"nameAvailable": false, "reason": "Invalid", "message": errInvalidName(in.Name, problem).Message}, nil
	}
	_, found, err := h.findHub(ctx, in.Name)
	if err != nil {
		return nil, err
	}
	if found {
		return map[string]any{"nameAvailable": false, "reason": "AlreadyExists",
			"message": fmt.Sprintf("IotHub name '%s' is not available", in.Name)}, nil
	}
	// Azure answers an available name with reason "Invalid" and an empty
	// message (its enum's first value); clients read only nameAvailable.
	return map[string]any{"nameAvailable": true, "reason": "Invalid", "message": ""}, nil
}

// usages answers the subscription's IoT Hub quotas: one free hub, and paid hubs.
func (h *IotHubs) usages(ctx context.Context, sub string, _ json.RawMessage, _ arm.Principal) (any, error) {
	hubs, err := h.cfg.Resources.List(ctx, store.ResourceFilter{Type: Type, Subscription: sub})
	if err != nil {
		return nil, fmt.Errorf("hubresource: list hubs: %w", err)
	}
	var free, paid int
	for _, r := range hubs {
		if storedSKU(r).free() {
			free++
		} else {
			paid++
		}
	}
	base := "/subscriptions/" + sub + "/providers/Microsoft.Devices/usages"
	usage := func(id, name, display string, current, limit int) map[string]any {
		return map[string]any{
			"id": base + "/" + id, "type": base, "unit": "count", "currentValue": current, "limit": limit,
			"name": map[string]string{"value": name, "localizedValue": display},
		}
	}
	return map[string]any{"value": []map[string]any{
		usage("freeHubCount", "FreeHubCount", "Free Hub Count", free, 1),
		usage("paidIotHubCount", "PaidIotHubCount", "Paid IoT Hub Count", paid, 100),
	}}, nil
}

// JobStarter queues and reads a hub's bulk import/export jobs; the app
// adapts the job runner (internal/hub/jobs) to it. Errors the client can
// fix are *arm.Error.
type JobStarter interface {
	StartJob(ctx context.Context, hub JobHub, req JobRequest) (Job, error)
	ListJobs(ctx context.Context, hub string) ([]Job, error)
}

// JobHub names the hub a job runs on: its name (lower case) and resource id.
type JobHub struct {
	Name, ResourceID string
}

// JobRequest is an exportDevices or importDevices body in the terms of the
// hub's service API (POST /jobs/create), which the job runner speaks.
type JobRequest struct {
	Type                   string // "export" or "import"
	InputBlobContainerURI  string
	InputBlobName          string
	OutputBlobContainerURI string
	OutputBlobName         string
	ExcludeKeys            bool
	// AuthenticationType is keyBased or identityBased, as sent (the runner
	// accepts any letter case; empty is keyBased).
	AuthenticationType     string
	UserAssignedIdentity   string
	IncludeConfigurations  bool
	ConfigurationsBlobName string
}

// Job is what the resource provider shows of a job.
type Job struct {
	ID string
	// Type is export or import; Status is the runner's: queued, running,
	// completed, failed or cancelled.
	Type, Status  string
	Start, End    *time.Time
	FailureReason string
}

// jobResponse is JobResponse of the 2023-06-30 spec: times in RFC 1123
// (date-time-rfc1123), not the service API's ISO 8601.
type jobResponse struct {
	JobID         string `json:"jobId"`
	StartTimeUTC  string `json:"startTimeUtc,omitempty"`
	EndTimeUTC    string `json:"endTimeUtc,omitempty"`
	Type          string `json:"type"`
	Status        string `json:"status"`
	FailureReason string `json:"failureReason,omitempty"`
	// Import and export jobs have no parent job, and failureReason says
	// all a status message would.
	StatusMessage string `json:"statusMessage,omitempty"`
	ParentJobID   string `json:"parentJobId,omitempty"`
}

func responseOf(j Job) jobResponse {
	rfc1123 := func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format(http.TimeFormat)
	}
	status := j.Status
	if status == "queued" {
		status = "enqueued" // the provider's JobStatus enum has no "queued"
	}
	return jobResponse{JobID: j.ID, StartTimeUTC: rfc1123(j.Start), EndTimeUTC: rfc1123(j.End),
		Type: j.Type, Status: status, FailureReason: j.FailureReason}
}

// exportDevicesRequest and importDevicesRequest are the action bodies
// (ExportDevicesRequest, ImportDevicesRequest of the 2023-06-30 spec).
type exportDevicesRequest struct {
	ExportBlobContainerURI string           `json:"exportBlobContainerUri"`
	ExcludeKeys            *bool            `json:"excludeKeys"`
	ExportBlobName         string           `json:"exportBlobName"`
	AuthenticationType     string           `json:"authenticationType"`
	Identity               *managedIdentity `json:"identity"`
	IncludeConfigurations  bool             `json:"includeConfigurations"`
	ConfigurationsBlobName string           `json:"configurationsBlobName"`
}

type importDevicesRequest struct {
	InputBlobContainerURI  string           `json:"inputBlobContainerUri"`
	OutputBlobContainerURI string           `json:"outputBlobContainerUri"`
	InputBlobName          string           `json:"inputBlobName"`
	OutputBlobName         string           `json:"outputBlobName"`
	AuthenticationType     string           `json:"authenticationType"`
	Identity               *managedIdentity `json:"identity"`
	IncludeConfigurations  bool             `json:"includeConfigurations"`
	ConfigurationsBlobName string           `json:"configurationsBlobName"`
}

type managedIdentity struct {
	UserAssignedIdentity string `json:"userAssignedIdentity"`
}

func (m *managedIdentity) id() string {
	if m == nil {
		return ""
	}
	return m.UserAssignedIdentity
}

// exportNames and importNames map the service API's member names, which
// the runner's messages use, to the names of the action body the client
// sent.
var (
	exportNames = strings.NewReplacer("outputBlobContainerUri", "exportBlobContainerUri", "outputBlobName", "exportBlobName",
		"excludeKeysInExport", "excludeKeys", "storageAuthenticationType", "authenticationType")
	importNames = strings.NewReplacer("storageAuthenticationType", "authenticationType")
)

// startJob answers POST exportDevices and importDevices: the job is queued
// and answered at once (200 JobResponse, not a long-running operation);
// clients poll GET {hub}/jobs.
func (h *IotHubs) startJob(ctx context.Context, res store.Resource, action string, body json.RawMessage) (any, error) {
	if h.cfg.Jobs == nil {
		return nil, flat(http.StatusNotImplemented, "NotImplemented", "Import and export jobs are not enabled on this Outpost.")
	}
	var (
		req   JobRequest
		names *strings.Replacer
	)
	if action == "exportdevices" {
		var in exportDevicesRequest
		if err := decodeJobBody(body, &in, "ExportDevicesRequest {\"exportBlobContainerUri\": \"https://{account}.blob.{suffix}/{container}?{SAS}\", \"excludeKeys\": false}"); err != nil {
			return nil, err
		}
		if strings.TrimSpace(in.ExportBlobContainerURI) == "" {
			return nil, invalid("exportBlobContainerUri is required: the container the hub writes %s to.", blobOr(in.ExportBlobName, "devices.txt"))
		}
		if in.ExcludeKeys == nil {
			return nil, invalid("excludeKeys is required: true exports the devices without their keys, false with them.")
		}
		req = JobRequest{Type: "export", OutputBlobContainerURI: in.ExportBlobContainerURI, OutputBlobName: in.ExportBlobName,
			ExcludeKeys: *in.ExcludeKeys, AuthenticationType: in.AuthenticationType, UserAssignedIdentity: in.Identity.id(),
			IncludeConfigurations: in.IncludeConfigurations, ConfigurationsBlobName: in.ConfigurationsBlobName}
		names = exportNames
	} else {
		var in importDevicesRequest
		if err := decodeJobBody(body, &in, "ImportDevicesRequest {\"inputBlobContainerUri\": \"…?{SAS}\", \"outputBlobContainerUri\": \"…?{SAS}\"}"); err != nil {
			return nil, err
		}
		if strings.TrimSpace(in.InputBlobContainerURI) == "" || strings.TrimSpace(in.OutputBlobContainerURI) == "" {
			return nil, invalid("inputBlobContainerUri and outputBlobContainerUri are required: the hub reads %s from the input container and writes importErrors.log to the output container.", blobOr(in.InputBlobName, "devices.txt"))
		}
		req = JobRequest{Type: "import", InputBlobContainerURI: in.InputBlobContainerURI, InputBlobName: in.InputBlobName,
			OutputBlobContainerURI: in.OutputBlobContainerURI, OutputBlobName: in.OutputBlobName,
			AuthenticationType: in.AuthenticationType, UserAssignedIdentity: in.Identity.id(),
			IncludeConfigurations: in.IncludeConfigurations, ConfigurationsBlobName: in.ConfigurationsBlobName}
		names = importNames
	}
	j, err := h.cfg.Jobs.StartJob(ctx, JobHub{Name: strings.ToLower(res.Name), ResourceID: res.ID}, req)
	if err != nil {
		return nil, renamed(err, names)
	}
	return responseOf(j), nil
}

// listJobs answers GET {hub}/jobs (ListJobs).
func (h *IotHubs) listJobs(ctx context.Context, res store.Resource) (any, error) {
	out := []jobResponse{}
	if h.cfg.Jobs != nil {
		list, err := h.cfg.Jobs.ListJobs(ctx, strings.ToLower(res.Name))
		if err != nil {
			return nil, err
		}
		for _, j := range list {
			out = append(out, responseOf(j))
		}
	}
	return map[string]any{"value": out, "nextLink": nil}, nil
}

// getJob answers GET {hub}/jobs/{jobId} (GetJob): the job as the list
// shows it, or IoT Hub's JobNotFound.
func (h *IotHubs) getJob(ctx context.Context, res store.Resource, jobID string) (any, error) {
	if h.cfg.Jobs != nil {
		list, err := h.cfg.Jobs.ListJobs(ctx, strings.ToLower(res.Name))
		if err != nil {
			return nil, err
		}
		for _, j := range list {
			if r := responseOf(j); strings.EqualFold(r.JobID, jobID) {
				return r, nil
			}
		}
	}
	return nil, arm.Errorf(http.StatusNotFound, "JobNotFound", "The IoT hub '%s' has no job '%s'.", res.Name, jobID)
}

func decodeJobBody(body json.RawMessage, v any, shape string) error {
	if len(strings.TrimSpace(string(body))) == 0 {
		return invalid("The request has no body: send %s.", shape)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return invalid("The request body is not %s: %v.", shape, err)
	}
	return nil
}

func blobOr(name, def string) string {
	if name == "" {
		return def
	}
	return name
}

// renamed rewrites the member names in a client error into the names of
// the body the client sent, leaving other errors alone.
func renamed(err error, names *strings.Replacer) error {
	var ae *arm.Error
	if !errors.As(err, &ae) {
		return err
	}
	c := *ae
	c.Message = names.Replace(c.Message)
	return &c
}
