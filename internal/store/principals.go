package store

import (
	"context"
	"encoding/json"
	"time"
)

// Principal kinds.
const (
	KindServicePrincipal = "ServicePrincipal"
	KindUser             = "User"
	KindManagedIdentity  = "ManagedIdentity"
)

// Principal is a security principal of the tenant: a service principal
// (an application with secrets or certificates), a user (with a password,
// for the portal) or a managed identity (system- or user-assigned, tied to
// an ARM resource).
type Principal struct {
	// ObjectID is the principal's object id (the `oid` claim).
	ObjectID string
	// AppID is the application (client) id: the `appid` claim and the
	// client_id callers authenticate with. Empty for users. Unique.
	AppID string
	// Kind is KindServicePrincipal, KindUser or KindManagedIdentity.
	Kind string
	// Name is a display name; for users it is the sign-in name, unique
	// among users (compared case-insensitively).
	Name string
	// ResourceID is, for a managed identity, the ARM resource it belongs to
	// (the `xms_mirid` claim): the resource for a system-assigned identity,
	// the userAssignedIdentities resource for a user-assigned one.
	ResourceID string
	// Credentials is opaque to the store (secret hashes, certificates,
	// password hash); the identity plane owns its shape.
	Credentials json.RawMessage
	// ETag changes on every write; backends set it.
	ETag      string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// PrincipalFilter selects principals for List; empty fields do not filter.
type PrincipalFilter struct {
	Kind string
	// ResourceID matches case-insensitively.
	ResourceID string
	// After continues a listing: only object ids sorting after it.
	After string
	Limit int
}

// Principals stores the tenant's principals.
type Principals interface {
	// Create returns ErrAlreadyExists when the object id, the app id or
	// (for users) the sign-in name is taken.
	Create(ctx context.Context, p Principal) error
	// Get returns ErrNotFound when absent.
	Get(ctx context.Context, objectID string) (Principal, error)
	// GetByAppID finds a principal by client id; ErrNotFound when absent.
	GetByAppID(ctx context.Context, appID string) (Principal, error)
	// GetUser finds a user by sign-in name (case-insensitive); ErrNotFound when absent.
	GetUser(ctx context.Context, name string) (Principal, error)
	// Update changes a principal atomically (ObjectID, AppID and Kind are
	// fixed); ErrNotFound when absent. update must not call the Store.
	Update(ctx context.Context, objectID string, update func(p *Principal) error) (Principal, error)
	// Delete returns ErrNotFound when absent.
	Delete(ctx context.Context, objectID string) error
	// List returns matching principals ordered by object id.
	List(ctx context.Context, filter PrincipalFilter) ([]Principal, error)
}
