package sbresource

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/identity/msi"
	"github.com/outpost-iot/outpost/internal/store"
)

// Namespace is the resource provider namespace.
const Namespace = "Microsoft.ServiceBus"

// Full type names, as stored.
const (
	TypeNamespace         = Namespace + "/namespaces"
	TypeNamespaceRule     = Namespace + "/namespaces/authorizationRules"
	TypeQueue             = Namespace + "/namespaces/queues"
	TypeQueueRule         = Namespace + "/namespaces/queues/authorizationRules"
	TypeTopic             = Namespace + "/namespaces/topics"
	TypeTopicRule         = Namespace + "/namespaces/topics/authorizationRules"
	TypeSubscription      = Namespace + "/namespaces/topics/subscriptions"
	TypeRule              = Namespace + "/namespaces/topics/subscriptions/rules"
	TypeNetworkRuleSet    = Namespace + "/namespaces/networkRuleSets"
	RootRuleName          = "RootManageSharedAccessKey"
	DefaultRuleName       = "$Default"
	DefaultNetworkRuleSet = "default"
)

// APIVersions are the Microsoft.ServiceBus api-versions clients send: az
// (2022-10-01-preview, 2022-01-01-preview), the Go and JS management SDKs
// (2021-11-01, 2021-06-01-preview) and older templates (2017-04-01).
func APIVersions() []string {
	return []string{"2022-10-01-preview", "2022-01-01-preview", "2021-11-01", "2021-06-01-preview", "2017-04-01"}
}

// maxTimeSpan is .NET's TimeSpan.MaxValue, Service Bus's "never" for TTLs
// and auto-delete, as the service writes it.
const maxTimeSpan = "P10675199DT2H48M5.4775807S"

// Identities applies the identity block; *msi.Manager implements it.
type Identities interface {
	Prepare(ctx context.Context, req arm.PutRequest) (msi.Block, error)
	Provision(ctx context.Context, resourceID string, b msi.Block) (msi.Block, error)
	Deprovision(ctx context.Context, resourceID string) error
}

// Entity names a queue or a topic subscription of a namespace — something
// messages are received from — with its settings.
type Entity struct {
	Namespace string
	// Queue is set for a queue; Topic and Subscription for a subscription.
	Queue, Topic, Subscription string
	Settings                   Settings
}

// Runtime follows the resources into the data plane. The Service Bus broker
// implements it; NopRuntime does nothing.
type Runtime interface {
	EnsureNamespace(ctx context.Context, namespace string) error
	RemoveNamespace(ctx context.Context, namespace string) error
	// EnsureEntity creates or updates what a queue or subscription needs to
	// receive (its consumers) with its current settings.
	EnsureEntity(ctx context.Context, e Entity) error
	// RemoveEntity drops a queue's or subscription's messages and consumers.
	RemoveEntity(ctx context.Context, e Entity) error
	// Changed tells the data plane that the namespace's configuration
	// (entities, rules, keys, network rules) changed.
	Changed(namespace string)
}

// Counter reports message counts for GET of a queue or subscription; the
// broker implements it. It is optional: without it counts stay 0.
type Counter interface {
	Count(ctx context.Context, e Entity) (active, deadLetter int64, err error)
}

// NopRuntime is a Runtime that does nothing.
type NopRuntime struct{}

func (NopRuntime) EnsureNamespace(context.Context, string) error { return nil }
func (NopRuntime) RemoveNamespace(context.Context, string) error { return nil }
func (NopRuntime) EnsureEntity(context.Context, Entity) error    { return nil }
func (NopRuntime) RemoveEntity(context.Context, Entity) error    { return nil }
func (NopRuntime) Changed(string)                                {}

// Config holds the dependencies of every Service Bus type.
type Config struct {
	// DNSSuffix makes host names: {namespace}.servicebus.{DNSSuffix}.
	DNSSuffix  string
	Identities Identities
	// Resources is the store the types read siblings from and write the
	// resources Azure creates implicitly (RootManageSharedAccessKey, a
	// subscription's $Default rule, regenerated keys).
	Resources store.Resources
	// NameTaken reports whether another provider's namespace (Event Hubs)
	// holds a name: Service Bus and Event Hubs namespaces share one DNS zone.
	// Service Bus namespaces are checked here. Nil means none.
	NameTaken func(ctx context.Context, name string) (bool, error)
	Runtime   Runtime
	Locations []arm.Location
	Now       func() time.Time
	Random    io.Reader
}

func (c *Config) defaults() {
	if c.Runtime == nil {
		c.Runtime = NopRuntime{}
	}
	if c.Locations == nil {
		c.Locations = arm.DefaultLocations()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Random == nil {
		c.Random = rand.Reader
	}
}

// Types returns every Service Bus resource type, to register with
// arm.NewRegistry, and the provider actions (checkNameAvailability) to add
// with Registry.AddProviderAction.
func Types(cfg Config) ([]arm.ResourceType, []arm.ProviderAction) {
	cfg.defaults()
	ns := &Namespaces{cfg: cfg}
	types := []arm.ResourceType{
		ns,
		&AuthorizationRules{cfg: cfg, typ: "namespaces/authorizationRules"},
		&AuthorizationRules{cfg: cfg, typ: "namespaces/queues/authorizationRules"},
		&AuthorizationRules{cfg: cfg, typ: "namespaces/topics/authorizationRules"},
		&Queues{cfg: cfg},
		&Topics{cfg: cfg},
		&Subscriptions{cfg: cfg},
		&Rules{cfg: cfg},
		&NetworkRuleSets{cfg: cfg},
	}
	return types, ns.ProviderActions()
}

// timestamp formats times as the service does.
func timestamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.0000000Z") }

func invalid(format string, args ...any) *arm.Error {
	return arm.Errorf(http.StatusBadRequest, "BadRequest", format, args...)
}

func newKey(r io.Reader) (string, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("sbresource: generate key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// storedProps decodes the stored properties of a resource (nil when absent).
func storedProps(res *store.Resource) map[string]json.RawMessage {
	if res == nil {
		return nil
	}
	var doc struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	_ = json.Unmarshal(res.Body, &doc)
	return doc.Properties
}

// namespaceOf returns the stored namespace of a child id.
func namespaceOf(ctx context.Context, rs store.Resources, id arm.ResourceID) (store.Resource, error) {
	nsID := id
	nsID.Types, nsID.Names = id.Types[:1], id.Names[:1]
	res, err := rs.Get(ctx, nsID.String())
	if errors.Is(err, store.ErrNotFound) {
		return store.Resource{}, arm.Errorf(http.StatusNotFound, "ParentResourceNotFound",
			"The namespace '%s' was not found.", id.Names[0])
	}
	if err != nil {
		return store.Resource{}, fmt.Errorf("sbresource: get namespace %s: %w", id.Names[0], err)
	}
	return res, nil
}
