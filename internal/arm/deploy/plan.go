package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/arm/deploy/expr"
)

// result is what a run leaves in the deployment's properties.
type result struct {
	outputs         map[string]any
	outputResources []map[string]any
	dependencies    []map[string]any
	operations      []operation
}

// planned is one resource instance of the template.
type planned struct {
	raw        map[string]any
	ctx        *expr.Context
	typ        string
	name       string
	apiVersion string
	id         string
	loop       string // copy loop name, if any
	symbol     string // symbolic name (languageVersion 2.0), if any
	index      int    // position in the template's order (run.all)
	// existing resources (languageVersion 2.0 "existing": true) are only
	// read: reference() and dependsOn reach them, nothing deploys them.
	existing  bool
	deps      []*planned
	dependsOn []string // as evaluated, for resolution
	// group is the resource group a nested deployment targets
	// ("resourceGroup" member), when it isn't the deployment's own.
	group string

	done chan struct{}
	err  error
	op   operation
}

// target is where a deployment runs: a resource group, or with rg empty a
// subscription.
type target struct {
	sub, rg string
	// location is the group's, or the deployment's at subscription scope.
	location  string
	groupTags map[string]string
	name      string // the deployment's name
	mode      string
}

// scopeID is the id resources of the template hang off.
func (t target) scopeID() string {
	if t.rg == "" {
		return "/subscriptions/" + t.sub
	}
	return "/subscriptions/" + t.sub + "/resourceGroups/" + t.rg
}

// run is one evaluation of a template: planned (expand, link) and then
// deployed, or only planned (Expand, whatIf).
type run struct {
	d         *Deployments // nil when only planning
	ctx       context.Context
	principal arm.Principal
	target
	ectx   *expr.Context
	all    []*planned
	byName map[string][]*planned // resource name, copy loop name → instances
	byID   map[string]*planned   // lower-case id
	// existing are the languageVersion 2.0 resources only read.
	existing []*planned
	// skipped are the ids of instances whose condition was false;
	// skippedNames the names a dependsOn may give them by.
	skipped      []string
	skippedNames map[string]bool
	// fetch answers reference() and list*() once the target is a resource
	// id; nil makes them fail.
	fetchReference func(ctx context.Context, id arm.ResourceID, req expr.ReferenceRequest) (any, error)
	fetchList      func(ctx context.Context, id arm.ResourceID, req expr.ListRequest) (any, error)
	// deploying: reference() waits for a template resource to be deployed.
	deploying bool
}

// newRun builds the evaluation context of a template at t.
func newRun(ctx context.Context, t target, tenantID string, env *expr.Environment, r request, now func() time.Time) *run {
	decls, _ := lookup(r.Template, "parameters").(map[string]any)
	vars, _ := lookup(r.Template, "variables").(map[string]any)
	values := r.Parameters
	if len(r.Defaults) > 0 {
		values = map[string]any{}
		for name, v := range r.Defaults {
			values[name] = v
		}
		for name, v := range r.Parameters {
			values[name] = v
		}
	}
	ectx := &expr.Context{
		Parameters: expr.NewParameters(decls, values),
		Variables:  expr.NewVariables(vars),
		Deployment: expr.Deployment{Name: t.name, Template: r.Template, Parameters: r.Parameters, Mode: r.Mode, ProvisioningState: "Running"},
		Tenant:     expr.Tenant{ID: tenantID},
		Subscription: &expr.Subscription{
			ID: t.sub, DisplayName: "Outpost", TenantID: tenantID,
		},
		Now:         now,
		Environment: env,
	}
	if t.rg != "" {
		ectx.ResourceGroup = &expr.ResourceGroup{Name: t.rg, Location: t.location, Tags: t.groupTags, ProvisioningState: "Succeeded"}
	} else {
		ectx.Deployment.Location = t.location
	}
	ru := &run{ctx: ctx, target: t, ectx: ectx, byName: map[string][]*planned{}, byID: map[string]*planned{}, skippedNames: map[string]bool{}}
	ectx.Reference = ru.reference
	ectx.References = ru.references
	ectx.List = ru.list
	return ru
}

// plan checks the parameters, expands every resource and links the
// dependencies.
func (ru *run) plan(r request) error {
	decls, _ := lookup(r.Template, "parameters").(map[string]any)
	if err := ru.checkParameters(decls); err != nil {
		return err
	}
	switch resources := lookup(r.Template, "resources").(type) {
	case []any:
		for i, raw := range resources {
			m, ok := raw.(map[string]any)
			if !ok {
				return invalidTemplate("template.resources[%d] is not an object.", i)
			}
			if err := ru.expand(m, fmt.Sprintf("template.resources[%d]", i), nil, ru.ectx, ""); err != nil {
				return err
			}
		}
	case map[string]any:
		// languageVersion 2.0: deployment order comes from dependencies
		// only, so the symbolic names' order is as good as the file's.
		for _, sym := range keys(resources) {
			m, ok := resources[sym].(map[string]any)
			if !ok {
				return invalidTemplate("template.resources.%s is not an object.", sym)
			}
			if err := ru.expand(m, "template.resources."+sym, nil, ru.ectx, sym); err != nil {
				return err
			}
		}
	}
	return ru.link()
}

// target resolves a deployment's target: its resource group (which must
// exist), or at subscription scope its location.
func (d *Deployments) target(ctx context.Context, id arm.ResourceID, location string, mode string) (target, error) {
	t := target{sub: id.Subscription, name: id.Name(), mode: mode, location: location}
	if id.ResourceGroup == "" {
		return t, nil
	}
	group, err := d.svc.GetGroup(ctx, id.Subscription, id.ResourceGroup)
	if err != nil {
		return t, err
	}
	var gdoc struct {
		Location string            `json:"location"`
		Tags     map[string]string `json:"tags"`
	}
	_ = json.Unmarshal(group.Body, &gdoc)
	t.rg, t.location, t.groupTags = group.Name, gdoc.Location, gdoc.Tags
	return t, nil
}

func (d *Deployments) run(ctx context.Context, id arm.ResourceID, principal arm.Principal, r request) (result, error) {
	res := result{outputs: map[string]any{}, outputResources: []map[string]any{}, dependencies: []map[string]any{}}
	t, err := d.target(ctx, id, r.Location, r.Mode)
	if err != nil {
		return res, err
	}
	ru := newRun(ctx, t, d.cfg.TenantID, d.cfg.Environment, r, d.cfg.Now)
	ru.d, ru.principal, ru.deploying = d, principal, true
	ru.fetchReference, ru.fetchList = d.fetchReference, d.fetchList
	if err := ru.plan(r); err != nil {
		return res, err
	}
	err = ru.deploy()
	for _, p := range ru.all {
		if p.op.ID != "" {
			res.operations = append(res.operations, p.op)
		}
		if p.err == nil && p.done != nil {
			res.outputResources = append(res.outputResources, map[string]any{"id": p.id})
		}
		if len(p.deps) > 0 {
			var deps []map[string]any
			for _, q := range p.deps {
				deps = append(deps, map[string]any{"id": q.id, "resourceType": q.typ, "resourceName": q.name})
			}
			res.dependencies = append(res.dependencies, map[string]any{"id": p.id, "resourceType": p.typ, "resourceName": p.name, "dependsOn": deps})
		}
	}
	if err != nil {
		return res, err
	}
	if r.Mode == "Complete" && t.rg != "" {
		ops, err := ru.deleteUnlisted()
		res.operations = append(res.operations, ops...)
		if err != nil {
			return res, err
		}
	}
	outs, err := ru.outputs(lookup(r.Template, "outputs"))
	res.outputs = outs
	return res, err
}

// checkParameters evaluates every parameter now, so a bad value fails the
// deployment before anything is created, and checks it against its
// declaration: type, allowedValues (each element for an array; strings
// compared ignoring case, as ARM does), minValue/maxValue,
// minLength/maxLength.
func (ru *run) checkParameters(decls map[string]any) error {
	for _, name := range keys(decls) {
		decl, _ := decls[name].(map[string]any)
		v, err := ru.ectx.Parameters.Value(ru.ectx.WithSite(expr.SiteParameterDefault), name)
		if err != nil {
			return invalidTemplate("parameter '%s': %v", name, err)
		}
		typ, _ := lookup(decl, "type").(string)
		if !typeMatches(strings.ToLower(typ), v) {
			return arm.Errorf(http.StatusBadRequest, "InvalidTemplate",
				"Deployment template validation failed: 'Template parameter JToken type is not valid. Expected '%s'. Actual '%s'.' (parameter '%s')", typ, jsonType(v), name)
		}
		if allowed, ok := lookup(decl, "allowedValues").([]any); ok && len(allowed) > 0 {
			candidates := []any{v}
			if arr, isArr := v.([]any); isArr {
				candidates = arr
			}
			for _, c := range candidates {
				if !slices.ContainsFunc(allowed, func(a any) bool { return sameParameterValue(a, c) }) {
					return invalidParameter(name, v, "The parameter value is not part of the allowed value(s): '%s'.", joinAny(allowed))
				}
			}
		}
		if err := checkBounds(name, decl, v); err != nil {
			return err
		}
	}
	return nil
}

// checkBounds applies minValue/maxValue to ints and minLength/maxLength to
// strings and arrays.
func checkBounds(name string, decl map[string]any, v any) error {
	bound := func(key string) (int64, bool) {
		switch b := lookup(decl, key).(type) {
		case float64:
			return int64(b), true
		case int64:
			return b, true
		case json.Number:
			n, err := b.Int64()
			return n, err == nil
		}
		return 0, false
	}
	if n, ok := v.(int64); ok {
		if lo, ok := bound("minValue"); ok && n < lo {
			return invalidParameter(name, v, "The value must be greater than or equal to '%d'.", lo)
		}
		if hi, ok := bound("maxValue"); ok && n > hi {
			return invalidParameter(name, v, "The value must be less than or equal to '%d'.", hi)
		}
	}
	length := -1
	switch t := v.(type) {
	case string:
		length = utf8.RuneCountInString(t)
	case []any:
		length = len(t)
	}
	if length >= 0 {
		if lo, ok := bound("minLength"); ok && int64(length) < lo {
			return invalidParameter(name, v, "The length of the value must be at least '%d'; it is '%d'.", lo, length)
		}
		if hi, ok := bound("maxLength"); ok && int64(length) > hi {
			return invalidParameter(name, v, "The length of the value must be at most '%d'; it is '%d'.", hi, length)
		}
	}
	return nil
}

func invalidParameter(name string, v any, format string, args ...any) error {
	shown, _ := json.Marshal(v)
	if s, ok := v.(string); ok {
		shown = []byte(s)
	}
	return arm.Errorf(http.StatusBadRequest, "InvalidTemplate",
		"Deployment template validation failed: 'The provided value '%s' for the template parameter '%s' is not valid. %s'", shown, name, fmt.Sprintf(format, args...))
}

// sameParameterValue compares a value with an allowed one: strings
// ignoring case, everything else as equals() does.
func sameParameterValue(allowed, v any) bool {
	as, aok := allowed.(string)
	vs, vok := v.(string)
	if aok && vok {
		return strings.EqualFold(as, vs)
	}
	return expr.Equal(allowed, v)
}

// expand adds a template resource — each copy instance, and its nested
// child resources — to the plan. path is where the resource is in the
// template (template.resources[2].resources[0]), for errors to say which
// member to change; parent is set for nested children.
func (ru *run) expand(raw map[string]any, path string, parent *planned, ctx *expr.Context, symbol string) error {
	site := ctx.WithSite(expr.SiteResource)
	instances := []*expr.Context{site}
	loop := ""
	batch := 0 // serial copy: instances deploy in batches of this size
	if c, ok := lookup(raw, "copy").(map[string]any); ok {
		loop, _ = lookup(c, "name").(string)
		n, err := expr.EvalValue(lookup(c, "count"), site)
		if err != nil {
			return invalidTemplate("copy '%s' count: %v", loop, err)
		}
		count, ok := copyCount(n)
		if !ok {
			return invalidTemplate("copy '%s': the copy count must be a non-negative integer value and cannot exceed '800', got %v.", loop, n)
		}
		instances = instances[:0]
		for i := range count {
			instances = append(instances, site.WithResourceCopyIndex(loop, i))
		}
		ru.byName[strings.ToLower(loop)] = []*planned{}
		if batch, err = copyBatch(c, site, loop); err != nil {
			return err
		}
	}
	// planned instance per copy index (nil when its condition is false),
	// for serial copies.
	byIndex := make([]*planned, len(instances))
	defer func() {
		if batch > 0 {
			serialize(byIndex, batch)
		}
	}()
	for index, ictx := range instances {
		skip := false
		if cond := lookup(raw, "condition"); cond != nil {
			v, err := expr.EvalValue(cond, ictx)
			if err != nil {
				return invalidTemplate("%s.condition: %v", path, err)
			}
			if b, ok := v.(bool); ok && !b {
				skip = true
			}
		}
		typ, err := evalString(lookup(raw, "type"), ictx, path+".type")
		if err != nil {
			if skip {
				continue
			}
			return err
		}
		name, err := evalString(lookup(raw, "name"), ictx, path+".name")
		if err != nil {
			if skip {
				continue
			}
			return err
		}
		api, _ := evalString(lookup(raw, "apiVersion"), ictx, path+".apiVersion")
		if parent != nil && !strings.Contains(typ, ".") {
			typ = parent.typ + "/" + typ
			name = parent.name + "/" + name
		}
		p := &planned{raw: raw, ctx: ictx.WithSite(expr.SiteResourceProperties), typ: strings.TrimSuffix(typ, "/"), name: name, apiVersion: api, loop: loop, symbol: symbol}
		p.existing, _ = lookup(raw, "existing").(bool)
		scope := ""
		if s := lookup(raw, "scope"); s != nil {
			if scope, err = evalString(s, ictx, path+".scope"); err != nil {
				return err
			}
		}
		if strings.EqualFold(p.typ, Type) {
			if g := lookup(raw, "resourceGroup"); g != nil {
				if p.group, err = evalString(g, ictx, path+".resourceGroup"); err != nil {
					return err
				}
			}
			if s := lookup(raw, "subscriptionId"); s != nil {
				sub, err := evalString(s, ictx, path+".subscriptionId")
				if err != nil {
					return err
				}
				if !strings.EqualFold(sub, ru.sub) {
					return invalidTemplate("nested deployment '%s' targets subscription '%s'; this installation has only subscription '%s'.", name, sub, ru.sub)
				}
			}
		}
		if p.id, err = ru.resourceID(p.typ, p.name, scope, p.group); err != nil {
			if skip {
				continue
			}
			return err
		}
		if skip {
			// A resource whose condition is false is not deployed; in
			// Complete mode it is not deleted either (api-version ≥ 2019-05-10).
			ru.skipped = append(ru.skipped, p.id)
			ru.skippedNames[strings.ToLower(p.id)] = true
			for _, k := range p.names() {
				ru.skippedNames[k] = true
			}
			continue
		}
		if deps, ok := lookup(raw, "dependsOn").([]any); ok {
			for i, dep := range deps {
				s, err := evalString(dep, ictx, fmt.Sprintf("%s.dependsOn[%d]", path, i))
				if err != nil {
					return err
				}
				p.dependsOn = append(p.dependsOn, s)
			}
		}
		if p.existing {
			p.done = make(chan struct{})
			close(p.done)
			ru.existing = append(ru.existing, p)
			ru.register(p)
			continue
		}
		// A nested child does not depend on its parent unless its
		// dependsOn says so: ARM creates no implicit dependency there.
		byIndex[index] = p
		ru.add(p)
		if children, ok := lookup(raw, "resources").([]any); ok {
			for i, c := range children {
				cm, ok := c.(map[string]any)
				if !ok {
					continue
				}
				if err := ru.expand(cm, fmt.Sprintf("%s.resources[%d]", path, i), p, ictx, ""); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// copyBatch reads a copy loop's mode: 0 for parallel (the default), the
// batch size (default 1) for serial.
func copyBatch(c map[string]any, ctx *expr.Context, loop string) (int, error) {
	mode, _ := expr.EvalValue(lookup(c, "mode"), ctx)
	if m, _ := mode.(string); !strings.EqualFold(m, "serial") {
		if m != "" && !strings.EqualFold(m, "parallel") {
			return 0, invalidTemplate("copy '%s': mode '%s' is not valid; use Parallel or Serial.", loop, m)
		}
		return 0, nil
	}
	size := int64(1)
	if raw := lookup(c, "batchSize"); raw != nil {
		v, err := expr.EvalValue(raw, ctx)
		if err != nil {
			return 0, invalidTemplate("copy '%s' batchSize: %v", loop, err)
		}
		n, ok := v.(int64)
		if !ok || n < 1 || n > 800 {
			return 0, invalidTemplate("copy '%s': batchSize must be an integer from 1 to 800, got %v.", loop, v)
		}
		size = n
	}
	return int(size), nil
}

// serialize makes each batch of a serial copy wait for the one before.
func serialize(byIndex []*planned, batch int) {
	for i, p := range byIndex {
		if p == nil || i < batch {
			continue
		}
		prev := (i/batch - 1) * batch
		for _, q := range byIndex[prev : prev+batch] {
			if q != nil {
				p.deps = append(p.deps, q)
			}
		}
	}
}

func (ru *run) add(p *planned) {
	p.index = len(ru.all)
	ru.all = append(ru.all, p)
	ru.register(p)
}

// register makes p reachable by id and by the names dependsOn,
// reference() and list*() use.
func (ru *run) register(p *planned) {
	ru.byID[strings.ToLower(p.id)] = p
	for _, k := range p.names() {
		ru.byName[k] = append(ru.byName[k], p)
	}
}

// names are the lower-case names a dependsOn, reference() or list*() may
// give a resource by: its name, its last name segment, "Namespace/type/name",
// and its copy loop.
func (p *planned) names() []string {
	short := strings.ToLower(p.name)
	out := []string{short, strings.ToLower(p.typ + "/" + p.name)}
	if i := strings.LastIndex(short, "/"); i >= 0 {
		out = append(out, short[i+1:])
	}
	if p.loop != "" {
		out = append(out, strings.ToLower(p.loop))
	}
	if p.symbol != "" {
		out = append(out, strings.ToLower(p.symbol))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// resourceID builds a resource id from a template type and name:
// Namespace/t1/t2 with a/b → .../providers/Namespace/t1/a/t2/b; an
// extension resource (scope, or "…/providers/…" in the type) hangs off its
// scope.
//
// At subscription scope resources hang off the subscription, and a
// Microsoft.Resources/resourceGroups resource is the group itself. A nested
// deployment with a resourceGroup member (group) is created in that group.
func (ru *run) resourceID(typ, name, scope, group string) (string, error) {
	base := ru.scopeID()
	if group != "" {
		base = "/subscriptions/" + ru.sub + "/resourceGroups/" + group
	}
	if strings.EqualFold(typ, groupType) && scope == "" {
		if ru.rg != "" {
			return "", invalidTemplate("a resource group ('%s') can only be created by a subscription deployment: deploy with az deployment sub create.", name)
		}
		if strings.Contains(name, "/") {
			return "", invalidTemplate("the resource group name '%s' must not contain '/'.", name)
		}
		return "/subscriptions/" + ru.sub + "/resourceGroups/" + name, nil
	}
	if i := strings.Index(strings.ToLower(typ), "/providers/"); i >= 0 {
		// Old-style extension: Microsoft.Storage/storageAccounts/providers/roleAssignments
		// named "acct/Microsoft.Authorization/{guid}".
		baseType, extType := typ[:i], typ[i+len("/providers/"):]
		parts := strings.Split(name, "/")
		baseSegs := strings.Count(baseType, "/")
		if len(parts) < baseSegs+2 {
			return "", invalidTemplate("the extension resource name '%s' does not match its type '%s'.", name, typ)
		}
		baseID, err := ru.resourceID(baseType, strings.Join(parts[:baseSegs], "/"), "", "")
		if err != nil {
			return "", err
		}
		return baseID + "/providers/" + parts[baseSegs] + "/" + extType + "/" + strings.Join(parts[baseSegs+1:], "/"), nil
	}
	segs := strings.Split(typ, "/")
	names := strings.Split(name, "/")
	if len(segs) < 2 || len(names) != len(segs)-1 {
		return "", invalidTemplate("the resource name '%s' does not match its type '%s': a type with %d segments needs %d name segments.", name, typ, len(segs), len(segs)-1)
	}
	var b strings.Builder
	b.WriteString("/providers/" + segs[0])
	for i, t := range segs[1:] {
		b.WriteString("/" + t + "/" + names[i])
	}
	if scope != "" {
		if !strings.HasPrefix(scope, "/") {
			// A scope written as "Namespace/type/name[/type/name]" is a
			// resource of this group.
			ss := strings.Split(scope, "/")
			if len(ss) < 3 || len(ss)%2 == 0 {
				return "", invalidTemplate("the scope '%s' is neither a resource id nor Namespace/type/name.", scope)
			}
			types, names := []string{ss[0]}, []string{}
			for i := 1; i+1 < len(ss); i += 2 {
				types, names = append(types, ss[i]), append(names, ss[i+1])
			}
			sid, err := ru.resourceID(strings.Join(types, "/"), strings.Join(names, "/"), "", "")
			if err != nil {
				return "", err
			}
			scope = sid
		}
		return strings.TrimSuffix(scope, "/") + b.String(), nil
	}
	return base + b.String(), nil
}

// link resolves dependsOn entries and the implicit dependencies of
// reference() / list*() calls by name, and refuses cycles.
func (ru *run) link() error {
	for _, p := range ru.all {
		for _, dep := range p.dependsOn {
			targets, known := ru.resolve(dep)
			if !known {
				return invalidTemplate("'The resource '%s' is not defined in the template. Please see https://aka.ms/arm-syntax for usage details.' (dependsOn of '%s')", strings.Trim(dep, "/"), p.id)
			}
			// A dependency on a resource the template skipped (condition
			// false) is dropped, as ARM does.
			p.deps = append(p.deps, targets...)
		}
		p.deps = append(p.deps, ru.implicitDeps(p)...)
		// Existing resources are only read: nothing to wait for.
		p.deps = slices.DeleteFunc(uniqueDeps(p.deps, p), func(q *planned) bool { return q.existing })
		sort.SliceStable(p.deps, func(i, j int) bool { return p.deps[i].index < p.deps[j].index })
	}
	// Cycle check: depth-first with colours.
	state := map[*planned]int{}
	var visit func(p *planned) error
	visit = func(p *planned) error {
		switch state[p] {
		case 1:
			return invalidTemplate("Circular dependency detected on resource: '%s'.", p.id)
		case 2:
			return nil
		}
		state[p] = 1
		for _, q := range p.deps {
			if err := visit(q); err != nil {
				return err
			}
		}
		state[p] = 2
		return nil
	}
	for _, p := range ru.all {
		if err := visit(p); err != nil {
			return err
		}
	}
	return nil
}

// resolve finds the template resources a dependsOn entry names: an id, a
// name, "Namespace/type/name", or a copy loop. known is false when it names
// nothing the template declares (resources whose condition is false are
// declared: they resolve to nothing, and known is true).
func (ru *run) resolve(dep string) (targets []*planned, known bool) {
	key := strings.ToLower(dep)
	if p, ok := ru.byID[key]; ok {
		return []*planned{p}, true
	}
	if strings.HasPrefix(dep, "/") {
		// resourceId() of an extension resource names it without its scope
		// (resourceId('Microsoft.Authorization/roleAssignments', guid)), as
		// ARM's dependsOn accepts: match by type and name.
		if id, err := arm.ParseResourceID(dep); err == nil {
			for _, p := range ru.all {
				if strings.EqualFold(p.typ, id.FullType()) && strings.EqualFold(lastSegment(p.name), id.Name()) {
					targets = append(targets, p)
				}
			}
			if len(targets) > 0 {
				return targets, true
			}
		}
	}
	if targets, known = ru.byName[strings.Trim(key, "/")]; known {
		return targets, true
	}
	return nil, ru.skippedNames[key] || ru.skippedNames[strings.Trim(key, "/")]
}

// implicitDeps are the template resources p's own members read through
// reference() or list*() by name — a literal or any expression that
// evaluates to one (reference(variables('app'))). A reference by resource
// id creates no dependency, as in ARM, and p's nested children are
// resources of their own: what they read is theirs.
func (ru *run) implicitDeps(p *planned) []*planned {
	var out []*planned
	for k, v := range p.raw {
		if strings.EqualFold(k, "resources") {
			continue
		}
		walkStrings(v, func(_ string, s string) {
			if !expr.IsExpression(s) {
				return
			}
			e, err := expr.Parse(s)
			if err != nil {
				return
			}
			for _, c := range expr.Calls(e) {
				fn := strings.ToLower(c.Name)
				if (fn != "reference" && !strings.HasPrefix(fn, "list")) || len(c.Args) == 0 {
					continue
				}
				name, ok := ru.staticName(c.Args[0], p)
				if ok && !strings.HasPrefix(name, "/") {
					out = append(out, ru.byName[strings.ToLower(name)]...)
				}
			}
		})
	}
	return out
}

// staticName evaluates a reference()/list*() target without reading any
// resource: a literal, or an expression free of reference() and list*().
func (ru *run) staticName(arg expr.Expr, p *planned) (string, bool) {
	if lit, ok := arg.(*expr.StringLit); ok {
		return lit.Value, true
	}
	for _, c := range expr.Calls(arg) {
		if fn := strings.ToLower(c.Name); fn == "reference" || fn == "references" || strings.HasPrefix(fn, "list") {
			return "", false
		}
	}
	v, err := arg.Eval(p.ctx)
	if err != nil {
		return "", false
	}
	s, ok := v.(string)
	return s, ok
}

func lastSegment(name string) string {
	if i := strings.LastIndex(name, "/"); i >= 0 {
		return name[i+1:]
	}
	return name
}

func uniqueDeps(deps []*planned, self *planned) []*planned {
	seen := map[*planned]bool{self: true}
	out := deps[:0]
	for _, d := range deps {
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}
