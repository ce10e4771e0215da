package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/store"
)

// Presence reports live connection state, which is not stored with the
// identity (it would change the etag on every connect).
type Presence interface {
	ConnectionState(hub, deviceID, moduleID string) (connected bool, since time.Time, lastActivity time.Time)
}

type noPresence struct{}

func (noPresence) ConnectionState(string, string, string) (bool, time.Time, time.Time) {
	return false, time.Time{}, time.Time{}
}

// Service is the registry of every hub.
type Service struct {
	devices        store.Devices
	presence       Presence
	now            func() time.Time
	twinHooks      []func(ctx context.Context, c TwinChange)
	lifecycleHooks []func(ctx context.Context, e Lifecycle)
}

// Lifecycle is a device or module being created or deleted.
type Lifecycle struct {
	Hub, DeviceID, ModuleID string
	// Created is true for createDeviceIdentity, false for deleteDeviceIdentity.
	Created bool
	// Twin is the entry's twin at that moment.
	Twin Twin
}

// OnLifecycle registers a hook run after every create and delete.
func (s *Service) OnLifecycle(f func(ctx context.Context, e Lifecycle)) {
	s.lifecycleHooks = append(s.lifecycleHooks, f)
}

func (s *Service) lifecycle(ctx context.Context, e Lifecycle) {
	for _, f := range s.lifecycleHooks {
		f(ctx, e)
	}
}

// New builds a registry service; presence may be nil.
func New(devices store.Devices, presence Presence, now func() time.Time) *Service {
	if presence == nil {
		presence = noPresence{}
	}
	return &Service{devices: devices, presence: presence, now: now}
}

// Device ids: up to 128 characters of ASCII letters, digits and
// - . % _ * ? ! ( ) , : = @ $ ' (IoT Hub's rule).
var deviceIDPattern = regexp.MustCompile(`^[A-Za-z0-9\-.%_*?!(),:=@$']{1,128}$`)

func validID(kind, id string) error {
	if !deviceIDPattern.MatchString(id) {
		return errorf(http.StatusBadRequest, "ArgumentInvalid",
			"The %s id '%s' is invalid: use 1-128 ASCII letters, digits or - . %% _ * ? ! ( ) , : = @ $ '.", kind, id)
	}
	return nil
}

// stored is what the store keeps in Identity (the etag and live state are
// added when rendering).
type stored struct {
	Identity
	StatusUpdated time.Time `json:"statusUpdated"`
}

// PutIdentity creates or updates a device (moduleID "") or module. ifMatch
// is the If-Match header ("", "*" or an etag).
func (s *Service) PutIdentity(ctx context.Context, hub, deviceID, moduleID string, in Identity, ifMatch string) (Identity, bool, error) {
	if err := validID("device", deviceID); err != nil {
		return Identity{}, false, err
	}
	if moduleID != "" {
		if err := validID("module", moduleID); err != nil {
			return Identity{}, false, err
		}
	}
	if in.DeviceID != "" && in.DeviceID != deviceID {
		return Identity{}, false, errorf(http.StatusBadRequest, "ArgumentInvalid", "The body's deviceId '%s' does not match '%s' in the path.", in.DeviceID, deviceID)
	}
	if in.ModuleID != "" && in.ModuleID != moduleID {
		return Identity{}, false, errorf(http.StatusBadRequest, "ArgumentInvalid", "The body's moduleId '%s' does not match '%s' in the path.", in.ModuleID, moduleID)
	}
	if err := normalizeAuth(&in.Authentication); err != nil {
		return Identity{}, false, err
	}
	switch strings.ToLower(in.Status) {
	case "", "enabled":
		in.Status = "enabled"
	case "disabled":
		in.Status = "disabled"
	default:
		return Identity{}, false, errorf(http.StatusBadRequest, "ArgumentInvalid", "status '%s' must be enabled or disabled.", in.Status)
	}
	now := s.now()
	var err error
	if ifMatch != "" || moduleID != "" {
		// A create-or-update, or a module (whose device must exist): look first.
		_, err = s.devices.Get(ctx, hub, deviceID, moduleID)
	} else {
		// A PUT without If-Match is a create: skip the read, the batch checks.
		err = store.ErrNotFound
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		if ifMatch != "" && ifMatch != "*" {
			return Identity{}, false, errorf(http.StatusNotFound, notFoundCode(moduleID), "%s not found; an If-Match etag can only update an existing one.", describe(deviceID, moduleID))
		}
		st := stored{Identity: in, StatusUpdated: now}
		st.DeviceID, st.ModuleID, st.GenerationID = deviceID, moduleID, newGenerationID()
		st.ETag = ""
		body, _ := json.Marshal(st)
		d, err := s.devices.Create(ctx, store.Device{Hub: hub, DeviceID: deviceID, ModuleID: moduleID,
			Enabled: in.Status == "enabled", Identity: body, Twin: twinDoc{}.encode()})
		if errors.Is(err, store.ErrAlreadyExists) {
			return Identity{}, false, errorf(http.StatusConflict, alreadyExistsCode(moduleID),
				"%s already exists. To update it, send If-Match: \"*\" or its etag.", describe(deviceID, moduleID))
		}
		if errors.Is(err, store.ErrNotFound) {
			return Identity{}, false, errorf(http.StatusNotFound, "DeviceNotFound", "Device %s not found; create the device before its modules.", deviceID)
		}
		if err != nil {
			return Identity{}, false, fmt.Errorf("registry: create: %w", err)
		}
		s.lifecycle(ctx, Lifecycle{Hub: hub, DeviceID: deviceID, ModuleID: moduleID, Created: true, Twin: s.renderTwin(d)})
		return s.render(d), true, nil
	case err != nil:
		return Identity{}, false, fmt.Errorf("registry: get: %w", err)
	case strings.TrimSpace(ifMatch) == "":
		// IoT Hub treats a PUT without If-Match as a create; updates send
		// If-Match ("*" or the etag), as the SDKs' update does.
		return Identity{}, false, errorf(http.StatusConflict, alreadyExistsCode(moduleID),
			"%s already exists. To update it, send If-Match: \"*\" or its etag.", describe(deviceID, moduleID))
	}
	d, err := s.devices.Update(ctx, hub, deviceID, moduleID, func(d *store.Device) error {
		if err := checkETag(ifMatch, d.ETag, deviceID, moduleID); err != nil {
			return err
		}
		var old stored
		_ = json.Unmarshal(d.Identity, &old)
		st := stored{Identity: in, StatusUpdated: old.StatusUpdated}
		st.DeviceID, st.ModuleID, st.GenerationID, st.ETag = deviceID, moduleID, old.GenerationID, ""
		if old.Status != in.Status {
			st.StatusUpdated = now
		}
		body, _ := json.Marshal(st)
		d.Identity, d.Enabled = body, in.Status == "enabled"
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return s.PutIdentity(ctx, hub, deviceID, moduleID, in, ifMatch) // deleted meanwhile: create
	}
	if err != nil {
		return Identity{}, false, err
	}
	return s.render(d), false, nil
}

// normalizeAuth fills generated keys and checks the mechanism.
func normalizeAuth(a *Authentication) error {
	switch strings.ToLower(a.Type) {
	case "", "sas":
		a.Type = "sas"
		if a.SymmetricKey == nil {
			a.SymmetricKey = &SymmetricKey{}
		}
		if a.SymmetricKey.PrimaryKey == "" {
			a.SymmetricKey.PrimaryKey = newKey()
		}
		if a.SymmetricKey.SecondaryKey == "" {
			a.SymmetricKey.SecondaryKey = newKey()
		}
		for _, k := range []string{a.SymmetricKey.PrimaryKey, a.SymmetricKey.SecondaryKey} {
			if !validKey(k) {
				return errorf(http.StatusBadRequest, "ArgumentInvalid", "The symmetric key must be base64 of 16 to 64 bytes.")
			}
		}
		a.X509Thumbprint = nil
	case "selfsigned":
		a.Type = "selfSigned"
		if a.X509Thumbprint == nil || a.X509Thumbprint.PrimaryThumbprint == nil || *a.X509Thumbprint.PrimaryThumbprint == "" {
			return errorf(http.StatusBadRequest, "ArgumentInvalid", "selfSigned authentication needs x509Thumbprint.primaryThumbprint (the certificate's SHA-1 or SHA-256 in hex).")
		}
		a.SymmetricKey = nil
	case "certificateauthority":
		a.Type, a.SymmetricKey, a.X509Thumbprint = "certificateAuthority", nil, nil
	case "none":
		a.Type, a.SymmetricKey, a.X509Thumbprint = "none", nil, nil
	default:
		return errorf(http.StatusBadRequest, "ArgumentInvalid", "authentication.type '%s' must be sas, selfSigned, certificateAuthority or none.", a.Type)
	}
	return nil
}

func validKey(k string) bool {
	b, err := decodeB64(k)
	return err == nil && len(b) >= 16 && len(b) <= 64
}

func checkETag(ifMatch, etag, deviceID, moduleID string) error {
	ifMatch = strings.Trim(strings.TrimPrefix(strings.TrimSpace(ifMatch), "W/"), `"`)
	if ifMatch == "" || ifMatch == "*" || ifMatch == etag {
		return nil
	}
	return errorf(http.StatusPreconditionFailed, "PreconditionFailed",
		"The If-Match etag '%s' does not match the current etag of %s; GET it and retry with its etag.", ifMatch, describe(deviceID, moduleID))
}

func describe(deviceID, moduleID string) string {
	if moduleID != "" {
		return "module " + moduleID + " of device " + deviceID
	}
	return "device " + deviceID
}

func notFoundCode(moduleID string) string {
	if moduleID != "" {
		return "ModuleNotFound"
	}
	return "DeviceNotFound"
}

func alreadyExistsCode(moduleID string) string {
	if moduleID != "" {
		return "ModuleAlreadyExistsOnDevice"
	}
	return "DeviceAlreadyExists"
}

// GetIdentity returns a device or module.
func (s *Service) GetIdentity(ctx context.Context, hub, deviceID, moduleID string) (Identity, error) {
	d, err := s.devices.Get(ctx, hub, deviceID, moduleID)
	if errors.Is(err, store.ErrNotFound) {
		return Identity{}, errorf(http.StatusNotFound, notFoundCode(moduleID), "%s not found.", describe(deviceID, moduleID))
	}
	if err != nil {
		return Identity{}, fmt.Errorf("registry: get: %w", err)
	}
	return s.render(d), nil
}

// Lookup returns the stored entry (for device authentication).
func (s *Service) Lookup(ctx context.Context, hub, deviceID, moduleID string) (Identity, bool, error) {
	d, err := s.devices.Get(ctx, hub, deviceID, moduleID)
	if errors.Is(err, store.ErrNotFound) {
		return Identity{}, false, nil
	}
	if err != nil {
		return Identity{}, false, fmt.Errorf("registry: get: %w", err)
	}
	return s.render(d), true, nil
}

// DeleteIdentity removes a device (with its modules) or a module.
func (s *Service) DeleteIdentity(ctx context.Context, hub, deviceID, moduleID, ifMatch string) error {
	ifMatch = strings.Trim(strings.TrimPrefix(strings.TrimSpace(ifMatch), "W/"), `"`)
	before, getErr := s.devices.Get(ctx, hub, deviceID, moduleID)
	err := s.devices.Delete(ctx, hub, deviceID, moduleID, ifMatch)
	if err == nil && getErr == nil {
		defer s.lifecycle(ctx, Lifecycle{Hub: hub, DeviceID: deviceID, ModuleID: moduleID, Created: false, Twin: s.renderTwin(before)})
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errorf(http.StatusNotFound, notFoundCode(moduleID), "%s not found.", describe(deviceID, moduleID))
	case errors.Is(err, store.ErrPreconditionFailed):
		return errorf(http.StatusPreconditionFailed, "PreconditionFailed", "The If-Match etag does not match the current etag of %s.", describe(deviceID, moduleID))
	case err != nil:
		return fmt.Errorf("registry: delete: %w", err)
	}
	return nil
}

// ListDevices lists up to top devices (1..1000).
func (s *Service) ListDevices(ctx context.Context, hub string, top int) ([]Identity, error) {
	if top <= 0 || top > 1000 {
		top = 1000
	}
	ds, err := s.devices.List(ctx, store.DeviceFilter{Hub: hub, Limit: top})
	if err != nil {
		return nil, fmt.Errorf("registry: list: %w", err)
	}
	out := make([]Identity, 0, len(ds))
	for _, d := range ds {
		out = append(out, s.render(d))
	}
	return out, nil
}

// ListModules lists a device's modules.
func (s *Service) ListModules(ctx context.Context, hub, deviceID string) ([]Identity, error) {
	if _, err := s.GetIdentity(ctx, hub, deviceID, ""); err != nil {
		return nil, err
	}
	ds, err := s.devices.List(ctx, store.DeviceFilter{Hub: hub, DeviceID: deviceID, Modules: true})
	if err != nil {
		return nil, fmt.Errorf("registry: list modules: %w", err)
	}
	out := make([]Identity, 0, len(ds))
	for _, d := range ds {
		out = append(out, s.render(d))
	}
	return out, nil
}

// Statistics are the registry counts.
type Statistics struct {
	TotalDeviceCount    int64 `json:"totalDeviceCount"`
	EnabledDeviceCount  int64 `json:"enabledDeviceCount"`
	DisabledDeviceCount int64 `json:"disabledDeviceCount"`
}

// Statistics counts a hub's devices.
func (s *Service) Statistics(ctx context.Context, hub string) (Statistics, error) {
	c, err := s.devices.Count(ctx, hub)
	if err != nil {
		return Statistics{}, fmt.Errorf("registry: count: %w", err)
	}
	return Statistics{TotalDeviceCount: c.Total, EnabledDeviceCount: c.Enabled, DisabledDeviceCount: c.Disabled}, nil
}

// DeleteHub removes a hub's registry.
func (s *Service) DeleteHub(ctx context.Context, hub string) error {
	return s.devices.DeleteHub(ctx, hub)
}

func (s *Service) render(d store.Device) Identity {
	var st stored
	_ = json.Unmarshal(d.Identity, &st)
	id := st.Identity
	id.ETag = d.ETag
	connected, since, last := s.presence.ConnectionState(d.Hub, d.DeviceID, d.ModuleID)
	id.ConnectionState = "Disconnected"
	if connected {
		id.ConnectionState = "Connected"
	}
	id.ConnectionStateUpdatedTime = formatTime(since)
	id.LastActivityTime = formatTime(last)
	id.StatusUpdatedTime = formatTime(st.StatusUpdated)
	return id
}
