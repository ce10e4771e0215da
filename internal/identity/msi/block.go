package msi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/store"
)

// Identity types as ARM spells them.
const (
	TypeNone                       = "None"
	TypeSystemAssigned             = "SystemAssigned"
	TypeUserAssigned               = "UserAssigned"
	TypeSystemAssignedUserAssigned = "SystemAssigned, UserAssigned"
)

// Block is the `identity` member of a resource.
type Block struct {
	Type                   string                      `json:"type"`
	PrincipalID            string                      `json:"principalId,omitempty"`
	TenantID               string                      `json:"tenantId,omitempty"`
	UserAssignedIdentities map[string]*UserAssignedRef `json:"userAssignedIdentities,omitempty"`
}

// UserAssignedRef is one entry of userAssignedIdentities.
type UserAssignedRef struct {
	PrincipalID string `json:"principalId,omitempty"`
	ClientID    string `json:"clientId,omitempty"`
}

// System reports whether the block has a system-assigned identity.
func (b Block) System() bool { return strings.HasPrefix(b.Type, TypeSystemAssigned) }

// User reports whether the block has user-assigned identities.
func (b Block) User() bool { return strings.HasSuffix(b.Type, TypeUserAssigned) }

// normalizeType accepts any case and spacing ("systemassigned,userassigned").
func normalizeType(t string) (string, bool) {
	squashed := strings.ToLower(strings.ReplaceAll(t, " ", ""))
	switch squashed {
	case "", "none":
		return TypeNone, true
	case "systemassigned":
		return TypeSystemAssigned, true
	case "userassigned":
		return TypeUserAssigned, true
	case "systemassigned,userassigned", "userassigned,systemassigned":
		return TypeSystemAssignedUserAssigned, true
	}
	return "", false
}

// Authorizer checks an ARM action for a principal on a scope.
type Authorizer interface {
	AuthorizeAction(ctx context.Context, p arm.Principal, action, scope string) error
}

// Manager applies identity blocks for resource types.
type Manager struct {
	resources  store.Resources
	principals store.Principals
	directory  Directory
	authz      Authorizer
	tenantID   string
}

// Directory is what the manager needs of identity.Directory.
type Directory interface {
	CreateManagedIdentity(ctx context.Context, resourceID, name string) (store.Principal, error)
	Delete(ctx context.Context, objectID string) error
}

// NewManager builds a manager.
func NewManager(resources store.Resources, principals store.Principals, directory Directory, authz Authorizer, tenantID string) *Manager {
	return &Manager{resources: resources, principals: principals, directory: directory, authz: authz, tenantID: tenantID}
}

// Prepare validates the identity block of a PUT and returns it normalised:
// the type spelled canonically, user-assigned ids canonical and existing,
// the caller allowed to assign each newly attached one. It has no side
// effects (Provision creates and deletes principals).
func (m *Manager) Prepare(ctx context.Context, req arm.PutRequest) (Block, error) {
	var b Block
	if err := req.Body.Decode("identity", &b); err != nil {
		return Block{}, arm.Errorf(http.StatusBadRequest, "InvalidIdentity", "The identity property is invalid: %v", err)
	}
	t, ok := normalizeType(b.Type)
	if !ok {
		return Block{}, arm.Errorf(http.StatusBadRequest, "InvalidIdentityType",
			"The identity type '%s' is not supported. Use 'None', 'SystemAssigned', 'UserAssigned' or 'SystemAssigned, UserAssigned'.", b.Type)
	}
	out := Block{Type: t}
	if !out.User() {
		if len(b.UserAssignedIdentities) > 0 {
			return Block{}, arm.Errorf(http.StatusBadRequest, "InvalidIdentity",
				"The identity type '%s' can't have userAssignedIdentities; use 'UserAssigned' or 'SystemAssigned, UserAssigned'.", t)
		}
		return out, nil
	}
	if len(b.UserAssignedIdentities) == 0 {
		return Block{}, arm.Errorf(http.StatusBadRequest, "InvalidIdentity",
			"The identity type '%s' needs at least one entry in userAssignedIdentities, keyed by the identity's resource id.", t)
	}
	var current Block
	if req.Current != nil {
		if doc, err := arm.ParseDocument(req.Current.Body); err == nil {
			_ = doc.Decode("identity", &current)
		}
	}
	out.UserAssignedIdentities = map[string]*UserAssignedRef{}
	ids := make([]string, 0, len(b.UserAssignedIdentities))
	for id := range b.UserAssignedIdentities {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		res, err := m.userAssigned(ctx, id)
		if err != nil {
			return Block{}, err
		}
		if !hasKeyFold(current.UserAssignedIdentities, res.ID) {
			if err := m.authz.AuthorizeAction(ctx, req.Principal, "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action", res.ID); err != nil {
				return Block{}, arm.Errorf(http.StatusForbidden, "LinkedAuthorizationFailed",
					"The client '%s' has permission to write the resource but not to assign the user-assigned identity '%s': it needs 'Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action' on it (e.g. the Managed Identity Operator role).", req.Principal.ObjectID, res.ID)
			}
		}
		out.UserAssignedIdentities[res.ID] = &UserAssignedRef{}
	}
	return out, nil
}

func hasKeyFold(m map[string]*UserAssignedRef, k string) bool {
	for id := range m {
		if strings.EqualFold(id, k) {
			return true
		}
	}
	return false
}

// userAssigned finds a userAssignedIdentities resource by id.
func (m *Manager) userAssigned(ctx context.Context, id string) (store.Resource, error) {
	rid, err := arm.ParseResourceID(id)
	if err != nil || !strings.EqualFold(rid.FullType(), UserAssignedType) || rid.IsCollection() {
		return store.Resource{}, arm.Errorf(http.StatusBadRequest, "InvalidUserAssignedIdentity",
			"'%s' is not the resource id of a user-assigned identity (…/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}).", id)
	}
	res, err := m.resources.Get(ctx, rid.String())
	if errors.Is(err, store.ErrNotFound) {
		return store.Resource{}, arm.Errorf(http.StatusBadRequest, "InvalidUserAssignedIdentity",
			"The user-assigned identity '%s' was not found. Create it first (az identity create) or fix the id.", id)
	}
	if err != nil {
		return store.Resource{}, fmt.Errorf("msi: get user-assigned identity: %w", err)
	}
	return res, nil
}

// Provision creates or deletes the resource's system-assigned principal to
// match the block and fills the principal and client ids. Idempotent.
func (m *Manager) Provision(ctx context.Context, resourceID string, b Block) (Block, error) {
	system, err := m.systemPrincipals(ctx, resourceID)
	if err != nil {
		return Block{}, err
	}
	b.PrincipalID, b.TenantID = "", ""
	if b.System() {
		var p store.Principal
		if len(system) > 0 {
			p, system = system[0], system[1:]
		} else if p, err = m.directory.CreateManagedIdentity(ctx, resourceID, lastSegment(resourceID)); err != nil {
			return Block{}, fmt.Errorf("msi: create system-assigned identity: %w", err)
		}
		b.PrincipalID, b.TenantID = p.ObjectID, m.tenantID
	}
	for _, p := range system {
		if err := m.directory.Delete(ctx, p.ObjectID); err != nil {
			return Block{}, fmt.Errorf("msi: delete system-assigned identity: %w", err)
		}
	}
	if b.User() {
		b.TenantID = m.tenantID
		for id, ref := range b.UserAssignedIdentities {
			uai, err := m.principals.List(ctx, store.PrincipalFilter{Kind: store.KindManagedIdentity, ResourceID: id})
			if err != nil {
				return Block{}, fmt.Errorf("msi: look up user-assigned identity: %w", err)
			}
			if len(uai) == 0 {
				// Deleted after it was attached: Azure keeps the reference and the
				// identity stops working; show it without ids.
				ref.PrincipalID, ref.ClientID = "", ""
				continue
			}
			ref.PrincipalID, ref.ClientID = uai[0].ObjectID, uai[0].AppID
		}
	}
	return b, nil
}

// Deprovision deletes the resource's system-assigned principal.
func (m *Manager) Deprovision(ctx context.Context, resourceID string) error {
	system, err := m.systemPrincipals(ctx, resourceID)
	if err != nil {
		return err
	}
	for _, p := range system {
		if err := m.directory.Delete(ctx, p.ObjectID); err != nil {
			return fmt.Errorf("msi: delete system-assigned identity: %w", err)
		}
	}
	return nil
}

func (m *Manager) systemPrincipals(ctx context.Context, resourceID string) ([]store.Principal, error) {
	ps, err := m.principals.List(ctx, store.PrincipalFilter{Kind: store.KindManagedIdentity, ResourceID: resourceID})
	if err != nil {
		return nil, fmt.Errorf("msi: list identities of %s: %w", resourceID, err)
	}
	// A userAssignedIdentities resource's own principal is not a system identity.
	if rid, err := arm.ParseResourceID(resourceID); err == nil && strings.EqualFold(rid.FullType(), UserAssignedType) {
		return nil, nil
	}
	return ps, nil
}

func lastSegment(id string) string {
	return id[strings.LastIndex(id, "/")+1:]
}
