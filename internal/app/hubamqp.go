package app

import (
	"context"

	"github.com/outpost-iot/outpost/internal/amqp"
	"github.com/outpost-iot/outpost/internal/hub/devicemqtt"
	"github.com/outpost-iot/outpost/internal/hub/hubamqp"
	"github.com/outpost-iot/outpost/internal/hub/mqtt"
	"github.com/outpost-iot/outpost/internal/hub/serviceapi"
)

// buildHubAMQP builds the IoT hub's AMQP handler (azure-iothub's
// cloud-to-device sender, feedback and file notification receivers;
// azure-iot-device-amqp's telemetry and cloud-to-device links) over the hub
// plane. Call it after buildHub.
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
	return hubamqp.New(hubamqp.Config{
		Hubs: a.hub.hubs, Registry: reg, Devices: a.hub.devices, C2D: a.hub.c2d,
		Telemetry: sessions.Publisher(), Files: a.hub.files,
		Service:  serviceapi.ServiceAuth{Bearer: iotHubBearer{a.validator}, Authz: dataAuthorizer{a.rbac}},
		Presence: amqpDevicePresence{sessions},
		C2DSent: func(hub, deviceID, moduleID string) {
			sessions.NotifyC2D(mqtt.DeviceKey{Hub: hub, DeviceID: deviceID, ModuleID: moduleID})
		},
		Log: a.log.With("component", "hub-amqp"),
	})
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
