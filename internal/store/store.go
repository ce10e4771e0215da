package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Sentinel errors every backend returns (wrapped) so callers can use errors.Is.
var (
	ErrNotFound           = errors.New("not found")
	ErrAlreadyExists      = errors.New("already exists")
	ErrPreconditionFailed = errors.New("precondition failed")
	// ErrUnavailable: the backend could not be reached (a database
	// restarting, failing over or down). The request may succeed if retried
	// later; the APIs answer 503.
	ErrUnavailable = errors.New("store unavailable")
)

// Store is the whole persistence contract, composed of one interface per
// aggregate so consumers can ask for only the part they use.
type Store interface {
	Settings() Settings
	Resources() Resources
	Operations() Operations
	Principals() Principals
	Devices() Devices
	// Ping reports whether the backend can serve requests (used by /readyz).
	Ping(ctx context.Context) error
	Close() error
}

// Settings holds installation-wide values such as the tenant id, created at
// first start. Values are JSON documents.
type Settings interface {
	// Get returns ErrNotFound when key was never set.
	Get(ctx context.Context, key string) (json.RawMessage, error)
	// SetIfAbsent stores value when key is unset and returns whatever is
	// stored afterwards, so concurrent first starts agree on one value.
	SetIfAbsent(ctx context.Context, key string, value json.RawMessage) (json.RawMessage, error)
	Set(ctx context.Context, key string, value json.RawMessage) error
	// Update changes a value atomically: update receives the stored value
	// (nil when unset) and returns the value to store. Its error aborts the
	// write and is returned wrapped. update must not call the Store.
	Update(ctx context.Context, key string, update func(current json.RawMessage) (json.RawMessage, error)) (json.RawMessage, error)
}

// Resource is one addressable ARM object: a subscription, a resource group or
// any provider resource, including child resources. The store treats Body as
// opaque JSON; the columns beside it exist so lists and tree deletes can be
// answered by the database.
type Resource struct {
	// ID is the resource id as first created, e.g.
	// /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Devices/IotHubs/{name}.
	// Lookups are case-insensitive (see Key).
	ID string
	// Type is the full type, e.g. "Microsoft.Devices/IotHubs" or
	// "Microsoft.EventHub/namespaces/eventhubs".
	Type string
	// Subscription and ResourceGroup are the ids' segments (ResourceGroup is
	// empty for subscription-level resources).
	Subscription  string
	ResourceGroup string
	// ParentID is the id of the enclosing object: the resource group for a
	// top-level resource, the parent resource for a child, the subscription
	// for a resource group, "" for a subscription.
	ParentID string
	Name     string
	Body     json.RawMessage
	// ETag changes on every write; backends set it, callers never do.
	ETag      string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Key is the case-insensitive identity of a resource id, used for lookups.
func Key(id string) string { return lowerASCII(id) }

func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}

// ResourceFilter selects resources for List. Empty fields do not filter;
// string comparisons are case-insensitive.
type ResourceFilter struct {
	Subscription  string
	ResourceGroup string
	ParentID      string
	Type          string
	// After continues a listing: only ids whose Key sorts after this Key.
	After string
	// Limit caps the result; 0 means no cap.
	Limit int
}

// Resources stores ARM objects keyed by Key(ID).
type Resources interface {
	// Get returns ErrNotFound when there is no resource with that id.
	Get(ctx context.Context, id string) (Resource, error)
	// Put creates or replaces the resource with the given id in one
	// transaction: update receives the stored resource (nil when absent) and
	// returns the one to store. Returning an error aborts the write and is
	// passed through (wrapped). created reports whether the id was new.
	// The backend fills ETag, CreatedAt and UpdatedAt. update must not call
	// the Store (SQLite has one writer: it would deadlock) and may run more
	// than once when a concurrent create wins the race.
	Put(ctx context.Context, id string, update func(current *Resource) (Resource, error)) (stored Resource, created bool, err error)
	// Delete removes the resource and every resource whose id lies under it
	// (child resources; for a resource group, all its resources). ifMatch,
	// when not empty, must equal the stored ETag or ErrPreconditionFailed is
	// returned and nothing is removed. It returns ErrNotFound when absent.
	Delete(ctx context.Context, id string, ifMatch string) error
	// List returns matching resources ordered by Key(ID).
	List(ctx context.Context, filter ResourceFilter) ([]Resource, error)
}

// Operation is a long-running ARM operation (Azure-AsyncOperation target).
type Operation struct {
	ID string
	// ResourceID is the resource the operation works on.
	ResourceID string
	// Kind names what to do, e.g. "delete" or "put"; the control plane uses
	// it to resume unfinished operations after a restart.
	Kind string
	// Status is one of the ARM states: Accepted, Running, Succeeded, Failed, Canceled.
	Status string
	// Error is the ARM error object when Status is Failed.
	Error     json.RawMessage
	StartTime time.Time
	EndTime   time.Time // zero until terminal
	// Input carries what the operation needs to resume (opaque JSON).
	Input json.RawMessage
	// Owner is the node running the operation and LeaseUntil when its
	// claim lapses unless renewed (zero: nobody runs it).
	Owner      string
	LeaseUntil time.Time
}

// Terminal reports whether the operation has finished.
func (o Operation) Terminal() bool {
	switch o.Status {
	case "Succeeded", "Failed", "Canceled":
		return true
	}
	return false
}

// Operations stores long-running operations.
type Operations interface {
	// Create returns ErrAlreadyExists when the id is taken.
	Create(ctx context.Context, op Operation) error
	// Get returns ErrNotFound when absent.
	Get(ctx context.Context, id string) (Operation, error)
	// Update changes an operation atomically; ErrNotFound when absent.
	Update(ctx context.Context, id string, update func(op *Operation) error) (Operation, error)
	// ListUnfinished returns the operations that are not terminal, oldest
	// first, so a restarted node can resume them.
	ListUnfinished(ctx context.Context) ([]Operation, error)
}
