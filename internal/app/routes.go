package app

import (
	"context"
	"net/http"
	"time"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/arm/deploy"
	"github.com/outpost-iot/outpost/internal/hub/hubresource"
	"github.com/outpost-iot/outpost/internal/identity"
	"github.com/outpost-iot/outpost/internal/identity/msi"
	"github.com/outpost-iot/outpost/internal/identity/rbac"
	"github.com/outpost-iot/outpost/internal/routing/query"
	"github.com/outpost-iot/outpost/internal/routing/routetest"
	"github.com/outpost-iot/outpost/internal/server"
	"github.com/outpost-iot/outpost/internal/store"
)

// resourceTypes lists the ARM resource types this build serves. Each
// capability adds its types here.
func (a *App) resourceTypes() []arm.ResourceType {
	now := time.Now
	targets, _ := a.targetTypes()
	return append([]arm.ResourceType{
		msi.NewUserAssignedIdentities(a.msi),
		rbac.NewRoleAssignments(a.rbac, a.directory, a.installation.TenantID, now),
		rbac.NewRoleDefinitions(a.rbac, now),
		a.deploys, deploy.Operations{},
		a.iotHubs(),
		hubresource.NewIotHubKeys(a.store.Resources()),
		routetest.New(a.store.Resources(), hubresource.APIVersions()),
		hubresource.NewCertificates(now),
		hubresource.NewEventHubEndpoints(a.store.Resources()),
		hubresource.NewConsumerGroups(a.store.Resources(), func(ctx context.Context, parent string) ([]store.Resource, error) {
			return a.store.Resources().List(ctx, store.ResourceFilter{ParentID: parent, Type: hubresource.ConsumerGroupType})
		}, now),
	}, targets...)
}

// providerActions are the operations on a provider rather than a resource
// (checkNameAvailability, usages); app.go registers them with the types.
func (a *App) providerActions() []arm.ProviderAction {
	_, targets := a.targetTypes()
	return append(a.iotHubs().ProviderActions(), targets...)
}

// iotHubs is the Microsoft.Devices/IotHubs type (it holds no state, so the
// registry and the provider actions may each build one). The hub runtime
// (hub.go) follows provisioned hubs; hubresource.NopRuntime{} and
// hubresource.NoDevices{} stand in wherever the hub plane is not built.
func (a *App) iotHubs() *hubresource.IotHubs {
	return hubresource.New(hubresource.Config{
		DNSSuffix: a.cfg.DNSSuffix, Identities: a.msi, Resources: a.store.Resources(),
		Runtime: hubRuntime{&a.hub}, Devices: a.store.Devices(),
		FileUpload:      fileUploadChecker{a.hub.files},
		MinBatchSeconds: int64(a.cfg.Hub.RoutingMinBatchFrequency / time.Second),
		CheckCondition:  func(c string) error { _, err := query.Compile(c); return err },
		RoutingHealth: func(hub string) any {
			if h := a.hub.routing.Health(hub); h != nil {
				return h
			}
			return []any{} // no custom endpoints: no router runs

		},
		Jobs: armJobs{a.hub.jobs},
	})
}

// defaultMux serves every host that no host route claims: the resource
// manager, the issuer, the hubs' service API and the portal.
func (a *App) defaultMux() (http.Handler, error) {
	paths := &server.PathRouter{NotFound: http.HandlerFunc(notFound)}
	arm.NewHandler(arm.HandlerConfig{
		Service:       a.arm,
		Authenticator: tokenAuthenticator{validator: a.validator},
		Authorizer:    rbacAuthorizer{engine: a.rbac},
		Log:           a.log.With("component", "arm"),
	}).Mount(paths)
	identity.NewHandler(a.issuer, a.keys, a.directory, a.log.With("component", "issuer")).Mount(paths)
	paths.Handle("outpost", a.outpostAPI())
	a.hub.service.Mount(paths)
	// MQTT over WebSocket, as the device SDKs' MqttWs transports use.
	// AMQP over WebSocket shares the path, told apart by subprotocol.
	paths.Handle("$iothub", a.iotHubWebSocket(a.hub.mqtt.WebSocketHandler()))
	paths.Handle("$servicebus", a.amqp.srv.WebSocketHandler())
	if err := a.mountPortal(paths, paths); err != nil {
		return nil, err
	}
	return paths, nil
}

// notFound answers paths no surface serves, in the ARM envelope since the
// resource manager is the surface most clients probe.
func notFound(w http.ResponseWriter, r *http.Request) {
	arm.WriteError(w, arm.Errorf(http.StatusNotFound, "NotFound",
		"No Outpost API serves '%s %s'. The resource manager lives under /subscriptions, /providers and /tenants.", r.Method, r.URL.Path))
}
