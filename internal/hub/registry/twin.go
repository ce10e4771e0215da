package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/outpost-iot/outpost/internal/store"
)

// Twin is a device or module twin as the service API shows it.
type Twin struct {
	DeviceID                  string         `json:"deviceId"`
	ModuleID                  string         `json:"moduleId,omitempty"`
	ETag                      string         `json:"etag"`
	DeviceETag                string         `json:"deviceEtag"`
	Status                    string         `json:"status"`
	StatusUpdateTime          string         `json:"statusUpdateTime"`
	ConnectionState           string         `json:"connectionState"`
	LastActivityTime          string         `json:"lastActivityTime"`
	CloudToDeviceMessageCount int            `json:"cloudToDeviceMessageCount"`
	AuthenticationType        string         `json:"authenticationType"`
	X509Thumbprint            X509Thumbprint `json:"x509Thumbprint"`
	ModelID                   string         `json:"modelId"`
	Version                   int64          `json:"version"`
	Tags                      map[string]any `json:"tags"`
	Properties                TwinProperties `json:"properties"`
	Capabilities              *Capabilities  `json:"capabilities,omitempty"`
}

// TwinProperties are the desired and reported property documents, each
// with its $metadata and $version.
type TwinProperties struct {
	Desired  map[string]any `json:"desired"`
	Reported map[string]any `json:"reported"`
}

// TwinPatch is what the service sends to change a twin.
type TwinPatch struct {
	Tags       map[string]any `json:"tags"`
	Properties *struct {
		Desired map[string]any `json:"desired"`
	} `json:"properties"`
}

// TwinChange describes a change for twin-change events and desired-property
// notifications to a connected device.
type TwinChange struct {
	Hub, DeviceID, ModuleID string
	// Desired is the desired patch (with $version) when desired properties
	// changed; nil otherwise.
	Desired map[string]any
	// Reported is the reported patch when the device reported.
	Reported map[string]any
	// Tags is the tags patch (or, on replace, all tags) when tags changed.
	Tags    map[string]any
	Version int64
	// Replace is true for a PUT of the twin (replaceTwin), false for a PATCH.
	Replace bool
}

// OnTwinChange registers a hook run after every committed twin change.
func (s *Service) OnTwinChange(f func(ctx context.Context, c TwinChange)) {
	s.twinHooks = append(s.twinHooks, f)
}

func (s *Service) notify(ctx context.Context, c TwinChange) {
	for _, f := range s.twinHooks {
		f(ctx, c)
	}
}

// GetTwin returns a twin.
func (s *Service) GetTwin(ctx context.Context, hub, deviceID, moduleID string) (Twin, error) {
	d, err := s.devices.Get(ctx, hub, deviceID, moduleID)
	if errors.Is(err, store.ErrNotFound) {
		return Twin{}, errorf(http.StatusNotFound, notFoundCode(moduleID), "%s not found.", describe(deviceID, moduleID))
	}
	if err != nil {
		return Twin{}, fmt.Errorf("registry: get twin: %w", err)
	}
	return s.renderTwin(d), nil
}

// UpdateTwin patches tags and desired properties (PATCH, replace=false) or
// replaces them (PUT, replace=true).
func (s *Service) UpdateTwin(ctx context.Context, hub, deviceID, moduleID string, patch TwinPatch, ifMatch string, replace bool) (Twin, error) {
	var change TwinChange
	d, err := s.devices.Update(ctx, hub, deviceID, moduleID, func(d *store.Device) error {
		if err := checkETag(ifMatch, d.TwinETag, deviceID, moduleID); err != nil {
			return err
		}
		t := decodeTwin(d.Twin)
		now := s.now()
		if replace {
			if patch.Tags != nil {
				t.Tags = patch.Tags
			}
		} else if patch.Tags != nil {
			mergePatch(t.Tags, patch.Tags)
		}
		change = TwinChange{Hub: hub, DeviceID: deviceID, ModuleID: moduleID, Replace: replace, Tags: patch.Tags}
		if patch.Properties != nil && patch.Properties.Desired != nil {
			desired := stripMeta(patch.Properties.Desired)
			if replace {
				t.Desired = desired
			} else {
				mergePatch(t.Desired, desired)
			}
			t.DesiredV++
			t.DesiredAt = now
			desired["$version"] = t.DesiredV
			change.Desired = desired
		}
		t.Version++
		change.Version = t.Version
		d.Twin = t.encode()
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return Twin{}, errorf(http.StatusNotFound, notFoundCode(moduleID), "%s not found.", describe(deviceID, moduleID))
	}
	if err != nil {
		return Twin{}, err
	}
	s.notify(ctx, change)
	return s.renderTwin(d), nil
}

// ReportProperties applies a device's reported-properties patch and returns
// the new reported version.
func (s *Service) ReportProperties(ctx context.Context, hub, deviceID, moduleID string, patch map[string]any) (int64, error) {
	var version int64
	var change TwinChange
	_, err := s.devices.Update(ctx, hub, deviceID, moduleID, func(d *store.Device) error {
		t := decodeTwin(d.Twin)
		reported := stripMeta(patch)
		mergePatch(t.Reported, reported)
		t.ReportedV++
		t.ReportedAt = s.now()
		t.Version++
		version = t.ReportedV
		reported["$version"] = t.ReportedV
		change = TwinChange{Hub: hub, DeviceID: deviceID, ModuleID: moduleID, Reported: reported, Version: t.Version}
		d.Twin = t.encode()
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return 0, errorf(http.StatusNotFound, notFoundCode(moduleID), "%s not found.", describe(deviceID, moduleID))
	}
	if err != nil {
		return 0, err
	}
	s.notify(ctx, change)
	return version, nil
}

// DeviceTwin is the twin document a device gets on $iothub/twin/GET.
func (s *Service) DeviceTwin(ctx context.Context, hub, deviceID, moduleID string) (map[string]any, error) {
	t, err := s.GetTwin(ctx, hub, deviceID, moduleID)
	if err != nil {
		return nil, err
	}
	return map[string]any{"desired": t.Properties.Desired, "reported": t.Properties.Reported}, nil
}

// stripMeta drops $-members a client may send back ($metadata, $version).
func stripMeta(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if strings.HasPrefix(k, "$") {
			continue
		}
		out[k] = v
	}
	return out
}

func (s *Service) renderTwin(d store.Device) Twin {
	id := s.render(d)
	t := decodeTwin(d.Twin)
	desired := copyMap(t.Desired)
	desired["$metadata"] = map[string]any{"$lastUpdated": formatTime(t.DesiredAt), "$lastUpdatedVersion": t.DesiredV}
	desired["$version"] = t.DesiredV
	reported := copyMap(t.Reported)
	reported["$metadata"] = map[string]any{"$lastUpdated": formatTime(t.ReportedAt)}
	reported["$version"] = t.ReportedV
	tw := Twin{
		DeviceID: d.DeviceID, ModuleID: d.ModuleID, ETag: d.TwinETag, DeviceETag: d.ETag,
		Status: id.Status, StatusUpdateTime: id.StatusUpdatedTime, ConnectionState: id.ConnectionState,
		LastActivityTime: id.LastActivityTime, CloudToDeviceMessageCount: id.CloudToDeviceMessageCount,
		AuthenticationType: id.Authentication.Type, Version: t.Version, Tags: t.Tags,
		Properties: TwinProperties{Desired: desired, Reported: reported}, Capabilities: id.Capabilities,
	}
	if id.Authentication.X509Thumbprint != nil {
		tw.X509Thumbprint = *id.Authentication.X509Thumbprint
	}
	return tw
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m)+2)
	for k, v := range m {
		out[k] = v
	}
	return out
}
