package hubresource

import (
	"context"

	"github.com/outpost-iot/outpost/internal/store"
)

// Hub is what the hub runtime needs to know about a provisioned hub.
type Hub struct {
	// Name is the hub's name as created (compare case-insensitively).
	Name       string
	ResourceID string
	// HostName is {name}.{dnsSuffix}, lower case.
	HostName       string
	PartitionCount int
	RetentionDays  int
}

// Runtime is the part of the hub (telemetry streams, device registry,
// endpoints) that follows the ARM resource. Both calls must be idempotent:
// EnsureHub runs after every create and update, and again when an
// interrupted operation resumes; RemoveHub runs when the hub is deleted.
type Runtime interface {
	EnsureHub(ctx context.Context, hub Hub) error
	RemoveHub(ctx context.Context, name string) error
}

// NopRuntime is a Runtime that does nothing: the control plane works on its
// own until the hub runtime is wired in.
type NopRuntime struct{}

// EnsureHub implements Runtime.
func (NopRuntime) EnsureHub(context.Context, Hub) error { return nil }

// RemoveHub implements Runtime.
func (NopRuntime) RemoveHub(context.Context, string) error { return nil }

// DeviceCounter answers registry statistics for GET .../IotHubStats. hub is
// the hub's name in lower case. store.Devices satisfies it.
type DeviceCounter interface {
	Count(ctx context.Context, hub string) (store.DeviceCounts, error)
}

// NoDevices is a DeviceCounter for a hub without a registry: all zeros.
type NoDevices struct{}

// Count implements DeviceCounter.
func (NoDevices) Count(context.Context, string) (store.DeviceCounts, error) {
	return store.DeviceCounts{}, nil
}
