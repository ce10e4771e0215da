package ehresource

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/identity/msi"
	"github.com/outpost-iot/outpost/internal/store"
)

// ProviderNamespace is the ARM resource provider served here.
const ProviderNamespace = "Microsoft.EventHub"

// Full ARM types, as stored in store.Resource.Type.
const (
	TypeNamespace        = ProviderNamespace + "/namespaces"
	TypeNamespaceRule    = ProviderNamespace + "/namespaces/authorizationRules"
	TypeNetworkRuleSet   = ProviderNamespace + "/namespaces/networkRuleSets"
	TypeEventHub         = ProviderNamespace + "/namespaces/eventhubs"
	TypeConsumerGroup    = ProviderNamespace + "/namespaces/eventhubs/consumergroups"
	TypeEventHubRule     = ProviderNamespace + "/namespaces/eventhubs/authorizationRules"
	DefaultConsumerGroup = "$Default"
	// RootRuleName is the namespace rule every namespace starts with.
	RootRuleName = "RootManageSharedAccessKey"
)

// apiVersions are the Microsoft.EventHub api-versions clients use, newest
// first (Azure/azure-rest-api-specs specification/eventhub: armeventhub v1
// uses 2024-01-01, az 2.45 2022-01-01-preview / 2021-11-01, older templates
// 2017-04-01). Every one of them shares the shapes served here.
var apiVersions = []string{
	"2024-05-01-preview", "2024-01-01", "2023-01-01-preview", "2022-10-01-preview", "2022-01-01-preview",
	"2021-11-01", "2021-06-01-preview", "2021-01-01-preview", "2018-01-01-preview", "2017-04-01",
}

// APIVersions returns the api-versions of every Microsoft.EventHub type, newest first.
func APIVersions() []string { return append([]string(nil), apiVersions...) }

// Identities applies the identity block; *msi.Manager implements it.
type Identities interface {
	Prepare(ctx context.Context, req arm.PutRequest) (msi.Block, error)
	Provision(ctx context.Context, resourceID string, b msi.Block) (msi.Block, error)
	Deprovision(ctx context.Context, resourceID string) error
}

// Reader reads stored resources; store.Resources implements it.
type Reader interface {
	Get(ctx context.Context, id string) (store.Resource, error)
	List(ctx context.Context, filter store.ResourceFilter) ([]store.Resource, error)
}

// Resources is the part of store.Resources the types use: reads for
// validation, writes for the root rule made at Provision and for
// regenerateKeys.
type Resources interface {
	Reader
	Put(ctx context.Context, id string, update func(current *store.Resource) (store.Resource, error)) (store.Resource, bool, error)
}

// EventHubSpec is what the runtime needs to back one event hub.
type EventHubSpec struct {
	Namespace      string
	Name           string
	PartitionCount int
	Retention      time.Duration
}

// Runtime backs event hubs with storage; *eventhubs.Streams implements it.
// Both calls must be idempotent.
type Runtime interface {
	EnsureEventHub(ctx context.Context, spec EventHubSpec) error
	RemoveEventHub(ctx context.Context, spec EventHubSpec) error
}

// NopRuntime backs nothing (control-plane-only tests).
type NopRuntime struct{}

// EnsureEventHub implements Runtime.
func (NopRuntime) EnsureEventHub(context.Context, EventHubSpec) error { return nil }

// RemoveEventHub implements Runtime.
func (NopRuntime) RemoveEventHub(context.Context, EventHubSpec) error { return nil }

// Config holds the types' dependencies.
type Config struct {
	// DNSSuffix makes host names: {namespace}.servicebus.{DNSSuffix}.
	DNSSuffix  string
	Identities Identities
	Resources  Resources
	// NameTaken reports whether a namespace name is held by ANOTHER provider
	// (Service Bus): both live in the servicebus DNS zone. Event Hubs
	// namespaces are checked here. Nil means no other provider.
	NameTaken func(ctx context.Context, name string) (bool, error)
	// Runtime backs event hubs (NopRuntime when nil).
	Runtime Runtime
	// Changed is called with a namespace name whenever something the data
	// plane caches about it changed on this node (nil: nobody listens).
	Changed func(namespace string)
	// Locations are the accepted locations (arm.DefaultLocations when nil).
	Locations []arm.Location
	// Now defaults to time.Now; Random (key material) to crypto/rand.
	Now    func() time.Time
	Random io.Reader
}

// Provider holds every Microsoft.EventHub type.
type Provider struct {
	cfg            Config
	namespaces     *Namespaces
	namespaceRules *AuthorizationRules
	networkRules   *NetworkRuleSets
	eventHubs      *EventHubs
	consumerGroups *ConsumerGroups
	eventHubRules  *AuthorizationRules
}

// New builds the provider's types.
func New(cfg Config) *Provider {
	if cfg.Runtime == nil {
		cfg.Runtime = NopRuntime{}
	}
	if cfg.Changed == nil {
		cfg.Changed = func(string) {}
	}
	if cfg.NameTaken == nil {
		cfg.NameTaken = func(context.Context, string) (bool, error) { return false, nil }
	}
	if cfg.Locations == nil {
		cfg.Locations = arm.DefaultLocations()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Random == nil {
		cfg.Random = rand.Reader
	}
	p := &Provider{cfg: cfg}
	p.namespaces = &Namespaces{p: p}
	p.namespaceRules = &AuthorizationRules{p: p, typ: "namespaces/authorizationRules"}
	p.networkRules = &NetworkRuleSets{p: p}
	p.eventHubs = &EventHubs{p: p}
	p.consumerGroups = &ConsumerGroups{p: p}
	p.eventHubRules = &AuthorizationRules{p: p, typ: "namespaces/eventhubs/authorizationRules", entity: true}
	return p
}

// Types returns every resource type to register with arm.NewRegistry.
func (p *Provider) Types() []arm.ResourceType {
	return []arm.ResourceType{p.namespaces, p.namespaceRules, p.networkRules, p.eventHubs, p.consumerGroups, p.eventHubRules}
}

// ProviderActions returns the subscription-level operations
// (checkNameAvailability); register them with arm.Registry.AddProviderAction.
func (p *Provider) ProviderActions() []arm.ProviderAction {
	return []arm.ProviderAction{{
		Namespace: ProviderNamespace, Name: "checkNameAvailability", Method: http.MethodPost,
		APIVersions: APIVersions(), Action: ProviderNamespace + "/checkNameAvailability/action",
		Run: p.namespaces.checkNameAvailability,
	}}
}

// Holds reports whether an Event Hubs namespace of this name exists (any
// subscription, any letter case). The Service Bus provider's NameTaken hook
// calls it.
func (p *Provider) Holds(ctx context.Context, name string) (bool, error) {
	_, found, err := p.findNamespace(ctx, name)
	return found, err
}

// findNamespace finds the namespace of a name in any subscription.
func (p *Provider) findNamespace(ctx context.Context, name string) (store.Resource, bool, error) {
	return findByName(ctx, p.cfg.Resources, TypeNamespace, name)
}

func findByName(ctx context.Context, r Reader, typ, name string) (store.Resource, bool, error) {
	return store.FindByName(ctx, r, typ, name)
}

// namespaceOf returns the namespace name of any id below a namespace.
func namespaceOf(id arm.ResourceID) string {
	if len(id.Names) == 0 {
		return ""
	}
	return id.Names[0]
}

// newKey returns a fresh SAS key: 32 random bytes in base64, as Azure makes them.
func (p *Provider) newKey() (string, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(p.cfg.Random, b); err != nil {
		return "", fmt.Errorf("ehresource: generate key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

func (p *Provider) timestamp() string {
	return p.cfg.Now().UTC().Format("2006-01-02T15:04:05.000Z")
}

// Host is a namespace's host name.
func Host(namespace, dnsSuffix string) string {
	return strings.ToLower(namespace) + ".servicebus." + dnsSuffix
}

// errors

func invalid(format string, args ...any) error {
	return arm.Errorf(http.StatusBadRequest, "BadRequest", format, args...)
}

func errReadOnlyDefault(what string) error {
	return arm.Errorf(http.StatusBadRequest, "BadRequest", "%s", what)
}

// properties decodes the "properties" member of a document into a map
// (nil members stay absent).
func properties(doc arm.Document) (map[string]json.RawMessage, error) {
	props := map[string]json.RawMessage{}
	if err := doc.Decode("properties", &props); err != nil {
		return nil, invalid("The properties member must be a JSON object: %v.", err)
	}
	if props == nil {
		props = map[string]json.RawMessage{}
	}
	return props, nil
}

// currentDoc parses the stored document of a PUT (nil on create).
func currentDoc(req arm.PutRequest) (arm.Document, error) {
	if req.Current == nil {
		return nil, nil
	}
	doc, err := arm.ParseDocument(req.Current.Body)
	if err != nil {
		return nil, fmt.Errorf("ehresource: decode stored %s: %w", req.Current.ID, err)
	}
	return doc, nil
}

// storedString reads properties.{key} of a stored document.
func storedString(doc arm.Document, key string) string {
	if doc == nil {
		return ""
	}
	var props map[string]json.RawMessage
	_ = doc.Decode("properties", &props)
	var s string
	_ = json.Unmarshal(props[key], &s)
	return s
}

func raw(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("ehresource: encode %T: %v", v, err))
	}
	return b
}
