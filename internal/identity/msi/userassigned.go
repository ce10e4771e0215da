package msi

import (
	"context"
	"fmt"
	"net/http"
	"regexp"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/store"
)

// UserAssignedType is the ARM type of user-assigned identities.
const UserAssignedType = "Microsoft.ManagedIdentity/userAssignedIdentities"

// UserAssignedIdentities is the userAssignedIdentities resource type:
// synchronous PUT/GET/DELETE (not long-running, as in Azure).
type UserAssignedIdentities struct {
	m *Manager
}

// NewUserAssignedIdentities builds the resource type.
func NewUserAssignedIdentities(m *Manager) *UserAssignedIdentities {
	return &UserAssignedIdentities{m: m}
}

// Info implements arm.ResourceType. The api-versions are the ones the seed
// templates (2018-11-30), az 2.45 (2022-01-31-preview) and the SDKs use.
func (u *UserAssignedIdentities) Info() arm.TypeInfo {
	return arm.TypeInfo{
		Namespace: "Microsoft.ManagedIdentity", Type: "userAssignedIdentities",
		APIVersions: []string{"2025-01-31-preview", "2024-11-30", "2023-07-31-preview", "2023-01-31",
			"2022-01-31-preview", "2021-09-30-preview", "2018-11-30", "2015-08-31-preview"},
		Capabilities: "SupportsTags, SupportsLocation",
	}
}

var identityName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_-]{2,127}$`)

// Prepare implements arm.ResourceType.
func (u *UserAssignedIdentities) Prepare(_ context.Context, req arm.PutRequest) (arm.Document, error) {
	if !identityName.MatchString(req.ID.Name()) {
		return nil, arm.Errorf(http.StatusBadRequest, "InvalidResourceName",
			"The user-assigned identity name '%s' is invalid: use 3-128 letters, digits, '-' or '_', starting with a letter or digit.", req.ID.Name())
	}
	loc := req.Body.String("location")
	if loc == "" {
		return nil, arm.Errorf(http.StatusBadRequest, "LocationRequired", "The location property is required for this definition.")
	}
	doc := arm.Document{}
	doc.Set("location", loc)
	var tags map[string]string
	if err := req.Body.Decode("tags", &tags); err != nil {
		return nil, arm.Errorf(http.StatusBadRequest, "InvalidRequestContent", "%v", err)
	}
	if tags == nil {
		tags = map[string]string{}
	}
	doc.Set("tags", tags)
	props := map[string]any{"isolationScope": "None"}
	if req.Current != nil { // keep the ids the identity was born with
		if cur, err := arm.ParseDocument(req.Current.Body); err == nil {
			var old map[string]any
			_ = cur.Decode("properties", &old)
			for _, k := range []string{"tenantId", "principalId", "clientId"} {
				if v, ok := old[k]; ok {
					props[k] = v
				}
			}
		}
	}
	doc.Set("properties", props)
	return doc, nil
}

// Provision creates the identity's principal once.
func (u *UserAssignedIdentities) Provision(ctx context.Context, id arm.ResourceID, doc arm.Document) (arm.Document, error) {
	ps, err := u.m.principals.List(ctx, store.PrincipalFilter{Kind: store.KindManagedIdentity, ResourceID: id.String()})
	if err != nil {
		return nil, fmt.Errorf("msi: look up identity: %w", err)
	}
	var p store.Principal
	if len(ps) > 0 {
		p = ps[0]
	} else if p, err = u.m.directory.CreateManagedIdentity(ctx, id.String(), id.Name()); err != nil {
		return nil, err
	}
	doc.Set("properties", map[string]any{
		"tenantId": u.m.tenantID, "principalId": p.ObjectID, "clientId": p.AppID, "isolationScope": "None",
	})
	return doc, nil
}

// Deprovision deletes the identity's principal (and, through the
// directory's hooks, its role assignments). Resources that still list the
// identity keep the reference, as in Azure, and show it without ids.
func (u *UserAssignedIdentities) Deprovision(ctx context.Context, res store.Resource) error {
	ps, err := u.m.principals.List(ctx, store.PrincipalFilter{Kind: store.KindManagedIdentity, ResourceID: res.ID})
	if err != nil {
		return fmt.Errorf("msi: look up identity: %w", err)
	}
	for _, p := range ps {
		if err := u.m.directory.Delete(ctx, p.ObjectID); err != nil {
			return err
		}
	}
	return nil
}
