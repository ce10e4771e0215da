package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/arm/deploy/expr"
)

var deploymentName = regexp.MustCompile(`^[-\w._()]+$`)

func newCorrelationID() string { return uuid.NewString() }

// lookup reads a member of a template object; template keys are
// case-insensitive in ARM.
func lookup(m map[string]any, key string) any {
	if m == nil {
		return nil
	}
	if v, ok := m[key]; ok {
		return v
	}
	return lookupFold(m, key)
}

func lookupFold(m map[string]any, key string) any {
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return nil
}

// checkTemplate validates what can be checked before deploying: the
// template's shape, that every expression parses, and that the supplied
// parameters match the declarations.
func checkTemplate(r request) error {
	if _, ok := lookup(r.Template, "resources").([]any); !ok {
		if _, isMap := lookup(r.Template, "resources").(map[string]any); !isMap {
			return invalidTemplate("the template has no 'resources' array.")
		}
		return invalidTemplate("symbolic-name templates (languageVersion 2.0, 'resources' as an object) are not supported yet.")
	}
	decls, _ := lookup(r.Template, "parameters").(map[string]any)
	for name := range r.Parameters {
		if lookupFold(decls, name) == nil {
			return arm.Errorf(http.StatusBadRequest, "InvalidTemplate",
				"Deployment template validation failed: 'The template parameters '%s' in the parameters file are not valid; they are not present in the original template and can therefore not be provided at deployment time. The only supported parameters for this template are '%s'.'", name, strings.Join(keys(decls), ", "))
		}
	}
	for name, d := range decls {
		decl, _ := d.(map[string]any)
		if _, supplied := lookupKey(r.Parameters, name); !supplied && lookup(decl, "defaultValue") == nil {
			return arm.Errorf(http.StatusBadRequest, "InvalidTemplate",
				"Deployment template validation failed: 'The value for the template parameter '%s' is not provided. Please see https://aka.ms/arm-create-parameter-file for usage details.'", name)
		}
	}
	var errs []string
	walkStrings(r.Template, func(path, s string) {
		if expr.IsExpression(s) {
			if _, err := expr.Parse(s); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", path, err))
			}
		}
	})
	if len(errs) > 0 {
		sort.Strings(errs)
		return invalidTemplate("%s", strings.Join(errs, "; "))
	}
	return nil
}

func lookupKey(m map[string]any, key string) (any, bool) {
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return nil, false
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// walkStrings visits every string value and object key of a JSON value.
func walkStrings(v any, fn func(path, s string)) {
	var walk func(v any, path string)
	walk = func(v any, path string) {
		switch t := v.(type) {
		case string:
			fn(path, t)
		case []any:
			for i, x := range t {
				walk(x, fmt.Sprintf("%s[%d]", path, i))
			}
		case map[string]any:
			for k, x := range t {
				fn(path+"."+k+" (key)", k)
				walk(x, path+"."+k)
			}
		}
	}
	walk(v, "template")
}

// result is what a run leaves in the deployment's properties.
type result struct {
	outputs         map[string]any
	outputResources []map[string]any
	dependencies    []map[string]any
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
	deps       []*planned
	dependsOn  []string // as evaluated, for resolution

	done chan struct{}
	err  error
}

// run deploys a template in a resource group.
type run struct {
	d         *Deployments
	ctx       context.Context
	principal arm.Principal
	sub, rg   string
	name      string
	ectx      *expr.Context
	all       []*planned
	byName    map[string][]*planned // resource name, copy loop name → instances
	byID      map[string]*planned   // lower-case id
}

func (d *Deployments) run(ctx context.Context, id arm.ResourceID, principal arm.Principal, r request) (result, error) {
	res := result{outputs: map[string]any{}, outputResources: []map[string]any{}, dependencies: []map[string]any{}}
	group, err := d.svc.GetGroup(ctx, id.Subscription, id.ResourceGroup)
	if err != nil {
		return res, err
	}
	var gdoc struct {
		Location string            `json:"location"`
		Tags     map[string]string `json:"tags"`
	}
	_ = json.Unmarshal(group.Body, &gdoc)
	decls, _ := lookup(r.Template, "parameters").(map[string]any)
	vars, _ := lookup(r.Template, "variables").(map[string]any)
	ectx := &expr.Context{
		Parameters: expr.NewParameters(decls, r.Parameters),
		Variables:  expr.NewVariables(vars),
		Deployment: expr.Deployment{Name: id.Name(), Template: r.Template, Parameters: r.Parameters, Mode: r.Mode, ProvisioningState: "Running"},
		Tenant:     expr.Tenant{ID: d.cfg.TenantID},
		Subscription: &expr.Subscription{
			ID: id.Subscription, DisplayName: "Outpost", TenantID: d.cfg.TenantID,
		},
		ResourceGroup: &expr.ResourceGroup{Name: group.Name, Location: gdoc.Location, Tags: gdoc.Tags, ProvisioningState: "Succeeded"},
		Now:           d.cfg.Now,
	}
	ru := &run{d: d, ctx: ctx, principal: principal, sub: id.Subscription, rg: group.Name, name: id.Name(),
		ectx: ectx, byName: map[string][]*planned{}, byID: map[string]*planned{}}
	ectx.Reference = ru.reference
	ectx.List = ru.list
	if err := ru.checkParameters(decls); err != nil {
		return res, err
	}
	resources, _ := lookup(r.Template, "resources").([]any)
	for i, raw := range resources {
		m, ok := raw.(map[string]any)
		if !ok {
			return res, invalidTemplate("resources[%d] is not an object.", i)
		}
		if err := ru.expand(m, nil, ectx); err != nil {
			return res, err
		}
	}
	if err := ru.link(); err != nil {
		return res, err
	}
	err = ru.deploy()
	for _, p := range ru.all {
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
	outs, err := ru.outputs(lookup(r.Template, "outputs"))
	res.outputs = outs
	return res, err
}

// checkParameters evaluates every parameter now, so a bad value fails the
// deployment before anything is created, and checks type and allowedValues.
func (ru *run) checkParameters(decls map[string]any) error {
	for name, d := range decls {
		decl, _ := d.(map[string]any)
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
			found := false
			for _, a := range allowed {
				found = found || fmt.Sprint(a) == fmt.Sprint(v)
			}
			if !found {
				return arm.Errorf(http.StatusBadRequest, "InvalidTemplate",
					"Deployment template validation failed: 'The provided value '%v' for the template parameter '%s' is not valid. The parameter value is not part of the allowed value(s): '%s'.'", v, name, joinAny(allowed))
			}
		}
	}
	return nil
}

func typeMatches(typ string, v any) bool {
	switch typ {
	case "string", "securestring":
		_, ok := v.(string)
		return ok
	case "int":
		_, ok := v.(int64)
		return ok
	case "bool":
		_, ok := v.(bool)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "object", "secureobject":
		_, ok := v.(map[string]any)
		return ok
	}
	return true
}

func jsonType(v any) string {
	switch v.(type) {
	case string:
		return "String"
	case int64, float64:
		return "Integer"
	case bool:
		return "Boolean"
	case []any:
		return "Array"
	case map[string]any:
		return "Object"
	}
	return "Null"
}

func joinAny(xs []any) string {
	var s []string
	for _, x := range xs {
		s = append(s, fmt.Sprint(x))
	}
	return strings.Join(s, ",")
}

// evalString evaluates one template string at a site.
func evalString(v any, ctx *expr.Context, what string) (string, error) {
	out, err := expr.EvalValue(v, ctx)
	if err != nil {
		return "", invalidTemplate("%s: %v", what, err)
	}
	s, ok := out.(string)
	if !ok {
		return "", invalidTemplate("%s must be a string, got %v.", what, out)
	}
	return s, nil
}

// expand adds a template resource — each copy instance, and its nested
// child resources — to the plan. parent is set for nested children.
func (ru *run) expand(raw map[string]any, parent *planned, ctx *expr.Context) error {
	site := ctx.WithSite(expr.SiteResource)
	instances := []*expr.Context{site}
	loop := ""
	if c, ok := lookup(raw, "copy").(map[string]any); ok {
		loop, _ = lookup(c, "name").(string)
		n, err := expr.EvalValue(lookup(c, "count"), site)
		if err != nil {
			return invalidTemplate("copy '%s' count: %v", loop, err)
		}
		count, ok := n.(int64)
		if !ok || count < 0 || count > 800 {
			return invalidTemplate("copy '%s': count must be an integer from 0 to 800, got %v.", loop, n)
		}
		instances = instances[:0]
		for i := range int(count) {
			instances = append(instances, site.WithResourceCopyIndex(loop, i))
		}
		ru.byName[strings.ToLower(loop)] = []*planned{}
	}
	for _, ictx := range instances {
		if cond := lookup(raw, "condition"); cond != nil {
			v, err := expr.EvalValue(cond, ictx)
			if err != nil {
				return invalidTemplate("condition: %v", err)
			}
			if b, ok := v.(bool); ok && !b {
				continue
			}
		}
		typ, err := evalString(lookup(raw, "type"), ictx, "resource type")
		if err != nil {
			return err
		}
		name, err := evalString(lookup(raw, "name"), ictx, "resource name")
		if err != nil {
			return err
		}
		api, _ := evalString(lookup(raw, "apiVersion"), ictx, "apiVersion")
		if parent != nil && !strings.Contains(typ, ".") {
			typ = parent.typ + "/" + typ
			name = parent.name + "/" + name
		}
		p := &planned{raw: raw, ctx: ictx.WithSite(expr.SiteResourceProperties), typ: strings.TrimSuffix(typ, "/"), name: name, apiVersion: api, loop: loop}
		scope := ""
		if s := lookup(raw, "scope"); s != nil {
			if scope, err = evalString(s, ictx, "scope"); err != nil {
				return err
			}
		}
		if p.id, err = ru.resourceID(p.typ, p.name, scope); err != nil {
			return err
		}
		if deps, ok := lookup(raw, "dependsOn").([]any); ok {
			for _, dep := range deps {
				s, err := evalString(dep, ictx, "dependsOn")
				if err != nil {
					return err
				}
				p.dependsOn = append(p.dependsOn, s)
			}
		}
		if parent != nil {
			p.deps = append(p.deps, parent)
		}
		ru.add(p)
		if children, ok := lookup(raw, "resources").([]any); ok {
			for _, c := range children {
				cm, ok := c.(map[string]any)
				if !ok {
					continue
				}
				if err := ru.expand(cm, p, ictx); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (ru *run) add(p *planned) {
	ru.all = append(ru.all, p)
	ru.byID[strings.ToLower(p.id)] = p
	short := strings.ToLower(p.name)
	ru.byName[short] = append(ru.byName[short], p)
	if i := strings.LastIndex(short, "/"); i >= 0 {
		last := short[i+1:]
		ru.byName[last] = append(ru.byName[last], p)
	}
	if p.loop != "" {
		ru.byName[strings.ToLower(p.loop)] = append(ru.byName[strings.ToLower(p.loop)], p)
	}
	// "Namespace/type/name" as some dependsOn entries spell it.
	ru.byName[strings.ToLower(p.typ+"/"+p.name)] = append(ru.byName[strings.ToLower(p.typ+"/"+p.name)], p)
}

// resourceID builds a resource id from a template type and name:
// Namespace/t1/t2 with a/b → .../providers/Namespace/t1/a/t2/b; an
// extension resource (scope, or "…/providers/…" in the type) hangs off its
// scope.
func (ru *run) resourceID(typ, name, scope string) (string, error) {
	rgID := "/subscriptions/" + ru.sub + "/resourceGroups/" + ru.rg
	if i := strings.Index(strings.ToLower(typ), "/providers/"); i >= 0 {
		// Old-style extension: Microsoft.Storage/storageAccounts/providers/roleAssignments
		// named "acct/Microsoft.Authorization/{guid}".
		baseType, extType := typ[:i], typ[i+len("/providers/"):]
		parts := strings.Split(name, "/")
		baseSegs := strings.Count(baseType, "/")
		if len(parts) < baseSegs+2 {
			return "", invalidTemplate("the extension resource name '%s' does not match its type '%s'.", name, typ)
		}
		base, err := ru.resourceID(baseType, strings.Join(parts[:baseSegs], "/"), "")
		if err != nil {
			return "", err
		}
		return base + "/providers/" + parts[baseSegs] + "/" + extType + "/" + strings.Join(parts[baseSegs+1:], "/"), nil
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
			sid, err := ru.resourceID(strings.Join(types, "/"), strings.Join(names, "/"), "")
			if err != nil {
				return "", err
			}
			scope = sid
		}
		return strings.TrimSuffix(scope, "/") + b.String(), nil
	}
	return rgID + b.String(), nil
}

// link resolves dependsOn entries and the implicit dependencies of
// reference() / list*() calls by name, and refuses cycles.
func (ru *run) link() error {
	for _, p := range ru.all {
		for _, dep := range p.dependsOn {
			targets := ru.resolve(dep)
			// A dependency on a resource the template skipped (condition
			// false) or doesn't declare is dropped, as ARM does.
			p.deps = append(p.deps, targets...)
		}
		walkStrings(p.raw, func(_ string, s string) {
			if !expr.IsExpression(s) {
				return
			}
			e, err := expr.Parse(s)
			if err != nil {
				return
			}
			for _, c := range expr.Calls(e) {
				fn := strings.ToLower(c.Name)
				if fn != "reference" && !strings.HasPrefix(fn, "list") {
					continue
				}
				if len(c.Args) > 0 {
					if lit, ok := c.Args[0].(*expr.StringLit); ok {
						p.deps = append(p.deps, ru.byName[strings.ToLower(lit.Value)]...)
					}
				}
			}
		})
		p.deps = uniqueDeps(p.deps, p)
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

func (ru *run) resolve(dep string) []*planned {
	if p, ok := ru.byID[strings.ToLower(dep)]; ok {
		return []*planned{p}
	}
	if strings.HasPrefix(dep, "/") {
		// resourceId() of an extension resource names it without its scope
		// (resourceId('Microsoft.Authorization/roleAssignments', guid)), as
		// ARM's dependsOn accepts: match by type and name.
		if id, err := arm.ParseResourceID(dep); err == nil {
			var out []*planned
			for _, p := range ru.all {
				if strings.EqualFold(p.typ, id.FullType()) && strings.EqualFold(lastSegment(p.name), id.Name()) {
					out = append(out, p)
				}
			}
			return out
		}
	}
	return ru.byName[strings.ToLower(strings.Trim(dep, "/"))]
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

// deploy puts every planned resource once its dependencies succeeded,
// independent ones in parallel, as ARM does.
func (ru *run) deploy() error {
	for _, p := range ru.all {
		p.done = make(chan struct{})
	}
	var wg sync.WaitGroup
	for _, p := range ru.all {
		wg.Go(func() {
			defer close(p.done)
			for _, q := range p.deps {
				<-q.done
				if q.err != nil {
					p.err = fmt.Errorf("not deployed: the resource it depends on, '%s', failed", q.id)
					return
				}
			}
			p.err = ru.put(p)
		})
	}
	wg.Wait()
	var details []arm.Error
	for _, p := range ru.all {
		if p.err != nil {
			ae := arm.AsError(p.err)
			details = append(details, arm.Error{Code: ae.Code, Message: ae.Message, Target: p.id})
		}
	}
	if len(details) == 0 {
		return nil
	}
	e := arm.Errorf(http.StatusConflict, "DeploymentFailed",
		"At least one resource deployment operation failed. Please list deployment operations for details. Please see https://aka.ms/arm-deployment-operations for usage details.")
	e.Details = details
	return e
}

// put evaluates a resource's body and creates or updates it with the
// deployer's rights, waiting for long-running types to finish.
func (ru *run) put(p *planned) error {
	body := map[string]any{}
	for k, v := range p.raw {
		switch strings.ToLower(k) {
		case "copy", "condition", "dependson", "resources", "comments", "apiversion", "type", "name", "scope", "metadata":
			continue
		}
		out, err := expr.EvalValue(v, p.ctx)
		if err != nil {
			return invalidTemplate("resource '%s' %s: %v", p.id, k, err)
		}
		if out != nil {
			body[k] = out
		}
	}
	if strings.EqualFold(p.typ, Type) {
		return ru.putNested(p, body)
	}
	id, err := arm.ParseResourceID(p.id)
	if err != nil {
		return invalidTemplate("resource id '%s': %v", p.id, err)
	}
	if err := ru.d.cfg.Authorizer.AuthorizeAction(ru.ctx, ru.principal, id.FullType()+"/write", id.String()); err != nil {
		return err
	}
	doc, err := arm.ParseDocument(mustJSON(body))
	if err != nil {
		return err
	}
	apiVersion := p.apiVersion
	if rt, err := ru.d.svc.ResolveType(id); err == nil && !rt.Info().SupportsAPIVersion(apiVersion) {
		return arm.Errorf(http.StatusBadRequest, "NoRegisteredProviderFound",
			"No registered resource provider found for location and API version '%s' and type '%s'. The supported api-versions are '%s'.", apiVersion, id.FullType(), strings.Join(rt.Info().APIVersions, ", "))
	}
	out, err := ru.d.svc.PutResource(ru.ctx, arm.PutInput{ID: id, APIVersion: apiVersion, Body: doc, IfMatch: "", Principal: ru.principal})
	if err != nil {
		return err
	}
	if out.Operation != nil {
		return ru.wait(out.Operation.ID)
	}
	return nil
}

// putNested deploys a nested deployment. With the default "outer" scope
// the nested template's expressions are evaluated here, against this
// template's parameters and variables; with "inner" only the parameters
// passed in are, and the nested template evaluates the rest itself.
func (ru *run) putNested(p *planned, evaluated map[string]any) error {
	rawProps, _ := lookup(p.raw, "properties").(map[string]any)
	scope := "outer"
	if eo, ok := lookup(rawProps, "expressionEvaluationOptions").(map[string]any); ok {
		if s, ok := lookup(eo, "scope").(string); ok {
			scope = strings.ToLower(s)
		}
	}
	props := map[string]any{}
	for k, v := range rawProps {
		props[k] = v
	}
	if scope == "inner" {
		if params := lookup(rawProps, "parameters"); params != nil {
			out, err := expr.EvalValue(params, p.ctx)
			if err != nil {
				return invalidTemplate("nested deployment '%s' parameters: %v", p.name, err)
			}
			props["parameters"] = out
		}
	} else {
		evProps, _ := evaluated["properties"].(map[string]any)
		props = evProps
	}
	if rg := lookup(p.raw, "resourceGroup"); rg != nil {
		return arm.Errorf(http.StatusBadRequest, "InvalidTemplate", "nested deployment '%s' targets another resource group; Outpost deploys nested templates into the parent's group only.", p.name)
	}
	id, err := arm.ParseResourceID(p.id)
	if err != nil {
		return err
	}
	if err := ru.d.cfg.Authorizer.AuthorizeAction(ru.ctx, ru.principal, Type+"/write", id.String()); err != nil {
		return err
	}
	doc := arm.Document{}
	doc.Set("properties", props)
	out, err := ru.d.svc.PutResource(ru.ctx, arm.PutInput{ID: id, APIVersion: "2021-04-01", Body: doc, Principal: ru.principal})
	if err != nil {
		return err
	}
	if out.Operation != nil {
		return ru.wait(out.Operation.ID)
	}
	return nil
}

// wait polls a long-running operation to its end.
func (ru *run) wait(opID string) error {
	delay := 20 * time.Millisecond
	for {
		op, opErr, err := ru.d.svc.GetOperation(ru.ctx, opID)
		if err != nil {
			return err
		}
		switch op.Status {
		case "Succeeded":
			return nil
		case "Failed", "Canceled":
			if opErr != nil {
				return opErr
			}
			return arm.Errorf(http.StatusConflict, "ResourceDeploymentFailure", "The resource operation completed with terminal provisioning state '%s'.", op.Status)
		}
		select {
		case <-ru.ctx.Done():
			return ru.ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 500*time.Millisecond)
	}
}

// reference answers reference(): the resource's properties, or with 'Full'
// the whole resource, as GET shows it.
func (ru *run) reference(req expr.ReferenceRequest) (any, error) {
	target := req.Target
	if p := ru.resolve(target); len(p) == 1 {
		target = p[0].id
		<-p[0].done // deployed already through the implicit dependency
	} else if !strings.HasPrefix(target, "/") {
		return nil, fmt.Errorf("the resource '%s' is not defined in the template; pass its resource id", req.Target)
	}
	id, err := arm.ParseResourceID(target)
	if err != nil {
		return nil, fmt.Errorf("'%s' is not a resource id: %w", target, err)
	}
	res, err := ru.d.svc.GetResource(ru.ctx, id)
	if err != nil {
		var ae *arm.Error
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			return nil, fmt.Errorf("The Resource '%s' under resource group '%s' was not found.", id.FullType()+"/"+id.Name(), ru.rg)
		}
		return nil, err
	}
	body := res.Body
	if rt, err := ru.d.svc.ResolveType(id); err == nil {
		if r, ok := rt.(arm.Renderer); ok {
			body = r.Render(res)
		}
	}
	v, err := ParseLenient(body)
	if err != nil {
		return nil, err
	}
	m, _ := v.(map[string]any)
	if !req.Full {
		if props, ok := m["properties"]; ok {
			return props, nil
		}
		return map[string]any{}, nil
	}
	m["apiVersion"] = req.APIVersion
	m["subscriptionId"] = id.Subscription
	m["resourceGroupName"] = id.ResourceGroup
	m["resourceId"] = id.FullType() + "/" + id.Name()
	m["referenceApiVersion"] = req.APIVersion
	return m, nil
}

// list answers list*() (listKeys…) with the resource's POST action.
func (ru *run) list(req expr.ListRequest) (any, error) {
	target := req.Target
	if p := ru.resolve(target); len(p) == 1 {
		target = p[0].id
		<-p[0].done
	}
	id, err := arm.ParseResourceID(target)
	if err != nil {
		return nil, fmt.Errorf("'%s' is not a resource id: %w", target, err)
	}
	var body json.RawMessage
	if req.Body != nil {
		body = mustJSON(req.Body)
	}
	out, err := ru.d.svc.Action(ru.ctx, id, strings.ToLower(req.Action), body)
	if err != nil {
		return nil, err
	}
	v, err := ParseLenient(mustJSON(out))
	return v, err
}

// outputs evaluates the outputs section: {name: {type, value}}.
func (ru *run) outputs(section any) (map[string]any, error) {
	outs := map[string]any{}
	m, _ := section.(map[string]any)
	ctx := ru.ectx.WithSite(expr.SiteOutputs)
	for name, raw := range m {
		decl, _ := raw.(map[string]any)
		typ, _ := lookup(decl, "type").(string)
		var value any
		var err error
		if c, ok := lookup(decl, "copy").(map[string]any); ok {
			n, cerr := expr.EvalValue(lookup(c, "count"), ctx)
			count, _ := n.(int64)
			if cerr != nil {
				return outs, invalidTemplate("output '%s' copy count: %v", name, cerr)
			}
			var arr []any
			for i := range int(count) {
				v, err := expr.EvalValue(lookup(c, "input"), ctx.WithResourceCopyIndex(name, i))
				if err != nil {
					return outs, invalidTemplate("output '%s': %v", name, err)
				}
				arr = append(arr, v)
			}
			value = arr
		} else if value, err = expr.EvalValue(lookup(decl, "value"), ctx); err != nil {
			return outs, invalidTemplate("output '%s': %v", name, err)
		}
		outs[name] = map[string]any{"type": typ, "value": value}
	}
	return outs, nil
}
