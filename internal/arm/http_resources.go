package arm

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/outpost-iot/outpost/internal/store"
)

// ---- resource groups ----

func (h *Handler) groups(rt route, sub string) error {
	if err := h.readOnly(rt, resourceManagerAPIVersions); err != nil {
		return err
	}
	if err := h.authz.Authorize(rt.r, rt.p, "Microsoft.Resources/subscriptions/resourceGroups/read", SubscriptionID(sub)); err != nil {
		return err
	}
	p, err := h.page(rt.r)
	if err != nil {
		return err
	}
	groups, err := h.svc.ListGroups(rt.r.Context(), sub, p)
	if err != nil {
		return err
	}
	return writeList(rt, groups, nextAfter(groups, p))
}

func (h *Handler) group(rt route, sub, name string) error {
	r := rt.r
	if _, err := checkAPIVersion(r, resourceManagerAPIVersions); err != nil {
		return err
	}
	scope := GroupID(sub, name)
	action := map[string]string{
		http.MethodGet: "read", http.MethodHead: "read", http.MethodPut: "write",
		http.MethodPatch: "write", http.MethodDelete: "delete",
	}[r.Method]
	if action == "" {
		return errMethod(r.Method, scope)
	}
	if err := h.authz.Authorize(r, rt.p, "Microsoft.Resources/subscriptions/resourceGroups/"+action, scope); err != nil {
		return err
	}
	ctx := r.Context()
	switch r.Method {
	case http.MethodHead:
		if _, err := h.svc.GetGroup(ctx, sub, name); err != nil {
			if AsError(err).Status == http.StatusNotFound {
				rt.w.WriteHeader(http.StatusNotFound)
				return nil
			}
			return err
		}
		rt.w.WriteHeader(http.StatusNoContent)
		return nil
	case http.MethodGet:
		res, err := h.svc.GetGroup(ctx, sub, name)
		if err != nil {
			return err
		}
		return writeResource(rt.w, http.StatusOK, res, false)
	case http.MethodPut:
		body, err := readBody(r)
		if err != nil {
			return err
		}
		res, created, err := h.svc.PutGroup(ctx, sub, name, body)
		if err != nil {
			return err
		}
		return writeResource(rt.w, createdStatus(created), res, false)
	case http.MethodPatch:
		body, err := readBody(r)
		if err != nil {
			return err
		}
		res, err := h.svc.PatchGroup(ctx, sub, name, body)
		if err != nil {
			return err
		}
		return writeResource(rt.w, http.StatusOK, res, false)
	default: // DELETE
		op, err := h.svc.DeleteGroup(ctx, sub, name)
		if err != nil {
			return err
		}
		// ARM answers a group delete with 202 and a Location to poll.
		rt.w.Header().Set("Location", operationURL(r, sub, "", "", op.ID, true, "2021-04-01"))
		rt.w.Header().Set("Retry-After", "1")
		rt.w.WriteHeader(http.StatusAccepted)
		return nil
	}
}

func createdStatus(created bool) int {
	if created {
		return http.StatusCreated
	}
	return http.StatusOK
}

// ---- generic resources ----

// filterClause is one "field eq 'value'" of a resources $filter.
var filterClause = regexp.MustCompile(`(?i)^\s*(resourceType|resourceGroup|name|location|tagName|tagValue)\s+eq\s+'((?:[^']|'')*)'\s*$`)

var filterAnd = regexp.MustCompile(`(?i)\s+and\s+`)

// resourcesFilter is the $filter of a resources list: clauses joined by
// "and", on the fields az and the SDKs filter by.
type resourcesFilter struct {
	typ, group, name, location, tagName, tagValue string
	tagged                                        bool
}

func parseResourcesFilter(f string) (resourcesFilter, error) {
	var rf resourcesFilter
	if strings.TrimSpace(f) == "" {
		return rf, nil
	}
	for _, clause := range filterAnd.Split(f, -1) {
		m := filterClause.FindStringSubmatch(clause)
		if m == nil {
			return rf, Errorf(http.StatusBadRequest, "InvalidFilterInQueryString",
				"The $filter '%s' is not supported. Use clauses like resourceType eq '<Namespace/type>', resourceGroup eq '<group>', name eq '<name>', location eq '<location>' or tagName eq '<key>' and tagValue eq '<value>', joined by 'and'.", f)
		}
		v := strings.ReplaceAll(m[2], "''", "'")
		switch strings.ToLower(m[1]) {
		case "resourcetype":
			rf.typ = v
		case "resourcegroup":
			rf.group = v
		case "name":
			rf.name = v
		case "location":
			rf.location = v
		case "tagname":
			rf.tagName, rf.tagged = v, true
		case "tagvalue":
			rf.tagValue = v
		}
	}
	return rf, nil
}

// match reports whether r passes the clauses ListAll does not apply itself.
func (rf resourcesFilter) match(r store.Resource) bool {
	if rf.name != "" && !strings.EqualFold(r.Name, rf.name) {
		return false
	}
	if rf.location == "" && !rf.tagged {
		return true
	}
	var body struct {
		Location string            `json:"location"`
		Tags     map[string]string `json:"tags"`
	}
	_ = json.Unmarshal(r.Body, &body)
	if rf.location != "" && !strings.EqualFold(strings.ReplaceAll(body.Location, " ", ""), strings.ReplaceAll(rf.location, " ", "")) {
		return false
	}
	if rf.tagged {
		v, ok := body.Tags[rf.tagName]
		if !ok || (rf.tagValue != "" && v != rf.tagValue) {
			return false
		}
	}
	return true
}

func (h *Handler) listAll(rt route, sub, group string) error {
	if err := h.readOnly(rt, resourceManagerAPIVersions); err != nil {
		return err
	}
	scope := SubscriptionID(sub)
	if group != "" {
		scope = GroupID(sub, group)
	}
	if err := h.authz.Authorize(rt.r, rt.p, "Microsoft.Resources/subscriptions/resources/read", scope); err != nil {
		return err
	}
	rf, err := parseResourcesFilter(rt.r.URL.Query().Get("$filter"))
	if err != nil {
		return err
	}
	if rf.group != "" {
		if group != "" && !strings.EqualFold(group, rf.group) {
			return writeList(rt, nil, "")
		}
		group = rf.group
	}
	p, err := h.page(rt.r)
	if err != nil {
		return err
	}
	items, err := h.svc.ListAll(rt.r.Context(), sub, group, rf.typ, rf.match, p)
	if err != nil {
		return err
	}
	for i := range items {
		items[i].Body = genericEnvelope(items[i].Body)
	}
	return writeList(rt, items, nextAfter(items, p))
}

// genericEnvelope is a resource as the resources list shows it
// (GenericResourceExpanded): the envelope every type shares, without the
// type's own properties — az's table for `resource list` relies on that.
func genericEnvelope(body json.RawMessage) json.RawMessage {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return body
	}
	out := map[string]json.RawMessage{}
	for _, k := range []string{"id", "name", "type", "location", "extendedLocation", "tags", "plan", "kind", "managedBy", "sku", "identity", "systemData"} {
		if v, ok := m[k]; ok {
			out[k] = v
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return body
	}
	return b
}

// providerPath serves everything under .../providers/{ns}/...: one
// resource, a collection, or a POST action.
func (h *Handler) providerPath(rt route) error {
	r := rt.r
	id, err := ParseResourceID(r.URL.Path)
	if err != nil {
		return Errorf(http.StatusNotFound, "NotFound", "The path '%s' does not name a resource manager object. Resource ids look like /subscriptions/{id}/resourceGroups/{group}/providers/{namespace}/{type}/{name}.", r.URL.Path)
	}
	ctx := r.Context()
	if id.Scope == "" && id.ResourceGroup == "" && id.Subscription != "" && len(id.Types) == 1 && id.IsCollection() {
		if pa, ok := h.svc.Registry().ProviderActionFor(id.Namespace, id.Types[0]); ok {
			return h.providerAction(rt, id.Subscription, pa)
		}
	}
	// A POST to {resource}/{action} is an action when the type declares it;
	// a GET of {resource}/{read} is a read (IotHubStats).
	if id.IsCollection() && len(id.Types) > 1 {
		parent := id
		parent.Types = id.Types[:len(id.Types)-1]
		name := id.Types[len(id.Types)-1]
		if r.Method == http.MethodPost {
			return h.action(rt, parent, name)
		}
		if r.Method == http.MethodGet {
			if pt, err := h.svc.ResolveType(parent); err == nil && containsFold(pt.Info().Reads, name) {
				return h.read(rt, parent, name)
			}
		}
	}
	if r.Method == http.MethodGet && !id.IsCollection() && len(id.Types) > 1 {
		parent := id
		parent.Types, parent.Names = id.Types[:len(id.Types)-1], id.Names[:len(id.Names)-1]
		read := id.Types[len(id.Types)-1]
		if pt, err := h.svc.ResolveType(parent); err == nil && containsFold(pt.Info().Reads, read) {
			if _, err := h.svc.ResolveType(id); err != nil { // not a child type of its own
				return h.readItem(rt, parent, read, id.Names[len(id.Names)-1])
			}
		}
	}
	rtype, err := h.svc.ResolveType(id)
	if err != nil {
		return err
	}
	info := rtype.Info()
	apiVersion, err := checkTypeAPIVersion(r, info, "")
	if err != nil {
		return err
	}
	if id.IsCollection() {
		if r.Method != http.MethodGet {
			return errMethod(r.Method, id.String())
		}
		if err := h.authz.Authorize(r, rt.p, info.FullType()+"/read", id.ParentID()); err != nil {
			return err
		}
		p, err := h.page(r)
		if err != nil {
			return err
		}
		items, err := h.svc.ListResources(ctx, id, r.URL.Query(), p)
		if err != nil {
			return err
		}
		for i := range items {
			items[i].Body = h.render(items[i])
			items[i].Body = withETag(items[i])
		}
		return writeList(rt, items, nextAfter(items, p))
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if err := h.authz.Authorize(r, rt.p, info.FullType()+"/read", id.String()); err != nil {
			return err
		}
		res, err := h.svc.GetResource(ctx, id)
		if err != nil {
			return err
		}
		res.Body = h.render(res)
		return writeResource(rt.w, http.StatusOK, res, true)
	case http.MethodPut, http.MethodPatch:
		if err := h.authz.Authorize(r, rt.p, info.FullType()+"/write", id.String()); err != nil {
			return err
		}
		body, err := readBodyFor(r, rtype)
		if err != nil {
			return err
		}
		if r.Method == http.MethodPatch {
			if body, err = h.mergePatch(rt, id, body); err != nil {
				return err
			}
		}
		res, err := h.svc.PutResource(ctx, PutInput{ID: id, APIVersion: apiVersion, Body: body, IfMatch: r.Header.Get("If-Match"), Principal: rt.p})
		if err != nil {
			return err
		}
		status := createdStatus(res.Created)
		if res.Created && info.CreateStatus != 0 && res.Operation == nil {
			status = info.CreateStatus
		}
		if res.Operation != nil {
			h.setOperationHeaders(rt, id, res.Resource, res.Operation.ID, apiVersion)
		}
		if r.Method == http.MethodPatch {
			status = http.StatusOK
		}
		res.Resource.Body = h.render(res.Resource)
		return writeResource(rt.w, status, res.Resource, true)
	case http.MethodDelete:
		if err := h.authz.Authorize(r, rt.p, info.FullType()+"/delete", id.String()); err != nil {
			return err
		}
		var location string
		if res, err := h.svc.Get(ctx, id.String()); err == nil {
			location = locationOf(res)
		}
		op, found, err := h.svc.DeleteResource(ctx, id, r.Header.Get("If-Match"))
		if err != nil {
			return err
		}
		switch {
		case !found:
			rt.w.WriteHeader(http.StatusNoContent)
		case op != nil:
			rt.w.Header().Set("Azure-AsyncOperation", operationURL(r, id.Subscription, id.Namespace, location, op.ID, false, apiVersion))
			rt.w.Header().Set("Location", operationURL(r, id.Subscription, id.Namespace, location, op.ID, true, apiVersion))
			rt.w.Header().Set("Retry-After", "1")
			rt.w.WriteHeader(http.StatusAccepted)
		default:
			rt.w.WriteHeader(http.StatusOK)
		}
		return nil
	}
	return errMethod(r.Method, id.String())
}

// mergePatch applies a PATCH body to the stored document (JSON merge patch,
// RFC 7386) so the type validates the whole result as a PUT.
func (h *Handler) mergePatch(rt route, id ResourceID, patch Document) (Document, error) {
	cur, err := h.svc.GetResource(rt.r.Context(), id)
	if err != nil {
		return nil, err
	}
	var base any
	if err := json.Unmarshal(cur.Body, &base); err != nil {
		return nil, fmt.Errorf("arm: decode %s: %w", cur.ID, err)
	}
	var p any
	if err := json.Unmarshal(patch.Bytes(), &p); err != nil {
		return nil, errInvalidContent(err)
	}
	merged := mergeJSON(base, p)
	// Tags are replaced as a whole, not merged (ARM's rule for PATCH).
	if pm, ok := p.(map[string]any); ok {
		if tags, ok := pm["tags"]; ok && tags != nil {
			merged.(map[string]any)["tags"] = tags
		}
	}
	b, _ := json.Marshal(merged)
	return ParseDocument(b)
}

func mergeJSON(target, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	tm, ok := target.(map[string]any)
	if !ok {
		tm = map[string]any{}
	}
	for k, v := range pm {
		if v == nil {
			delete(tm, k)
			continue
		}
		tm[k] = mergeJSON(tm[k], v)
	}
	return tm
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// read answers GET {resource}/{name} for a type's declared reads.
// readItem answers GET {resource}/{read}/{item} — one entry of a read a
// type declares (an IoT hub's jobs/{jobId}): the type's Action gets
// "{read}/{item}", and the caller needs the read's permission.
func (h *Handler) readItem(rt route, id ResourceID, name, item string) error {
	return h.readAs(rt, id, name, name+"/"+item)
}

func (h *Handler) read(rt route, id ResourceID, name string) error {
	return h.readAs(rt, id, name, name)
}

func (h *Handler) readAs(rt route, id ResourceID, name, action string) error {
	rtype, err := h.svc.ResolveType(id)
	if err != nil {
		return err
	}
	info := rtype.Info()
	if _, err := checkTypeAPIVersion(rt.r, info, ""); err != nil {
		return err
	}
	if err := h.authz.Authorize(rt.r, rt.p, info.FullType()+"/"+name+"/read", id.String()); err != nil {
		return err
	}
	out, err := h.svc.Action(rt.r.Context(), id, action, nil)
	if err != nil {
		return err
	}
	return writeJSON(rt.w, http.StatusOK, out)
}

func (h *Handler) action(rt route, id ResourceID, action string) error {
	rtype, err := h.svc.ResolveType(id)
	if err != nil {
		return err
	}
	info := rtype.Info()
	known := false
	for _, a := range info.Actions {
		known = known || strings.EqualFold(a, action)
	}
	if !known {
		return errMethod(http.MethodPost, id.String()+"/"+action)
	}
	if _, err := checkTypeAPIVersion(rt.r, info, ""); err != nil {
		return err
	}
	if err := h.authz.Authorize(rt.r, rt.p, info.FullType()+"/"+action+"/action", id.String()); err != nil {
		return err
	}
	body, err := io.ReadAll(rt.r.Body)
	if err != nil {
		return bodyError(err)
	}
	out, err := h.svc.Action(rt.r.Context(), id, strings.ToLower(action), body)
	if err != nil {
		return err
	}
	if out == nil {
		// An action with nothing to say (a deployment's cancel).
		rt.w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return writeJSON(rt.w, http.StatusOK, out)
}

func withETag(res store.Resource) json.RawMessage {
	doc, err := ParseDocument(res.Body)
	if err != nil || res.ETag == "" {
		return res.Body
	}
	doc.Set("etag", quoteETag(res.ETag))
	return doc.Bytes()
}

func locationOf(res store.Resource) string {
	doc, err := ParseDocument(res.Body)
	if err != nil {
		return ""
	}
	return doc.String("location")
}

// ---- long-running operations ----

// operationURL builds the absolute polling URL azcore requires. Group
// operations use ARM's /operationresults form; provider operations use the
// provider's locations/{loc}/operationStatuses|operationResults form.
func operationURL(r *http.Request, sub, ns, location, opID string, result bool, apiVersion string) string {
	q := "?api-version=" + url.QueryEscape(apiVersion)
	if ns == "" {
		return baseURL(r) + SubscriptionID(sub) + "/operationresults/" + opID + q
	}
	if location == "" {
		location = "global"
	}
	kind := "operationStatuses"
	if result {
		kind = "operationResults"
	}
	return fmt.Sprintf("%s%s/providers/%s/locations/%s/%s/%s%s", baseURL(r), SubscriptionID(sub), ns, location, kind, opID, q)
}

func (h *Handler) setOperationHeaders(rt route, id ResourceID, res store.Resource, opID, apiVersion string) {
	loc := locationOf(res)
	rt.w.Header().Set("Azure-AsyncOperation", operationURL(rt.r, id.Subscription, id.Namespace, loc, opID, false, apiVersion))
	rt.w.Header().Set("Location", operationURL(rt.r, id.Subscription, id.Namespace, loc, opID, true, apiVersion))
	rt.w.Header().Set("Retry-After", "1")
}

// operationStatus answers an Azure-AsyncOperation poll: 200 with a status.
func (h *Handler) operationStatus(rt route, opID string) error {
	if rt.r.Method != http.MethodGet {
		return errMethod(rt.r.Method, rt.r.URL.Path)
	}
	op, opErr, err := h.svc.GetOperation(rt.r.Context(), opID)
	if err != nil {
		return err
	}
	body := map[string]any{
		"id": rt.r.URL.Path, "name": op.ID, "status": op.Status,
		"startTime": op.StartTime.Format("2006-01-02T15:04:05.0000000Z07:00"), "resourceId": op.ResourceID,
	}
	if !op.EndTime.IsZero() {
		body["endTime"] = op.EndTime.Format("2006-01-02T15:04:05.0000000Z07:00")
	}
	if opErr != nil {
		body["error"] = opErr.Body()
	}
	if !op.Terminal() {
		rt.w.Header().Set("Retry-After", "1")
	}
	return writeJSON(rt.w, http.StatusOK, body)
}

// operationResult answers a Location poll: 202 while running, then the
// outcome (204 for a delete, the resource for a put, the error on failure).
func (h *Handler) operationResult(rt route, opID string) error {
	if rt.r.Method != http.MethodGet {
		return errMethod(rt.r.Method, rt.r.URL.Path)
	}
	ctx := rt.r.Context()
	op, opErr, err := h.svc.GetOperation(ctx, opID)
	if err != nil {
		return err
	}
	switch {
	case !op.Terminal():
		rt.w.Header().Set("Location", "https://"+rt.r.Host+rt.r.URL.RequestURI())
		rt.w.Header().Set("Retry-After", "1")
		rt.w.WriteHeader(http.StatusAccepted)
		return nil
	case opErr != nil:
		return opErr
	case op.Kind == opPut:
		res, err := h.svc.Get(ctx, op.ResourceID)
		if err != nil {
			return err
		}
		res.Body = h.render(res)
		return writeResource(rt.w, http.StatusOK, res, true)
	}
	rt.w.WriteHeader(http.StatusOK)
	return nil
}

// providerAction runs a provider-level operation such as checkNameAvailability.
func (h *Handler) providerAction(rt route, sub string, pa ProviderAction) error {
	if rt.r.Method != pa.Method {
		return errMethod(rt.r.Method, rt.r.URL.Path)
	}
	if _, err := checkAPIVersion(rt.r, pa.APIVersions); err != nil {
		return err
	}
	if err := h.authz.Authorize(rt.r, rt.p, pa.Action, SubscriptionID(sub)); err != nil {
		return err
	}
	body, err := io.ReadAll(rt.r.Body)
	if err != nil {
		return bodyError(err)
	}
	out, err := pa.Run(rt.r.Context(), sub, body, rt.p)
	if err != nil {
		return err
	}
	return writeJSON(rt.w, http.StatusOK, out)
}

// render applies the type's Renderer, if any.
func (h *Handler) render(res store.Resource) json.RawMessage {
	if rt, ok := h.svc.Registry().Lookup(res.Type); ok {
		if r, ok := rt.(Renderer); ok {
			return r.Render(res)
		}
	}
	return res.Body
}
