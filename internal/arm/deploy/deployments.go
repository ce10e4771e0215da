package deploy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/arm/deploy/expr"
	"github.com/outpost-iot/outpost/internal/store"
)

// Type is the ARM type of deployments.
const Type = "Microsoft.Resources/deployments"

// APIVersions are the Microsoft.Resources/deployments api-versions clients
// send (az 2.45 uses 2021-04-01; templates nest with 2020-10-01 and older).
func APIVersions() []string {
	return []string{"2025-04-01", "2024-03-01", "2023-07-01", "2022-09-01", "2021-04-01", "2021-01-01",
		"2020-10-01", "2020-06-01", "2019-10-01", "2019-08-01", "2019-07-01", "2019-05-10", "2019-05-01",
		"2018-05-01", "2018-02-01", "2017-05-10", "2016-09-01", "2016-02-01", "2015-11-01"}
}

// Service is the part of the resource manager a deployment drives;
// *arm.Service implements it.
type Service interface {
	ResolveType(id arm.ResourceID) (arm.ResourceType, error)
	PutResource(ctx context.Context, in arm.PutInput) (arm.PutResult, error)
	GetResource(ctx context.Context, id arm.ResourceID) (store.Resource, error)
	GetOperation(ctx context.Context, id string) (store.Operation, *arm.Error, error)
	GetGroup(ctx context.Context, sub, name string) (store.Resource, error)
	PutGroup(ctx context.Context, sub, name string, body arm.Document) (store.Resource, bool, error)
	DeleteResource(ctx context.Context, id arm.ResourceID, ifMatch string) (op *store.Operation, found bool, err error)
	Action(ctx context.Context, id arm.ResourceID, action string, body json.RawMessage) (any, error)
}

// Authorizer decides whether the deploying principal may do what a template
// asks; deployments act with the deployer's rights, as in Azure.
type Authorizer interface {
	AuthorizeAction(ctx context.Context, p arm.Principal, action, scope string) error
}

// Config holds the type's dependencies.
type Config struct {
	Resources  store.Resources
	Authorizer Authorizer
	TenantID   string
	Log        *slog.Logger
	Now        func() time.Time
	// Environment answers the template function environment() (nil: the
	// public Azure cloud's values).
	Environment *expr.Environment
}

// Deployments is the Microsoft.Resources/deployments resource type at
// resource-group scope: PUT runs the template (long-running), validate
// checks it without deploying.
type Deployments struct {
	cfg Config
	svc Service

	mu sync.Mutex
	// running are the deployments this process is running, by lower-case
	// id, for cancel.
	running map[string]*runningDeployment
}

type runningDeployment struct {
	cancel    context.CancelFunc
	requested atomic.Bool
}

var (
	_ arm.ResourceType = (*Deployments)(nil)
	_ arm.ActionType   = (*Deployments)(nil)
	_ arm.BodyParser   = (*Deployments)(nil)
	_ arm.Renderer     = (*Deployments)(nil)
)

// New builds the type; Bind gives it the Service once the resource manager
// (which needs the type registered first) exists.
func New(cfg Config) *Deployments {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Deployments{cfg: cfg, running: map[string]*runningDeployment{}}
}

// Bind sets the resource manager the deployments drive.
func (d *Deployments) Bind(svc Service) { d.svc = svc }

// Info implements arm.ResourceType.
func (d *Deployments) Info() arm.TypeInfo {
	return arm.TypeInfo{
		Namespace: "Microsoft.Resources", Type: "deployments", APIVersions: APIVersions(), LongRunning: true,
		Actions: []string{"validate", "whatIf", "cancel", "exportTemplate"}, DetachedActions: []string{"validate", "whatIf"},
	}
}

// ParseBody implements arm.BodyParser: template files may carry comments,
// and az sends the file verbatim after an unquoted key.
func (d *Deployments) ParseBody(b []byte) (arm.Document, error) {
	v, err := ParseLenient(b)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("the body is not a JSON object")
	}
	doc := arm.Document{}
	for k, val := range m {
		doc.Set(k, val)
	}
	return doc, nil
}

// principalMember keeps who deployed, for Provision (which runs later, in
// the background, with that principal's rights). Render hides it.
const principalMember = "outpost:deployedBy"

// secureMember keeps the values of secureString and secureObject
// parameters, which properties.parameters never shows, for Provision (which
// may resume after a restart, from what is stored). Render hides it, and the
// deployment drops it once it has ended.
const secureMember = "outpost:secureParameters"

// defaultedMember names the parameters that took their defaultValue. Their
// values, evaluated at Prepare, are in properties.parameters (or, secure
// ones, in secureMember), and Provision deploys with those rather than
// evaluating the defaults again, so a default of utcNow() or newGuid()
// deploys with the value the deployment shows. Render hides it.
const defaultedMember = "outpost:defaultedParameters"

// request is a decoded deployment PUT or validate body.
type request struct {
	Template   map[string]any
	Parameters map[string]any // name → value, already unwrapped from {"value": …}
	// Defaults are the values of the parameters not supplied, as their
	// defaultValue evaluated when the deployment was prepared (nil: they
	// are evaluated by the run). deployment() does not show them.
	Defaults map[string]any
	Mode     string
	// Location is the deployment's own location: required at subscription
	// scope, where it also answers deployment().location.
	Location string
}

func decodeRequest(doc arm.Document) (request, error) {
	var props map[string]any
	if raw, ok := doc["properties"]; ok {
		v, err := ParseLenient(raw)
		if err != nil {
			return request{}, invalidTemplate("properties: %v", err)
		}
		props, _ = v.(map[string]any)
	}
	if props == nil {
		return request{}, arm.Errorf(http.StatusBadRequest, "InvalidRequestContent", "The request content is missing 'properties'. Send {\"properties\": {\"mode\": \"Incremental\", \"template\": {…}, \"parameters\": {…}}}.")
	}
	var r request
	if raw, ok := doc["location"]; ok {
		_ = json.Unmarshal(raw, &r.Location)
	}
	switch t := lookup(props, "template").(type) {
	case map[string]any:
		r.Template = t
	case string:
		v, err := ParseLenient([]byte(t))
		m, ok := v.(map[string]any)
		if err != nil || !ok {
			return request{}, invalidTemplate("properties.template is a string that is not a JSON object: %v", err)
		}
		r.Template = m
	case nil:
		if lookup(props, "templateLink") != nil {
			return request{}, arm.Errorf(http.StatusBadRequest, "InvalidTemplateDeployment",
				"templateLink is not supported: Outpost does not fetch templates from URIs. Send the template inline (az: --template-file).")
		}
		return request{}, invalidTemplate("properties.template is required.")
	default:
		return request{}, invalidTemplate("properties.template must be a JSON object.")
	}
	if lookup(props, "parametersLink") != nil {
		return request{}, arm.Errorf(http.StatusBadRequest, "InvalidTemplateDeployment",
			"parametersLink is not supported: send the parameters inline (az: --parameters @file.json).")
	}
	params := lookup(props, "parameters")
	if s, ok := params.(string); ok {
		v, err := ParseLenient([]byte(s))
		if err != nil {
			return request{}, invalidTemplate("properties.parameters is a string that is not JSON: %v", err)
		}
		params = v
	}
	r.Parameters = map[string]any{}
	if pm, ok := params.(map[string]any); ok {
		for name, v := range pm {
			entry, ok := v.(map[string]any)
			if !ok {
				return request{}, invalidTemplate("parameter '%s' must be an object such as {\"value\": …}.", name)
			}
			if ref := lookup(entry, "reference"); ref != nil {
				return request{}, arm.Errorf(http.StatusBadRequest, "InvalidTemplateDeployment",
					"parameter '%s' is a Key Vault reference, which Outpost does not resolve. Pass the value itself.", name)
			}
			r.Parameters[name] = lookup(entry, "value")
		}
	}
	mode, _ := lookup(props, "mode").(string)
	switch strings.ToLower(mode) {
	case "incremental", "":
		r.Mode = "Incremental"
	case "complete":
		r.Mode = "Complete"
	default:
		return request{}, arm.Errorf(http.StatusBadRequest, "InvalidDeploymentMode", "The deployment mode '%s' is not valid. Use Incremental or Complete.", mode)
	}
	return r, nil
}

// Prepare implements arm.ResourceType: the template and parameters are
// checked (every expression parses, parameters match their declarations)
// and stored with the deployer; Provision deploys.
func (d *Deployments) Prepare(ctx context.Context, req arm.PutRequest) (arm.Document, error) {
	if err := checkScope(req.ID); err != nil {
		return nil, err
	}
	if n := req.ID.Name(); len(n) > 64 || !deploymentName.MatchString(n) {
		return nil, arm.Errorf(http.StatusBadRequest, "InvalidDeploymentName", "The deployment name '%s' is invalid: use 1-64 letters, digits, '-', '_', '.', '(' or ')'.", n)
	}
	r, err := decodeRequest(req.Body)
	if err != nil {
		return nil, err
	}
	if err := checkLocation(req.ID, r); err != nil {
		return nil, err
	}
	if err := checkTemplate(r); err != nil {
		return nil, err
	}
	values, defaulted := d.effectiveParameters(ctx, req.ID, r)
	now := d.cfg.Now().UTC()
	doc := arm.Document{}
	doc.Set("properties", map[string]any{
		"templateHash": templateHash(r.Template), "parameters": shownParameters(r.Template, values),
		"mode": r.Mode, "timestamp": now.Format(time.RFC3339Nano), "correlationId": newCorrelationID(),
		"template": r.Template, "duration": "PT0S",
	})
	doc.Set(principalMember, req.Principal)
	if secure := secureParameters(r.Template, values); len(secure) > 0 {
		doc.Set(secureMember, secure)
	}
	if len(defaulted) > 0 {
		doc.Set(defaultedMember, defaulted)
	}
	if r.Location != "" {
		doc.Set("location", r.Location)
	}
	return doc, nil
}

// checkScope accepts deployments at resource-group and subscription scope.
func checkScope(id arm.ResourceID) error {
	if id.Scope != "" || id.Subscription == "" {
		return arm.Errorf(http.StatusBadRequest, "InvalidDeploymentScope",
			"Outpost runs deployments at resource-group scope (/subscriptions/{s}/resourcegroups/{rg}/providers/Microsoft.Resources/deployments/{name}) and subscription scope (/subscriptions/{s}/providers/Microsoft.Resources/deployments/{name}); management-group and tenant deployments are not supported.")
	}
	return nil
}

// checkLocation: a subscription deployment must say where its metadata
// lives (az deployment sub create --location).
func checkLocation(id arm.ResourceID, r request) error {
	if id.ResourceGroup == "" && r.Location == "" {
		return arm.Errorf(http.StatusBadRequest, "LocationRequired",
			"The location property is required for a subscription deployment. Add \"location\" to the request body (az deployment sub create --location …).")
	}
	return nil
}

// Render implements arm.Renderer: the deployer and the template stay
// inside (ARM returns neither from GET).
func (d *Deployments) Render(res store.Resource) json.RawMessage {
	doc, err := arm.ParseDocument(res.Body)
	if err != nil {
		return res.Body
	}
	delete(doc, principalMember)
	delete(doc, secureMember)
	delete(doc, defaultedMember)
	var props map[string]any
	if doc.Decode("properties", &props) == nil && props != nil {
		delete(props, "template")
		doc.Set("properties", props)
	}
	return doc.Bytes()
}

// Provision implements arm.ResourceType: it runs the template.
func (d *Deployments) Provision(ctx context.Context, id arm.ResourceID, doc arm.Document) (arm.Document, error) {
	if d.svc == nil {
		return nil, fmt.Errorf("deploy: no resource manager bound")
	}
	var props map[string]any
	if err := doc.Decode("properties", &props); err != nil {
		return nil, fmt.Errorf("deploy: stored deployment: %w", err)
	}
	var principal arm.Principal
	_ = doc.Decode(principalMember, &principal)
	r, err := decodeRequest(arm.Document{"properties": mustJSON(props), "location": doc["location"]})
	if err != nil {
		return nil, err
	}
	if raw, ok := doc[secureMember]; ok {
		v, err := ParseLenient(raw)
		if err != nil {
			return nil, fmt.Errorf("deploy: stored secure parameters: %w", err)
		}
		secure, _ := v.(map[string]any)
		for name, value := range secure {
			r.Parameters[name] = value
		}
	}
	var defaulted []string
	_ = doc.Decode(defaultedMember, &defaulted)
	for _, name := range defaulted {
		if v, ok := r.Parameters[name]; ok {
			if r.Defaults == nil {
				r.Defaults = map[string]any{}
			}
			r.Defaults[name] = v
			delete(r.Parameters, name)
		}
	}
	runCtx, rd := d.track(ctx, id)
	defer d.untrack(id, rd)
	start := d.cfg.Now()
	out, runErr := d.run(runCtx, id, principal, r)
	if runErr != nil && rd.requested.Load() {
		runErr = arm.CanceledErrorf(http.StatusConflict, "DeploymentCanceled", "The deployment '%s' was canceled; the resources deployed before the cancellation stay.", id.Name())
		props["provisioningState"] = "Canceled"
	}
	props["duration"] = isoSeconds(d.cfg.Now().Sub(start))
	props["outputResources"] = out.outputResources
	props["dependencies"] = out.dependencies
	props["outputs"] = out.outputs
	props["timestamp"] = d.cfg.Now().UTC().Format(time.RFC3339Nano)
	if runErr != nil {
		ae := arm.AsError(runErr)
		props["error"] = ae.Body()
		d.recordFailure(ctx, id.String(), props)
		return nil, ae
	}
	delete(props, "error")
	doc.Set("properties", props)
	delete(doc, secureMember)
	delete(doc, defaultedMember)
	return doc, nil
}

// track registers a running deployment for cancel.
func (d *Deployments) track(ctx context.Context, id arm.ResourceID) (context.Context, *runningDeployment) {
	ctx, cancel := context.WithCancel(ctx)
	rd := &runningDeployment{cancel: cancel}
	d.mu.Lock()
	d.running[strings.ToLower(id.String())] = rd
	d.mu.Unlock()
	return ctx, rd
}

func (d *Deployments) untrack(id arm.ResourceID, rd *runningDeployment) {
	rd.cancel()
	d.mu.Lock()
	if d.running[strings.ToLower(id.String())] == rd {
		delete(d.running, strings.ToLower(id.String()))
	}
	d.mu.Unlock()
}

// recordFailure keeps a failed deployment's error and partial results in
// its stored body (the framework then marks it Failed) and drops the secure
// parameter values, which nothing needs any more.
func (d *Deployments) recordFailure(ctx context.Context, id string, props map[string]any) {
	_, _, err := d.cfg.Resources.Put(ctx, id, func(cur *store.Resource) (store.Resource, error) {
		if cur == nil {
			return store.Resource{}, store.ErrNotFound
		}
		doc, err := arm.ParseDocument(cur.Body)
		if err != nil {
			return store.Resource{}, err
		}
		doc.Set("properties", props)
		delete(doc, secureMember)
		delete(doc, defaultedMember)
		next := *cur
		next.Body = doc.Bytes()
		return next, nil
	})
	if err != nil {
		d.cfg.Log.Warn("record deployment failure", "deployment", id, "err", err)
	}
}

// Deprovision implements arm.ResourceType: deleting a deployment leaves the
// resources it deployed, as in Azure.
func (d *Deployments) Deprovision(context.Context, store.Resource) error { return nil }

// Action implements arm.ActionType.
func (d *Deployments) Action(ctx context.Context, res store.Resource, action string, body json.RawMessage) (any, error) {
	switch action {
	case "validate":
		id, err := arm.ParseResourceID(res.ID)
		if err != nil {
			return nil, err
		}
		return d.validate(ctx, id, body)
	case "whatif":
		id, err := arm.ParseResourceID(res.ID)
		if err != nil {
			return nil, err
		}
		return d.whatIf(ctx, id, body)
	case "exporttemplate":
		doc, err := arm.ParseDocument(res.Body)
		if err != nil {
			return nil, err
		}
		var props map[string]any
		_ = doc.Decode("properties", &props)
		return map[string]any{"template": props["template"]}, nil
	case "cancel":
		d.mu.Lock()
		rd := d.running[strings.ToLower(res.ID)]
		d.mu.Unlock()
		if rd == nil {
			return nil, arm.Errorf(http.StatusConflict, "DeploymentCannotBeCancelled",
				"The deployment '%s' can't be canceled: only a deployment that is Accepted or Running (on this node) can be.", res.Name)
		}
		rd.requested.Store(true)
		rd.cancel()
		return nil, nil
	}
	return nil, arm.Errorf(http.StatusNotFound, "NotFound", "Unknown action '%s'.", action)
}

// validate answers POST …/validate (az calls it before every deployment):
// the request is checked as a PUT is, and the template planned — copy
// loops, conditions, resource ids, dependencies — without deploying, so a
// dependency cycle or a bad parameter value is refused before anything is
// created.
func (d *Deployments) validate(ctx context.Context, id arm.ResourceID, body json.RawMessage) (any, error) {
	r, err := d.decodeAction(id, body)
	if err != nil {
		return nil, err
	}
	t, err := d.target(ctx, id, r.Location, r.Mode)
	if err != nil {
		return nil, err
	}
	ru := newRun(ctx, t, d.cfg.TenantID, d.cfg.Environment, r, d.cfg.Now)
	if err := ru.plan(r); err != nil {
		return nil, err
	}
	validated := []any{}
	for _, p := range ru.all {
		validated = append(validated, map[string]any{"id": p.id})
	}
	props := map[string]any{
		"provisioningState": "Succeeded", "mode": r.Mode, "templateHash": templateHash(r.Template),
		"parameters": shownParameters(r.Template, ru.parameterValues(r)), "timestamp": d.cfg.Now().UTC().Format(time.RFC3339Nano),
		"correlationId": newCorrelationID(), "duration": "PT0S", "validatedResources": validated,
	}
	out := map[string]any{"id": id.String(), "name": id.Name(), "type": Type, "properties": props}
	if r.Location != "" {
		out["location"] = r.Location
	}
	return out, nil
}

func invalidTemplate(format string, args ...any) *arm.Error {
	return arm.Errorf(http.StatusBadRequest, "InvalidTemplate", "Deployment template validation failed: "+format, args...)
}

func templateHash(t map[string]any) string {
	sum := sha256.Sum256(mustJSON(t))
	return hex.EncodeToString(sum[:8])
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

func isoSeconds(d time.Duration) string {
	return fmt.Sprintf("PT%.7fS", d.Seconds())
}

// effectiveParameters are the values the template's parameters deploy
// with — the supplied ones and the others' defaultValue evaluated against
// the target (resourceGroup().location, deployment().name, utcNow()…) —
// and the names of the defaulted ones.
//
// They are evaluated here, when the deployment is prepared, rather than
// when the run starts: the target group can be read now, so the PUT
// response already lists every parameter as ARM's does, and nothing has
// to rewrite the stored deployment later. Evaluating never fails the PUT:
// a default that can't be evaluated (or a group that can't be read) is
// left out here, and the run evaluates it again and fails the deployment
// with its error, as it always has.
func (d *Deployments) effectiveParameters(ctx context.Context, id arm.ResourceID, r request) (map[string]any, []string) {
	if d.svc == nil {
		return r.Parameters, nil
	}
	t, err := d.target(ctx, id, r.Location, r.Mode)
	if err != nil {
		return r.Parameters, nil
	}
	ru := newRun(ctx, t, d.cfg.TenantID, d.cfg.Environment, r, d.cfg.Now)
	values := ru.parameterValues(r)
	var defaulted []string
	for name := range values {
		if _, supplied := r.Parameters[name]; !supplied {
			defaulted = append(defaulted, name)
		}
	}
	sort.Strings(defaulted)
	return values, defaulted
}

// parameterValues are the values of the template's parameters: the
// supplied ones as given, under the name they were supplied by, and the
// others' defaultValue as the run evaluates it. A default that fails to
// evaluate is left out.
func (ru *run) parameterValues(r request) map[string]any {
	out := map[string]any{}
	for name, v := range r.Parameters {
		out[name] = v
	}
	decls, _ := lookup(r.Template, "parameters").(map[string]any)
	for _, name := range keys(decls) {
		if _, supplied := lookupKey(r.Parameters, name); supplied {
			continue
		}
		v, err := ru.ectx.Parameters.Value(ru.ectx.WithSite(expr.SiteParameterDefault), name)
		if err != nil {
			continue
		}
		out[name] = v
	}
	return out
}

// shownParameters are the parameters as GET shows them: {name: {type,
// value}} with ARM's spelling of the type (String, SecureString…); a secure
// parameter shows its type only. values are by name, as parameterValues
// returns them.
func shownParameters(template, values map[string]any) map[string]any {
	out := map[string]any{}
	for name, v := range values {
		typ := declaredType(template, name)
		entry := map[string]any{"type": shownType(typ)}
		if !isSecure(typ) {
			entry["value"] = v
		}
		out[name] = entry
	}
	return out
}

// secureParameters are the values of the secure parameters.
func secureParameters(template, values map[string]any) map[string]any {
	out := map[string]any{}
	for name, v := range values {
		if isSecure(declaredType(template, name)) {
			out[name] = v
		}
	}
	return out
}

// declaredType is a parameter's declared type ("string" when the template
// does not say).
func declaredType(template map[string]any, name string) string {
	decls, _ := lookup(template, "parameters").(map[string]any)
	if decl, ok := lookup(decls, name).(map[string]any); ok {
		if t, ok := lookup(decl, "type").(string); ok {
			return t
		}
	}
	return "string"
}

func isSecure(typ string) bool {
	return strings.EqualFold(typ, "securestring") || strings.EqualFold(typ, "secureobject")
}
