package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/arm/deploy/expr"
)

// What-if change types (WhatIfChange.changeType) and property change types
// (WhatIfPropertyChange.propertyChangeType).
const (
	changeCreate      = "Create"
	changeDelete      = "Delete"
	changeIgnore      = "Ignore"
	changeDeploy      = "Deploy"
	changeNoChange    = "NoChange"
	changeModify      = "Modify"
	changeUnsupported = "Unsupported"

	propertyCreate = "Create"
	propertyModify = "Modify"
	propertyArray  = "Array"
)

// whatIf answers POST …/deployments/{name}/whatIf: the change set the
// deployment would make, computed by the same planner that deploys —
// every resource the template lists, compared with what exists now, and
// the group's other resources (deleted in Complete mode, ignored in
// Incremental mode). Values that depend on a resource the deployment has
// yet to create (reference(), list*() of it) stay as their expression, as
// ARM shows them.
func (d *Deployments) whatIf(ctx context.Context, id arm.ResourceID, body json.RawMessage) (any, error) {
	r, err := d.decodeAction(id, body)
	if err != nil {
		return nil, err
	}
	t, err := d.target(ctx, id, r.Location, r.Mode)
	if err != nil {
		return nil, err
	}
	ru := newRun(ctx, t, d.cfg.TenantID, d.cfg.Environment, r, d.cfg.Now)
	ru.d = d
	ru.fetchReference, ru.fetchList = d.fetchReference, d.fetchList
	if err := ru.plan(r); err != nil {
		return nil, err
	}
	listed := map[string]bool{}
	changes, err := ru.changes(listed, 0)
	if err != nil {
		return nil, err
	}
	if t.rg != "" {
		others, err := ru.unlisted(listed)
		if err != nil {
			return nil, err
		}
		for _, o := range others {
			before, _, err := d.current(ctx, o.ID)
			if err != nil {
				return nil, err
			}
			c := map[string]any{"resourceId": o.ID, "changeType": changeIgnore, "before": before, "after": nil}
			if r.Mode == "Complete" {
				c["changeType"] = changeDelete
			}
			changes = append(changes, c)
		}
	}
	sort.SliceStable(changes, func(i, j int) bool {
		return strings.ToLower(changes[i]["resourceId"].(string)) < strings.ToLower(changes[j]["resourceId"].(string))
	})
	return map[string]any{"status": "Succeeded", "properties": map[string]any{"changes": changes}}, nil
}

// maxNesting bounds how deep whatIf follows nested deployments.
const maxNesting = 8

// changes compares every planned resource with what exists. A nested
// deployment is not itself a change: the resources of its template are,
// planned in its own scope (as ARM's whatIf shows them). listed collects
// every id, for the group's unlisted resources.
func (ru *run) changes(listed map[string]bool, depth int) ([]map[string]any, error) {
	out := []map[string]any{}
	for _, p := range ru.all {
		listed[strings.ToLower(p.id)] = true
		if strings.EqualFold(p.typ, Type) && depth < maxNesting {
			if nested, ok := ru.nestedRun(p); ok {
				cs, err := nested.changes(listed, depth+1)
				if err != nil {
					return nil, err
				}
				out = append(out, cs...)
				continue
			}
		}
		c, err := ru.change(p)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// nestedRun plans a nested deployment's template in its own scope (its
// group, which the template itself may be about to create). false when it
// can't be planned before deploying — the deployment is then reported as
// one change.
func (ru *run) nestedRun(p *planned) (*run, bool) {
	rawProps, _ := lookup(p.raw, "properties").(map[string]any)
	var props map[string]any
	if scope, _ := lookup(lookup(rawProps, "expressionEvaluationOptions").(map[string]any), "scope").(string); strings.EqualFold(scope, "inner") {
		props = map[string]any{}
		for k, v := range rawProps {
			props[k] = v
		}
		props["parameters"] = evalLenient(lookup(rawProps, "parameters"), p.ctx)
	} else {
		props, _ = evalLenient(rawProps, p.ctx).(map[string]any)
	}
	tpl, ok := lookup(props, "template").(map[string]any)
	if !ok {
		return nil, false // templateLink, or not evaluable yet
	}
	params := map[string]any{}
	if pm, ok := lookup(props, "parameters").(map[string]any); ok {
		for name, v := range pm {
			if entry, ok := v.(map[string]any); ok {
				params[name] = lookup(entry, "value")
			}
		}
	}
	mode, _ := lookup(props, "mode").(string)
	r := request{Template: tpl, Parameters: params, Mode: "Incremental", Location: ru.location}
	if strings.EqualFold(mode, "Complete") {
		r.Mode = "Complete"
	}
	t := target{sub: ru.sub, rg: ru.rg, location: ru.location, groupTags: ru.groupTags, name: p.name, mode: r.Mode}
	if p.group != "" {
		t.rg = p.group
		if id, err := arm.ParseResourceID(p.id); err == nil {
			if found, err := ru.d.target(ru.ctx, id, ru.location, r.Mode); err == nil {
				t = found
			}
		}
	}
	if checkTemplate(r) != nil {
		return nil, false
	}
	nested := newRun(ru.ctx, t, ru.d.cfg.TenantID, ru.d.cfg.Environment, r, ru.d.cfg.Now)
	nested.d, nested.fetchReference, nested.fetchList = ru.d, ru.fetchReference, ru.fetchList
	if nested.plan(r) != nil {
		return nil, false
	}
	return nested, true
}

// change compares one planned resource with what exists.
func (ru *run) change(p *planned) (map[string]any, error) {
	c := map[string]any{"resourceId": p.id}
	before, found, err := ru.d.current(ru.ctx, p.id)
	if err != nil {
		return nil, err
	}
	if found {
		c["before"] = before
	} else {
		c["before"] = nil
	}
	if strings.EqualFold(p.typ, Type) {
		// A nested deployment redeploys its own template.
		c["changeType"] = changeDeploy
		if !found {
			c["changeType"] = changeCreate
		}
		return c, nil
	}
	if !strings.EqualFold(p.typ, groupType) {
		if id, err := arm.ParseResourceID(p.id); err == nil {
			if _, err := ru.d.svc.ResolveType(id); err != nil {
				c["changeType"], c["unsupportedReason"] = changeUnsupported, fmt.Sprintf("Outpost does not serve the resource type '%s'.", p.typ)
				return c, nil
			}
		}
	}
	desired := ru.lenientBody(p)
	after := map[string]any{"id": p.id, "name": lastSegment(p.name), "type": p.typ, "apiVersion": p.apiVersion}
	if !found {
		for k, v := range desired {
			after[k] = v
		}
		c["changeType"], c["after"] = changeCreate, after
		return c, nil
	}
	delta := diff("", before, desired)
	merged := merge(before, desired)
	c["after"] = merged
	if len(delta) == 0 {
		c["changeType"] = changeNoChange
		return c, nil
	}
	c["changeType"], c["delta"] = changeModify, delta
	return c, nil
}

// lenientBody evaluates a resource's members, keeping as written every
// value that can't be evaluated before deploying.
func (ru *run) lenientBody(p *planned) map[string]any {
	body := map[string]any{}
	for k, v := range p.raw {
		if templateMember(k) {
			continue
		}
		if out := evalLenient(v, p.ctx); out != nil {
			body[k] = out
		}
	}
	return body
}

func evalLenient(v any, ctx *expr.Context) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			key := k
			if kv, err := expr.EvalValue(k, ctx); err == nil {
				if s, ok := kv.(string); ok {
					key = s
				}
			}
			out[key] = evalLenient(x, ctx)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = evalLenient(x, ctx)
		}
		return out
	}
	out, err := expr.EvalValue(v, ctx)
	if err != nil {
		return v
	}
	return out
}

// diff lists the property changes from before to after, over the paths
// after sets (what the template says); properties only the service fills
// in are not changes.
func diff(path string, before, after any) []map[string]any {
	bm, bok := before.(map[string]any)
	am, aok := after.(map[string]any)
	if bok && aok {
		var out []map[string]any
		keys := make([]string, 0, len(am))
		for k := range am {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			av := am[k]
			if av == nil {
				continue
			}
			sub := k
			if path != "" {
				sub = path + "." + k
			}
			bv, found := lookupKey(bm, k)
			if !found {
				out = append(out, map[string]any{"path": sub, "propertyChangeType": propertyCreate, "after": av})
				continue
			}
			out = append(out, diff(sub, bv, av)...)
		}
		return out
	}
	if sameValue(path, before, after) {
		return nil
	}
	kind := propertyModify
	if _, ok := after.([]any); ok {
		kind = propertyArray
	}
	return []map[string]any{{"path": path, "propertyChangeType": kind, "before": before, "after": after}}
}

// sameValue compares two JSON values as equals() does; locations compare
// as ARM normalises them ("West US" is westus).
func sameValue(path string, a, b any) bool {
	if strings.EqualFold(path, "location") {
		as, aok := a.(string)
		bs, bok := b.(string)
		if aok && bok {
			return normLocation(as) == normLocation(bs)
		}
	}
	return expr.Equal(a, b)
}

func normLocation(s string) string { return strings.ToLower(strings.ReplaceAll(s, " ", "")) }

// merge is before with after's values laid over it: the resource as it
// will be.
func merge(before, after map[string]any) map[string]any {
	out := make(map[string]any, len(before))
	for k, v := range before {
		out[k] = v
	}
	for k, v := range after {
		if v == nil {
			continue
		}
		bk := k
		for ek := range out {
			if strings.EqualFold(ek, k) {
				bk = ek
			}
		}
		bm, bok := out[bk].(map[string]any)
		am, aok := v.(map[string]any)
		if bok && aok {
			out[bk] = merge(bm, am)
			continue
		}
		out[bk] = v
	}
	return out
}

// decodeAction reads the body of validate and whatIf: the deployment
// request, checked as a PUT would be.
func (d *Deployments) decodeAction(id arm.ResourceID, body json.RawMessage) (request, error) {
	if err := checkScope(id); err != nil {
		return request{}, err
	}
	doc, err := d.ParseBody(body)
	if err != nil {
		return request{}, arm.Errorf(http.StatusBadRequest, "InvalidRequestContent", "The request content is not valid JSON: %v", err)
	}
	r, err := decodeRequest(doc)
	if err != nil {
		return request{}, err
	}
	if err := checkLocation(id, r); err != nil {
		return request{}, err
	}
	if err := checkTemplate(r); err != nil {
		return request{}, err
	}
	return r, nil
}
