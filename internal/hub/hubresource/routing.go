package hubresource

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// endpointKinds are the members of routing.endpoints, one array each.
var endpointKinds = []string{"serviceBusQueues", "serviceBusTopics", "eventHubs", "storageContainers", "cosmosDBSqlContainers"}

// reservedEndpointNames can't name a custom endpoint: IoT Hub uses them.
var reservedEndpointNames = []string{"events", "fileNotifications", "$default", "operationsMonitoringEvents"}

// routingSources are the message sources a route may read.
var routingSources = []string{
	"DeviceMessages", "TwinChangeEvents", "DeviceLifecycleEvents", "DeviceConnectionStateEvents",
}

// unproducedSources (lower-case) are sources IoT Hub has that Outpost never
// emits, each with why: a route reading one would never match, so saving it is refused
// rather than left silent.
var unproducedSources = map[string]string{
	"devicejoblifecycleevents": "scheduled jobs (twin updates and direct methods on many devices), which emit these events, are not supported by Outpost yet",
	"digitaltwinchangeevents":  "IoT Plug and Play digital twins, which emit these events, are not supported by Outpost",
	"mqttbrokermessages":       "these come from Event Grid's MQTT broker, which Outpost does not include",
}

// fileNamePlaceholders must all appear in a storage endpoint's fileNameFormat.
var fileNamePlaceholders = []string{"{iothub}", "{partition}", "{YYYY}", "{MM}", "{DD}", "{HH}", "{mm}"}

var routingNamePattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

const (
	defaultFileNameFormat = "{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}"
	maxRoutes             = 100
	maxRoutesFree         = 5
	maxEndpoints          = 10
	maxEndpointsFree      = 1
	maxEnrichments        = 10
)

// builtInEndpoint is the name routes use for the hub's own events endpoint.
const builtInEndpoint = "events"

func defaultFallbackRoute() map[string]any {
	return map[string]any{
		"name": "$fallback", "source": "DeviceMessages", "condition": "true",
		"endpointNames": []string{builtInEndpoint}, "isEnabled": true,
	}
}

func defaultRouting() object {
	eps := map[string][]any{}
	for _, k := range endpointKinds {
		eps[k] = []any{}
	}
	o := object{}
	o.set("endpoints", eps)
	o.set("routes", []any{})
	o.set("fallbackRoute", defaultFallbackRoute())
	o.set("enrichments", []any{})
	return o
}

// routing validates routing.{endpoints, routes, fallbackRoute, enrichments}.
// Each of the four that a PUT sends replaces the stored one; the others are
// kept. What routing does with them is the routing engine's business; here
// they are checked for what clients get wrong and stored as sent.
func (b *propertiesBuilder) routing() error {
	const what = "properties.routing"
	r := defaultRouting()
	if b.current != nil {
		if cur, err := b.current.sub("routing", "properties"); err == nil && cur != nil {
			r = cur.clone()
		}
	}
	if raw, ok := b.body.take("routing"); ok {
		sent, err := decodeObject(raw, what)
		if err != nil {
			return err
		}
		for k, v := range sent {
			if isNull(v) {
				continue
			}
			if c, known := canonical(k, "endpoints", "routes", "fallbackRoute", "enrichments"); known {
				k = c
			}
			if rk := r.key(k); rk != "" {
				delete(r, rk)
			}
			r[k] = v
		}
	}
	names, err := b.routingEndpoints(r, what)
	if err != nil {
		return err
	}
	known := func(name string) bool {
		_, ok := names[strings.ToLower(name)]
		return ok || strings.EqualFold(name, builtInEndpoint)
	}
	if err := b.routes(r, what, known); err != nil {
		return err
	}
	if err := b.fallbackRoute(r, what, known); err != nil {
		return err
	}
	if err := enrichments(r, what, known); err != nil {
		return err
	}
	b.out.set("routing", r)
	return nil
}

// routingEndpoints validates the custom endpoints and returns their names
// (lower case) with their kind.
func (b *propertiesBuilder) routingEndpoints(r object, what string) (map[string]string, error) {
	ewhat := what + ".endpoints"
	eps, err := r.sub("endpoints", what)
	if err != nil {
		return nil, err
	}
	if eps == nil {
		eps = object{}
	}
	names := map[string]string{}
	for _, kind := range endpointKinds {
		items, err := eps.objects(kind, ewhat)
		if err != nil {
			return nil, err
		}
		if items == nil {
			items = []object{}
		}
		for i, ep := range items {
			if err := b.routingEndpoint(kind, fmt.Sprintf("%s.%s[%d]", ewhat, kind, i), ep, names); err != nil {
				return nil, err
			}
		}
		eps.set(kind, items)
	}
	limit := maxEndpoints
	if b.sku.free() {
		limit = maxEndpointsFree
	}
	if len(names) > limit {
		return nil, invalid("%s defines %d custom endpoints; a %s hub may have at most %d.", ewhat, len(names), b.sku.Name, limit)
	}
	r.set("endpoints", eps)
	return names, nil
}

func (b *propertiesBuilder) routingEndpoint(kind, what string, ep object, names map[string]string) error {
	name, _, err := ep.str("name", what)
	if err != nil {
		return err
	}
	if r, reserved := canonical(name, reservedEndpointNames...); reserved {
		return invalid("%s: the endpoint name '%s' is reserved by IoT Hub (reserved: %s); choose another name.", what, r, strings.Join(reservedEndpointNames, ", "))
	}
	switch {
	case name == "":
		return invalid("%s has no name; every endpoint needs one (1-64 letters, digits, '-', '.', '_').", what)
	case !routingNamePattern.MatchString(name):
		return invalid("%s: the endpoint name '%s' is invalid; use 1-64 letters, digits, '-', '.' or '_'.", what, name)
	}
	if other, dup := names[strings.ToLower(name)]; dup {
		return invalid("%s: the endpoint name '%s' is already used by an endpoint in %s; endpoint names are unique across all endpoint types (ignoring case).", what, name, other)
	}
	names[strings.ToLower(name)] = kind
	identityBased, err := b.endpointAuth(ep, what)
	if err != nil {
		return err
	}
	required := func(keys ...string) error {
		for _, k := range keys {
			v, _, err := ep.str(k, what)
			if err != nil {
				return err
			}
			if v == "" {
				return invalid("%s (endpoint '%s') needs %s.", what, name, k)
			}
		}
		return nil
	}
	scheme := "sb://"
	if kind == "storageContainers" || kind == "cosmosDBSqlContainers" {
		scheme = "https://"
	}
	if uri, ok, err := ep.str("endpointUri", what); err != nil {
		return err
	} else if ok && uri != "" && !strings.HasPrefix(strings.ToLower(uri), scheme) {
		return invalid("%s (endpoint '%s'): endpointUri '%s' must start with %s.", what, name, uri, scheme)
	}
	switch {
	case kind == "cosmosDBSqlContainers":
		if err := required("endpointUri", "databaseName", "containerName"); err != nil {
			return err
		}
	case identityBased && kind != "storageContainers":
		if err := required("endpointUri", "entityPath"); err != nil {
			return invalid("%s (endpoint '%s') is identity-based, so it needs endpointUri (sb://<namespace>.servicebus.<suffix>) and entityPath (the queue, topic or event hub name) instead of a connection string.", what, name)
		}
	case identityBased:
		if err := required("endpointUri"); err != nil {
			return err
		}
	default:
		if err := required("connectionString"); err != nil {
			return invalid("%s (endpoint '%s') needs a connectionString (authenticationType keyBased, the default), or authenticationType 'identityBased' with an endpointUri.", what, name)
		}
	}
	if kind == "storageContainers" {
		return storageContainerSettings(ep, what, name, required, b.minBatchSeconds)
	}
	return nil
}

func storageContainerSettings(ep object, what, name string, required func(...string) error, minBatch int64) error {
	if err := required("containerName"); err != nil {
		return err
	}
	format, ok, err := ep.str("fileNameFormat", what)
	if err != nil {
		return err
	}
	if !ok || format == "" {
		format = defaultFileNameFormat
	}
	var missing []string
	for _, p := range fileNamePlaceholders {
		if !strings.Contains(format, p) {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return invalid("%s (endpoint '%s'): fileNameFormat '%s' lacks %s; every one of %s must appear (in any order), e.g. '%s'.",
			what, name, format, strings.Join(missing, ", "), strings.Join(fileNamePlaceholders, " "), defaultFileNameFormat)
	}
	ep.set("fileNameFormat", format)
	if _, err := intSetting(ep, "batchFrequencyInSeconds", what, 300, minBatch, 720); err != nil {
		return err
	}
	if _, err := intSetting(ep, "maxChunkSizeInBytes", what, 314572800, 10485760, 524288000); err != nil {
		return err
	}
	enc, ok, err := ep.str("encoding", what)
	if err != nil {
		return err
	}
	if !ok || enc == "" {
		enc = "avro"
	}
	if _, valid := canonical(enc, "Avro", "AvroDeflate", "JSON"); !valid {
		return invalid("%s (endpoint '%s'): encoding '%s' is invalid; use 'avro', 'avroDeflate' or 'json'.", what, name, enc)
	}
	ep.set("encoding", enc)
	return nil
}

func (b *propertiesBuilder) routes(r object, what string, known func(string) bool) error {
	routes, err := r.objects("routes", what)
	if err != nil {
		return err
	}
	if routes == nil {
		routes = []object{}
	}
	limit := maxRoutes
	if b.sku.free() {
		limit = maxRoutesFree
	}
	if len(routes) > limit {
		return invalid("%s.routes has %d routes; a %s hub may have at most %d.", what, len(routes), b.sku.Name, limit)
	}
	seen := map[string]bool{}
	for i, rt := range routes {
		rwhat := fmt.Sprintf("%s.routes[%d]", what, i)
		name, _, err := rt.str("name", rwhat)
		if err != nil {
			return err
		}
		if !routingNamePattern.MatchString(name) {
			return invalid("%s: the route name '%s' is invalid; use 1-64 letters, digits, '-', '.' or '_'.", rwhat, name)
		}
		if seen[strings.ToLower(name)] {
			return invalid("%s: the route name '%s' is used twice; route names are unique (ignoring case).", rwhat, name)
		}
		seen[strings.ToLower(name)] = true
		source, _, err := rt.str("source", rwhat)
		if err != nil {
			return err
		}
		c, valid := canonical(source, routingSources...)
		if why, known := unproducedSources[strings.ToLower(source)]; !valid && known {
			return invalid("%s (route '%s'): source '%s' can't be routed: %s. Use one of %s.", rwhat, name, source, why, strings.Join(routingSources, ", "))
		}
		if !valid {
			return invalid("%s (route '%s'): source '%s' is invalid; use one of %s.", rwhat, name, source, strings.Join(routingSources, ", "))
		}
		rt.set("source", c)
		if err := routeTarget(rt, rwhat, "route '"+name+"'", known, b.checkCondition); err != nil {
			return err
		}
	}
	r.set("routes", routes)
	return nil
}

// routeTarget checks condition, endpointNames and isEnabled of a route or
// the fallback route.
func routeTarget(rt object, what, which string, known func(string) bool, check func(string) error) error {
	cond, ok, err := rt.str("condition", what)
	if err != nil {
		return err
	}
	if !ok || strings.TrimSpace(cond) == "" {
		cond = "true"
	}
	if check != nil {
		if err := check(cond); err != nil {
			return invalid("%s (%s): the condition %q is not valid: %v", what, which, cond, err)
		}
	}
	rt.set("condition", cond)
	eps, _, err := rt.strings("endpointNames", what)
	if err != nil {
		return err
	}
	if len(eps) != 1 {
		return invalid("%s (%s): endpointNames must name exactly one endpoint, got %d; use [\"events\"] for the built-in endpoint.", what, which, len(eps))
	}
	if !known(eps[0]) {
		return invalid("%s (%s) sends to the endpoint '%s', which is not defined. Define it under properties.routing.endpoints first, or use 'events' for the built-in endpoint.", what, which, eps[0])
	}
	if _, ok, err := rt.boolean("isEnabled", what); err != nil {
		return err
	} else if !ok {
		return invalid("%s (%s) needs isEnabled (true or false).", what, which)
	}
	return nil
}

func (b *propertiesBuilder) fallbackRoute(r object, what string, known func(string) bool) error {
	fb, err := r.sub("fallbackRoute", what)
	if err != nil {
		return err
	}
	if fb == nil {
		r.set("fallbackRoute", defaultFallbackRoute())
		return nil
	}
	fwhat := what + ".fallbackRoute"
	if name, ok, err := fb.str("name", fwhat); err != nil {
		return err
	} else if !ok || name == "" {
		fb.set("name", "$fallback")
	}
	source, ok, err := fb.str("source", fwhat)
	if err != nil {
		return err
	}
	if !ok {
		source = "DeviceMessages"
	}
	if !strings.EqualFold(source, "DeviceMessages") {
		return invalid("%s.source '%s' is invalid: the fallback route only carries 'DeviceMessages'.", fwhat, source)
	}
	fb.set("source", "DeviceMessages")
	if err := routeTarget(fb, fwhat, "the fallback route", known, b.checkCondition); err != nil {
		return err
	}
	r.set("fallbackRoute", fb)
	return nil
}

func enrichments(r object, what string, known func(string) bool) error {
	items, err := r.objects("enrichments", what)
	if err != nil {
		return err
	}
	if items == nil {
		items = []object{}
	}
	if len(items) > maxEnrichments {
		return invalid("%s.enrichments has %d entries; a hub may have at most %d.", what, len(items), maxEnrichments)
	}
	for i, e := range items {
		ewhat := fmt.Sprintf("%s.enrichments[%d]", what, i)
		key, _, err := e.str("key", ewhat)
		if err != nil {
			return err
		}
		if key == "" {
			return invalid("%s needs a key (the application property to add).", ewhat)
		}
		if raw, ok := e.get("value"); !ok {
			return invalid("%s (key '%s') needs a value.", ewhat, key)
		} else if err := json.Unmarshal(raw, new(string)); err != nil {
			return invalid("%s (key '%s'): value must be a string, got %s.", ewhat, key, abbreviate(raw))
		}
		eps, _, err := e.strings("endpointNames", ewhat)
		if err != nil {
			return err
		}
		if len(eps) == 0 {
			return invalid("%s (key '%s') needs endpointNames: the endpoints whose messages get the property.", ewhat, key)
		}
		for _, ep := range eps {
			if !known(ep) {
				return invalid("%s (key '%s') names the endpoint '%s', which is not defined under properties.routing.endpoints (or 'events').", ewhat, key, ep)
			}
		}
	}
	r.set("enrichments", items)
	return nil
}
