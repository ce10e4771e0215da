package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/arm/deploy/expr"
	"github.com/outpost-iot/outpost/internal/store"
)

// deploy puts every planned resource once its dependencies succeeded,
// independent ones in parallel, as ARM does; each put is a deployment
// operation, recorded when it starts and when it ends.
func (ru *run) deploy() error {
	rec := operationRecorder{resources: ru.d.cfg.Resources, deploymentID: ru.deploymentID()}
	if err := rec.reset(ru.ctx); err != nil {
		return err
	}
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
			p.op = operation{ID: newOperationID(), Provisioning: "Create", State: "Running", Started: ru.d.cfg.Now(),
				Target: targetResource{ID: p.id, Type: p.typ, Name: p.name, APIVersion: p.apiVersion}}
			ru.record(rec, p.op)
			var created bool
			created, p.err = ru.put(p)
			p.op.finish(ru.d.cfg.Now(), created, p.err)
			ru.record(rec, p.op)
		})
	}
	wg.Wait()
	// One detail per failed operation, as in ARM: a resource never started
	// because a dependency failed is no detail of its own.
	var details []arm.Error
	for _, p := range ru.all {
		if p.err != nil && p.op.ID != "" {
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

// record stores an operation; a failure to record is logged, never fails
// the deployment.
func (ru *run) record(rec operationRecorder, o operation) {
	if err := rec.record(ru.ctx, o); err != nil && ru.ctx.Err() == nil {
		ru.d.cfg.Log.Warn("record deployment operation", "deployment", rec.deploymentID, "err", err)
	}
}

func (ru *run) deploymentID() string {
	return ru.scopeID() + "/providers/" + Type + "/" + ru.name
}

// finish completes an operation with the outcome of its put.
func (o *operation) finish(now time.Time, created bool, err error) {
	o.Duration = now.Sub(o.Started)
	if err != nil {
		ae := arm.AsError(err)
		o.State, o.StatusCode, o.Error = "Failed", statusCodeName(ae.Status), ae
		return
	}
	o.State, o.StatusCode = "Succeeded", statusCodeName(http.StatusOK)
	if created {
		o.StatusCode = statusCodeName(http.StatusCreated)
	}
}

// nestedProperties are the properties a nested deployment is created
// with: with the default "outer" scope evaluated here (the nested
// template's expressions included); with "inner" only the parameters
// passed in are evaluated.
func (p *planned) nestedProperties() (map[string]any, error) {
	rawProps, _ := lookup(p.raw, "properties").(map[string]any)
	scope := "outer"
	if eo, ok := lookup(rawProps, "expressionEvaluationOptions").(map[string]any); ok {
		if s, ok := lookup(eo, "scope").(string); ok {
			scope = strings.ToLower(s)
		}
	}
	if scope != "inner" {
		evaluated, err := p.body()
		if err != nil {
			return nil, err
		}
		props, _ := evaluated["properties"].(map[string]any)
		return props, nil
	}
	props := map[string]any{}
	for k, v := range rawProps {
		props[k] = v
	}
	if params := lookup(rawProps, "parameters"); params != nil {
		out, err := expr.EvalValue(params, p.ctx)
		if err != nil {
			return nil, invalidTemplate("nested deployment '%s' parameters: %v", p.name, err)
		}
		props["parameters"] = out
	}
	return props, nil
}

// body evaluates a resource's members: everything but the template's own
// (type, name, copy, dependsOn…).
//
// The resource's own members are matched ignoring case, as ARM reads them
// into its typed resource: "Location" is sent as "location". What is
// inside them is passed through as written. A resource the resource
// manager could not find for reference() fails with its ResourceNotFound.
func (p *planned) body() (map[string]any, error) {
	body := map[string]any{}
	for k, v := range p.raw {
		if templateMember(k) {
			continue
		}
		out, err := expr.EvalValue(v, p.ctx)
		if err != nil {
			var ae *arm.Error
			if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
				return nil, ae
			}
			return nil, invalidTemplate("resource '%s' %s: %v", p.id, k, err)
		}
		if out != nil {
			body[resourceMember(k)] = out
		}
	}
	return body, nil
}

// resourceMember is a resource member's name as the resource provider
// expects it.
func resourceMember(k string) string {
	for _, m := range []string{"location", "tags", "sku", "kind", "identity", "properties", "plan", "zones", "extendedLocation", "managedBy", "scale", "etag"} {
		if strings.EqualFold(k, m) {
			return m
		}
	}
	return k
}

// templateMember reports whether a resource member is the template's, not
// part of the resource's body.
func templateMember(k string) bool {
	switch strings.ToLower(k) {
	case "copy", "condition", "dependson", "resources", "comments", "apiversion", "type", "name", "scope", "metadata",
		"resourcegroup", "subscriptionid", "existing":
		return true
	}
	return false
}

// put evaluates a resource's body and creates or updates it with the
// deployer's rights, waiting for long-running types to finish; it reports
// whether the resource was created.
func (ru *run) put(p *planned) (bool, error) {
	if strings.EqualFold(p.typ, Type) {
		return ru.putNested(p)
	}
	body, err := p.body()
	if err != nil {
		return false, err
	}
	doc, err := arm.ParseDocument(mustJSON(body))
	if err != nil {
		return false, err
	}
	if strings.EqualFold(p.typ, groupType) && !strings.Contains(p.id, "/providers/") {
		return ru.putGroup(p, doc)
	}
	id, err := arm.ParseResourceID(p.id)
	if err != nil {
		return false, invalidTemplate("resource id '%s': %v", p.id, err)
	}
	if err := ru.d.cfg.Authorizer.AuthorizeAction(ru.ctx, ru.principal, id.FullType()+"/write", id.String()); err != nil {
		return false, err
	}
	apiVersion := p.apiVersion
	if rt, err := ru.d.svc.ResolveType(id); err == nil && !rt.Info().SupportsAPIVersion(apiVersion) {
		return false, arm.Errorf(http.StatusBadRequest, "NoRegisteredProviderFound",
			"No registered resource provider found for location and API version '%s' and type '%s'. The supported api-versions are '%s'.", apiVersion, id.FullType(), strings.Join(rt.Info().APIVersions, ", "))
	}
	out, err := ru.d.svc.PutResource(ru.ctx, arm.PutInput{ID: id, APIVersion: apiVersion, Body: doc, IfMatch: "", Principal: ru.principal})
	if err != nil {
		return false, err
	}
	if out.Operation != nil {
		return out.Created, ru.wait(out.Operation.ID)
	}
	return out.Created, nil
}

// putGroup creates or updates a resource group (subscription deployments).
func (ru *run) putGroup(p *planned, doc arm.Document) (bool, error) {
	if err := ru.d.cfg.Authorizer.AuthorizeAction(ru.ctx, ru.principal, "Microsoft.Resources/subscriptions/resourceGroups/write", p.id); err != nil {
		return false, err
	}
	_, created, err := ru.d.svc.PutGroup(ru.ctx, ru.sub, p.name, doc)
	return created, err
}

// putNested deploys a nested deployment, in this deployment's group or
// subscription or in the group its resourceGroup member names. With the
// default "outer" scope the nested template's expressions are evaluated
// here, against this template's parameters and variables (so, as in ARM,
// resourceGroup() in it is this deployment's group); with "inner" only the
// parameters passed in are, and the nested template evaluates the rest in
// its own scope.
func (ru *run) putNested(p *planned) (bool, error) {
	props, err := p.nestedProperties()
	if err != nil {
		return false, err
	}
	id, err := arm.ParseResourceID(p.id)
	if err != nil {
		return false, err
	}
	if err := ru.d.cfg.Authorizer.AuthorizeAction(ru.ctx, ru.principal, Type+"/write", id.String()); err != nil {
		return false, err
	}
	doc := arm.Document{}
	doc.Set("properties", props)
	if id.ResourceGroup == "" {
		// A nested subscription deployment needs a location; it takes
		// this deployment's.
		loc, _ := lookup(p.raw, "location").(string)
		if loc == "" {
			loc = ru.location
		}
		doc.Set("location", loc)
	}
	out, err := ru.d.svc.PutResource(ru.ctx, arm.PutInput{ID: id, APIVersion: "2021-04-01", Body: doc, Principal: ru.principal})
	if err != nil {
		return false, err
	}
	if out.Operation != nil {
		return out.Created, ru.wait(out.Operation.ID)
	}
	return out.Created, nil
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
	if p, _ := ru.resolve(target); len(p) == 1 {
		target = p[0].id
		if ru.deploying {
			<-p[0].done // deployed already through the implicit dependency
		}
	} else if !strings.HasPrefix(target, "/") {
		return nil, fmt.Errorf("The template reference '%s' is not valid: could not find template resource or resource copy with this name. Please see https://aka.ms/arm-function-reference for usage details.", req.Target)
	}
	id, err := arm.ParseResourceID(target)
	if err != nil {
		return nil, fmt.Errorf("'%s' is not a resource id: %w", target, err)
	}
	if ru.fetchReference == nil {
		return nil, fmt.Errorf("reference('%s') needs the deployed resource", req.Target)
	}
	return ru.fetchReference(ru.ctx, id, req)
}

// references answers references(symbolicName): reference() of every
// instance of a languageVersion 2.0 copy loop, in copy order.
func (ru *run) references(symbol string, full bool) ([]any, error) {
	var out []any
	for _, p := range ru.byName[strings.ToLower(symbol)] {
		if !strings.EqualFold(p.symbol, symbol) {
			continue
		}
		v, err := ru.reference(expr.ReferenceRequest{Target: p.id, APIVersion: p.apiVersion, Full: full})
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if out == nil {
		return nil, fmt.Errorf("'%s' is not the symbolic name of a resource in this template", symbol)
	}
	return out, nil
}

// fetchReference reads a resource for reference() through the resource
// manager.
func (d *Deployments) fetchReference(ctx context.Context, id arm.ResourceID, req expr.ReferenceRequest) (any, error) {
	m, found, err := d.current(ctx, id.String())
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, arm.Errorf(http.StatusNotFound, "ResourceNotFound", "The Resource '%s' under resource group '%s' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
			id.FullType()+"/"+strings.Join(id.Names, "/"), id.ResourceGroup)
	}
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

// current reads a resource (or a resource group) as GET shows it; found
// is false when it does not exist.
func (d *Deployments) current(ctx context.Context, rawID string) (map[string]any, bool, error) {
	var (
		res store.Resource
		rt  arm.ResourceType
		err error
	)
	if sub, group, ok := groupID(rawID); ok {
		res, err = d.svc.GetGroup(ctx, sub, group)
	} else {
		id, perr := arm.ParseResourceID(rawID)
		if perr != nil {
			return nil, false, fmt.Errorf("'%s' is not a resource id: %w", rawID, perr)
		}
		if rt, err = d.svc.ResolveType(id); err == nil {
			res, err = d.svc.GetResource(ctx, id)
		}
	}
	if err != nil {
		var ae *arm.Error
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			return nil, false, nil
		}
		return nil, false, err
	}
	body := res.Body
	if r, ok := rt.(arm.Renderer); ok {
		body = r.Render(res)
	}
	v, err := ParseLenient(body)
	if err != nil {
		return nil, false, err
	}
	m, _ := v.(map[string]any)
	return m, true, nil
}

// groupID splits /subscriptions/{sub}/resourceGroups/{group}.
func groupID(id string) (sub, group string, ok bool) {
	seg := arm.Segments(id)
	if len(seg) == 4 && strings.EqualFold(seg[0], "subscriptions") && strings.EqualFold(seg[2], "resourceGroups") {
		return seg[1], seg[3], true
	}
	return "", "", false
}

// list answers list*() (listKeys…) with the resource's POST action.
func (ru *run) list(req expr.ListRequest) (any, error) {
	target := req.Target
	if p, _ := ru.resolve(target); len(p) == 1 {
		target = p[0].id
		if ru.deploying {
			<-p[0].done
		}
	}
	id, err := arm.ParseResourceID(target)
	if err != nil {
		return nil, fmt.Errorf("'%s' is not a resource id: %w", target, err)
	}
	if ru.fetchList == nil {
		return nil, fmt.Errorf("%s('%s') needs the deployed resource", req.Action, req.Target)
	}
	return ru.fetchList(ru.ctx, id, req)
}

// fetchList calls a resource's POST action for list*().
func (d *Deployments) fetchList(ctx context.Context, id arm.ResourceID, req expr.ListRequest) (any, error) {
	var body json.RawMessage
	if req.Body != nil {
		body = mustJSON(req.Body)
	}
	out, err := d.svc.Action(ctx, id, strings.ToLower(req.Action), body)
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
		if cond := lookup(decl, "condition"); cond != nil {
			v, err := expr.EvalValue(cond, ctx)
			if err != nil {
				return outs, invalidTemplate("output '%s' condition: %v", name, err)
			}
			if b, ok := v.(bool); ok && !b {
				continue // ARM leaves out an output whose condition is false
			}
		}
		typ, _ := lookup(decl, "type").(string)
		var value any
		var err error
		if c, ok := lookup(decl, "copy").(map[string]any); ok {
			n, cerr := expr.EvalValue(lookup(c, "count"), ctx)
			if cerr != nil {
				return outs, invalidTemplate("output '%s' copy count: %v", name, cerr)
			}
			count, ok := copyCount(n)
			if !ok {
				return outs, invalidTemplate("output '%s': the copy count must be a non-negative integer value and cannot exceed '800', got %v.", name, n)
			}
			var arr []any
			for i := range count {
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
		outs[name] = map[string]any{"type": shownType(typ), "value": value}
	}
	return outs, nil
}

// shownType is a declared type as ARM reports it on a deployment's
// outputs and parameters: String, Int, Bool, Array, Object, SecureString,
// SecureObject.
func shownType(typ string) string {
	switch strings.ToLower(typ) {
	case "string":
		return "String"
	case "int":
		return "Int"
	case "bool":
		return "Bool"
	case "array":
		return "Array"
	case "object":
		return "Object"
	case "securestring":
		return "SecureString"
	case "secureobject":
		return "SecureObject"
	}
	return typ
}
