package arm

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/outpost-iot/outpost/internal/store"
)

// TypeInfo describes one resource type to the framework and to clients (it
// feeds the provider metadata that az reads api-versions from).
type TypeInfo struct {
	Namespace string // "Microsoft.Devices"
	// Type is the type path below the namespace: "IotHubs", "namespaces/eventhubs".
	Type string
	// APIVersions lists every api-version clients use, newest first.
	APIVersions []string
	// LongRunning types answer PUT and DELETE with 201/202 and an
	// Azure-AsyncOperation URL; Provision then runs in the background.
	LongRunning bool
	// Actions are the POST actions on one resource, e.g. "listkeys".
	Actions []string
	// DetachedActions are Actions that don't need the resource to exist
	// (a deployment's validate): Action gets a Resource with only ID, Name
	// and Type set when there is none.
	DetachedActions []string
	// Reads are GET sub-resources of one resource answered by the type's
	// Action with a nil body, e.g. "IotHubStats", "skus".
	Reads []string
	// Capabilities is the provider-metadata capabilities string.
	Capabilities string
	// CreateStatus is the status of a PUT that creates: 0 means 201
	// Created. Some providers' specs allow only 200 (storage accounts,
	// Event Hubs and Service Bus entities and rules), and their generated
	// clients fail on any status the spec does not list.
	CreateStatus int
}

// FullType is "Namespace/Type".
func (t TypeInfo) FullType() string { return t.Namespace + "/" + t.Type }

// SupportsAPIVersion reports whether v is one of APIVersions (case-insensitive).
func (t TypeInfo) SupportsAPIVersion(v string) bool {
	return slices.ContainsFunc(t.APIVersions, func(s string) bool { return strings.EqualFold(s, v) })
}

// PutRequest is what a resource type sees of a PUT.
type PutRequest struct {
	ID         ResourceID
	APIVersion string
	// Current is the stored resource, nil on create.
	Current *store.Resource
	// Body is the request body.
	Body Document
	// Location is the resolved location (the body's; required for tracked resources).
	Principal Principal
}

// ResourceType is implemented once per ARM resource type.
type ResourceType interface {
	Info() TypeInfo
	// Prepare validates a PUT and returns the document to store. It must
	// not have side effects: the framework may still refuse the write.
	Prepare(ctx context.Context, req PutRequest) (Document, error)
	// Provision carries out the side effects of a stored document (create an
	// identity, a stream, ...) and returns the final document. It must be
	// idempotent: after a crash it runs again for the same document.
	Provision(ctx context.Context, id ResourceID, doc Document) (Document, error)
	// Deprovision undoes the side effects before the resource is removed.
	// It must be idempotent too.
	Deprovision(ctx context.Context, res store.Resource) error
}

// ActionType is implemented by types with POST actions (TypeInfo.Actions).
type ActionType interface {
	Action(ctx context.Context, res store.Resource, action string, body json.RawMessage) (any, error)
}

// BodyParser is implemented by types whose clients send bodies that are not
// strict JSON (az sends a deployment's template file verbatim, comments and
// an unquoted key included); the handler parses PUT bodies with it.
type BodyParser interface {
	ParseBody(b []byte) (Document, error)
}

// Renderer is implemented by types that show clients less than they store
// (IoT Hub never returns its keys from GET; listkeys does).
type Renderer interface {
	Render(res store.Resource) json.RawMessage
}

// ResourceReader is implemented by types whose resources are not (all) in
// the store, e.g. built-in role definitions. Get returns ErrNotFound-wrapped
// errors or an *Error.
type ResourceReader interface {
	Get(ctx context.Context, id ResourceID) (store.Resource, error)
}

// CollectionLister is implemented by types whose list semantics differ from
// "the children of the parent", e.g. role assignments ("at, above and below
// the scope", with $filter).
type CollectionLister interface {
	List(ctx context.Context, coll ResourceID, query url.Values) ([]store.Resource, error)
}

// DeleteObserver is implemented by types that must react after a resource
// has left the store (e.g. reload an authorization policy).
type DeleteObserver interface {
	Deleted(ctx context.Context, res store.Resource)
}

// ProviderAction is an operation on a provider rather than on a resource:
// POST /subscriptions/{s}/providers/{ns}/{name} (checkNameAvailability) or
// GET (usages).
type ProviderAction struct {
	Namespace   string
	Name        string
	Method      string // GET or POST
	APIVersions []string
	// Action is the authorization action checked at the subscription scope.
	Action string
	Run    func(ctx context.Context, sub string, body json.RawMessage, p Principal) (any, error)
}

// Registry maps full type names (case-insensitive) to resource types.
type Registry struct {
	actions map[string]ProviderAction // "ns/name", lower case
	types   map[string]ResourceType
	// namespaces maps a lower-cased namespace to its canonical spelling.
	namespaces map[string]string
}

// NewRegistry returns a registry holding the given types.
func NewRegistry(types ...ResourceType) (*Registry, error) {
	r := &Registry{types: map[string]ResourceType{}, namespaces: map[string]string{}, actions: map[string]ProviderAction{}}
	for _, t := range types {
		info := t.Info()
		if len(info.APIVersions) == 0 {
			return nil, fmt.Errorf("arm: register %s: no api-versions", info.FullType())
		}
		k := strings.ToLower(info.FullType())
		if _, dup := r.types[k]; dup {
			return nil, fmt.Errorf("arm: register %s: registered twice", info.FullType())
		}
		r.types[k] = t
		r.namespaces[strings.ToLower(info.Namespace)] = info.Namespace
	}
	return r, nil
}

// AddProviderAction registers a provider-level operation.
func (r *Registry) AddProviderAction(a ProviderAction) {
	r.actions[strings.ToLower(a.Namespace+"/"+a.Name)] = a
	if _, ok := r.namespaces[strings.ToLower(a.Namespace)]; !ok {
		r.namespaces[strings.ToLower(a.Namespace)] = a.Namespace
	}
}

// ProviderActionFor finds a provider-level operation.
func (r *Registry) ProviderActionFor(ns, name string) (ProviderAction, bool) {
	a, ok := r.actions[strings.ToLower(ns+"/"+name)]
	return a, ok
}

// Lookup finds the type of an id; ok is false when unknown.
func (r *Registry) Lookup(fullType string) (ResourceType, bool) {
	t, ok := r.types[strings.ToLower(fullType)]
	return t, ok
}

// Namespace returns the canonical spelling of a registered namespace.
func (r *Registry) Namespace(ns string) (string, bool) {
	c, ok := r.namespaces[strings.ToLower(ns)]
	return c, ok
}

// Namespaces lists registered namespaces, sorted.
func (r *Registry) Namespaces() []string {
	out := make([]string, 0, len(r.namespaces))
	for _, ns := range r.namespaces {
		out = append(out, ns)
	}
	sort.Strings(out)
	return out
}

// TypesIn lists the types of a namespace, sorted by type.
func (r *Registry) TypesIn(ns string) []TypeInfo {
	var out []TypeInfo
	for _, t := range r.types {
		if info := t.Info(); strings.EqualFold(info.Namespace, ns) {
			out = append(out, info)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Type < out[j].Type })
	return out
}

// Document is a resource body as JSON members, so the framework can set
// id/name/type/etag while providers decode the parts they own.
type Document map[string]json.RawMessage

// ParseDocument decodes a JSON object.
func ParseDocument(b []byte) (Document, error) {
	var d Document
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, err
	}
	if d == nil {
		return nil, fmt.Errorf("the body is null; send a JSON object")
	}
	return d, nil
}

// Decode decodes member key into v; a missing member leaves v untouched.
func (d Document) Decode(key string, v any) error {
	raw, ok := d[key]
	if !ok || string(raw) == "null" {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("property '%s': %w", key, err)
	}
	return nil
}

// Set encodes v as member key; a nil v removes it.
func (d Document) Set(key string, v any) {
	if v == nil {
		delete(d, key)
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		// Only values built by Outpost reach Set; failing to encode one is a bug.
		panic(fmt.Sprintf("arm: encode %s: %v", key, err))
	}
	d[key] = b
}

// String returns a string member ("" when absent or not a string).
func (d Document) String(key string) string {
	var s string
	_ = d.Decode(key, &s)
	return s
}

// Clone copies the document (members are immutable byte slices).
func (d Document) Clone() Document {
	c := make(Document, len(d))
	for k, v := range d {
		c[k] = v
	}
	return c
}

// Bytes encodes the document.
func (d Document) Bytes() []byte {
	b, _ := json.Marshal(map[string]json.RawMessage(d))
	return b
}
