package registry

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/outpost-iot/outpost/internal/store"
)

// Bulk import/export: the registry's rules for one line of devices.txt,
// so that an import job validates and renders entries exactly as the
// service API does. These functions are pure: the job batches the writes
// through store.Devices.PutMany and calls ApplyImport inside its updater.

// ImportMode is an ExportImportDevice's importMode.
type ImportMode string

// The import modes IoT Hub knows (C# ImportMode's wire values).
const (
	ModeCreate                    ImportMode = "create"
	ModeUpdate                    ImportMode = "update"
	ModeUpdateIfMatchETag         ImportMode = "updateIfMatchETag"
	ModeCreateOrUpdate            ImportMode = "createOrUpdate"
	ModeCreateOrUpdateIfMatchETag ImportMode = "createOrUpdateIfMatchETag"
	ModeDelete                    ImportMode = "delete"
	ModeDeleteIfMatchETag         ImportMode = "deleteIfMatchETag"
	ModeUpdateTwin                ImportMode = "updateTwin"
	ModeUpdateTwinIfMatchETag     ImportMode = "updateTwinIfMatchETag"
)

var importModes = []ImportMode{ModeCreate, ModeUpdate, ModeUpdateIfMatchETag, ModeCreateOrUpdate,
	ModeCreateOrUpdateIfMatchETag, ModeDelete, ModeDeleteIfMatchETag, ModeUpdateTwin, ModeUpdateTwinIfMatchETag}

// ParseImportMode accepts any letter case; empty is createOrUpdate, IoT
// Hub's default.
func ParseImportMode(s string) (ImportMode, error) {
	if s == "" {
		return ModeCreateOrUpdate, nil
	}
	for _, m := range importModes {
		if strings.EqualFold(string(m), s) {
			return m, nil
		}
	}
	names := make([]string, len(importModes))
	for i, m := range importModes {
		names[i] = string(m)
	}
	return "", errorf(http.StatusBadRequest, "ArgumentInvalid", "importMode '%s' is not one of %s.", s, strings.Join(names, ", "))
}

// BulkProperties are a line's twin properties.
type BulkProperties struct {
	Desired  map[string]any `json:"desired,omitempty"`
	Reported map[string]any `json:"reported,omitempty"`
}

// BulkDevice is one line of an import or export file (ExportImportDevice).
type BulkDevice struct {
	ID             string          `json:"id"`
	ModuleID       string          `json:"moduleId,omitempty"`
	ETag           string          `json:"eTag,omitempty"`
	ImportMode     string          `json:"importMode,omitempty"`
	Status         string          `json:"status,omitempty"`
	StatusReason   *string         `json:"statusReason,omitempty"`
	Authentication *Authentication `json:"authentication,omitempty"`
	TwinETag       string          `json:"twinETag,omitempty"`
	Tags           map[string]any  `json:"tags,omitempty"`
	Properties     *BulkProperties `json:"properties,omitempty"`
	Capabilities   *Capabilities   `json:"capabilities,omitempty"`
	DeviceScope    string          `json:"deviceScope,omitempty"`
	ParentScopes   []string        `json:"parentScopes,omitempty"`
}

// PrepareImport checks a line without the store: ids, mode, status and
// authentication (generating missing SAS keys, as a PUT does). It returns
// the parsed mode.
func PrepareImport(d *BulkDevice) (ImportMode, error) {
	if err := validID("device", d.ID); err != nil {
		return "", err
	}
	if d.ModuleID != "" {
		if err := validID("module", d.ModuleID); err != nil {
			return "", err
		}
	}
	mode, err := ParseImportMode(d.ImportMode)
	if err != nil {
		return "", err
	}
	switch strings.ToLower(d.Status) {
	case "", "enabled":
		d.Status = "enabled"
	case "disabled":
		d.Status = "disabled"
	default:
		return "", errorf(http.StatusBadRequest, "ArgumentInvalid", "status '%s' must be enabled or disabled.", d.Status)
	}
	if d.Authentication == nil {
		d.Authentication = &Authentication{}
	}
	if err := normalizeAuth(d.Authentication); err != nil {
		return "", err
	}
	return mode, nil
}

// ApplyImport decides what one prepared line does to the entry stored
// under its key (nil when absent): the entry to store, nil to delete it, or
// an *Error for this line alone. current is not modified.
func (s *Service) ApplyImport(hub string, d BulkDevice, mode ImportMode, current *store.Device) (*store.Device, error) {
	what := describe(d.ID, d.ModuleID)
	switch mode {
	case ModeDelete, ModeDeleteIfMatchETag:
		if current == nil {
			return nil, errorf(http.StatusNotFound, notFoundCode(d.ModuleID), "%s not found; %s needs an existing one.", what, mode)
		}
		if mode == ModeDeleteIfMatchETag {
			if err := matchETag(d.ETag, current.ETag, "eTag", what); err != nil {
				return nil, err
			}
		}
		return nil, nil
	case ModeCreate:
		if current != nil {
			return nil, errorf(http.StatusConflict, alreadyExistsCode(d.ModuleID), "%s already exists; importMode create only adds new ones (use createOrUpdate to change it).", what)
		}
	case ModeUpdate, ModeUpdateIfMatchETag, ModeUpdateTwin, ModeUpdateTwinIfMatchETag:
		if current == nil {
			return nil, errorf(http.StatusNotFound, notFoundCode(d.ModuleID), "%s not found; importMode %s needs an existing one (use createOrUpdate to add it).", what, mode)
		}
	}
	if current != nil {
		switch mode {
		case ModeUpdateIfMatchETag, ModeCreateOrUpdateIfMatchETag:
			if err := matchETag(d.ETag, current.ETag, "eTag", what); err != nil {
				return nil, err
			}
		case ModeUpdateTwinIfMatchETag:
			if err := matchETag(d.TwinETag, current.TwinETag, "twinETag", what); err != nil {
				return nil, err
			}
		}
	}
	now := s.now()
	next := store.Device{Hub: hub, DeviceID: d.ID, ModuleID: d.ModuleID}
	twin := twinDoc{}
	if current != nil {
		next = *current
		twin = decodeTwin(current.Twin)
	}
	if mode != ModeUpdateTwin && mode != ModeUpdateTwinIfMatchETag {
		var old stored
		if current != nil {
			_ = json.Unmarshal(current.Identity, &old)
		}
		st := stored{Identity: Identity{
			DeviceID: d.ID, ModuleID: d.ModuleID, Status: d.Status, StatusReason: d.StatusReason,
			Authentication: *d.Authentication, Capabilities: d.Capabilities,
			DeviceScope: d.DeviceScope, ParentScopes: d.ParentScopes,
		}, StatusUpdated: old.StatusUpdated}
		st.GenerationID = old.GenerationID
		if current == nil {
			st.GenerationID = newGenerationID()
		}
		if current == nil || old.Status != d.Status {
			st.StatusUpdated = now
		}
		body, _ := json.Marshal(st)
		next.Identity, next.Enabled = body, d.Status == "enabled"
	}
	if d.Tags != nil {
		twin.Tags = d.Tags
	}
	if d.Properties != nil {
		if d.Properties.Desired != nil {
			twin.Desired = stripMeta(d.Properties.Desired)
			twin.DesiredV++
			twin.DesiredAt = now
		}
		if d.Properties.Reported != nil {
			twin.Reported = stripMeta(d.Properties.Reported)
			twin.ReportedV++
			twin.ReportedAt = now
		}
	}
	if current == nil || d.Tags != nil || d.Properties != nil {
		if current != nil {
			twin.Version++
		}
		next.Twin = twin.encode()
	}
	return &next, nil
}

func matchETag(given, etag, field, what string) error {
	given = strings.Trim(strings.TrimPrefix(strings.TrimSpace(given), "W/"), `"`)
	if given == "" {
		return errorf(http.StatusPreconditionFailed, "PreconditionFailed", "%s: this importMode compares %s, and the line has none; add the current %s (see an export).", what, field, field)
	}
	if given != "*" && given != etag {
		return errorf(http.StatusPreconditionFailed, "PreconditionFailed", "The %s '%s' does not match the current one of %s; export the registry again to get it.", field, given, what)
	}
	return nil
}

// ExportEntry renders a stored entry as an export line (with its twin);
// excludeKeys writes the symmetric keys as null, as IoT Hub does.
func (s *Service) ExportEntry(d store.Device, excludeKeys bool) json.RawMessage {
	var st stored
	_ = json.Unmarshal(d.Identity, &st)
	t := decodeTwin(d.Twin)
	auth := map[string]any{"type": st.Authentication.Type}
	if k := st.Authentication.SymmetricKey; k != nil {
		if excludeKeys {
			auth["symmetricKey"] = map[string]any{"primaryKey": nil, "secondaryKey": nil}
		} else {
			auth["symmetricKey"] = k
		}
	}
	if x := st.Authentication.X509Thumbprint; x != nil {
		auth["x509Thumbprint"] = x
	}
	desired := copyMap(t.Desired)
	desired["$metadata"] = map[string]any{"$lastUpdated": formatTime(t.DesiredAt), "$lastUpdatedVersion": t.DesiredV}
	desired["$version"] = t.DesiredV
	reported := copyMap(t.Reported)
	reported["$metadata"] = map[string]any{"$lastUpdated": formatTime(t.ReportedAt)}
	reported["$version"] = t.ReportedV
	line := map[string]any{
		"id": d.DeviceID, "eTag": d.ETag, "status": st.Status, "statusReason": st.StatusReason,
		"authentication": auth, "twinETag": d.TwinETag, "tags": t.Tags,
		"properties": map[string]any{"desired": desired, "reported": reported},
	}
	if d.ModuleID != "" {
		line["moduleId"] = d.ModuleID
	}
	if st.Capabilities != nil {
		line["capabilities"] = st.Capabilities
	}
	if st.DeviceScope != "" {
		line["deviceScope"] = st.DeviceScope
	}
	if len(st.ParentScopes) > 0 {
		line["parentScopes"] = st.ParentScopes
	}
	b, _ := json.Marshal(line)
	return b
}
