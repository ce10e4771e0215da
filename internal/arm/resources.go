package arm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/outpost-iot/outpost/internal/store"
)

// ResolveType finds the registered type of an id, with the errors ARM gives
// for an unknown namespace or type.
func (s *Service) ResolveType(id ResourceID) (ResourceType, error) {
	if _, ok := s.registry.Namespace(id.Namespace); !ok {
		return nil, Errorf(http.StatusBadRequest, "InvalidResourceNamespace",
			"The resource namespace '%s' is invalid. Registered namespaces are '%s'.", id.Namespace, strings.Join(s.registry.Namespaces(), ", "))
	}
	t, ok := s.registry.Lookup(id.FullType())
	if !ok {
		var known []string
		for _, info := range s.registry.TypesIn(id.Namespace) {
			known = append(known, info.Type)
		}
		return nil, Errorf(http.StatusBadRequest, "InvalidResourceType",
			"The resource type '%s' could not be found in the namespace '%s'. Known types are '%s'.",
			strings.Join(id.Types, "/"), id.Namespace, strings.Join(known, ", "))
	}
	return t, nil
}

// checkContainer verifies that what id lives in exists: subscription,
// resource group, parent resource or extended resource.
func (s *Service) checkContainer(ctx context.Context, id ResourceID) error {
	if id.Subscription != "" {
		if err := s.CheckSubscription(ctx, id.Subscription); err != nil {
			return err
		}
	}
	if id.ResourceGroup != "" && id.Scope == "" {
		if _, err := s.store.Resources().Get(ctx, GroupID(id.Subscription, id.ResourceGroup)); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return errGroupNotFound(id.ResourceGroup)
			}
			return fmt.Errorf("arm: get group: %w", err)
		}
	}
	if parent := id.ParentID(); len(id.Types) > 1 || id.Scope != "" {
		if _, err := s.getAny(ctx, parent); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return Errorf(http.StatusNotFound, "ParentResourceNotFound",
					"Can not perform requested operation on nested resource. Parent resource '%s' not found.", parent)
			}
			return fmt.Errorf("arm: get parent: %w", err)
		}
	}
	return nil
}

// getAny reads an object by id from the store or, for types that are not
// (all) stored — a hub's eventHubEndpoints/events, built-in role
// definitions — from the type's ResourceReader.
func (s *Service) getAny(ctx context.Context, id string) (store.Resource, error) {
	res, err := s.store.Resources().Get(ctx, id)
	if !errors.Is(err, store.ErrNotFound) {
		return res, err
	}
	rid, perr := ParseResourceID(id)
	if perr != nil || rid.IsCollection() {
		return store.Resource{}, err
	}
	if rt, ok := s.registry.Lookup(rid.FullType()); ok {
		if rr, ok := rt.(ResourceReader); ok {
			return rr.Get(ctx, rid)
		}
	}
	return store.Resource{}, err
}

// PutInput is a request to create or replace a resource.
type PutInput struct {
	ID         ResourceID
	APIVersion string
	Body       Document
	// IfMatch is the If-Match header ("" for none, "*" for any existing).
	IfMatch   string
	Principal Principal
}

// PutResult is the outcome of PutResource.
type PutResult struct {
	Resource store.Resource
	Created  bool
	// Operation is set when the type is long-running; poll it.
	Operation *store.Operation
}

// PutResource validates, stores and provisions a resource.
func (s *Service) PutResource(ctx context.Context, in PutInput) (PutResult, error) {
	rt, err := s.ResolveType(in.ID)
	if err != nil {
		return PutResult{}, err
	}
	if err := s.checkContainer(ctx, in.ID); err != nil {
		return PutResult{}, err
	}
	info := rt.Info()
	var op *store.Operation
	if info.LongRunning {
		// Record the operation before the write: if the process dies between
		// the two, the runner resumes it and Provision runs on whatever is
		// stored, so no accepted resource is left half-made.
		o, err := s.startOperation(ctx, in.ID.String(), opPut)
		if err != nil {
			return PutResult{}, err
		}
		op = &o
	}
	res, created, err := s.putPrepared(ctx, rt, in, info.LongRunning)
	if err != nil {
		if op != nil {
			s.finishOperation(ctx, op.ID, err)
		}
		return PutResult{}, err
	}
	if op != nil {
		s.enqueue(op.ID)
		return PutResult{Resource: res, Created: created, Operation: op}, nil
	}
	res, err = s.provision(ctx, rt, res)
	return PutResult{Resource: res, Created: created}, err
}

// maxPutAttempts bounds optimistic retries when a concurrent writer changes
// the resource between Prepare and the write.
const maxPutAttempts = 5

// errConcurrentChange makes the store updater abort so PutResource can run
// Prepare again against the newer resource.
var errConcurrentChange = errors.New("resource changed while the request was prepared")

// putPrepared reads the current resource, runs Prepare outside any store
// transaction (types may read the store; SQLite's single writer would
// deadlock inside one) and writes only if the resource is still what Prepare
// saw, retrying otherwise.
func (s *Service) putPrepared(ctx context.Context, rt ResourceType, in PutInput, pending bool) (store.Resource, bool, error) {
	for attempt := 0; ; attempt++ {
		var cur *store.Resource
		got, err := s.store.Resources().Get(ctx, in.ID.String())
		switch {
		case err == nil:
			cur = &got
		case !errors.Is(err, store.ErrNotFound):
			return store.Resource{}, false, fmt.Errorf("arm: put: %w", err)
		}
		if err := checkIfMatch(in.IfMatch, cur); err != nil {
			return store.Resource{}, false, err
		}
		doc, err := rt.Prepare(ctx, PutRequest{ID: in.ID, APIVersion: in.APIVersion, Current: cur, Body: in.Body, Principal: in.Principal})
		if err != nil {
			return store.Resource{}, false, err
		}
		rec := s.resourceRecord(in.ID, cur, doc, pending)
		res, created, err := s.store.Resources().Put(ctx, in.ID.String(), func(now *store.Resource) (store.Resource, error) {
			if (now == nil) != (cur == nil) || (now != nil && now.ETag != cur.ETag) {
				return store.Resource{}, errConcurrentChange
			}
			return rec, nil
		})
		if errors.Is(err, errConcurrentChange) && attempt+1 < maxPutAttempts {
			continue
		}
		if errors.Is(err, errConcurrentChange) {
			return store.Resource{}, false, Errorf(http.StatusConflict, "Conflict",
				"The resource '%s' is being changed by other requests; retry.", in.ID.String())
		}
		return res, created, err
	}
}

// resourceRecord fills the framework-owned members of doc and builds the
// record to store.
func (s *Service) resourceRecord(id ResourceID, cur *store.Resource, doc Document, pending bool) store.Resource {
	canonical := id.String()
	if cur != nil {
		canonical = cur.ID // ARM keeps the name's first spelling
	}
	cid, _ := ParseResourceID(canonical)
	doc.Set("id", canonical)
	doc.Set("name", cid.Name())
	doc.Set("type", cid.FullType())
	if pending {
		setProvisioningState(doc, "Accepted")
	}
	return store.Resource{
		ID: canonical, Type: cid.FullType(), Subscription: cid.Subscription, ResourceGroup: cid.ResourceGroup,
		ParentID: cid.ParentID(), Name: cid.Name(), Body: doc.Bytes(),
	}
}

func setProvisioningState(doc Document, state string) {
	props := map[string]json.RawMessage{}
	_ = doc.Decode("properties", &props)
	b, _ := json.Marshal(state)
	props["provisioningState"] = b
	doc.Set("properties", props)
}

// provision runs the type's side effects and stores the final document.
func (s *Service) provision(ctx context.Context, rt ResourceType, res store.Resource) (store.Resource, error) {
	id, err := ParseResourceID(res.ID)
	if err != nil {
		return store.Resource{}, fmt.Errorf("arm: provision: %w", err)
	}
	doc, err := ParseDocument(res.Body)
	if err != nil {
		return store.Resource{}, fmt.Errorf("arm: provision: decode %s: %w", res.ID, err)
	}
	final, err := rt.Provision(ctx, id, doc)
	if err != nil {
		return store.Resource{}, err
	}
	if final == nil {
		return res, nil
	}
	if _, ok := final["properties"]; ok {
		setProvisioningState(final, "Succeeded")
	}
	var newer *store.Resource
	out, _, err := s.store.Resources().Put(ctx, res.ID, func(cur *store.Resource) (store.Resource, error) {
		if cur == nil {
			return store.Resource{}, errResourceNotFound(id)
		}
		if cur.ETag != res.ETag {
			// A newer PUT was accepted while this one provisioned: its
			// document stands, and its own operation provisions it.
			c := *cur
			newer = &c
			return store.Resource{}, errSuperseded
		}
		next := *cur
		next.Body = final.Bytes()
		return next, nil
	})
	if errors.Is(err, errSuperseded) {
		return *newer, nil
	}
	return out, err
}

// errSuperseded aborts writing back a provisioned document that a newer
// PUT replaced meanwhile.
var errSuperseded = errors.New("arm: superseded by a newer PUT")

// checkIfMatch applies an If-Match header. az sends a malformed
// "{'IF-MATCH': '<etag>'}" form; the etag inside it is used.
func checkIfMatch(ifMatch string, cur *store.Resource) error {
	if ifMatch == "" {
		return nil
	}
	if ifMatch == "*" {
		if cur == nil {
			return errPrecondition(ifMatch)
		}
		return nil
	}
	want := parseIfMatch(ifMatch)
	if cur == nil || want != cur.ETag {
		return errPrecondition(ifMatch)
	}
	return nil
}

func parseIfMatch(h string) string {
	h = strings.TrimSpace(h)
	if strings.HasPrefix(h, "{") { // az 2.45: {'IF-MATCH': 'AAAA='}
		if _, v, ok := strings.Cut(h, ":"); ok {
			h = strings.Trim(strings.TrimSpace(v), "}' ")
		}
	}
	h = strings.TrimPrefix(h, "W/")
	return strings.Trim(h, `"`)
}

// GetResource returns a resource or 404 ResourceNotFound.
func (s *Service) GetResource(ctx context.Context, id ResourceID) (store.Resource, error) {
	rt, err := s.ResolveType(id)
	if err != nil {
		return store.Resource{}, err
	}
	if err := s.checkContainer(ctx, id); err != nil {
		return store.Resource{}, err
	}
	if rr, ok := rt.(ResourceReader); ok {
		res, err := rr.Get(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return store.Resource{}, errResourceNotFound(id)
		}
		return res, err
	}
	res, err := s.store.Resources().Get(ctx, id.String())
	if errors.Is(err, store.ErrNotFound) {
		return store.Resource{}, errResourceNotFound(id)
	}
	return res, err
}

// ListResources lists the resources of a collection path. query carries
// the request's query parameters ($filter) for types that list their own way.
func (s *Service) ListResources(ctx context.Context, coll ResourceID, query url.Values, page Page) ([]store.Resource, error) {
	rt, err := s.ResolveType(coll)
	if err != nil {
		return nil, err
	}
	if err := s.checkContainer(ctx, coll); err != nil {
		return nil, err
	}
	if cl, ok := rt.(CollectionLister); ok {
		return cl.List(ctx, coll, query)
	}
	f := store.ResourceFilter{Type: coll.FullType(), After: page.After, Limit: page.Limit}
	switch {
	case len(coll.Types) > 1 || coll.Scope != "":
		f.ParentID = coll.ParentID()
	case coll.ResourceGroup != "":
		f.Subscription, f.ResourceGroup = coll.Subscription, coll.ResourceGroup
	default:
		f.Subscription = coll.Subscription
	}
	return s.store.Resources().List(ctx, f)
}

// DeleteResource removes a resource and its children. For a long-running
// type it returns the operation to poll. found is false when there was
// nothing to delete.
func (s *Service) DeleteResource(ctx context.Context, id ResourceID, ifMatch string) (op *store.Operation, found bool, err error) {
	rt, err := s.ResolveType(id)
	if err != nil {
		return nil, false, err
	}
	if err := s.checkContainer(ctx, id); err != nil {
		if AsError(err).Status == http.StatusNotFound {
			return nil, false, nil
		}
		return nil, false, err
	}
	res, err := s.store.Resources().Get(ctx, id.String())
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("arm: delete: %w", err)
	}
	if err := checkIfMatch(ifMatch, &res); err != nil {
		return nil, true, err
	}
	if rt.Info().LongRunning {
		o, err := s.startOperation(ctx, res.ID, opDelete)
		if err != nil {
			return nil, true, err
		}
		s.enqueue(o.ID)
		return &o, true, nil
	}
	return nil, true, s.deleteTree(ctx, res.ID)
}

// deleteTree deprovisions every resource at or under id, deepest first, then
// removes them from the store.
func (s *Service) deleteTree(ctx context.Context, id string) error {
	children, err := s.store.Resources().List(ctx, store.ResourceFilter{ParentID: id})
	if err != nil {
		return fmt.Errorf("arm: delete %s: list children: %w", id, err)
	}
	for _, c := range children {
		if err := s.deleteTree(ctx, c.ID); err != nil {
			return err
		}
	}
	res, err := s.store.Resources().Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("arm: delete %s: %w", id, err)
	}
	if rt, ok := s.registry.Lookup(res.Type); ok {
		if err := rt.Deprovision(ctx, res); err != nil {
			return fmt.Errorf("arm: deprovision %s: %w", id, err)
		}
	}
	if err := s.store.Resources().Delete(ctx, id, ""); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("arm: delete %s: %w", id, err)
	}
	if rt, ok := s.registry.Lookup(res.Type); ok {
		if obs, ok := rt.(DeleteObserver); ok {
			obs.Deleted(ctx, res)
		}
	}
	return nil
}

// Action runs a POST action (listkeys, ...) on a resource.
func (s *Service) Action(ctx context.Context, id ResourceID, action string, body json.RawMessage) (any, error) {
	rt, err := s.ResolveType(id)
	if err != nil {
		return nil, err
	}
	at, ok := rt.(ActionType)
	if !ok {
		return nil, errMethod(http.MethodPost, id.String()+"/"+action)
	}
	res, err := s.GetResource(ctx, id)
	var ae *Error
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound && containsFold(rt.Info().DetachedActions, action) {
		res, err = store.Resource{ID: id.String(), Name: id.Name(), Type: id.FullType()}, nil
	}
	if err != nil {
		return nil, err
	}
	return at.Action(ctx, res, action, body)
}

// ListAll lists the top-level resources of a subscription or group (the
// generic /resources endpoint), optionally of one type.
func (s *Service) ListAll(ctx context.Context, sub, group, typ string, match func(store.Resource) bool, page Page) ([]store.Resource, error) {
	if err := s.CheckSubscription(ctx, sub); err != nil {
		return nil, err
	}
	if group != "" {
		if _, err := s.GetGroup(ctx, sub, group); err != nil {
			return nil, err
		}
	}
	var out []store.Resource
	after := page.After
	for {
		batch, err := s.store.Resources().List(ctx, store.ResourceFilter{Subscription: sub, ResourceGroup: group, Type: typ, After: after, Limit: 500})
		if err != nil {
			return nil, fmt.Errorf("arm: list resources: %w", err)
		}
		for _, r := range batch {
			// Groups, deployments and role assignments (extension resources
			// at a group's or the subscription's scope) are not listed.
			if t := strings.ToLower(r.Type); strings.HasPrefix(t, "microsoft.resources/") || strings.HasPrefix(t, "microsoft.authorization/") {
				continue
			}
			if match != nil && !match(r) {
				continue
			}
			id, err := ParseResourceID(r.ID)
			if err != nil || len(id.Types) > 1 || id.Scope != "" {
				continue // child and extension resources are not listed here
			}
			out = append(out, r)
			if page.Limit > 0 && len(out) == page.Limit {
				return out, nil
			}
		}
		if len(batch) < 500 {
			return out, nil
		}
		after = batch[len(batch)-1].ID
	}
}
