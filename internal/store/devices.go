package store

import (
	"context"
	"encoding/json"
	"time"
)

// Device is one identity in a hub's device registry: a device, or a module
// of a device (ModuleID set). The registry owns the shape of Identity and
// Twin; the store keeps them opaque beside the columns it filters on.
type Device struct {
	// Hub is the hub's name, lower case (hub names are unique in an
	// installation, as IoT Hub host names are globally).
	Hub      string
	DeviceID string
	// ModuleID is empty for a device.
	ModuleID string
	// Enabled mirrors the identity's status, for registry statistics.
	Enabled bool
	// Identity is the device or module identity JSON (authentication,
	// status, capabilities, generationId, ...).
	Identity json.RawMessage
	// Twin is the twin JSON (tags, desired and reported properties with
	// their versions and metadata).
	Twin json.RawMessage
	// ETag is the identity's etag and TwinETag the twin's; backends set
	// both: ETag changes when Identity changes, TwinETag when Twin changes.
	ETag      string
	TwinETag  string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// DeviceFilter selects registry entries for List.
type DeviceFilter struct {
	Hub string
	// DeviceID, when set, selects that device's modules (Modules must be
	// true) or that device alone.
	DeviceID string
	// Modules selects modules instead of devices.
	Modules bool
	// After continues a listing: only entries whose (DeviceID, ModuleID)
	// sorts after After (a DeviceID) and AfterModule.
	After       string
	AfterModule string
	Limit       int
}

// DeviceCounts are registry statistics.
type DeviceCounts struct {
	Total, Enabled, Disabled int64
}

// Devices stores device registries. Device ids are case-sensitive, as in IoT Hub.
type Devices interface {
	// Create adds an entry; ErrAlreadyExists when the (hub, device, module)
	// exists, ErrNotFound when creating a module of a missing device.
	Create(ctx context.Context, d Device) (Device, error)
	// Get returns ErrNotFound when absent.
	Get(ctx context.Context, hub, deviceID, moduleID string) (Device, error)
	// Update changes an entry atomically (Hub, DeviceID and ModuleID are
	// fixed); ErrNotFound when absent. update must not call the Store.
	Update(ctx context.Context, hub, deviceID, moduleID string, update func(d *Device) error) (Device, error)
	// Delete removes an entry — a device with its modules. ifMatch, when
	// neither empty nor "*", must equal the stored ETag
	// (ErrPreconditionFailed). ErrNotFound when absent.
	Delete(ctx context.Context, hub, deviceID, moduleID, ifMatch string) error
	// List returns entries ordered by (DeviceID, ModuleID) bytewise.
	List(ctx context.Context, filter DeviceFilter) ([]Device, error)
	// Count returns a hub's device statistics (devices, not modules).
	Count(ctx context.Context, hub string) (DeviceCounts, error)
	// DeleteHub removes a hub's whole registry.
	DeleteHub(ctx context.Context, hub string) error
	// PutMany creates or replaces many entries in one transaction (bulk
	// import): each entry's update receives the stored entry (nil when
	// absent) and returns the entry to store — nil to delete it (with its
	// modules) — or an error that is recorded for that entry alone (the
	// others still apply). It returns one error (or nil) per input, in order.
	PutMany(ctx context.Context, hub string, keys []DeviceKey, update func(i int, current *Device) (*Device, error)) ([]error, error)
	// AfterBulkLoad brings the registry's storage up to date after many
	// entries changed at once (a bulk import): the query planner's
	// statistics and, where the engine keeps them, visibility and hint
	// bits — what autovacuum would do later, or never where it is off.
	// Reads and writes go on meanwhile; it only costs time.
	AfterBulkLoad(ctx context.Context) error
}

// DeviceKey names a registry entry within a hub.
type DeviceKey struct {
	DeviceID, ModuleID string
}
