package portal

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// endpointKinds are routing.endpoints' arrays the portal manages, with the
// label the Azure portal uses and the target resource type.
var endpointKinds = []struct{ Key, Label, Parent, Child string }{
	{"eventHubs", "Event Hubs", "Microsoft.EventHub/namespaces", "eventhubs"},
	{"serviceBusQueues", "Service Bus queue", "Microsoft.ServiceBus/namespaces", "queues"},
	{"serviceBusTopics", "Service Bus topic", "Microsoft.ServiceBus/namespaces", "topics"},
	{"storageContainers", "Storage", "Microsoft.Storage/storageAccounts", "blobServices/default/containers"},
}

func kindLabel(key string) string {
	for _, k := range endpointKinds {
		if k.Key == key {
			return k.Label
		}
	}
	return key
}

// endpointView is one custom endpoint in the table.
type endpointView struct {
	Kind, KindLabel, Name string
	AuthType              string // Key-based, System-assigned, User-assigned
	Identity              string
	Target                string // namespace/entity or account/container
	Health, HealthError   string
	LastSuccess           string
}

type routeView struct {
	Name, Source, Condition, Endpoints string
	Enabled                            bool
}

// targetOption is a namespace or storage account with its instances, for
// the namespace and instance pickers.
type targetOption struct {
	Kind      string // endpoint kind it serves
	ID, Name  string
	Host      string // sb:// or https:// endpoint
	Instances []string
}

type routingData struct {
	Endpoints     []endpointView
	Routes        []routeView
	Targets       []targetOption
	Kinds         []struct{ Key, Label, Parent, Child string }
	Identities    []userIdentity // associated with the hub
	Sources       []string
	EndpointNames []string
	TestResult    string
	Form          url.Values
	// Chart is this node's recent traffic and endpoint health (nil when
	// the history could not be read).
	Chart *routingChart
}

var routeSources = []string{"DeviceMessages", "TwinChangeEvents", "DeviceLifecycleEvents", "DeviceConnectionStateEvents"}

// targets lists the namespaces and storage accounts (with their event
// hubs, queues, topics or containers) the endpoint pickers offer.
func (h *Handler) targets(ctx context.Context, s *session) ([]targetOption, error) {
	var out []targetOption
	for _, k := range endpointKinds {
		items, err := h.list(ctx, s, "/subscriptions/"+h.subscriptionID+"/resources?$filter=resourceType eq '"+k.Parent+"'", resourcesAPI)
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			ref, err := parseRef(str(it, "id"))
			if err != nil {
				continue
			}
			t := targetOption{Kind: k.Key, ID: ref.ID, Name: ref.Name}
			children, err := h.list(ctx, s, ref.ID+"/"+k.Child, apiVersionFor(ref))
			if err != nil {
				continue // not readable by this principal: not offered
			}
			for _, c := range children {
				t.Instances = append(t.Instances, str(c, "name"))
			}
			sort.Strings(t.Instances)
			if k.Key == "storageContainers" {
				doc, _, err := h.getResource(ctx, s, ref)
				if err == nil {
					t.Host = strings.TrimRight(str(obj(obj(doc, "properties"), "primaryEndpoints"), "blob"), "/")
				}
			} else {
				t.Host = "sb://" + ref.Name + ".servicebus." + h.dnsSuffix
			}
			out = append(out, t)
		}
	}
	return out, nil
}

// routingBlade is Hub → Message routing: custom endpoints with their
// health, Add endpoint, Change authentication type, routes, Add route and
// Test route.
func (h *Handler) routingBlade(w http.ResponseWriter, r *http.Request, s *session) error {
	ref, err := h.refFromQuery(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	d := routingData{Form: url.Values{}}
	var actionErr *APIError
	if r.Method == http.MethodPost {
		d.Form = r.PostForm
		var notice string
		switch r.PostFormValue("action") {
		case "addEndpoint":
			notice, err = h.addEndpoint(ctx, s, ref, r.PostForm)
		case "changeAuth":
			notice, err = h.changeEndpointAuth(ctx, s, ref, r.PostForm)
		case "addRoute":
			notice, err = h.addRoute(ctx, s, ref, r.PostForm)
		case "testRoute":
			d.TestResult, err = h.testRoute(ctx, s, ref, r.PostForm)
		default:
			err = &APIError{Status: http.StatusBadRequest, Code: "UnknownAction", Message: "The form asked for no known change."}
		}
		if err == nil && notice != "" {
			h.done(w, r, s, notice, Prefix+"routing?id="+urlQuery(ref.ID))
			return nil
		}
		if err != nil {
			actionErr = asAPIError(err)
		}
	}
	doc, _, err := h.getResource(ctx, s, ref)
	if err != nil {
		return err
	}
	routing := obj(obj(doc, "properties"), "routing")
	health := map[string][3]string{}
	if resp, err := h.arm(ctx, s, http.MethodGet, ref.ID+"/routingEndpointsHealth", hubAPI, nil); err == nil {
		var hl struct {
			Value []struct {
				EndpointID   string `json:"endpointId"`
				HealthStatus string `json:"healthStatus"`
				LastError    string `json:"lastKnownError"`
				LastSuccess  string `json:"lastSuccessfulSendAttemptTime"`
			} `json:"value"`
		}
		if resp.decode(&hl) == nil {
			for _, v := range hl.Value {
				health[strings.ToLower(v.EndpointID)] = [3]string{v.HealthStatus, v.LastError, v.LastSuccess}
			}
		}
	}
	d.EndpointNames = []string{"events"}
	for _, k := range endpointKinds {
		list, _ := obj(routing, "endpoints")[k.Key].([]any)
		for _, e := range list {
			ep, _ := e.(map[string]any)
			v := endpointView{Kind: k.Key, KindLabel: k.Label, Name: str(ep, "name"), AuthType: "Key-based"}
			if strings.EqualFold(str(ep, "authenticationType"), "identityBased") {
				v.AuthType = "System-assigned"
				if ua := str(obj(ep, "identity"), "userAssignedIdentity"); ua != "" {
					v.AuthType, v.Identity = "User-assigned", ua
				}
			}
			v.Target = endpointTarget(k.Key, ep)
			// routingEndpointsHealth names an endpoint by its id when it has
			// one, else by its name.
			hs, ok := health[strings.ToLower(str(ep, "id"))]
			if !ok {
				hs, ok = health[strings.ToLower(v.Name)]
			}
			if ok {
				v.Health, v.HealthError, v.LastSuccess = hs[0], hs[1], hs[2]
			} else {
				v.Health = "unknown"
			}
			d.Endpoints = append(d.Endpoints, v)
			d.EndpointNames = append(d.EndpointNames, v.Name)
		}
	}
	routes, _ := routing["routes"].([]any)
	for _, x := range routes {
		rt, _ := x.(map[string]any)
		names, _ := rt["endpointNames"].([]any)
		var ns []string
		for _, n := range names {
			if s, ok := n.(string); ok {
				ns = append(ns, s)
			}
		}
		enabled, _ := rt["isEnabled"].(bool)
		d.Routes = append(d.Routes, routeView{Name: str(rt, "name"), Source: str(rt, "source"), Condition: str(rt, "condition"), Endpoints: strings.Join(ns, ", "), Enabled: enabled})
	}
	if d.Targets, err = h.targets(ctx, s); err != nil {
		return err
	}
	for id, v := range obj(obj(doc, "identity"), "userAssignedIdentities") {
		m, _ := v.(map[string]any)
		d.Identities = append(d.Identities, userIdentity{ID: id, Name: id[strings.LastIndex(id, "/")+1:], PrincipalID: str(m, "principalId")})
	}
	sort.Slice(d.Identities, func(i, j int) bool { return d.Identities[i].Name < d.Identities[j].Name })
	d.Kinds, d.Sources = endpointKinds, routeSources
	d.Chart = h.routingMetrics(ctx, s, ref.Name)
	status := http.StatusOK
	if actionErr != nil {
		status = actionErr.Status
	}
	h.render(w, status, "routing", &page{Title: "Message routing — " + ref.Name, Session: s, Resource: ref, Blade: "routing", Error: actionErr, Data: d})
	return nil
}

// endpointTarget names what an endpoint writes to.
func endpointTarget(kind string, ep map[string]any) string {
	if kind == "storageContainers" {
		acct := ""
		if u, err := url.Parse(str(ep, "endpointUri")); err == nil && u.Host != "" {
			acct, _, _ = strings.Cut(u.Host, ".")
		}
		if cs := parseConnectionString(str(ep, "connectionString")); cs["accountname"] != "" {
			acct = cs["accountname"]
		}
		return acct + "/" + str(ep, "containerName")
	}
	ns, entity := "", str(ep, "entityPath")
	if u, err := url.Parse(str(ep, "endpointUri")); err == nil && u.Host != "" {
		ns, _, _ = strings.Cut(u.Host, ".")
	}
	if cs := parseConnectionString(str(ep, "connectionString")); cs["endpoint"] != "" {
		if u, err := url.Parse(cs["endpoint"]); err == nil {
			ns, _, _ = strings.Cut(u.Host, ".")
		}
		if cs["entitypath"] != "" {
			entity = cs["entitypath"]
		}
	}
	return ns + "/" + entity
}

// parseConnectionString reads key=value pairs (keys lower-cased).
func parseConnectionString(cs string) map[string]string {
	out := map[string]string{}
	for _, part := range strings.Split(cs, ";") {
		if k, v, ok := strings.Cut(part, "="); ok {
			out[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
		}
	}
	return out
}

// updateRouting reads the hub, lets change edit properties.routing and
// writes the hub back, waiting for the operation.
func (h *Handler) updateRouting(ctx context.Context, s *session, ref *resourceRef, change func(routing map[string]any) error) error {
	doc, _, err := h.getResource(ctx, s, ref)
	if err != nil {
		return err
	}
	props := obj(doc, "properties")
	if props == nil {
		props = map[string]any{}
		doc["properties"] = props
	}
	routing := obj(props, "routing")
	if routing == nil {
		routing = map[string]any{}
		props["routing"] = routing
	}
	if obj(routing, "endpoints") == nil {
		routing["endpoints"] = map[string]any{}
	}
	if err := change(routing); err != nil {
		return err
	}
	return h.putResource(ctx, s, ref, doc)
}

// findTarget finds the picked namespace or account among those offered.
func (h *Handler) findTarget(ctx context.Context, s *session, kind, name string) (targetOption, error) {
	targets, err := h.targets(ctx, s)
	if err != nil {
		return targetOption{}, err
	}
	for _, t := range targets {
		if t.Kind == kind && strings.EqualFold(t.Name, name) {
			return t, nil
		}
	}
	return targetOption{}, &APIError{Status: http.StatusBadRequest, Code: "TargetNotFound",
		Message: "Select a " + kindLabel(kind) + " namespace or account you can read; '" + name + "' is not one."}
}

// endpointAuth fills an endpoint's authentication from the form: keyBased
// fetches the target's connection string (with the signed-in principal's
// rights, as listKeys needs), identityBased sets the endpoint URI and the
// chosen identity.
func (h *Handler) endpointAuth(ctx context.Context, s *session, kind string, t targetOption, entity string, ep map[string]any, form url.Values) error {
	for _, k := range []string{"connectionString", "endpointUri", "entityPath", "identity", "authenticationType"} {
		delete(ep, k)
	}
	switch form.Get("authenticationType") {
	case "keyBased":
		ep["authenticationType"] = "keyBased"
		cs, err := h.connectionString(ctx, s, kind, t)
		if err != nil {
			return err
		}
		if kind != "storageContainers" {
			cs += ";EntityPath=" + entity
		}
		ep["connectionString"] = cs
		return nil
	case "systemAssigned", "userAssigned":
		ep["authenticationType"] = "identityBased"
		ep["endpointUri"] = t.Host
		if kind != "storageContainers" {
			ep["entityPath"] = entity
		}
		if form.Get("authenticationType") == "userAssigned" {
			ua := form.Get("identity")
			if ua == "" {
				return &APIError{Status: http.StatusBadRequest, Code: "NoIdentitySelected", Message: "Select the user-assigned identity the endpoint authenticates with (associate one on the Identity page first)."}
			}
			ep["identity"] = map[string]any{"userAssignedIdentity": ua}
		}
		return nil
	}
	return &APIError{Status: http.StatusBadRequest, Code: "NoAuthenticationType", Message: "Choose the authentication type: Key-based, System-assigned or User-assigned."}
}

func (h *Handler) connectionString(ctx context.Context, s *session, kind string, t targetOption) (string, error) {
	ref, err := parseRef(t.ID)
	if err != nil {
		return "", err
	}
	if kind == "storageContainers" {
		resp, err := h.arm(ctx, s, http.MethodPost, t.ID+"/listKeys", apiVersionFor(ref), nil)
		if err != nil {
			return "", err
		}
		var keys struct {
			Keys []struct{ Value string } `json:"keys"`
		}
		if err := resp.decode(&keys); err != nil || len(keys.Keys) == 0 {
			return "", &APIError{Status: http.StatusBadGateway, Code: "NoAccountKey", Message: "The storage account returned no key."}
		}
		return "DefaultEndpointsProtocol=https;AccountName=" + t.Name + ";AccountKey=" + keys.Keys[0].Value + ";EndpointSuffix=" + h.dnsSuffix, nil
	}
	resp, err := h.arm(ctx, s, http.MethodPost, t.ID+"/authorizationRules/RootManageSharedAccessKey/listKeys", apiVersionFor(ref), nil)
	if err != nil {
		return "", err
	}
	var keys struct {
		PrimaryConnectionString string `json:"primaryConnectionString"`
	}
	if err := resp.decode(&keys); err != nil {
		return "", err
	}
	return keys.PrimaryConnectionString, nil
}

func (h *Handler) addEndpoint(ctx context.Context, s *session, ref *resourceRef, form url.Values) (string, error) {
	kind, name := form.Get("endpointType"), strings.TrimSpace(form.Get("endpointName"))
	if kindLabel(kind) == kind {
		return "", &APIError{Status: http.StatusBadRequest, Code: "NoEndpointType", Message: "Select the endpoint type."}
	}
	t, err := h.findTarget(ctx, s, kind, form.Get("namespace"))
	if err != nil {
		return "", err
	}
	entity := form.Get("instance")
	found := false
	for _, i := range t.Instances {
		found = found || i == entity
	}
	if !found {
		return "", &APIError{Status: http.StatusBadRequest, Code: "InstanceNotFound", Message: "Select an instance (event hub, queue, topic or container) of " + t.Name + "."}
	}
	ep := map[string]any{"name": name, "subscriptionId": h.subscriptionID}
	if tr, err := parseRef(t.ID); err == nil {
		ep["resourceGroup"] = tr.Group
	}
	if kind == "storageContainers" {
		ep["containerName"] = entity
		ep["encoding"] = "JSON"
		if enc := form.Get("encoding"); enc == "Avro" || enc == "AvroDeflate" {
			ep["encoding"] = enc
		}
	}
	if err := h.endpointAuth(ctx, s, kind, t, entity, ep, form); err != nil {
		return "", err
	}
	err = h.updateRouting(ctx, s, ref, func(routing map[string]any) error {
		eps := obj(routing, "endpoints")
		list, _ := eps[kind].([]any)
		eps[kind] = append(list, ep)
		return nil
	})
	if err != nil {
		return "", err
	}
	return "Created endpoint " + name + ".", nil
}

// changeEndpointAuth is Custom endpoints → select → Change authentication type.
func (h *Handler) changeEndpointAuth(ctx context.Context, s *session, ref *resourceRef, form url.Values) (string, error) {
	selected := form["endpoint"]
	if len(selected) == 0 {
		return "", &APIError{Status: http.StatusBadRequest, Code: "NoEndpointSelected", Message: "Select the custom endpoints whose authentication type you want to change."}
	}
	// Resolve every target before the write (listKeys may be needed).
	type change struct {
		kind, name string
		t          targetOption
		entity     string
	}
	doc, _, err := h.getResource(ctx, s, ref)
	if err != nil {
		return "", err
	}
	eps := obj(obj(obj(doc, "properties"), "routing"), "endpoints")
	var changes []change
	for _, sel := range selected {
		kind, name, _ := strings.Cut(sel, "/")
		list, _ := eps[kind].([]any)
		var ep map[string]any
		for _, e := range list {
			if m, _ := e.(map[string]any); strings.EqualFold(str(m, "name"), name) {
				ep = m
			}
		}
		if ep == nil {
			return "", &APIError{Status: http.StatusBadRequest, Code: "EndpointNotFound", Message: "The hub has no endpoint '" + name + "'."}
		}
		target, entity, _ := strings.Cut(endpointTarget(kind, ep), "/")
		if kind == "storageContainers" {
			entity = str(ep, "containerName")
		}
		t, err := h.findTarget(ctx, s, kind, target)
		if err != nil {
			return "", err
		}
		changes = append(changes, change{kind, name, t, entity})
	}
	fields := map[string]map[string]any{}
	for _, c := range changes {
		ep := map[string]any{}
		if err := h.endpointAuth(ctx, s, c.kind, c.t, c.entity, ep, form); err != nil {
			return "", err
		}
		fields[c.kind+"/"+strings.ToLower(c.name)] = ep
	}
	err = h.updateRouting(ctx, s, ref, func(routing map[string]any) error {
		eps := obj(routing, "endpoints")
		for _, k := range endpointKinds {
			list, _ := eps[k.Key].([]any)
			for _, e := range list {
				m, _ := e.(map[string]any)
				f, ok := fields[k.Key+"/"+strings.ToLower(str(m, "name"))]
				if !ok {
					continue
				}
				for _, key := range []string{"connectionString", "endpointUri", "entityPath", "identity", "authenticationType"} {
					delete(m, key)
				}
				for key, v := range f {
					m[key] = v
				}
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return "Changed the authentication type of " + strings.Join(selected, ", ") + ".", nil
}

func routeFromForm(form url.Values) (map[string]any, error) {
	name := strings.TrimSpace(form.Get("routeName"))
	ep := form.Get("routeEndpoint")
	if name == "" || ep == "" {
		return nil, &APIError{Status: http.StatusBadRequest, Code: "InvalidRoute", Message: "A route needs a name and an endpoint."}
	}
	cond := strings.TrimSpace(form.Get("condition"))
	if cond == "" {
		cond = "true"
	}
	return map[string]any{"name": name, "source": form.Get("source"), "condition": cond,
		"endpointNames": []string{ep}, "isEnabled": form.Get("enabled") != ""}, nil
}

func (h *Handler) addRoute(ctx context.Context, s *session, ref *resourceRef, form url.Values) (string, error) {
	route, err := routeFromForm(form)
	if err != nil {
		return "", err
	}
	err = h.updateRouting(ctx, s, ref, func(routing map[string]any) error {
		list, _ := routing["routes"].([]any)
		routing["routes"] = append(list, route)
		return nil
	})
	if err != nil {
		return "", err
	}
	return "Created route " + route["name"].(string) + ".", nil
}

// testRoute runs the route being written against a sample message with the
// hub's $testnew action (nothing is sent or saved).
func (h *Handler) testRoute(ctx context.Context, s *session, ref *resourceRef, form url.Values) (string, error) {
	route, err := routeFromForm(form)
	if err != nil {
		return "", err
	}
	msg := map[string]any{"body": form.Get("sampleBody"), "appProperties": map[string]string{}, "systemProperties": map[string]string{
		"contentType": "application/json", "contentEncoding": "utf-8"}}
	for _, line := range strings.Split(form.Get("sampleProperties"), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			msg["appProperties"].(map[string]string)[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	resp, err := h.arm(ctx, s, http.MethodPost, ref.ID+"/routing/routes/$testnew", hubAPI, map[string]any{"message": msg, "route": route})
	if err != nil {
		return "", err
	}
	var out struct {
		Result  string `json:"result"`
		Details struct {
			CompilationErrors []struct {
				Message string `json:"message"`
			} `json:"compilationErrors"`
		} `json:"details"`
	}
	if err := json.Unmarshal(resp.body, &out); err != nil {
		return "", err
	}
	res := "Route test result: " + out.Result
	for _, e := range out.Details.CompilationErrors {
		res += " — " + e.Message
	}
	return res, nil
}
