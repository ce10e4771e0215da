package jobs

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/hub/registry"
)

// Type is a job's type as the wire spells it.
type Type string

// The job types this runner executes.
const (
	TypeImport Type = "import"
	TypeExport Type = "export"
)

// Status is a job's state.
type Status string

// Job states. queued and running are active; the rest are final.
const (
	StatusQueued    Status = "queued"
	StatusRunning   Status = "running"
	StatusCompleted Status = "completed"
	StatusFailed    Status = "failed"
	StatusCancelled Status = "cancelled"
)

// Final reports whether a job in s will never change again.
func (s Status) Final() bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusCancelled
}

// Storage authentication types.
const (
	AuthKeyBased      = "keyBased"
	AuthIdentityBased = "identityBased"
)

// Default blob names (IoT Hub's).
const (
	DefaultBlobName           = "devices.txt"
	DefaultConfigurationsBlob = "configurations.txt"
	// ImportErrorsBlob is where an import writes the lines it could not
	// apply, in the output container.
	ImportErrorsBlob = "importErrors.log"
)

// ManagedIdentity is JobProperties.identity.
type ManagedIdentity struct {
	UserAssignedIdentity string `json:"userAssignedIdentity,omitempty"`
}

// Properties is JobProperties, the wire shape of a job on the service API.
type Properties struct {
	JobID                     string           `json:"jobId"`
	StartTimeUTC              *time.Time       `json:"startTimeUtc,omitempty"`
	EndTimeUTC                *time.Time       `json:"endTimeUtc,omitempty"`
	Type                      Type             `json:"type"`
	Status                    Status           `json:"status"`
	Progress                  int              `json:"progress"`
	InputBlobContainerURI     string           `json:"inputBlobContainerUri,omitempty"`
	InputBlobName             string           `json:"inputBlobName,omitempty"`
	OutputBlobContainerURI    string           `json:"outputBlobContainerUri,omitempty"`
	OutputBlobName            string           `json:"outputBlobName,omitempty"`
	ExcludeKeysInExport       bool             `json:"excludeKeysInExport"`
	StorageAuthenticationType string           `json:"storageAuthenticationType,omitempty"`
	Identity                  *ManagedIdentity `json:"identity,omitempty"`
	FailureReason             string           `json:"failureReason,omitempty"`
	IncludeConfigurations     bool             `json:"includeConfigurations,omitempty"`
	ConfigurationsBlobName    string           `json:"configurationsBlobName,omitempty"`
}

// Request is what a client sends to create a job: Properties with type,
// storageAuthenticationType and the identity as loose strings, since SDKs
// disagree on their spelling.
type Request struct {
	Type                      string           `json:"type"`
	InputBlobContainerURI     string           `json:"inputBlobContainerUri"`
	InputBlobName             string           `json:"inputBlobName"`
	OutputBlobContainerURI    string           `json:"outputBlobContainerUri"`
	OutputBlobName            string           `json:"outputBlobName"`
	ExcludeKeysInExport       bool             `json:"excludeKeysInExport"`
	StorageAuthenticationType string           `json:"storageAuthenticationType"`
	Identity                  *ManagedIdentity `json:"identity"`
	IncludeConfigurations     bool             `json:"includeConfigurations"`
	ConfigurationsBlobName    string           `json:"configurationsBlobName"`
}

func badRequest(format string, args ...any) error {
	return &registry.Error{Status: http.StatusBadRequest, Code: "ArgumentInvalid", Message: sprintf(format, args...)}
}

// ParseType accepts the spellings SDKs send: import, export, Import,
// ImportDevices, exportDevices, … in any letter case.
func ParseType(s string) (Type, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "import", "importdevices":
		return TypeImport, nil
	case "export", "exportdevices":
		return TypeExport, nil
	case "":
		return "", badRequest("The job's type is missing: send \"type\": \"import\" or \"export\".")
	}
	return "", badRequest("Job type '%s' is not supported: this hub runs import and export jobs (type \"import\" or \"export\").", s)
}

// ParseAuthType accepts keyBased and identityBased in any case; empty is
// keyBased, IoT Hub's default.
func ParseAuthType(s string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "keybased":
		return AuthKeyBased, nil
	case "identitybased":
		return AuthIdentityBased, nil
	}
	return "", badRequest("storageAuthenticationType '%s' must be keyBased or identityBased.", s)
}

// normalize checks a request and returns the queued job's properties.
func (r Request) normalize(jobID string) (Properties, error) {
	t, err := ParseType(r.Type)
	if err != nil {
		return Properties{}, err
	}
	auth, err := ParseAuthType(r.StorageAuthenticationType)
	if err != nil {
		return Properties{}, err
	}
	p := Properties{
		JobID: jobID, Type: t, Status: StatusQueued,
		InputBlobContainerURI: strings.TrimSpace(r.InputBlobContainerURI), InputBlobName: r.InputBlobName,
		OutputBlobContainerURI: strings.TrimSpace(r.OutputBlobContainerURI), OutputBlobName: r.OutputBlobName,
		ExcludeKeysInExport: r.ExcludeKeysInExport, StorageAuthenticationType: auth,
		IncludeConfigurations: r.IncludeConfigurations, ConfigurationsBlobName: r.ConfigurationsBlobName,
	}
	if r.Identity != nil && strings.TrimSpace(r.Identity.UserAssignedIdentity) != "" {
		if auth != AuthIdentityBased {
			return Properties{}, badRequest("identity.userAssignedIdentity is only used with storageAuthenticationType identityBased; set it, or drop the identity to use the SAS in the container URIs.")
		}
		p.Identity = &ManagedIdentity{UserAssignedIdentity: strings.TrimSpace(r.Identity.UserAssignedIdentity)}
	}
	if p.OutputBlobContainerURI == "" {
		return Properties{}, badRequest("outputBlobContainerUri is required: the %s job writes %s there.", t, map[Type]string{TypeImport: ImportErrorsBlob, TypeExport: DefaultBlobName}[t])
	}
	if t == TypeImport && p.InputBlobContainerURI == "" {
		return Properties{}, badRequest("inputBlobContainerUri is required for an import job: the container holding %s.", DefaultBlobName)
	}
	if t == TypeExport {
		p.InputBlobContainerURI = ""
	}
	if p.InputBlobName == "" && t == TypeImport {
		p.InputBlobName = DefaultBlobName
	}
	if p.OutputBlobName == "" && t == TypeExport {
		p.OutputBlobName = DefaultBlobName
	}
	if p.IncludeConfigurations && p.ConfigurationsBlobName == "" {
		p.ConfigurationsBlobName = DefaultConfigurationsBlob
	}
	for _, u := range []struct{ name, value string }{{"inputBlobContainerUri", p.InputBlobContainerURI}, {"outputBlobContainerUri", p.OutputBlobContainerURI}} {
		if u.value == "" {
			continue
		}
		parsed, err := url.Parse(u.value)
		if err != nil || parsed.Host == "" || strings.Trim(parsed.Path, "/") == "" {
			return Properties{}, badRequest("%s '%s' is not a container URL: use https://{account}.blob.{suffix}/{container}[?{SAS}].", u.name, redact(u.value))
		}
		if auth == AuthKeyBased && parsed.RawQuery == "" {
			return Properties{}, badRequest("%s has no SAS: with keyBased storage authentication the container URI must carry a SAS token (…/{container}?sv=…&sp=…), or set storageAuthenticationType to identityBased to use the hub's managed identity.", u.name)
		}
	}
	return p, nil
}

// redact drops a URL's query and user info, where SAS signatures live.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if i := strings.IndexByte(s, '?'); i >= 0 {
			return s[:i]
		}
		return s
	}
	u.RawQuery, u.User, u.Fragment = "", nil, ""
	return u.String()
}
