package rbac

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/identity/authz"
	"github.com/outpost-iot/outpost/internal/store"
)

// RoleDefinitions is the roleDefinitions type: built-in roles (synthesised,
// readable at every scope) and stored custom roles.
type RoleDefinitions struct {
	engine *Engine
	now    func() time.Time
}

// NewRoleDefinitions builds the type.
func NewRoleDefinitions(engine *Engine, now func() time.Time) *RoleDefinitions {
	return &RoleDefinitions{engine: engine, now: now}
}

// Info implements arm.ResourceType.
func (t *RoleDefinitions) Info() arm.TypeInfo {
	return arm.TypeInfo{Namespace: "Microsoft.Authorization", Type: "roleDefinitions", APIVersions: authorizationAPIVersions}
}

// render builds the ARM body of a role definition read at scope.
func render(d authz.RoleDefinition, scope string) store.Resource {
	id := d.FullID(subscriptionScope(scope))
	if d.Type == authz.CustomRole && len(d.AssignableScopes) > 0 {
		id = d.FullID(subscriptionScope(d.AssignableScopes[0]))
	}
	doc := arm.Document{}
	doc.Set("id", id)
	doc.Set("name", d.ID)
	doc.Set("type", DefinitionType)
	perms := d.Permissions
	if perms == nil {
		perms = []authz.Permission{}
	}
	doc.Set("properties", map[string]any{
		"roleName": d.Name, "type": d.Type, "description": d.Description,
		"assignableScopes": d.AssignableScopes, "permissions": perms,
		"createdOn": "2015-02-02T21:55:09.8806423Z", "updatedOn": "2024-01-01T00:00:00.0000000Z",
		"createdBy": nil, "updatedBy": nil,
	})
	return store.Resource{ID: id, Type: DefinitionType, Name: d.ID, Body: doc.Bytes()}
}

// Get implements arm.ResourceReader: built-ins at any scope, custom roles
// from the store.
func (t *RoleDefinitions) Get(ctx context.Context, id arm.ResourceID) (store.Resource, error) {
	if d, ok := authz.FindBuiltIn(id.Name()); ok {
		return render(d, scopeOf(id)), nil
	}
	res, err := t.engine.resources.Get(ctx, id.String())
	if err != nil {
		return store.Resource{}, err
	}
	return res, nil
}

var filterRoleName = regexp.MustCompile(`(?i)roleName\s+eq\s+'([^']+)'`)
var filterRoleType = regexp.MustCompile(`(?i)type\s+eq\s+'([^']+)'`)

// List implements arm.CollectionLister: every role usable at the scope,
// filtered by $filter=roleName eq '…' or type eq 'BuiltInRole|CustomRole'.
func (t *RoleDefinitions) List(ctx context.Context, coll arm.ResourceID, q url.Values) ([]store.Resource, error) {
	scope := scopeOf(coll)
	filter := q.Get("$filter")
	name, typ := "", ""
	if m := filterRoleName.FindStringSubmatch(filter); m != nil {
		name = m[1]
	}
	if m := filterRoleType.FindStringSubmatch(filter); m != nil {
		typ = m[1]
	}
	keep := func(d authz.RoleDefinition) bool {
		return (name == "" || strings.EqualFold(d.Name, name)) && (typ == "" || strings.EqualFold(d.Type, typ))
	}
	out := []store.Resource{}
	for _, d := range authz.BuiltInRoles() {
		if keep(d) {
			out = append(out, render(d, scope))
		}
	}
	custom, err := t.engine.resources.List(ctx, store.ResourceFilter{Type: DefinitionType})
	if err != nil {
		return nil, fmt.Errorf("rbac: list role definitions: %w", err)
	}
	for _, r := range custom {
		d, err := decodeDefinition(r)
		if err == nil && keep(d) && d.AssignableAt(scope) {
			out = append(out, r)
		}
	}
	return out, nil
}

// Prepare validates a custom role definition.
func (t *RoleDefinitions) Prepare(ctx context.Context, req arm.PutRequest) (arm.Document, error) {
	if !guidPattern.MatchString(req.ID.Name()) {
		return nil, arm.Errorf(http.StatusBadRequest, "InvalidRoleDefinitionId", "The role definition ID '%s' is not valid; it must be a GUID.", req.ID.Name())
	}
	if _, ok := authz.FindBuiltIn(req.ID.Name()); ok {
		return nil, arm.Errorf(http.StatusBadRequest, "RoleDefinitionUpdateNotAllowed", "Built-in role '%s' can't be changed.", req.ID.Name())
	}
	var p definitionProperties
	if err := req.Body.Decode("properties", &p); err != nil {
		return nil, arm.Errorf(http.StatusBadRequest, "InvalidRequestContent", "The role definition properties are invalid: %v", err)
	}
	if strings.TrimSpace(p.RoleName) == "" || len(p.Permissions) == 0 || len(p.AssignableScopes) == 0 {
		return nil, arm.Errorf(http.StatusBadRequest, "InvalidRoleDefinition", "properties.roleName, permissions and assignableScopes are required.")
	}
	if _, ok := authz.FindBuiltIn(p.RoleName); ok {
		return nil, arm.Errorf(http.StatusConflict, "RoleDefinitionWithSameNameExists", "A role definition named '%s' already exists.", p.RoleName)
	}
	now := t.now().UTC().Format(time.RFC3339Nano)
	p.Type, p.CreatedOn, p.UpdatedOn = authz.CustomRole, now, now
	for i := range p.Permissions {
		for _, l := range []*[]string{&p.Permissions[i].Actions, &p.Permissions[i].NotActions, &p.Permissions[i].DataActions, &p.Permissions[i].NotDataActions} {
			if *l == nil {
				*l = []string{}
			}
		}
	}
	doc := arm.Document{}
	doc.Set("properties", p)
	return doc, nil
}

// Provision reloads the policy so the role is usable at once.
func (t *RoleDefinitions) Provision(ctx context.Context, _ arm.ResourceID, doc arm.Document) (arm.Document, error) {
	return doc, t.engine.Reload(ctx)
}

// Deprovision refuses to delete a role that is still assigned.
func (t *RoleDefinitions) Deprovision(ctx context.Context, res store.Resource) error {
	all, err := t.engine.resources.List(ctx, store.ResourceFilter{Type: AssignmentType})
	if err != nil {
		return fmt.Errorf("rbac: list role assignments: %w", err)
	}
	for _, r := range all {
		if a, err := decodeAssignment(r); err == nil && strings.EqualFold(a.RoleDefinitionID, res.Name) {
			return arm.Errorf(http.StatusConflict, "RoleDefinitionHasAssignments",
				"The role definition can't be deleted while it is assigned (e.g. %s); delete those role assignments first.", r.ID)
		}
	}
	return nil
}

// Deleted implements arm.DeleteObserver.
func (t *RoleDefinitions) Deleted(ctx context.Context, _ store.Resource) {
	if err := t.engine.Reload(ctx); err != nil {
		t.engine.log.Error("reload authorization policy after delete", "err", err)
	}
}
