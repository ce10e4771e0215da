package routetest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/routing/query"
	"github.com/outpost-iot/outpost/internal/store"
)

// Getter reads stored resources; store.Resources implements it.
type Getter interface {
	Get(ctx context.Context, id string) (store.Resource, error)
}

// Routes is the Microsoft.Devices/IotHubs/routing type: it stores nothing
// and only answers the two test actions on routing/routes.
type Routes struct {
	resources  Getter
	apiVersion []string
}

var (
	_ arm.ResourceType = (*Routes)(nil)
	_ arm.ActionType   = (*Routes)(nil)
)

// New builds the type; apiVersions are the IotHubs type's.
func New(resources Getter, apiVersions []string) *Routes {
	return &Routes{resources: resources, apiVersion: apiVersions}
}

// Info implements arm.ResourceType.
func (r *Routes) Info() arm.TypeInfo {
	return arm.TypeInfo{
		Namespace: "Microsoft.Devices", Type: "IotHubs/routing", APIVersions: r.apiVersion,
		Actions: []string{"$testall", "$testnew"}, DetachedActions: []string{"$testall", "$testnew"},
	}
}

// Prepare implements arm.ResourceType: nothing can be PUT here.
func (r *Routes) Prepare(context.Context, arm.PutRequest) (arm.Document, error) {
	return nil, arm.Errorf(http.StatusMethodNotAllowed, "HttpMethodNotSupported",
		"routing/routes only answers POST $testall and $testnew; change routes with a PUT of the hub's properties.routing.")
}

// Provision implements arm.ResourceType.
func (r *Routes) Provision(_ context.Context, _ arm.ResourceID, doc arm.Document) (arm.Document, error) {
	return doc, nil
}

// Deprovision implements arm.ResourceType.
func (r *Routes) Deprovision(context.Context, store.Resource) error { return nil }

// routingMessage is RoutingMessage of the test APIs.
type routingMessage struct {
	Body             string            `json:"body"`
	AppProperties    map[string]string `json:"appProperties"`
	SystemProperties map[string]string `json:"systemProperties"`
}

type routeProperties struct {
	Name          string   `json:"name"`
	Source        string   `json:"source"`
	Condition     string   `json:"condition"`
	EndpointNames []string `json:"endpointNames"`
	IsEnabled     bool     `json:"isEnabled"`
}

func (m routingMessage) data(twin json.RawMessage) *query.MessageData {
	sys := map[string]string{}
	for k, v := range m.SystemProperties {
		sys[strings.TrimPrefix(k, "$")] = v
	}
	d := &query.MessageData{Properties: m.AppProperties, SystemProperties: sys, Payload: []byte(m.Body)}
	if len(twin) > 0 && string(twin) != "null" {
		d.TwinJSON = twin
	}
	return d
}

// Action implements arm.ActionType.
func (r *Routes) Action(ctx context.Context, res store.Resource, action string, body json.RawMessage) (any, error) {
	id, err := arm.ParseResourceID(res.ID)
	if err != nil {
		return nil, err
	}
	if id.Name() != "routes" && !strings.EqualFold(id.Name(), "routes") {
		return nil, arm.Errorf(http.StatusNotFound, "NotFound", "Route tests live at {hub}/routing/routes/$testall and $testnew.")
	}
	switch strings.ToLower(action) {
	case "$testall":
		var in struct {
			RoutingSource string          `json:"routingSource"`
			Message       routingMessage  `json:"message"`
			Twin          json.RawMessage `json:"twin"`
		}
		if err := json.Unmarshal(body, &in); err != nil {
			return nil, arm.Errorf(http.StatusBadRequest, "InvalidRequestContent", "The body is not a TestAllRoutesInput: %v", err)
		}
		if in.RoutingSource == "" {
			in.RoutingSource = "DeviceMessages"
		}
		routes, err := r.hubRoutes(ctx, id)
		if err != nil {
			return nil, err
		}
		matched := []any{}
		msg := in.Message.data(in.Twin)
		for _, rt := range routes {
			if !rt.IsEnabled || !strings.EqualFold(rt.Source, in.RoutingSource) {
				continue
			}
			c, err := query.Compile(condition(rt.Condition))
			if err != nil {
				continue
			}
			if c.EvalMessage(msg) == query.True {
				matched = append(matched, map[string]any{"properties": rt})
			}
		}
		return map[string]any{"routes": matched}, nil
	case "$testnew":
		var in struct {
			Message routingMessage   `json:"message"`
			Route   *routeProperties `json:"route"`
			Twin    json.RawMessage  `json:"twin"`
		}
		if err := json.Unmarshal(body, &in); err != nil || in.Route == nil {
			return nil, arm.Errorf(http.StatusBadRequest, "InvalidRequestContent", "The body is not a TestRouteInput: 'route' (RouteProperties) is required.")
		}
		c, err := query.Compile(condition(in.Route.Condition))
		if err != nil {
			return map[string]any{"result": "undefined", "details": map[string]any{"compilationErrors": compilationErrors(err)}}, nil
		}
		return map[string]any{"result": strings.ToLower(c.EvalMessage(in.Message.data(in.Twin)).String()),
			"details": map[string]any{"compilationErrors": []any{}}}, nil
	}
	return nil, arm.Errorf(http.StatusNotFound, "NotFound", "Unknown route test '%s'.", action)
}

func condition(c string) string {
	if strings.TrimSpace(c) == "" {
		return "true"
	}
	return c
}

// hubRoutes reads the stored hub's routes.
func (r *Routes) hubRoutes(ctx context.Context, routesID arm.ResourceID) ([]routeProperties, error) {
	hubID := routesID
	hubID.Types = hubID.Types[:1]
	hubID.Names = hubID.Names[:1]
	res, err := r.resources.Get(ctx, hubID.String())
	if errors.Is(err, store.ErrNotFound) {
		return nil, arm.Errorf(http.StatusNotFound, "ResourceNotFound", "The IoT hub '%s' was not found.", hubID.Name())
	}
	if err != nil {
		return nil, err
	}
	var doc struct {
		Properties struct {
			Routing struct {
				Routes []routeProperties `json:"routes"`
			} `json:"routing"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(res.Body, &doc); err != nil {
		return nil, err
	}
	return doc.Properties.Routing.Routes, nil
}

// compilationErrors renders query errors as IoT Hub's RouteCompilationError.
func compilationErrors(err error) []any {
	var list query.ErrorList
	if !errors.As(err, &list) {
		return []any{map[string]any{"message": err.Error(), "severity": "error"}}
	}
	out := []any{}
	for _, e := range list {
		out = append(out, map[string]any{
			"message": e.Error(), "severity": "error",
			"location": map[string]any{
				"start": map[string]int{"line": e.Start.Line, "column": e.Start.Column},
				"end":   map[string]int{"line": e.End.Line, "column": e.End.Column},
			},
		})
	}
	return out
}
