package deploy

import (
	"context"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/arm/deploy/expr"
)

// ExpandInput is a template to evaluate without deploying it: what a
// deployment would send to the resource manager.
type ExpandInput struct {
	Template map[string]any
	// Parameters are values by name (not {"value": …} wrappers).
	Parameters map[string]any
	// Subscription and ResourceGroup place the deployment; ResourceGroup
	// is empty at subscription scope.
	Subscription, ResourceGroup string
	// Location is the group's location, or the deployment's at
	// subscription scope; GroupTags are the group's tags.
	Location  string
	GroupTags map[string]string
	// DeploymentName, TenantID and Mode answer deployment() and tenant().
	DeploymentName, TenantID, Mode string
	Now                            func() time.Time
	// Reference and List answer reference() and list*() for a resource
	// id; nil makes those functions fail.
	Reference func(id string, req expr.ReferenceRequest) (any, error)
	List      func(id string, req expr.ListRequest) (any, error)
}

// ExpandedResource is one resource a template deploys.
type ExpandedResource struct {
	ID         string `json:"id"`
	Type       string `json:"type"`
	Name       string `json:"name"`
	APIVersion string `json:"apiVersion"`
	// DependsOn are the ids of the resources it waits for, explicit and
	// implicit (reference(), list*(), a parent), in template order.
	DependsOn []string `json:"dependsOn,omitempty"`
	// Body is what is PUT: the evaluated resource without the template's
	// own members; for a nested deployment, {"properties": …} as the
	// nested deployment is created.
	Body map[string]any `json:"body"`
}

// Expansion is an evaluated template.
type Expansion struct {
	Resources []ExpandedResource `json:"resources"`
	// Skipped are the ids of resources whose condition is false.
	Skipped []string       `json:"skipped,omitempty"`
	Outputs map[string]any `json:"outputs,omitempty"`
}

// Expand evaluates a template as a deployment would — parameters checked,
// copy loops, conditions, child and extension resources, dependencies
// (cycles refused) — and returns what it would deploy, or the error the
// deployment would fail with.
func Expand(in ExpandInput) (Expansion, error) {
	r := request{Template: in.Template, Parameters: in.Parameters, Mode: in.Mode, Location: in.Location}
	if r.Parameters == nil {
		r.Parameters = map[string]any{}
	}
	if r.Mode == "" {
		r.Mode = "Incremental"
	}
	if err := checkTemplate(r); err != nil {
		return Expansion{}, err
	}
	name := in.DeploymentName
	if name == "" {
		name = "expand"
	}
	ru := newRun(context.Background(), target{sub: in.Subscription, rg: in.ResourceGroup, location: in.Location,
		groupTags: in.GroupTags, name: name, mode: r.Mode}, in.TenantID, nil, r, in.Now)
	if in.Reference != nil {
		ru.fetchReference = func(_ context.Context, id arm.ResourceID, req expr.ReferenceRequest) (any, error) {
			return in.Reference(id.String(), req)
		}
	}
	if in.List != nil {
		ru.fetchList = func(_ context.Context, id arm.ResourceID, req expr.ListRequest) (any, error) {
			return in.List(id.String(), req)
		}
	}
	if err := ru.plan(r); err != nil {
		return Expansion{}, err
	}
	out := Expansion{Skipped: ru.skipped, Outputs: map[string]any{}}
	for _, p := range ru.all {
		body, err := ru.deployedBody(p)
		if err != nil {
			return Expansion{}, err
		}
		er := ExpandedResource{ID: p.id, Type: p.typ, Name: p.name, APIVersion: p.apiVersion, Body: body}
		for _, q := range p.deps {
			er.DependsOn = append(er.DependsOn, q.id)
		}
		out.Resources = append(out.Resources, er)
	}
	outputs, err := ru.outputs(lookup(in.Template, "outputs"))
	if err != nil {
		return Expansion{}, err
	}
	out.Outputs = outputs
	return out, nil
}

// deployedBody is what deploying p would send: its evaluated body, or a
// nested deployment's properties.
func (ru *run) deployedBody(p *planned) (map[string]any, error) {
	if !strings.EqualFold(p.typ, Type) {
		return p.body()
	}
	props, err := p.nestedProperties()
	if err != nil {
		return nil, err
	}
	return map[string]any{"properties": props}, nil
}
