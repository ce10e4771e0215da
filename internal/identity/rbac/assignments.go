package rbac

import (
	"context"
	"errors"
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

// authorizationAPIVersions are the Microsoft.Authorization api-versions
// clients send: az 2.45 (2018-01-01-preview, 2020-04-01-preview), the SDKs
// (2022-04-01), templates (2015-07-01 and later).
var authorizationAPIVersions = []string{
	"2022-05-01-preview", "2022-04-01", "2022-01-01-preview", "2021-03-01-preview", "2020-10-01-preview",
	"2020-08-01-preview", "2020-04-01-preview", "2020-03-01-preview", "2019-04-01-preview",
	"2018-09-01-preview", "2018-07-01", "2018-01-01-preview", "2017-10-01-preview", "2015-07-01",
}

var guidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// PrincipalLookup finds principals to validate assignments.
type PrincipalLookup interface {
	Get(ctx context.Context, objectID string) (store.Principal, error)
}

// RoleAssignments is the roleAssignments extension resource type.
type RoleAssignments struct {
	engine     *Engine
	principals PrincipalLookup
	tenantID   string
	now        func() time.Time
}

// NewRoleAssignments builds the type.
func NewRoleAssignments(engine *Engine, principals PrincipalLookup, tenantID string, now func() time.Time) *RoleAssignments {
	return &RoleAssignments{engine: engine, principals: principals, tenantID: tenantID, now: now}
}

// Info implements arm.ResourceType.
func (t *RoleAssignments) Info() arm.TypeInfo {
	return arm.TypeInfo{Namespace: "Microsoft.Authorization", Type: "roleAssignments", APIVersions: authorizationAPIVersions}
}

func scopeOf(id arm.ResourceID) string {
	if s := id.ScopeID(); s != "" {
		return s
	}
	return "/"
}

// Prepare validates an assignment: a GUID name, an existing role assignable
// at the scope, an existing principal, no duplicate, and no change to an
// existing assignment (Azure allows none).
func (t *RoleAssignments) Prepare(ctx context.Context, req arm.PutRequest) (arm.Document, error) {
	if !guidPattern.MatchString(req.ID.Name()) {
		return nil, arm.Errorf(http.StatusBadRequest, "InvalidRoleAssignmentId",
			"The role assignment ID '%s' is not valid. The role assignment ID must be a GUID.", req.ID.Name())
	}
	var in assignmentProperties
	if err := req.Body.Decode("properties", &in); err != nil {
		return nil, arm.Errorf(http.StatusBadRequest, "InvalidRequestContent", "The role assignment properties are invalid: %v", err)
	}
	if in.RoleDefinitionID == "" || in.PrincipalID == "" {
		return nil, arm.Errorf(http.StatusBadRequest, "InvalidRoleAssignmentRequest",
			"properties.roleDefinitionId and properties.principalId are required.")
	}
	scope := scopeOf(req.ID)
	ev := t.engine.Evaluator()
	role, ok := ev.Role(in.RoleDefinitionID)
	if !ok {
		return nil, arm.Errorf(http.StatusBadRequest, "RoleDefinitionDoesNotExist",
			"The specified role definition with ID '%s' does not exist.", authz.RoleDefinitionGUID(in.RoleDefinitionID))
	}
	if !role.AssignableAt(scope) {
		return nil, arm.Errorf(http.StatusBadRequest, "InvalidRoleDefinitionScope",
			"The role '%s' can't be assigned at scope '%s'; its assignable scopes are %v.", role.Name, scope, role.AssignableScopes)
	}
	p, err := t.principals.Get(ctx, in.PrincipalID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, arm.Errorf(http.StatusBadRequest, "PrincipalNotFound",
			"Principal %s does not exist in the directory %s. Check that you have the correct principal ID.", in.PrincipalID, t.tenantID)
	}
	if err != nil {
		return nil, fmt.Errorf("rbac: look up principal: %w", err)
	}
	principalType := p.Kind
	if principalType == store.KindManagedIdentity {
		principalType = store.KindServicePrincipal // as Azure reports managed identities
	}
	roleID := role.FullID(subscriptionScope(scope))
	if req.Current != nil {
		old, err := decodeAssignment(*req.Current)
		if err == nil && (!strings.EqualFold(old.PrincipalID, in.PrincipalID) || !strings.EqualFold(old.RoleDefinitionID, role.ID)) {
			return nil, arm.Errorf(http.StatusConflict, "RoleAssignmentUpdateNotPermitted",
				"Tenant ID, application ID, principal ID, and scope are not allowed to be updated.")
		}
	}
	for _, a := range ev.AssignmentsFor(in.PrincipalID) {
		if strings.EqualFold(a.RoleDefinitionID, role.ID) && strings.EqualFold(strings.TrimRight(a.Scope, "/"), strings.TrimRight(scope, "/")) &&
			!strings.EqualFold(a.ID, req.ID.String()) {
			return nil, arm.Errorf(http.StatusConflict, "RoleAssignmentExists",
				"The role assignment already exists. The ID of the existing role assignment is %s.", lastSegment(a.ID))
		}
	}
	now := t.now().UTC().Format(time.RFC3339Nano)
	out := assignmentProperties{
		RoleDefinitionID: roleID, PrincipalID: p.ObjectID, PrincipalType: principalType, Scope: scope,
		Condition: in.Condition, ConditionVersion: in.ConditionVersion, Description: in.Description,
		CreatedOn: now, UpdatedOn: now, CreatedBy: req.Principal.ObjectID, UpdatedBy: req.Principal.ObjectID,
	}
	if req.Current != nil {
		if doc, err := arm.ParseDocument(req.Current.Body); err == nil {
			var old assignmentProperties
			if doc.Decode("properties", &old) == nil && old.CreatedOn != "" {
				out.CreatedOn, out.CreatedBy = old.CreatedOn, old.CreatedBy
			}
		}
	}
	doc := arm.Document{}
	doc.Set("properties", out)
	return doc, nil
}

// subscriptionScope is the subscription part of a scope ("" at tenant
// level): ARM reports role definition ids at the subscription they are
// used from.
func subscriptionScope(scope string) string {
	seg := strings.Split(strings.Trim(scope, "/"), "/")
	if len(seg) >= 2 && strings.EqualFold(seg[0], "subscriptions") {
		return "/subscriptions/" + seg[1]
	}
	return ""
}

func lastSegment(id string) string { return id[strings.LastIndex(id, "/")+1:] }

// Provision makes the new assignment effective before the PUT returns.
func (t *RoleAssignments) Provision(ctx context.Context, _ arm.ResourceID, doc arm.Document) (arm.Document, error) {
	if err := t.engine.Reload(ctx); err != nil {
		return nil, err
	}
	return doc, nil
}

// Deprovision has nothing to undo; Deleted reloads once the row is gone.
func (t *RoleAssignments) Deprovision(context.Context, store.Resource) error { return nil }

// Deleted implements arm.DeleteObserver.
func (t *RoleAssignments) Deleted(ctx context.Context, _ store.Resource) {
	if err := t.engine.Reload(ctx); err != nil {
		t.engine.log.Error("reload authorization policy after delete", "err", err)
	}
}

var (
	filterPrincipal  = regexp.MustCompile(`(?i)principalId\s+eq\s+'([^']+)'`)
	filterAssignedTo = regexp.MustCompile(`(?i)assignedTo\('([^']+)'\)`)
	filterAtScope    = regexp.MustCompile(`(?i)atScope\(\)`)
)

// List implements arm.CollectionLister with Azure's semantics: the
// assignments that apply at the scope (at or above it) and those below it;
// $filter=atScope() keeps only those at or above, principalId eq '…' and
// assignedTo('…') one principal's.
func (t *RoleAssignments) List(ctx context.Context, coll arm.ResourceID, q url.Values) ([]store.Resource, error) {
	scope := scopeOf(coll)
	filter := q.Get("$filter")
	atScope := filterAtScope.MatchString(filter)
	var principal string
	if m := filterPrincipal.FindStringSubmatch(filter); m != nil {
		principal = m[1]
	} else if m := filterAssignedTo.FindStringSubmatch(filter); m != nil {
		principal = m[1]
	}
	all, err := t.engine.resources.List(ctx, store.ResourceFilter{Type: AssignmentType})
	if err != nil {
		return nil, fmt.Errorf("rbac: list role assignments: %w", err)
	}
	out := []store.Resource{}
	for _, r := range all {
		a, err := decodeAssignment(r)
		if err != nil {
			continue
		}
		if principal != "" && !strings.EqualFold(a.PrincipalID, principal) {
			continue
		}
		above := covers(a.Scope, scope)
		below := covers(scope, a.Scope)
		if above || (!atScope && below) {
			out = append(out, r)
		}
	}
	return out, nil
}

// covers reports whether scope is target or an ancestor of it.
func covers(scope, target string) bool {
	s := strings.ToLower(strings.TrimRight(scope, "/"))
	t := strings.ToLower(strings.TrimRight(target, "/"))
	return s == "" || s == t || strings.HasPrefix(t, s+"/")
}
