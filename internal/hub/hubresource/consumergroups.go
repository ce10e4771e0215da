package hubresource

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/store"
)

// EventHubEndpoints is the IotHubs/eventHubEndpoints child type: the
// built-in "events" endpoint, read-only and never stored, so its consumer
// groups have a parent.
type EventHubEndpoints struct{ resources ResourceGetter }

// NewEventHubEndpoints builds the type.
func NewEventHubEndpoints(resources ResourceGetter) *EventHubEndpoints {
	return &EventHubEndpoints{resources: resources}
}

// Info implements arm.ResourceType.
func (e *EventHubEndpoints) Info() arm.TypeInfo {
	return arm.TypeInfo{Namespace: "Microsoft.Devices", Type: "IotHubs/eventHubEndpoints", APIVersions: APIVersions()}
}

// Prepare implements arm.ResourceType: the endpoint is configured on the hub.
func (e *EventHubEndpoints) Prepare(context.Context, arm.PutRequest) (arm.Document, error) {
	return nil, arm.Errorf(http.StatusMethodNotAllowed, "HttpMethodNotSupported",
		"The built-in endpoint is configured through the hub's properties.eventHubEndpoints.events.")
}

// Provision implements arm.ResourceType.
func (e *EventHubEndpoints) Provision(_ context.Context, _ arm.ResourceID, doc arm.Document) (arm.Document, error) {
	return doc, nil
}

// Deprovision implements arm.ResourceType.
func (e *EventHubEndpoints) Deprovision(context.Context, store.Resource) error { return nil }

// Get implements arm.ResourceReader: "events" exists for every hub.
func (e *EventHubEndpoints) Get(ctx context.Context, id arm.ResourceID) (store.Resource, error) {
	if !strings.EqualFold(id.Name(), "events") {
		return store.Resource{}, store.ErrNotFound
	}
	if _, err := e.resources.Get(ctx, id.ParentID()); err != nil {
		return store.Resource{}, err
	}
	doc := arm.Document{}
	doc.Set("id", id.String())
	doc.Set("name", "events")
	doc.Set("type", "Microsoft.Devices/IotHubs/eventHubEndpoints")
	return store.Resource{ID: id.String(), Type: "Microsoft.Devices/IotHubs/eventHubEndpoints", Name: "events", Body: doc.Bytes()}, nil
}

// ConsumerGroupType is the ARM type of the built-in endpoint's consumer groups.
const ConsumerGroupType = "Microsoft.Devices/IotHubs/eventHubEndpoints/ConsumerGroups"

// ConsumerGroups is the built-in endpoint's consumer groups; $Default
// always exists.
type ConsumerGroups struct {
	resources ResourceGetter
	list      func(ctx context.Context, parentID string) ([]store.Resource, error)
	now       func() time.Time
}

// NewConsumerGroups builds the type; list lists the stored groups of an endpoint.
func NewConsumerGroups(resources ResourceGetter, list func(ctx context.Context, parentID string) ([]store.Resource, error), now func() time.Time) *ConsumerGroups {
	return &ConsumerGroups{resources: resources, list: list, now: now}
}

// Info implements arm.ResourceType.
func (c *ConsumerGroups) Info() arm.TypeInfo {
	return arm.TypeInfo{Namespace: "Microsoft.Devices", Type: "IotHubs/eventHubEndpoints/ConsumerGroups", APIVersions: APIVersions()}
}

var consumerGroupName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,50}$`)

// Prepare implements arm.ResourceType.
func (c *ConsumerGroups) Prepare(_ context.Context, req arm.PutRequest) (arm.Document, error) {
	name := req.ID.Name()
	if strings.EqualFold(name, "$Default") {
		return nil, flat(http.StatusBadRequest, codeArgumentInvalid, "The $Default consumer group always exists and can't be changed.")
	}
	if !consumerGroupName.MatchString(name) {
		return nil, invalid("The consumer group name '%s' is invalid: use 1-50 letters, digits, '.', '_' or '-'.", name)
	}
	created := c.now().UTC().Format(time.RFC1123)
	if req.Current != nil {
		if doc, err := arm.ParseDocument(req.Current.Body); err == nil {
			var p struct {
				Created string `json:"created"`
			}
			_ = doc.Decode("properties", &p)
			if p.Created != "" {
				created = p.Created
			}
		}
	}
	doc := arm.Document{}
	doc.Set("properties", map[string]any{"created": created, "properties": map[string]string{"name": name}})
	return doc, nil
}

// Provision implements arm.ResourceType.
func (c *ConsumerGroups) Provision(_ context.Context, _ arm.ResourceID, doc arm.Document) (arm.Document, error) {
	return doc, nil
}

// Deprovision implements arm.ResourceType.
func (c *ConsumerGroups) Deprovision(context.Context, store.Resource) error { return nil }

func (c *ConsumerGroups) defaultGroup(id arm.ResourceID) store.Resource {
	doc := arm.Document{}
	doc.Set("id", id.String())
	doc.Set("name", "$Default")
	doc.Set("type", ConsumerGroupType)
	doc.Set("properties", map[string]any{"created": "Mon, 01 Jan 2024 00:00:00 GMT", "properties": map[string]string{"name": "$Default"}})
	return store.Resource{ID: id.String(), Type: ConsumerGroupType, Name: "$Default", Body: doc.Bytes()}
}

// Get implements arm.ResourceReader.
func (c *ConsumerGroups) Get(ctx context.Context, id arm.ResourceID) (store.Resource, error) {
	if strings.EqualFold(id.Name(), "$Default") {
		return c.defaultGroup(id), nil
	}
	return c.resources.Get(ctx, id.String())
}

// List implements arm.CollectionLister: $Default and the stored groups.
func (c *ConsumerGroups) List(ctx context.Context, coll arm.ResourceID, _ url.Values) ([]store.Resource, error) {
	def := coll
	def.Names = append(append([]string{}, coll.Names...), "$Default")
	out := []store.Resource{c.defaultGroup(def)}
	stored, err := c.list(ctx, coll.ParentID())
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	return append(out, stored...), nil
}
