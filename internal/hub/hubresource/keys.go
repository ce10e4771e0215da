package hubresource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/store"
)

// IotHubKeys serves POST .../IotHubs/{hub}/IotHubKeys/{keyName}/listkeys
// (GetKeysForKeyName, what `az iot hub policy show` and `az iot hub
// show-connection-string` call). A policy is not a resource of its own: it
// lives in the hub's authorizationPolicies, so this type reads it from
// there and refuses writes.
type IotHubKeys struct {
	resources ResourceGetter
}

// ResourceGetter reads one stored resource; store.Resources implements it.
type ResourceGetter interface {
	Get(ctx context.Context, id string) (store.Resource, error)
}

var (
	_ arm.ResourceType   = (*IotHubKeys)(nil)
	_ arm.ResourceReader = (*IotHubKeys)(nil)
	_ arm.ActionType     = (*IotHubKeys)(nil)
	_ arm.Renderer       = (*IotHubKeys)(nil)
)

// NewIotHubKeys builds the type.
func NewIotHubKeys(resources ResourceGetter) *IotHubKeys {
	return &IotHubKeys{resources: resources}
}

// Info implements arm.ResourceType.
func (k *IotHubKeys) Info() arm.TypeInfo {
	return arm.TypeInfo{
		Namespace: "Microsoft.Devices", Type: "IotHubs/IotHubKeys",
		APIVersions: APIVersions(), Actions: []string{"listkeys"},
	}
}

func errPolicyReadOnly() error {
	return arm.Errorf(http.StatusMethodNotAllowed, "HttpMethodNotSupported",
		"Shared access policies are changed through the hub: PUT the IoT hub with properties.authorizationPolicies (az iot hub policy create/delete).")
}

// Prepare implements arm.ResourceType: policies are not written one by one.
func (k *IotHubKeys) Prepare(context.Context, arm.PutRequest) (arm.Document, error) {
	return nil, errPolicyReadOnly()
}

// Provision implements arm.ResourceType.
func (k *IotHubKeys) Provision(_ context.Context, _ arm.ResourceID, doc arm.Document) (arm.Document, error) {
	return doc, nil
}

// Deprovision implements arm.ResourceType.
func (k *IotHubKeys) Deprovision(context.Context, store.Resource) error { return nil }

// Get implements arm.ResourceReader: the policy, read from its hub.
func (k *IotHubKeys) Get(ctx context.Context, id arm.ResourceID) (store.Resource, error) {
	hub, err := k.resources.Get(ctx, id.ParentID())
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return store.Resource{}, err
		}
		return store.Resource{}, fmt.Errorf("hubresource: get hub: %w", err)
	}
	ps, err := policiesOf(hub)
	if err != nil {
		return store.Resource{}, err
	}
	for _, p := range ps {
		if strings.EqualFold(p.KeyName, id.Name()) {
			body, _ := json.Marshal(p)
			return store.Resource{ID: id.String(), Type: id.FullType(), Subscription: id.Subscription,
				ResourceGroup: id.ResourceGroup, ParentID: hub.ID, Name: p.KeyName, Body: body}, nil
		}
	}
	return store.Resource{}, flat(http.StatusNotFound, "KeyNameNotFound",
		"The IoT hub '%s' has no shared access policy '%s'. List the policies with POST .../listkeys (az iot hub policy list).", hub.Name, id.Name())
}

// Action implements arm.ActionType: listkeys returns the policy with its keys.
func (k *IotHubKeys) Action(_ context.Context, res store.Resource, action string, _ json.RawMessage) (any, error) {
	if !strings.EqualFold(action, "listkeys") {
		return nil, arm.Errorf(http.StatusMethodNotAllowed, "HttpMethodNotSupported", "A shared access policy has no operation '%s'.", action)
	}
	return json.RawMessage(res.Body), nil
}

// Render implements arm.Renderer: a GET of the policy shows no keys.
func (k *IotHubKeys) Render(res store.Resource) json.RawMessage {
	var p Policy
	if err := json.Unmarshal(res.Body, &p); err != nil {
		return res.Body
	}
	b, _ := json.Marshal(map[string]string{"keyName": p.KeyName, "rights": p.Rights})
	return b
}
