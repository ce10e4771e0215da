package arm

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/outpost-iot/outpost/internal/store"
)

// Handler serves the ARM REST surface over a Service.
type Handler struct {
	svc   *Service
	authn Authenticator
	authz Authorizer
	log   *slog.Logger
	// pageSize caps list responses; the rest follows through nextLink.
	pageSize int
}

// HandlerConfig holds a Handler's dependencies.
type HandlerConfig struct {
	Service       *Service
	Authenticator Authenticator
	Authorizer    Authorizer
	Log           *slog.Logger
	PageSize      int
}

// NewHandler builds the ARM handler.
func NewHandler(cfg HandlerConfig) *Handler {
	h := &Handler{svc: cfg.Service, authn: cfg.Authenticator, authz: cfg.Authorizer, log: cfg.Log, pageSize: cfg.PageSize}
	if h.authn == nil {
		h.authn = BearerPresence{}
	}
	if h.authz == nil {
		h.authz = AllowAll{}
	}
	if h.pageSize <= 0 {
		h.pageSize = 1000
	}
	return h
}

// PathRouter is the part of server.PathRouter Mount needs.
type PathRouter interface {
	Handle(segment string, h http.Handler)
}

// Mount registers the ARM path roots (first segments, matched
// case-insensitively by the router).
func (h *Handler) Mount(r PathRouter) {
	for _, root := range []string{"subscriptions", "providers", "tenants", "metadata"} {
		r.Handle(root, h)
	}
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := h.serve(w, r); err != nil {
		ae := AsError(err)
		if ae.Status >= 500 {
			h.log.Error("arm request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		}
		WriteError(w, ae)
	}
}

// route is one matched request.
type route struct {
	w   http.ResponseWriter
	r   *http.Request
	seg []string
	p   Principal
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request) error {
	seg := Segments(r.URL.Path)
	if len(seg) == 2 && strings.EqualFold(seg[0], "metadata") && strings.EqualFold(seg[1], "endpoints") {
		return h.metadataEndpoints(w, r)
	}
	p, err := h.authn.Authenticate(r)
	if err != nil {
		return err
	}
	rt := route{w: w, r: r, seg: seg, p: p}
	is := func(i int, word string) bool { return len(seg) > i && strings.EqualFold(seg[i], word) }
	switch {
	case len(seg) == 1 && is(0, "tenants"):
		return h.tenants(rt)
	case len(seg) == 1 && is(0, "subscriptions"):
		return h.subscriptions(rt)
	case is(0, "providers") && len(seg) <= 2:
		return h.providers(rt, "")
	case !is(0, "subscriptions"):
		return h.providerPath(rt)
	}
	// An unknown subscription is a 404 before any authorization question.
	if err := h.svc.CheckSubscription(r.Context(), seg[1]); err != nil {
		return err
	}
	switch {
	case len(seg) == 2:
		return h.subscription(rt, seg[1])
	case len(seg) == 3 && is(2, "locations"):
		return h.locations(rt, seg[1])
	case len(seg) == 3 && is(2, "resources"):
		return h.listAll(rt, seg[1], "")
	case len(seg) == 4 && is(2, "operationresults"):
		return h.operationResult(rt, seg[3])
	case is(2, "resourcegroups") && len(seg) == 3:
		return h.groups(rt, seg[1])
	case is(2, "resourcegroups") && len(seg) == 4:
		return h.group(rt, seg[1], seg[3])
	case is(2, "resourcegroups") && len(seg) == 5 && is(4, "resources"):
		return h.listAll(rt, seg[1], seg[3])
	case is(2, "resourcegroups") && (len(seg) == 7 || len(seg) == 8) && is(4, "deployments") && is(6, "operations"):
		// A resource group deployment's operations live at a path without
		// the providers segment (Microsoft.Resources' spec, so the SDKs and
		// az call it); it is the deployment's child all the same.
		r.URL.Path = "/" + strings.Join(append([]string{"subscriptions", seg[1], "resourceGroups", seg[3], "providers", "Microsoft.Resources"}, seg[4:]...), "/")
		rt.seg = Segments(r.URL.Path)
		return h.providerPath(rt)
	case is(2, "providers") && len(seg) <= 4:
		return h.providers(rt, seg[1])
	case is(2, "providers") && len(seg) == 5 && is(4, "register"):
		return h.register(rt, seg[1], seg[3])
	case is(2, "providers") && len(seg) == 8 && is(4, "locations") && (is(6, "operationstatuses") || is(6, "operationresults") || is(6, "asyncoperations")):
		if is(6, "operationresults") {
			return h.operationResult(rt, seg[7])
		}
		return h.operationStatus(rt, seg[7])
	}
	return h.providerPath(rt)
}

// ---- metadata, tenants, subscriptions, locations ----

func baseURL(r *http.Request) string { return "https://" + r.Host }

func (h *Handler) metadataEndpoints(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return errMethod(r.Method, "/metadata/endpoints")
	}
	v, err := checkAPIVersion(r, metadataAPIVersions)
	if err != nil {
		return err
	}
	base := baseURL(r)
	audiences := []string{"https://management.core.windows.net/", "https://management.azure.com/"}
	// The ADFS form of the login endpoint makes az skip instance discovery,
	// which would otherwise call out to the public cloud.
	login := base + "/adfs"
	if v == "2015-01-01" {
		return writeJSON(w, http.StatusOK, map[string]any{
			"galleryEndpoint": base + "/",
			"graphEndpoint":   "https://graph.windows.net/",
			"portalEndpoint":  base + "/portal/",
			"authentication":  map[string]any{"loginEndpoint": login, "audiences": audiences},
		})
	}
	return writeJSON(w, http.StatusOK, []map[string]any{{
		"name":            "Outpost",
		"portal":          base + "/portal/",
		"resourceManager": base + "/",
		"gallery":         base + "/",
		"graph":           "https://graph.windows.net/",
		"graphAudience":   "https://graph.windows.net/",
		"authentication": map[string]any{
			"loginEndpoint": login, "audiences": audiences, "tenant": "adfs", "identityProvider": "ADFS",
		},
		"suffixes": map[string]any{},
	}})
}

func (h *Handler) tenants(rt route) error {
	if err := h.readOnly(rt, resourceManagerAPIVersions); err != nil {
		return err
	}
	inst := h.svc.Installation()
	return writeJSON(rt.w, http.StatusOK, map[string]any{"value": []map[string]any{{
		"id": "/tenants/" + inst.TenantID, "tenantId": inst.TenantID, "tenantCategory": "Home",
		"displayName": inst.DisplayName, "countryCode": "US", "domains": []string{},
	}}})
}

func (h *Handler) subscriptions(rt route) error {
	if err := h.readOnly(rt, resourceManagerAPIVersions); err != nil {
		return err
	}
	subs, err := h.svc.Subscriptions(rt.r.Context())
	if err != nil {
		return err
	}
	return writeList(rt, subs, "")
}

func (h *Handler) subscription(rt route, sub string) error {
	if err := h.readOnly(rt, resourceManagerAPIVersions); err != nil {
		return err
	}
	res, err := h.svc.Get(rt.r.Context(), SubscriptionID(sub))
	if errors.Is(err, store.ErrNotFound) {
		return errSubscriptionNotFound(sub)
	}
	if err != nil {
		return err
	}
	return writeResource(rt.w, http.StatusOK, res, false)
}

func (h *Handler) locations(rt route, sub string) error {
	if err := h.readOnly(rt, resourceManagerAPIVersions); err != nil {
		return err
	}
	if err := h.svc.CheckSubscription(rt.r.Context(), sub); err != nil {
		return err
	}
	var out []map[string]any
	for _, l := range h.svc.Locations() {
		out = append(out, map[string]any{
			"id": SubscriptionID(sub) + "/locations/" + l.Name, "name": l.Name, "type": "Region",
			"displayName": l.DisplayName, "regionalDisplayName": l.DisplayName,
			"metadata": map[string]any{"regionType": "Physical", "regionCategory": "Recommended"},
		})
	}
	return writeJSON(rt.w, http.StatusOK, map[string]any{"value": out})
}

// readOnly checks the method is GET (or HEAD) and the api-version.
func (h *Handler) readOnly(rt route, versions []string) error {
	if rt.r.Method != http.MethodGet && rt.r.Method != http.MethodHead {
		return errMethod(rt.r.Method, rt.r.URL.Path)
	}
	_, err := checkAPIVersion(rt.r, versions)
	return err
}

// ---- providers ----

type providerResourceType struct {
	ResourceType string   `json:"resourceType"`
	Locations    []string `json:"locations"`
	APIVersions  []string `json:"apiVersions"`
	Capabilities string   `json:"capabilities,omitempty"`
}

func (h *Handler) providerBody(sub, ns string) map[string]any {
	id := "/providers/" + ns
	if sub != "" {
		id = SubscriptionID(sub) + id
	}
	var locs []string
	for _, l := range h.svc.Locations() {
		locs = append(locs, l.DisplayName)
	}
	types := []providerResourceType{}
	for _, t := range h.svc.Registry().TypesIn(ns) {
		types = append(types, providerResourceType{ResourceType: t.Type, Locations: locs, APIVersions: t.APIVersions, Capabilities: t.Capabilities})
		if strings.Count(t.Type, "/") == 0 {
			// ARM advertises the async-operation types next to each top-level type.
			types = append(types, providerResourceType{ResourceType: "locations/operationStatuses", Locations: locs, APIVersions: t.APIVersions})
		}
	}
	if strings.EqualFold(ns, "Microsoft.Resources") {
		for _, t := range []string{"resourceGroups", "subscriptions", "tenants", "providers", "operationresults", "resources", "subscriptions/resourceGroups", "subscriptions/locations", "subscriptions/providers", "subscriptions/resources"} {
			types = append(types, providerResourceType{ResourceType: t, Locations: []string{}, APIVersions: resourceManagerAPIVersions})
		}
	}
	return map[string]any{
		"id": id, "namespace": ns, "registrationState": "Registered",
		"registrationPolicy": "RegistrationRequired", "resourceTypes": dedupeTypes(types),
	}
}

func dedupeTypes(in []providerResourceType) []providerResourceType {
	seen := map[string]bool{}
	out := in[:0]
	for _, t := range in {
		if k := strings.ToLower(t.ResourceType); !seen[k] {
			seen[k] = true
			out = append(out, t)
		}
	}
	return out
}

func (h *Handler) namespaces() []string {
	return append([]string{"Microsoft.Resources"}, h.svc.Registry().Namespaces()...)
}

func (h *Handler) canonicalNamespace(ns string) (string, bool) {
	if strings.EqualFold(ns, "Microsoft.Resources") {
		return "Microsoft.Resources", true
	}
	return h.svc.Registry().Namespace(ns)
}

// providers answers /[subscriptions/{s}/]providers[/{ns}].
func (h *Handler) providers(rt route, sub string) error {
	if err := h.readOnly(rt, resourceManagerAPIVersions); err != nil {
		return err
	}
	if sub != "" {
		if err := h.svc.CheckSubscription(rt.r.Context(), sub); err != nil {
			return err
		}
	}
	last := rt.seg[len(rt.seg)-1]
	if strings.EqualFold(last, "providers") {
		var out []map[string]any
		for _, ns := range h.namespaces() {
			out = append(out, h.providerBody(sub, ns))
		}
		return writeJSON(rt.w, http.StatusOK, map[string]any{"value": out})
	}
	ns, ok := h.canonicalNamespace(last)
	if !ok {
		return Errorf(http.StatusNotFound, "InvalidResourceNamespace",
			"The resource namespace '%s' is invalid. Registered namespaces are '%s'.", last, strings.Join(h.namespaces(), ", "))
	}
	return writeJSON(rt.w, http.StatusOK, h.providerBody(sub, ns))
}

// register answers POST .../providers/{ns}/register: every provider is
// always registered.
func (h *Handler) register(rt route, sub, ns string) error {
	if rt.r.Method != http.MethodPost {
		return errMethod(rt.r.Method, rt.r.URL.Path)
	}
	if _, err := checkAPIVersion(rt.r, resourceManagerAPIVersions); err != nil {
		return err
	}
	if err := h.svc.CheckSubscription(rt.r.Context(), sub); err != nil {
		return err
	}
	canon, ok := h.canonicalNamespace(ns)
	if !ok {
		return Errorf(http.StatusNotFound, "InvalidResourceNamespace", "The resource namespace '%s' is invalid.", ns)
	}
	return writeJSON(rt.w, http.StatusOK, h.providerBody(sub, canon))
}

// ---- helpers ----

// readBody reads and decodes a JSON object body. The size limit is applied
// by the server's middleware; a body over it surfaces here.
func readBody(r *http.Request) (Document, error) {
	return readBodyWith(r, ParseDocument)
}

// readBodyFor reads a PUT body with the type's own parser, if it has one.
func readBodyFor(r *http.Request, rt ResourceType) (Document, error) {
	if bp, ok := rt.(BodyParser); ok {
		return readBodyWith(r, bp.ParseBody)
	}
	return readBody(r)
}

func readBodyWith(r *http.Request, parse func([]byte) (Document, error)) (Document, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, bodyError(err)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return Document{}, nil
	}
	doc, err := parse(b)
	if err != nil {
		return nil, errInvalidContent(err)
	}
	return doc, nil
}

// bodyError maps a failure to read a request body, a body over the size
// limit in particular, to an ARM error.
func bodyError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return Errorf(http.StatusRequestEntityTooLarge, "RequestEntityTooLarge",
			"The request body is larger than the limit of %d bytes. Send a smaller document.", mbe.Limit)
	}
	return fmt.Errorf("arm: read body: %w", err)
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// writeResource renders a stored resource, with its ETag as a header (and in
// the body for provider resources, as ARM's RPs do).
func writeResource(w http.ResponseWriter, status int, res store.Resource, withETag bool) error {
	body := res.Body
	if withETag && res.ETag != "" {
		doc, err := ParseDocument(res.Body)
		if err != nil {
			return fmt.Errorf("arm: decode %s: %w", res.ID, err)
		}
		doc.Set("etag", quoteETag(res.ETag))
		body = doc.Bytes()
	}
	if res.ETag != "" {
		w.Header().Set("ETag", quoteETag(res.ETag))
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, err := w.Write(body)
	return err
}

func quoteETag(e string) string { return `"` + e + `"` }

// writeList renders {"value":[...],"nextLink":...}. A full page gets a
// nextLink carrying the last key as $skiptoken.
func writeList(rt route, items []store.Resource, nextAfter string) error {
	var b strings.Builder
	b.WriteString(`{"value":[`)
	for i, it := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(it.Body)
	}
	b.WriteByte(']')
	if nextAfter != "" {
		q := rt.r.URL.Query()
		q.Set("$skiptoken", base64.RawURLEncoding.EncodeToString([]byte(nextAfter)))
		u := url.URL{Scheme: "https", Host: rt.r.Host, Path: rt.r.URL.Path, RawQuery: q.Encode()}
		nl, _ := json.Marshal(u.String())
		b.WriteString(`,"nextLink":`)
		b.Write(nl)
	}
	b.WriteByte('}')
	rt.w.Header().Set("Content-Type", "application/json; charset=utf-8")
	rt.w.WriteHeader(http.StatusOK)
	_, err := io.WriteString(rt.w, b.String())
	return err
}

// page reads $skiptoken and $top.
func (h *Handler) page(r *http.Request) (Page, error) {
	p := Page{Limit: h.pageSize}
	q := r.URL.Query()
	if tok := q.Get("$skiptoken"); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil {
			return Page{}, Errorf(http.StatusBadRequest, "InvalidSkipToken", "The $skiptoken '%s' is not valid; use the nextLink of the previous page as is.", tok)
		}
		p.After = string(b)
	}
	if top := q.Get("$top"); top != "" {
		n, err := strconv.Atoi(top)
		if err != nil || n <= 0 {
			return Page{}, Errorf(http.StatusBadRequest, "InvalidTopValue", "The $top value '%s' must be a positive integer.", top)
		}
		if n < p.Limit {
			p.Limit = n
		}
	}
	return p, nil
}

// nextAfter is the continuation key when a list filled its page.
func nextAfter(items []store.Resource, p Page) string {
	if p.Limit > 0 && len(items) == p.Limit {
		return items[len(items)-1].ID
	}
	return ""
}
