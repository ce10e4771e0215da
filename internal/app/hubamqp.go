package app

import (
	"context"
	"fmt"

	"github.com/outpost-iot/outpost/internal/amqp"
	"github.com/outpost-iot/outpost/internal/hub/devicemqtt"
	"github.com/outpost-iot/outpost/internal/hub/hubamqp"
	"github.com/outpost-iot/outpost/internal/hub/mqtt"
	"github.com/outpost-iot/outpost/internal/hub/serviceapi"
)

// buildHubAMQP builds the IoT hub's AMQP handler (azure-iothub's
// cloud-to-device sender, feedback and file notification receivers;
// azure-iot-device-amqp's telemetry, cloud-to-device, twin and method
// links) over the hub plane, and hooks it into the registry (desired
// property updates) and the direct method path. Call it once, after
// buildHub.
func (a *App) buildHubAMQP() (amqp.Handler, error) {
	reg := a.hub.registry
	// Feedback records name the device's generation; messages sent
	// without one (Outpost's REST send) look it up when settled.
	a.hub.c2d.SetGenerationLookup(func(ctx context.Context, hub, deviceID, moduleID string) string {
		id, ok, err := reg.Lookup(ctx, hub, deviceID, moduleID)
		if err != nil || !ok {
			return ""
		}
		return id.GenerationID
	})
	a.hub.c2d.SetLogger(a.log.With("component", "c2d"))
	sessions := a.hub.sessions
	h, err := hubamqp.New(hubamqp.Config{
		Hubs: a.hub.hubs, Registry: reg, Devices: a.hub.devices, C2D: a.hub.c2d,
		Telemetry: sessions.Publisher(), Files: a.hub.files,
		Service:  serviceapi.ServiceAuth{Bearer: iotHubBearer{a.validator}, Authz: dataAuthorizer{a.rbac}},
		Presence: amqpDevicePresence{sessions},
		C2DSent: func(hub, deviceID, moduleID string) {
			sessions.NotifyC2D(mqtt.DeviceKey{Hub: hub, DeviceID: deviceID, ModuleID: moduleID})
		},
		Admit:    (&amqpAdmission{mqtt: a.hub.mqtt, max: a.hub.maxConns}).admit,
		Throttle: a.hub.limits,
		Log:      a.log.With("component", "hub-amqp"),
	})
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	// Desired-property patches and direct methods reach AMQP devices
	// through the device sessions, which also relay them to the node a
	// device is connected to.
	sessions.AddDesiredTransport(h)
	sessions.AddMethodTransport(h)
	return h, nil
}

// amqpDevicePresence reports AMQP device connections as MQTT ones are
// reported: connection state and the routing connection events.
type amqpDevicePresence struct{ sessions *devicemqtt.Hub }

func (p amqpDevicePresence) DeviceConnected(ctx context.Context, hub, deviceID, moduleID string) {
	p.sessions.Connected(ctx, mqtt.Identity{Hub: hub, DeviceID: deviceID, ModuleID: moduleID})
}

func (p amqpDevicePresence) DeviceDisconnected(ctx context.Context, hub, deviceID, moduleID string) {
	p.sessions.Disconnected(ctx, mqtt.Identity{Hub: hub, DeviceID: deviceID, ModuleID: moduleID})
}
