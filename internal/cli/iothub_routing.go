package cli

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
)

// Endpoint types as az's --endpoint-type names them, and the member of
// properties.routing.endpoints each lives in.
var endpointKinds = []struct{ typ, member string }{
	{"eventhub", "eventHubs"},
	{"servicebusqueue", "serviceBusQueues"},
	{"servicebustopic", "serviceBusTopics"},
	{"azurestoragecontainer", "storageContainers"},
}

func endpointMember(typ string) string {
	for _, k := range endpointKinds {
		if k.typ == strings.ToLower(typ) {
			return k.member
		}
	}
	return ""
}

// routeSources are az's RouteSourceType values; az sends them as written
// here (lower case) and the server answers with the API's spelling.
var routeSources = []string{"invalid", "devicemessages", "twinchangeevents", "devicelifecycleevents",
	"devicejoblifecycleevents", "digitaltwinchangeevents", "deviceconnectionstateevents"}

func routingOf(hub map[string]any) map[string]any { return obj(obj(hub, "properties"), "routing") }

// endpointsOf is properties.routing.endpoints with every az endpoint list
// present.
func endpointsOf(hub map[string]any) map[string]any {
	eps := obj(routingOf(hub), "endpoints")
	for _, k := range endpointKinds {
		if eps[k.member] == nil {
			eps[k.member] = []any{}
		}
	}
	return eps
}

// withModelNulls gives each endpoint of each list the fields of its SDK
// model that it lacks, as null, as az prints them (emitModel only fills
// the top level); eps is printed, not saved.
func withModelNulls(eps map[string]any) map[string]any {
	for _, k := range endpointKinds {
		for _, e := range arr(eps, k.member) {
			if ep, ok := e.(map[string]any); ok {
				for _, f := range endpointModel(k.member) {
					if _, present := ep[f]; !present {
						ep[f] = nil
					}
				}
			}
		}
	}
	return eps
}

// findEndpoint finds a custom endpoint by name (ignoring case), in az's
// search order; it returns the endpoint and the member holding it.
func findEndpoint(hub map[string]any, name string) (map[string]any, string) {
	eps := endpointsOf(hub)
	for _, k := range endpointKinds {
		for _, e := range arr(eps, k.member) {
			if ep, ok := e.(map[string]any); ok && strings.EqualFold(str(ep, "name"), name) {
				return ep, k.member
			}
		}
	}
	return nil, ""
}

func newRoutingEndpointCommand() *cobra.Command {
	group := &cobra.Command{Use: "routing-endpoint", Short: "Custom routing endpoints of an IoT hub"}
	group.AddCommand(newEndpointCreateCommand(), newEndpointUpdateCommand(), newEndpointListCommand(),
		newEndpointShowCommand(), newEndpointDeleteCommand())
	return group
}

// endpointSettings are the flags create and update share.
type endpointSettings struct {
	name, typ, group, subscription, connectionString, container, encoding string
	uri, entityPath, fileNameFormat, authType, identity                   string
	batchFrequency, chunkSizeMB                                           int
}

func (e *endpointSettings) flags(cmd *cobra.Command, a *azArgs, create bool) {
	a.stringFlag(cmd, &e.name, "endpoint-name", "n", "", "name of the routing endpoint", "name")
	a.stringFlag(cmd, &e.typ, "endpoint-type", "t", "", "endpoint type: azurestoragecontainer, eventhub, servicebusqueue or servicebustopic", "type")
	a.stringFlag(cmd, &e.group, "endpoint-resource-group", "r", "", "resource group of the endpoint's resource", "erg")
	a.stringFlag(cmd, &e.subscription, "endpoint-subscription-id", "s", "", "subscription id of the endpoint's resource")
	a.stringFlag(cmd, &e.connectionString, "connection-string", "c", "", "connection string of the endpoint (keyBased)")
	a.stringFlag(cmd, &e.container, "container-name", "", "", "storage container (azurestoragecontainer)", "container")
	a.stringFlag(cmd, &e.encoding, "encoding", "", "", "blob encoding: avro (default) or json (azurestoragecontainer)")
	a.stringFlag(cmd, &e.uri, "endpoint-uri", "", "", "the endpoint resource's URI (identityBased): sb://… or https://…")
	a.stringFlag(cmd, &e.entityPath, "entity-path", "", "", "queue, topic or event hub name (identityBased)")
	batch, chunk, format := 300, 300, "{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}"
	if !create {
		batch, chunk, format = 0, 0, ""
	}
	a.intFlag(cmd, &e.batchFrequency, "batch-frequency", "b", batch, "seconds between blob writes, 60 to 720")
	a.intFlag(cmd, &e.chunkSizeMB, "chunk-size", "w", chunk, "maximum blob size in MB, 10 to 500")
	a.stringFlag(cmd, &e.fileNameFormat, "file-name-format", "", format, "blob name format with {iothub} {partition} {YYYY} {MM} {DD} {HH} {mm}", "ff")
	a.stringFlag(cmd, &e.authType, "auth-type", "", "", "authentication: keyBased (default) or identityBased")
	a.stringFlag(cmd, &e.identity, "identity", "", "", "with identityBased: [system] (the default) or a user-assigned identity's resource id")
}

func (e *endpointSettings) check(cmd *cobra.Command) error {
	var err error
	if e.typ != "" {
		var kinds []string
		for _, k := range endpointKinds {
			kinds = append(kinds, k.typ)
		}
		if e.typ, err = oneOf("--endpoint-type", e.typ, kinds...); err != nil {
			return err
		}
	}
	if e.authType != "" {
		if e.authType, err = oneOf("--auth-type", e.authType, authIdentityBased, authKeyBased); err != nil {
			return err
		}
	}
	if e.encoding != "" {
		if e.encoding, err = oneOf("--encoding", e.encoding, "avro", "json"); err != nil {
			return err
		}
	}
	return nil
}

// managedIdentity is the endpoint's identity member for --identity: none
// for the system-assigned identity.
func managedIdentity(identity string) map[string]any {
	if identity == "" || identity == systemIdentity || identity == identityNone {
		return nil
	}
	return map[string]any{"userAssignedIdentity": identity}
}

func newEndpointCreateCommand() *cobra.Command {
	var (
		h hubRef
		e endpointSettings
	)
	cmd := &cobra.Command{
		Use:   "create --hub-name HUB --endpoint-name NAME --endpoint-type TYPE --endpoint-resource-group GROUP --endpoint-subscription-id SUB",
		Short: "Add a routing endpoint to an IoT hub (az iot hub routing-endpoint create); prints the hub's endpoints",
	}
	a := newAZArgs(cmd)
	h.flags(cmd, a, "hub-name")
	e.flags(cmd, a, true)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := a.finish(cmd, args); err != nil {
			return err
		}
		if err := requireFlags(cmd, "hub-name", "endpoint-name", "endpoint-type", "endpoint-resource-group", "endpoint-subscription-id"); err != nil {
			return err
		}
		if err := e.check(cmd); err != nil {
			return err
		}
		if e.identity != "" && e.authType != authIdentityBased {
			return usageErrorf("In order to use an identity for authentication, you must select --auth-type as 'identityBased'")
		}
		if e.typ == "azurestoragecontainer" && e.container == "" {
			return errors.New("Container name is required.")
		}
		c, hub, err := h.load(cmd)
		if err != nil {
			return err
		}
		ep := map[string]any{"name": e.name, "subscriptionId": e.subscription, "resourceGroup": e.group}
		set := func(k, v string) {
			if v != "" {
				ep[k] = v
			}
		}
		set("connectionString", e.connectionString)
		set("authenticationType", e.authType)
		set("endpointUri", e.uri)
		if id := managedIdentity(e.identity); id != nil {
			ep["identity"] = id
		}
		if e.typ == "azurestoragecontainer" {
			ep["containerName"] = e.container
			ep["encoding"] = "avro"
			set("encoding", e.encoding)
			ep["fileNameFormat"] = e.fileNameFormat
			ep["batchFrequencyInSeconds"] = e.batchFrequency
			ep["maxChunkSizeInBytes"] = e.chunkSizeMB * 1048576
		} else {
			set("entityPath", e.entityPath)
		}
		eps := endpointsOf(hub)
		member := endpointMember(e.typ)
		eps[member] = append(arr(eps, member), ep)
		out, err := h.save(cmd, c, hub)
		if err != nil {
			return err
		}
		return emitModel(cmd, withModelNulls(endpointsOf(out)), nil, endpointsModel)
	}
	return cmd
}

// newEndpointUpdateCommand has no counterpart in az 2.45's iot module (the
// azure-iot extension has `message-endpoint update`): it changes an
// endpoint in place, including its authentication type. Switching to
// identityBased drops the connection string and, when --endpoint-uri and
// --entity-path are not given, takes them from it; switching to keyBased
// drops the identity and needs a connection string.
func newEndpointUpdateCommand() *cobra.Command {
	var (
		h hubRef
		e endpointSettings
	)
	cmd := &cobra.Command{
		Use:   "update --hub-name HUB --endpoint-name NAME [settings]",
		Short: "Change a routing endpoint of an IoT hub, e.g. its authentication type; prints the endpoint",
	}
	a := newAZArgs(cmd)
	h.flags(cmd, a, "hub-name")
	e.flags(cmd, a, false)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := a.finish(cmd, args); err != nil {
			return err
		}
		if err := requireFlags(cmd, "hub-name", "endpoint-name"); err != nil {
			return err
		}
		if err := e.check(cmd); err != nil {
			return err
		}
		c, hub, err := h.load(cmd)
		if err != nil {
			return err
		}
		ep, member := findEndpoint(hub, e.name)
		if ep == nil {
			return errors.New("No endpoint found.")
		}
		if e.typ != "" && endpointMember(e.typ) != member {
			return usageErrorf("endpoint %s is in %s; --endpoint-type can't move it (delete and create it instead)", e.name, member)
		}
		if err := e.applyUpdate(cmd, ep, member); err != nil {
			return err
		}
		out, err := h.save(cmd, c, hub)
		if err != nil {
			return err
		}
		updated, member := findEndpoint(out, e.name)
		return emitModel(cmd, updated, nil, endpointModel(member))
	}
	return cmd
}

func (e *endpointSettings) applyUpdate(cmd *cobra.Command, ep map[string]any, member string) error {
	changed := cmd.Flags().Changed
	put := func(flag, key string, v any) {
		if changed(flag) {
			ep[key] = v
		}
	}
	put("endpoint-resource-group", "resourceGroup", e.group)
	put("endpoint-subscription-id", "subscriptionId", e.subscription)
	put("connection-string", "connectionString", e.connectionString)
	put("endpoint-uri", "endpointUri", e.uri)
	if member == "storageContainers" {
		put("container-name", "containerName", e.container)
		put("encoding", "encoding", e.encoding)
		put("file-name-format", "fileNameFormat", e.fileNameFormat)
		put("batch-frequency", "batchFrequencyInSeconds", e.batchFrequency)
		put("chunk-size", "maxChunkSizeInBytes", e.chunkSizeMB*1048576)
	} else {
		put("entity-path", "entityPath", e.entityPath)
	}
	auth := e.authType
	if auth == "" {
		auth = str(ep, "authenticationType")
		if auth == "" {
			auth = authKeyBased
		}
	}
	if e.identity != "" && auth != authIdentityBased {
		return usageErrorf("In order to use an identity for authentication, you must select --auth-type as 'identityBased'")
	}
	switch auth {
	case authIdentityBased:
		cs := str(ep, "connectionString")
		if str(ep, "endpointUri") == "" {
			ep["endpointUri"] = uriFromConnectionString(cs, member)
		}
		if member != "storageContainers" && str(ep, "entityPath") == "" {
			ep["entityPath"] = connectionStringPart(cs, "EntityPath")
		}
		delete(ep, "connectionString")
		if e.authType != "" || e.identity != "" {
			delete(ep, "identity")
			if id := managedIdentity(e.identity); id != nil {
				ep["identity"] = id
			}
		}
	case authKeyBased:
		if str(ep, "connectionString") == "" {
			return usageErrorf("Please provide a connection string '--connection-string/-c'")
		}
		delete(ep, "identity")
	}
	ep["authenticationType"] = auth
	return nil
}

// connectionStringPart reads one Key=Value of a connection string.
func connectionStringPart(cs, key string) string {
	for _, kv := range strings.Split(cs, ";") {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.EqualFold(strings.TrimSpace(k), key) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// uriFromConnectionString is the endpointUri a key-based endpoint's
// connection string implies: Endpoint=sb://… for Event Hubs and Service
// Bus, the blob endpoint for storage.
func uriFromConnectionString(cs, member string) string {
	if member != "storageContainers" {
		return connectionStringPart(cs, "Endpoint")
	}
	if blob := connectionStringPart(cs, "BlobEndpoint"); blob != "" {
		return blob
	}
	account, suffix := connectionStringPart(cs, "AccountName"), connectionStringPart(cs, "EndpointSuffix")
	if account == "" || suffix == "" {
		return ""
	}
	return "https://" + account + ".blob." + suffix
}

func newEndpointListCommand() *cobra.Command {
	var (
		h   hubRef
		typ string
	)
	cmd := &cobra.Command{
		Use:   "list --hub-name HUB [--endpoint-type TYPE]",
		Short: "List the routing endpoints of an IoT hub (az iot hub routing-endpoint list)",
		Long:  "Without --endpoint-type prints properties.routing.endpoints (an object of lists); with it, that type's list.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "hub-name"); err != nil {
				return err
			}
			member := ""
			if typ != "" {
				if member = endpointMember(typ); member == "" {
					_, err := oneOf("--endpoint-type", typ, "azurestoragecontainer", "eventhub", "servicebusqueue", "servicebustopic")
					return err
				}
			}
			_, hub, err := h.load(cmd)
			if err != nil {
				return err
			}
			eps := endpointsOf(hub)
			if member == "" {
				return emitModel(cmd, withModelNulls(eps), nil, endpointsModel)
			}
			return emitModel(cmd, eps[member], nil, endpointModel(member))
		},
	}
	h.flags(cmd, nil, "hub-name")
	cmd.Flags().StringVarP(&typ, "endpoint-type", "t", "", "endpoint type: azurestoragecontainer, eventhub, servicebusqueue or servicebustopic")
	return cmd
}

func newEndpointShowCommand() *cobra.Command {
	var (
		h    hubRef
		name string
	)
	cmd := &cobra.Command{
		Use:   "show --hub-name HUB --endpoint-name NAME",
		Short: "Show a routing endpoint of an IoT hub (az iot hub routing-endpoint show)",
	}
	a := newAZArgs(cmd)
	h.flags(cmd, a, "hub-name")
	a.stringFlag(cmd, &name, "endpoint-name", "n", "", "name of the routing endpoint", "name")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := a.finish(cmd, args); err != nil {
			return err
		}
		if err := requireFlags(cmd, "hub-name", "endpoint-name"); err != nil {
			return err
		}
		_, hub, err := h.load(cmd)
		if err != nil {
			return err
		}
		ep, member := findEndpoint(hub, name)
		if ep == nil {
			return errors.New("No endpoint found.")
		}
		return emitModel(cmd, ep, nil, endpointModel(member))
	}
	return cmd
}

func newEndpointDeleteCommand() *cobra.Command {
	var (
		h         hubRef
		name, typ string
	)
	cmd := &cobra.Command{
		Use:   "delete --hub-name HUB [--endpoint-name NAME] [--endpoint-type TYPE]",
		Short: "Delete routing endpoints of an IoT hub (az iot hub routing-endpoint delete); prints the hub's endpoints",
		Long:  "With --endpoint-type, deletes every endpoint of that type; with neither flag, every custom endpoint.",
	}
	a := newAZArgs(cmd)
	h.flags(cmd, a, "hub-name")
	a.stringFlag(cmd, &name, "endpoint-name", "n", "", "name of the routing endpoint", "name")
	a.stringFlag(cmd, &typ, "endpoint-type", "t", "", "endpoint type: azurestoragecontainer, eventhub, servicebusqueue or servicebustopic", "type")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := a.finish(cmd, args); err != nil {
			return err
		}
		if err := requireFlags(cmd, "hub-name"); err != nil {
			return err
		}
		if typ != "" && endpointMember(typ) == "" {
			_, err := oneOf("--endpoint-type", typ, "azurestoragecontainer", "eventhub", "servicebusqueue", "servicebustopic")
			return err
		}
		c, hub, err := h.load(cmd)
		if err != nil {
			return err
		}
		eps := endpointsOf(hub)
		if typ != "" {
			eps[endpointMember(typ)] = []any{}
		}
		if name != "" {
			if _, member := findEndpoint(hub, name); member != "" {
				var keep []any
				for _, v := range arr(eps, member) {
					if ep, _ := v.(map[string]any); !strings.EqualFold(str(ep, "name"), name) {
						keep = append(keep, v)
					}
				}
				eps[member] = append([]any{}, keep...)
			}
		}
		if typ == "" && name == "" {
			for _, k := range endpointKinds {
				eps[k.member] = []any{}
			}
		}
		out, err := h.save(cmd, c, hub)
		if err != nil {
			return err
		}
		return emitModel(cmd, withModelNulls(endpointsOf(out)), nil, endpointsModel)
	}
	return cmd
}

func newRouteCommand() *cobra.Command {
	group := &cobra.Command{Use: "route", Short: "Message routes of an IoT hub"}
	group.AddCommand(newRouteCreateCommand(), newRouteListCommand(), newRouteShowCommand(),
		newRouteUpdateCommand(), newRouteDeleteCommand(), newRouteTestCommand())
	return group
}

// routeFlags are az's 'iot hub route' arguments.
type routeFlags struct {
	name, source, endpoint, condition string
	enabled                           *triState
}

func (r *routeFlags) flags(cmd *cobra.Command, a *azArgs) {
	a.stringFlag(cmd, &r.name, "route-name", "n", "", "name of the route", "name")
	a.stringFlag(cmd, &r.source, "source-type", "s", "", "source: "+strings.Join(routeSources, ", "), "type", "source")
	a.stringFlag(cmd, &r.endpoint, "endpoint-name", "", "", "name of the routing endpoint", "endpoint", "en")
	a.stringFlag(cmd, &r.condition, "condition", "c", "", "condition that is evaluated to apply the route")
	r.enabled = a.triStateFlag(cmd, "enabled", "e", "whether the route is enabled")
}

func (r *routeFlags) checkSource() error {
	if r.source == "" {
		return nil
	}
	var err error
	r.source, err = oneOf("--source-type", r.source, routeSources...)
	return err
}

func routesOf(hub map[string]any) []any {
	rs := arr(routingOf(hub), "routes")
	if rs == nil {
		rs = []any{}
	}
	return rs
}

// routeCommand is the shared frame of the route commands: parse, read the
// hub, run, and (for changes) save it and print its routes.
func routeCommand(use, short string, required []string, save bool, run func(cmd *cobra.Command, r *routeFlags, hub map[string]any) (any, error)) *cobra.Command {
	var (
		h hubRef
		r routeFlags
	)
	cmd := &cobra.Command{Use: use, Short: short}
	a := newAZArgs(cmd)
	h.flags(cmd, a, "hub-name")
	r.flags(cmd, a)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := a.finish(cmd, args); err != nil {
			return err
		}
		if err := requireFlags(cmd, append([]string{"hub-name"}, required...)...); err != nil {
			return err
		}
		if err := r.checkSource(); err != nil {
			return err
		}
		c, hub, err := h.load(cmd)
		if err != nil {
			return err
		}
		result, err := run(cmd, &r, hub)
		if err != nil {
			return err
		}
		if save {
			out, err := h.save(cmd, c, hub)
			if err != nil {
				return err
			}
			result = routesOf(out)
		}
		return emitModel(cmd, result, nil, routeModel)
	}
	return cmd
}

func newRouteCreateCommand() *cobra.Command {
	return routeCommand("create --hub-name HUB --route-name NAME --source-type SOURCE --endpoint-name ENDPOINT [--condition C] [--enabled]",
		"Add a route to an IoT hub (az iot hub route create); prints the hub's routes",
		[]string{"route-name", "source-type", "endpoint-name"}, true,
		func(cmd *cobra.Command, r *routeFlags, hub map[string]any) (any, error) {
			cond := r.condition
			if !cmd.Flags().Changed("condition") {
				cond = "true"
			}
			enabled := true
			if p := r.enabled.ptr(); p != nil {
				enabled = *p
			}
			route := map[string]any{"name": r.name, "source": r.source, "condition": cond,
				"endpointNames": strings.Fields(r.endpoint), "isEnabled": enabled}
			routingOf(hub)["routes"] = append(routesOf(hub), route)
			return nil, nil
		})
}

func newRouteListCommand() *cobra.Command {
	return routeCommand("list --hub-name HUB [--source-type SOURCE]",
		"List the routes of an IoT hub (az iot hub route list)", nil, false,
		func(_ *cobra.Command, r *routeFlags, hub map[string]any) (any, error) {
			out := []any{}
			for _, v := range routesOf(hub) {
				rt, _ := v.(map[string]any)
				if r.source == "" || strings.EqualFold(str(rt, "source"), r.source) {
					out = append(out, v)
				}
			}
			return out, nil
		})
}

func findRoute(hub map[string]any, name string) map[string]any {
	for _, v := range routesOf(hub) {
		if rt, ok := v.(map[string]any); ok && strings.EqualFold(str(rt, "name"), name) {
			return rt
		}
	}
	return nil
}

func newRouteShowCommand() *cobra.Command {
	return routeCommand("show --hub-name HUB --route-name NAME", "Show a route of an IoT hub (az iot hub route show)",
		[]string{"route-name"}, false,
		func(_ *cobra.Command, r *routeFlags, hub map[string]any) (any, error) {
			if rt := findRoute(hub, r.name); rt != nil {
				return rt, nil
			}
			return nil, errors.New("No route found.")
		})
}

func newRouteUpdateCommand() *cobra.Command {
	return routeCommand("update --hub-name HUB --route-name NAME [--source-type S] [--endpoint-name E] [--condition C] [--enabled BOOL]",
		"Change a route of an IoT hub (az iot hub route update); prints the hub's routes",
		[]string{"route-name"}, true,
		func(cmd *cobra.Command, r *routeFlags, hub map[string]any) (any, error) {
			rt := findRoute(hub, r.name)
			if rt == nil {
				return nil, errors.New("No route found.")
			}
			if r.source != "" {
				rt["source"] = r.source
			}
			if r.endpoint != "" {
				rt["endpointNames"] = strings.Fields(r.endpoint)
			}
			if cmd.Flags().Changed("condition") {
				rt["condition"] = r.condition
			}
			if p := r.enabled.ptr(); p != nil {
				rt["isEnabled"] = *p
			}
			return nil, nil
		})
}

func newRouteDeleteCommand() *cobra.Command {
	return routeCommand("delete --hub-name HUB [--route-name NAME] [--source-type SOURCE]",
		"Delete routes of an IoT hub (az iot hub route delete); prints the hub's routes",
		nil, true,
		func(_ *cobra.Command, r *routeFlags, hub map[string]any) (any, error) {
			keep := []any{}
			for _, v := range routesOf(hub) {
				rt, _ := v.(map[string]any)
				byName := r.name != "" && strings.EqualFold(str(rt, "name"), r.name)
				bySource := r.source != "" && strings.EqualFold(str(rt, "source"), r.source)
				if r.name == "" && r.source == "" || byName || bySource {
					continue
				}
				keep = append(keep, v)
			}
			routingOf(hub)["routes"] = keep
			return nil, nil
		})
}

func newRouteTestCommand() *cobra.Command {
	var (
		h                           hubRef
		r                           routeFlags
		body, appProps, systemProps string
	)
	cmd := &cobra.Command{
		Use:   "test --hub-name HUB [--route-name NAME | --source-type SOURCE] [--body B] [--app-properties JSON] [--system-properties JSON]",
		Short: "Test a route, or every route of a source, against a message (az iot hub route test)",
	}
	a := newAZArgs(cmd)
	h.flags(cmd, a, "hub-name")
	r.flags(cmd, a)
	a.stringFlag(cmd, &body, "body", "b", "", "body of the test message")
	a.stringFlag(cmd, &appProps, "app-properties", "", "", "application properties of the test message (JSON object)", "ap")
	a.stringFlag(cmd, &systemProps, "system-properties", "", "", "system properties of the test message (JSON object)", "sp")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := a.finish(cmd, args); err != nil {
			return err
		}
		if err := requireFlags(cmd, "hub-name"); err != nil {
			return err
		}
		if err := r.checkSource(); err != nil {
			return err
		}
		msg := map[string]any{}
		if body != "" {
			msg["body"] = body
		}
		for flag, p := range map[string]struct {
			raw, key string
		}{"--app-properties": {appProps, "appProperties"}, "--system-properties": {systemProps, "systemProperties"}} {
			if p.raw == "" {
				continue
			}
			var v map[string]any
			if err := json.Unmarshal([]byte(p.raw), &v); err != nil {
				return usageErrorf("%s: not a JSON object: %v", flag, err)
			}
			msg[p.key] = v
		}
		c, err := newAPIClient(cmd)
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		hub, err := h.find(ctx, c)
		if err != nil {
			return err
		}
		base := c.hubPath(h.group, h.name) + "/routing/routes/"
		var out any
		model := []string{"routes"} // TestAllRoutesResult
		if r.name != "" {
			model = []string{"result", "details"} // TestRouteResult
			rt := findRoute(hub, r.name)
			if rt == nil {
				return errors.New("No route found.")
			}
			err = c.post(ctx, base+url.PathEscape("$testnew"), apiIoTHub, map[string]any{"message": msg, "route": rt}, &out)
		} else {
			in := map[string]any{"message": msg}
			if r.source != "" {
				in["routingSource"] = r.source
			}
			err = c.post(ctx, base+url.PathEscape("$testall"), apiIoTHub, in, &out)
		}
		if err != nil {
			return err
		}
		return emitModel(cmd, out, nil, model)
	}
	return cmd
}
