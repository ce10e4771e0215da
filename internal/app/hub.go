package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/hub"
	"github.com/outpost-iot/outpost/internal/hub/deviceauth"
	"github.com/outpost-iot/outpost/internal/hub/hubresource"
	"github.com/outpost-iot/outpost/internal/hub/registry"
	"github.com/outpost-iot/outpost/internal/hub/serviceapi"
	"github.com/outpost-iot/outpost/internal/hub/telemetry"
	"github.com/outpost-iot/outpost/internal/identity"
	"github.com/outpost-iot/outpost/internal/identity/rbac"
)

// hubPlane is the IoT hub's runtime: the hub directory, the registry, the
// telemetry streams and the service API.
type hubPlane struct {
	devices   *deviceauth.Authenticator
	hubs      *hub.Directory
	registry  *registry.Service
	telemetry *telemetry.Streams
	service   *serviceapi.Handler
}

func (a *App) buildHub() {
	now := time.Now
	a.hub.hubs = hub.NewDirectory(a.store.Resources(), a.cfg.DNSSuffix, "")
	a.hub.registry = registry.New(a.store.Devices(), nil, now)
	a.hub.telemetry = telemetry.New(a.bus, now)
	a.hub.devices = deviceauth.New(a.hub.hubs, a.hub.registry, now)
	a.hub.service = serviceapi.New(serviceapi.Config{
		Devices: a.hub.devices, Publisher: telemetryPublisher{a.hub.telemetry},
		Hubs: a.hub.hubs, Registry: a.hub.registry,
		Bearer: iotHubBearer{a.validator}, Authz: dataAuthorizer{a.rbac},
		Log: a.log.With("component", "hub-service"), Now: now,
	})
}

// hubRuntime makes the hub runtime follow the IotHubs resources.
type hubRuntime struct{ p *hubPlane }

var _ hubresource.Runtime = hubRuntime{}

func (r hubRuntime) EnsureHub(ctx context.Context, h hubresource.Hub) error {
	if err := r.p.telemetry.EnsureHub(ctx, h.Name, h.RetentionDays); err != nil {
		return err
	}
	r.p.hubs.Invalidate()
	return nil
}

func (r hubRuntime) RemoveHub(ctx context.Context, name string) error {
	name = strings.ToLower(name)
	if err := r.p.registry.DeleteHub(ctx, name); err != nil {
		return fmt.Errorf("app: remove hub registry: %w", err)
	}
	if err := r.p.telemetry.RemoveHub(ctx, name); err != nil {
		return err
	}
	r.p.hubs.Invalidate()
	return nil
}

// telemetryPublisher stamps the connection's system properties and stores
// the message durably.
type telemetryPublisher struct{ streams *telemetry.Streams }

func (p telemetryPublisher) PublishTelemetry(ctx context.Context, id deviceauth.Identity, m telemetry.Message) error {
	if m.System == nil {
		m.System = map[string]string{}
	}
	scope := "device"
	if id.ModuleID != "" {
		scope = "module"
	}
	m.System[telemetry.PropAuthMethod] = `{"scope":"` + scope + `","type":"` + id.AuthMethod + `","issuer":"iothub","acceptingIpFilterRule":null}`
	m.System[telemetry.PropGenerationID] = id.GenerationID
	m.Hub, m.DeviceID, m.ModuleID = id.Hub.Name, id.DeviceID, id.ModuleID
	_, err := p.streams.Publish(ctx, id.Hub.PartitionCount, m)
	return err
}

// iotHubBearer validates bearer tokens for the IoT Hub audience.
type iotHubBearer struct{ v *identity.Validator }

func (b iotHubBearer) ValidateIoTHubToken(ctx context.Context, token string) (string, error) {
	c, err := b.v.Validate(ctx, token, identity.ServiceIoTHub)
	var ve *identity.ValidationError
	if errors.As(err, &ve) {
		return "", errors.New(ve.Reason)
	}
	if err != nil {
		return "", err
	}
	return c.ObjectID, nil
}

// dataAuthorizer answers data-plane RBAC questions.
type dataAuthorizer struct{ e *rbac.Engine }

func (d dataAuthorizer) AuthorizeData(principalID, action, scope string) (bool, string) {
	dec := d.e.Authorize(principalID, action, true, scope)
	return dec.Allowed, dec.Reason
}
