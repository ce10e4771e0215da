package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/store"
)

// HubType is the ARM type whose documents carry the routing settings.
const HubType = "Microsoft.Devices/IotHubs"

// BuiltInEndpoint names the hub's own events endpoint in routes.
const BuiltInEndpoint = "events"

// Endpoint kinds, as named under properties.routing.endpoints.
const (
	KindEventHubs        = "eventHubs"
	KindServiceBusQueues = "serviceBusQueues"
	KindServiceBusTopics = "serviceBusTopics"
	KindStorage          = "storageContainers"
)

// Routing sources (RouteProperties.source) and the iothub-message-source
// value of the messages each one reads.
const (
	SourceDeviceMessages        = "DeviceMessages"
	SourceTwinChangeEvents      = "TwinChangeEvents"
	SourceDeviceLifecycleEvents = "DeviceLifecycleEvents"
	SourceConnectionStateEvents = "DeviceConnectionStateEvents"
)

// routeSource maps a stored iothub-message-source to a routing source.
func routeSource(messageSource string) string {
	switch strings.ToLower(messageSource) {
	case "", "telemetry", "devicemessages":
		return SourceDeviceMessages
	case "twinchangeevents":
		return SourceTwinChangeEvents
	case "devicelifecycleevents":
		return SourceDeviceLifecycleEvents
	case "deviceconnectionstateevents":
		return SourceConnectionStateEvents
	}
	return messageSource
}

// Audiences of the hub's managed identity tokens per target service.
const (
	AudienceEventHubs  = "https://eventhubs.azure.net/"
	AudienceServiceBus = "https://servicebus.azure.net/"
	AudienceStorage    = "https://storage.azure.com/"
)

// hubDocument is the part of a stored IotHubs document routing reads.
type hubDocument struct {
	Identity struct {
		Type                   string                     `json:"type"`
		UserAssignedIdentities map[string]json.RawMessage `json:"userAssignedIdentities"`
	} `json:"identity"`
	Properties struct {
		EventHubEndpoints map[string]struct {
			RetentionTimeInDays int `json:"retentionTimeInDays"`
			PartitionCount      int `json:"partitionCount"`
		} `json:"eventHubEndpoints"`
		Routing struct {
			Endpoints     map[string][]endpointDocument `json:"endpoints"`
			Routes        []routeDocument               `json:"routes"`
			FallbackRoute *routeDocument                `json:"fallbackRoute"`
			Enrichments   []struct {
				Key           string   `json:"key"`
				Value         string   `json:"value"`
				EndpointNames []string `json:"endpointNames"`
			} `json:"enrichments"`
		} `json:"routing"`
	} `json:"properties"`
}

type endpointDocument struct {
	ID                 string `json:"id"`
	Name               string `json:"name"`
	ConnectionString   string `json:"connectionString"`
	EndpointURI        string `json:"endpointUri"`
	EntityPath         string `json:"entityPath"`
	AuthenticationType string `json:"authenticationType"`
	Identity           *struct {
		UserAssignedIdentity string `json:"userAssignedIdentity"`
	} `json:"identity"`
	ContainerName           string `json:"containerName"`
	FileNameFormat          string `json:"fileNameFormat"`
	Encoding                string `json:"encoding"`
	BatchFrequencyInSeconds int    `json:"batchFrequencyInSeconds"`
	MaxChunkSizeInBytes     int    `json:"maxChunkSizeInBytes"`
}

type routeDocument struct {
	Name          string   `json:"name"`
	Source        string   `json:"source"`
	Condition     string   `json:"condition"`
	EndpointNames []string `json:"endpointNames"`
	IsEnabled     bool     `json:"isEnabled"`
}

// Plan is a hub's routing configuration compiled for the router: built
// once per configuration change, then read without locks.
type Plan struct {
	Hub        string
	ResourceID string
	Partitions int
	Retention  time.Duration
	// Endpoints by lower-case name.
	Endpoints map[string]*Endpoint
	// builtIn stands for the built-in endpoint: its name and enrichments.
	builtIn *Endpoint
	// routes by routing source, in configuration order.
	routes   map[string][]route
	fallback *route // nil when disabled
	// Problems are what could not be used (a condition that doesn't
	// compile, an endpoint that can't be reached as configured); they are
	// logged and shown as the endpoint's last error.
	Problems []string
}

type route struct {
	name     string
	cond     Condition
	endpoint string // lower case; BuiltInEndpoint for the built-in one
	// counter counts the route's matches for the hub's history; the hub
	// runtime binds it when it installs the plan.
	counter *routeCounter
}

// Enrichment is one application property stamped on messages to an
// endpoint.
type Enrichment struct {
	Key, Value string
}

// Endpoint is one custom endpoint with everything a sender needs.
type Endpoint struct {
	Name string
	// ID is the endpoint's id when configured, else its name: what
	// routingEndpointsHealth reports as endpointId.
	ID   string
	Kind string
	// IdentityBased endpoints authenticate with the hub's managed identity:
	// the user-assigned one named by UserAssigned, or the system-assigned
	// one when it is empty.
	IdentityBased bool
	UserAssigned  string

	// Event Hubs and Service Bus: the entity's https base
	// (https://{host}/{entity}) and the SAS rule of a keyBased endpoint.
	EntityURL string
	KeyName   string
	Key       string

	// Storage: the blob service URL (https://{account}.blob.{suffix}/ or a
	// path-style https://host:port/{account}/), the account key of a
	// keyBased endpoint, and the batching settings.
	ServiceURL     string
	Account        string
	AccountKey     string
	Container      string
	FileNameFormat string
	Encoding       string // avro, avrodeflate or json (lower case)
	BatchFrequency time.Duration
	MaxChunkBytes  int

	Enrichments []Enrichment
	// fingerprint changes whenever anything above does, so a worker is
	// restarted exactly when its endpoint changed.
	fingerprint string
	// problem is why the endpoint can't be used as configured.
	problem string
}

// Audience is the token audience of the endpoint's service.
func (e *Endpoint) Audience() string {
	switch e.Kind {
	case KindEventHubs:
		return AudienceEventHubs
	case KindStorage:
		return AudienceStorage
	}
	return AudienceServiceBus
}

// compilePlan decodes a stored hub document into a Plan.
func compilePlan(res store.Resource, compile Compiler) (*Plan, error) {
	var doc hubDocument
	if err := json.Unmarshal(res.Body, &doc); err != nil {
		return nil, fmt.Errorf("engine: decode hub %s: %w", res.ID, err)
	}
	p := &Plan{Hub: res.Name, ResourceID: res.ID, Partitions: 4, Retention: 24 * time.Hour,
		Endpoints: map[string]*Endpoint{}, routes: map[string][]route{},
		builtIn: &Endpoint{Name: BuiltInEndpoint, ID: BuiltInEndpoint}}
	for name, ev := range doc.Properties.EventHubEndpoints {
		if strings.EqualFold(name, BuiltInEndpoint) {
			if ev.PartitionCount > 0 {
				p.Partitions = ev.PartitionCount
			}
			if ev.RetentionTimeInDays > 0 {
				p.Retention = time.Duration(ev.RetentionTimeInDays) * 24 * time.Hour
			}
		}
	}
	r := doc.Properties.Routing
	for kind, list := range r.Endpoints {
		for _, ed := range list {
			ep := newEndpoint(kind, ed)
			if ep == nil {
				continue // cosmosDBSqlContainers and kinds not served yet
			}
			if ep.problem != "" {
				p.Problems = append(p.Problems, fmt.Sprintf("endpoint '%s': %s", ep.Name, ep.problem))
			}
			p.Endpoints[strings.ToLower(ep.Name)] = ep
		}
	}
	for _, e := range r.Enrichments {
		for _, n := range e.EndpointNames {
			if strings.EqualFold(n, BuiltInEndpoint) {
				p.builtIn.Enrichments = append(p.builtIn.Enrichments, Enrichment{Key: e.Key, Value: e.Value})
			}
			if ep := p.Endpoints[strings.ToLower(n)]; ep != nil {
				ep.Enrichments = append(ep.Enrichments, Enrichment{Key: e.Key, Value: e.Value})
			}
		}
	}
	for _, ep := range p.Endpoints {
		ep.fingerprint = fingerprint(ep)
	}
	for _, rd := range r.Routes {
		if !rd.IsEnabled || len(rd.EndpointNames) == 0 {
			continue
		}
		rt, problem := p.compileRoute(rd, compile)
		if problem != "" {
			p.Problems = append(p.Problems, problem)
			continue
		}
		src := routeSource(rd.Source)
		p.routes[src] = append(p.routes[src], rt)
	}
	if fb := r.FallbackRoute; fb != nil && fb.IsEnabled {
		if len(fb.EndpointNames) == 0 {
			fb.EndpointNames = []string{BuiltInEndpoint}
		}
		rt, problem := p.compileRoute(*fb, compile)
		if problem != "" {
			p.Problems = append(p.Problems, problem)
		} else {
			p.fallback = &rt
		}
	} else if fb == nil {
		// A hub stored before routing existed: IoT Hub's default is an
		// enabled fallback to the built-in endpoint.
		p.fallback = &route{name: "$fallback", cond: constant(true), endpoint: BuiltInEndpoint}
	}
	return p, nil
}

func (p *Plan) compileRoute(rd routeDocument, compile Compiler) (route, string) {
	target := strings.ToLower(rd.EndpointNames[0])
	if target != BuiltInEndpoint && p.Endpoints[target] == nil {
		return route{}, fmt.Sprintf("route '%s' sends to '%s', which is not an endpoint this engine serves; the route is skipped", rd.Name, rd.EndpointNames[0])
	}
	cond, err := compile(rd.Condition)
	if err != nil {
		return route{}, fmt.Sprintf("route '%s': condition %q does not compile (%v); the route matches nothing until it is fixed", rd.Name, rd.Condition, err)
	}
	return route{name: rd.Name, cond: cond, endpoint: target}, ""
}

// newEndpoint turns a stored endpoint into an Endpoint; nil for kinds the
// engine doesn't deliver to.
func newEndpoint(kind string, d endpointDocument) *Endpoint {
	var k string
	for _, known := range []string{KindEventHubs, KindServiceBusQueues, KindServiceBusTopics, KindStorage} {
		if strings.EqualFold(kind, known) {
			k = known
		}
	}
	if k == "" {
		return nil
	}
	ep := &Endpoint{Name: d.Name, ID: d.ID, Kind: k, IdentityBased: strings.EqualFold(d.AuthenticationType, "identityBased")}
	if ep.ID == "" {
		ep.ID = d.Name
	}
	if ep.IdentityBased && d.Identity != nil {
		ep.UserAssigned = d.Identity.UserAssignedIdentity
	}
	if k == KindStorage {
		ep.storageSettings(d)
		return ep
	}
	ep.messagingSettings(d)
	return ep
}

func (e *Endpoint) messagingSettings(d endpointDocument) {
	endpoint, entity := d.EndpointURI, d.EntityPath
	if !e.IdentityBased {
		cs := parseConnectionString(d.ConnectionString)
		endpoint = cs["endpoint"]
		e.KeyName, e.Key = cs["sharedaccesskeyname"], cs["sharedaccesskey"]
		if cs["entitypath"] != "" {
			entity = cs["entitypath"]
		}
		if e.KeyName == "" || e.Key == "" {
			e.problem = "the connection string has no SharedAccessKeyName/SharedAccessKey"
		}
	}
	u, err := url.Parse(strings.TrimSpace(endpoint))
	if err != nil || u.Host == "" {
		e.problem = fmt.Sprintf("the endpoint '%s' is not a URI like sb://<namespace>.servicebus.<suffix>/", endpoint)
		return
	}
	if entity == "" {
		e.problem = "no entityPath (the event hub, queue or topic name) is configured"
		return
	}
	// REST reaches the namespace over https whatever the scheme (sb://).
	e.EntityURL = "https://" + u.Host + "/" + strings.Trim(entity, "/")
}

func (e *Endpoint) storageSettings(d endpointDocument) {
	e.Container = d.ContainerName
	e.FileNameFormat = d.FileNameFormat
	if e.FileNameFormat == "" {
		e.FileNameFormat = "{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}"
	}
	e.Encoding = strings.ToLower(d.Encoding)
	if e.Encoding == "" {
		e.Encoding = "avro"
	}
	e.BatchFrequency = time.Duration(d.BatchFrequencyInSeconds) * time.Second
	if e.BatchFrequency <= 0 {
		e.BatchFrequency = 300 * time.Second
	}
	e.MaxChunkBytes = d.MaxChunkSizeInBytes
	if e.MaxChunkBytes <= 0 {
		e.MaxChunkBytes = 314572800
	}
	if e.IdentityBased {
		u, err := url.Parse(strings.TrimSpace(d.EndpointURI))
		if err != nil || u.Host == "" {
			e.problem = fmt.Sprintf("the endpointUri '%s' is not a URI like https://<account>.blob.<suffix>", d.EndpointURI)
			return
		}
		e.ServiceURL = "https://" + u.Host + strings.TrimRight(u.Path, "/") + "/"
		e.Account = accountOf(u)
		return
	}
	cs := parseConnectionString(d.ConnectionString)
	e.Account, e.AccountKey = cs["accountname"], cs["accountkey"]
	switch {
	case cs["blobendpoint"] != "":
		e.ServiceURL = strings.TrimRight(cs["blobendpoint"], "/") + "/"
	case e.Account != "" && cs["endpointsuffix"] != "":
		proto := cs["defaultendpointsprotocol"]
		if proto == "" {
			proto = "https"
		}
		e.ServiceURL = proto + "://" + e.Account + ".blob." + cs["endpointsuffix"] + "/"
	}
	if e.Account == "" || e.AccountKey == "" || e.ServiceURL == "" {
		e.problem = "the connection string needs AccountName, AccountKey and BlobEndpoint (or EndpointSuffix)"
	}
}

// accountOf is the storage account of a blob service URL: the first label
// of a virtual-hosted name, or the first path segment of a path-style one.
func accountOf(u *url.URL) string {
	if seg, _, _ := strings.Cut(strings.Trim(u.Path, "/"), "/"); seg != "" {
		return seg
	}
	first, _, _ := strings.Cut(u.Hostname(), ".")
	return first
}

// parseConnectionString splits k=v;k=v into lower-case keys (values keep
// '=' characters, as keys end in "==").
func parseConnectionString(s string) map[string]string {
	out := map[string]string{}
	for _, part := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if ok {
			out[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
		}
	}
	return out
}

func fingerprint(e *Endpoint) string {
	b, _ := json.Marshal(struct {
		E *Endpoint
		K string
	}{e, e.Key + "|" + e.AccountKey})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// queueToken is an endpoint name as a NATS subject token and consumer
// name: lower case, with every character beyond [a-z0-9-] escaped as _xx.
func queueToken(name string) string {
	var b strings.Builder
	for _, c := range []byte(strings.ToLower(name)) {
		if ('a' <= c && c <= 'z') || ('0' <= c && c <= '9') || c == '-' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "_%02x", c)
	}
	return b.String()
}
