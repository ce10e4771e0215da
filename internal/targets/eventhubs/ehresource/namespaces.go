package ehresource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/identity/msi"
	"github.com/outpost-iot/outpost/internal/store"
)

// Namespaces is the Microsoft.EventHub/namespaces type.
type Namespaces struct{ p *Provider }

var (
	_ arm.ResourceType = (*Namespaces)(nil)
	_ arm.Renderer     = (*Namespaces)(nil)
)

// Info implements arm.ResourceType.
func (n *Namespaces) Info() arm.TypeInfo {
	return arm.TypeInfo{
		Namespace: ProviderNamespace, Type: "namespaces", APIVersions: APIVersions(),
		Capabilities: "SupportsTags, SupportsLocation",
	}
}

// SKU is a namespace's pricing tier.
type SKU struct {
	Name     string `json:"name"`
	Tier     string `json:"tier"`
	Capacity int    `json:"capacity"`
}

// Tier limits that the control and data planes enforce.
type tierLimits struct {
	maxEventBytes     int
	maxRetentionHours int
	maxPartitions     int
	// extraConsumerGroups: Basic has only $Default.
	extraConsumerGroups bool
	capacities          []int
}

var tiers = map[string]tierLimits{
	"Basic":    {maxEventBytes: 256 * 1024, maxRetentionHours: 24, maxPartitions: 32, capacities: rangeInts(1, 40)},
	"Standard": {maxEventBytes: 1024 * 1024, maxRetentionHours: 7 * 24, maxPartitions: 32, extraConsumerGroups: true, capacities: rangeInts(1, 40)},
	"Premium":  {maxEventBytes: 1024 * 1024, maxRetentionHours: 90 * 24, maxPartitions: 100, extraConsumerGroups: true, capacities: []int{1, 2, 4, 8, 16}},
}

func rangeInts(lo, hi int) []int {
	out := make([]int, 0, hi-lo+1)
	for i := lo; i <= hi; i++ {
		out = append(out, i)
	}
	return out
}

func limitsOf(tier string) tierLimits {
	if l, ok := tiers[tier]; ok {
		return l
	}
	return tiers["Standard"]
}

// MaxEventBytes is the largest event (and REST batch) a tier accepts:
// 256 KB on Basic, 1 MB otherwise.
func MaxEventBytes(tier string) int { return limitsOf(tier).maxEventBytes }

// namespaceName: 6-50 characters, letters, digits and hyphens, starting with
// a letter and ending with a letter or digit (Azure's rule).
var namespaceName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{4,48}[A-Za-z0-9]$`)

// NameProblem explains why a namespace name is invalid ("" when valid).
func NameProblem(name string) string {
	lower := strings.ToLower(name)
	switch {
	case len(name) < 6 || len(name) > 50:
		return "it must be 6 to 50 characters long"
	case !namespaceName.MatchString(name):
		return "it can contain only letters, numbers and hyphens, must start with a letter and must end with a letter or number"
	case strings.HasSuffix(lower, "-sb") || strings.HasSuffix(lower, "-mgmt"):
		return "it can't end with '-sb' or '-mgmt' (reserved by the service)"
	}
	return ""
}

func errInvalidName(name, problem string) error {
	return arm.Errorf(http.StatusBadRequest, "BadRequest",
		"The specified namespace name '%s' is invalid: %s.", name, problem)
}

func errNameTaken(name string) error {
	return arm.Errorf(http.StatusConflict, "Conflict",
		"The namespace name '%s' is not available: a namespace of that name already exists (Event Hubs and Service Bus namespaces share the servicebus DNS zone, so names are unique across both). Choose another name.", name)
}

// checkNameFree refuses a name another namespace (of either provider) holds.
func (n *Namespaces) checkNameFree(ctx context.Context, id arm.ResourceID) error {
	other, found, err := n.p.findNamespace(ctx, id.Name())
	if err != nil {
		return err
	}
	if found && store.Key(other.ID) != store.Key(id.String()) {
		return errNameTaken(id.Name())
	}
	if found {
		return nil // our own namespace: the other provider can't hold it too
	}
	taken, err := n.p.cfg.NameTaken(ctx, id.Name())
	if err != nil {
		return fmt.Errorf("ehresource: check namespace name: %w", err)
	}
	if taken {
		return errNameTaken(id.Name())
	}
	return nil
}

// Prepare implements arm.ResourceType.
func (n *Namespaces) Prepare(ctx context.Context, req arm.PutRequest) (arm.Document, error) {
	name := req.ID.Name()
	if problem := NameProblem(name); problem != "" {
		return nil, errInvalidName(name, problem)
	}
	if err := n.checkNameFree(ctx, req.ID); err != nil {
		return nil, err
	}
	cur, err := currentDoc(req)
	if err != nil {
		return nil, err
	}
	location, err := n.location(req, cur)
	if err != nil {
		return nil, err
	}
	sku, err := prepareSKU(req.Body, cur)
	if err != nil {
		return nil, err
	}
	block, err := n.p.cfg.Identities.Prepare(ctx, req)
	if err != nil {
		return nil, err
	}
	keepPrincipalIDs(&block, cur)
	var tags map[string]string
	if err := req.Body.Decode("tags", &tags); err != nil {
		return nil, invalid("tags must be an object of string values: %v.", err)
	}
	if tags == nil {
		tags = map[string]string{}
	}
	props, err := n.properties(req, cur, sku)
	if err != nil {
		return nil, err
	}
	doc := arm.Document{}
	doc.Set("location", location)
	doc.Set("tags", tags)
	doc.Set("sku", sku)
	if block.Type != msi.TypeNone {
		doc.Set("identity", block)
	} else {
		doc.Set("identity", msi.Block{Type: msi.TypeNone})
	}
	doc.Set("properties", props)
	return doc, nil
}

func (n *Namespaces) location(req arm.PutRequest, cur arm.Document) (string, error) {
	stored := ""
	if cur != nil {
		stored = cur.String("location")
	}
	return arm.ResolveLocation(n.p.cfg.Locations, TypeNamespace, req.ID, req.Body.String("location"), stored)
}

// prepareSKU validates the sku: Basic, Standard (the default) or Premium,
// any letter case; capacity defaults to 1. Moving to or from Premium is
// refused, as Azure does.
func prepareSKU(body, cur arm.Document) (SKU, error) {
	var was SKU
	if cur != nil {
		_ = cur.Decode("sku", &was)
	}
	var s SKU
	if err := body.Decode("sku", &s); err != nil {
		return SKU{}, invalid("The sku must be an object {\"name\": \"Basic|Standard|Premium\", \"capacity\": n}: %v.", err)
	}
	if s.Name == "" {
		s.Name = was.Name
	}
	if s.Name == "" {
		s.Name = "Standard"
	}
	canon := ""
	for t := range tiers {
		if strings.EqualFold(t, s.Name) {
			canon = t
		}
	}
	if canon == "" {
		return SKU{}, invalid("The sku name '%s' is not valid. Use Basic, Standard or Premium.", s.Name)
	}
	if s.Tier != "" && !strings.EqualFold(s.Tier, canon) {
		return SKU{}, invalid("The sku tier '%s' does not match the sku name '%s'; leave tier out or set it to '%s'.", s.Tier, canon, canon)
	}
	s.Name, s.Tier = canon, canon
	if s.Capacity == 0 {
		s.Capacity = was.Capacity
	}
	if s.Capacity == 0 {
		s.Capacity = 1
	}
	caps := limitsOf(canon).capacities
	ok := false
	for _, c := range caps {
		ok = ok || c == s.Capacity
	}
	if !ok {
		return SKU{}, invalid("The sku capacity %d is not valid for the %s tier; use one of %v.", s.Capacity, canon, caps)
	}
	if was.Name != "" && was.Name != canon && (was.Name == "Premium" || canon == "Premium") {
		return SKU{}, invalid("A namespace can't be moved between the %s and %s tiers; create a new namespace instead.", was.Name, canon)
	}
	return s, nil
}

// properties builds the namespace properties: the caller's settable ones,
// validated, and the server-owned ones filled in.
func (n *Namespaces) properties(req arm.PutRequest, cur arm.Document, sku SKU) (map[string]json.RawMessage, error) {
	props, err := properties(req.Body)
	if err != nil {
		return nil, err
	}
	var was map[string]json.RawMessage
	if cur != nil {
		was, _ = properties(cur)
	}
	boolean := func(key string, def bool) error {
		v := def
		if r, ok := was[key]; ok {
			_ = json.Unmarshal(r, &v)
		}
		if r, ok := props[key]; ok && string(r) != "null" {
			if err := json.Unmarshal(r, &v); err != nil {
				return invalid("properties.%s must be true or false, got %s.", key, r)
			}
		}
		props[key] = raw(v)
		return nil
	}
	for key, def := range map[string]bool{"disableLocalAuth": false, "zoneRedundant": false, "isAutoInflateEnabled": false} {
		if err := boolean(key, def); err != nil {
			return nil, err
		}
	}
	choice := func(key, def string, allowed ...string) error {
		v := def
		if r, ok := was[key]; ok {
			_ = json.Unmarshal(r, &v)
		}
		if r, ok := props[key]; ok && string(r) != "null" {
			if err := json.Unmarshal(r, &v); err != nil {
				return invalid("properties.%s must be a string, got %s.", key, r)
			}
		}
		for _, a := range allowed {
			if strings.EqualFold(a, v) {
				props[key] = raw(a)
				return nil
			}
		}
		return invalid("properties.%s '%s' is not valid; use one of %s.", key, v, strings.Join(allowed, ", "))
	}
	if err := choice("publicNetworkAccess", "Enabled", "Enabled", "Disabled", "SecuredByPerimeter"); err != nil {
		return nil, err
	}
	if err := choice("minimumTlsVersion", "1.2", "1.0", "1.1", "1.2"); err != nil {
		return nil, err
	}
	var tu int
	if r, ok := props["maximumThroughputUnits"]; ok && string(r) != "null" {
		if err := json.Unmarshal(r, &tu); err != nil || tu < 0 || tu > 40 {
			return nil, invalid("properties.maximumThroughputUnits must be a number from 0 to 40, got %s.", r)
		}
	}
	props["maximumThroughputUnits"] = raw(tu)
	props["kafkaEnabled"] = raw(sku.Name != "Basic")
	name := req.ID.Name()
	props["serviceBusEndpoint"] = raw("https://" + Host(name, n.p.cfg.DNSSuffix) + ":443/")
	props["metricId"] = raw(req.ID.Subscription + ":" + strings.ToLower(name))
	props["status"] = raw("Active")
	now := n.p.timestamp()
	created := now
	if c := storedString(cur, "createdAt"); c != "" {
		created = c
	}
	props["createdAt"] = raw(created)
	props["updatedAt"] = raw(now)
	props["provisioningState"] = raw("Succeeded")
	return props, nil
}

// keepPrincipalIDs shows the ids the identities already have while the
// update is provisioned (Provision sets them again).
func keepPrincipalIDs(b *msi.Block, cur arm.Document) {
	if cur == nil {
		return
	}
	var was msi.Block
	_ = cur.Decode("identity", &was)
	if b.System() && was.System() {
		b.PrincipalID, b.TenantID = was.PrincipalID, was.TenantID
	}
	if b.User() && was.TenantID != "" {
		b.TenantID = was.TenantID
	}
	for id, ref := range b.UserAssignedIdentities {
		for wid, wref := range was.UserAssignedIdentities {
			if strings.EqualFold(id, wid) && wref != nil {
				*ref = *wref
			}
		}
	}
}

// Provision implements arm.ResourceType: the system-assigned identity
// follows the block and the root rule exists.
func (n *Namespaces) Provision(ctx context.Context, id arm.ResourceID, doc arm.Document) (arm.Document, error) {
	var block msi.Block
	if err := doc.Decode("identity", &block); err != nil {
		return nil, fmt.Errorf("ehresource: provision %s: %w", id, err)
	}
	block, err := n.p.cfg.Identities.Provision(ctx, id.String(), block)
	if err != nil {
		return nil, fmt.Errorf("ehresource: provision %s: %w", id, err)
	}
	doc.Set("identity", block)
	if err := n.p.ensureRootRule(ctx, id); err != nil {
		return nil, err
	}
	n.p.cfg.Changed(id.Name())
	return doc, nil
}

// Deprovision implements arm.ResourceType. Children (event hubs and their
// streams, rules) were deprovisioned before, deepest first.
func (n *Namespaces) Deprovision(ctx context.Context, res store.Resource) error {
	if err := n.p.cfg.Identities.Deprovision(ctx, res.ID); err != nil {
		return fmt.Errorf("ehresource: deprovision %s: %w", res.ID, err)
	}
	n.p.cfg.Changed(res.Name)
	return nil
}

// Render implements arm.Renderer: a namespace without an identity shows
// type None, as Azure does.
func (n *Namespaces) Render(res store.Resource) json.RawMessage {
	doc, err := arm.ParseDocument(res.Body)
	if err != nil {
		return res.Body
	}
	if _, ok := doc["identity"]; !ok {
		doc.Set("identity", msi.Block{Type: msi.TypeNone})
	}
	return doc.Bytes()
}

// checkNameAvailability answers POST .../providers/Microsoft.EventHub/checkNameAvailability.
func (n *Namespaces) checkNameAvailability(ctx context.Context, _ string, body json.RawMessage, _ arm.Principal) (any, error) {
	var in struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, invalid("The request body must be {\"name\": \"<namespace name>\"}: %v.", err)
	}
	if problem := NameProblem(in.Name); problem != "" {
		return map[string]any{"nameAvailable": false, "reason": "InvalidName",
			"message": fmt.Sprintf("The specified namespace name '%s' is invalid: %s.", in.Name, problem)}, nil
	}
	_, found, err := n.p.findNamespace(ctx, in.Name)
	if err != nil {
		return nil, err
	}
	if !found {
		if found, err = n.p.cfg.NameTaken(ctx, in.Name); err != nil {
			return nil, fmt.Errorf("ehresource: check namespace name: %w", err)
		}
	}
	if found {
		return map[string]any{"nameAvailable": false, "reason": "NameInUse",
			"message": fmt.Sprintf("The specified name is not available. The namespace '%s' already exists.", in.Name)}, nil
	}
	return map[string]any{"nameAvailable": true, "reason": "None", "message": ""}, nil
}

// namespaceDoc reads a stored namespace (for children's validation).
func (p *Provider) namespaceDoc(ctx context.Context, nsID string) (store.Resource, arm.Document, error) {
	res, err := p.cfg.Resources.Get(ctx, nsID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return store.Resource{}, nil, err
		}
		return store.Resource{}, nil, fmt.Errorf("ehresource: get namespace: %w", err)
	}
	doc, err := arm.ParseDocument(res.Body)
	if err != nil {
		return store.Resource{}, nil, fmt.Errorf("ehresource: decode namespace %s: %w", nsID, err)
	}
	return res, doc, nil
}

// tierOf returns the stored namespace's tier ("Standard" when unreadable).
func tierOf(doc arm.Document) string {
	var s SKU
	_ = doc.Decode("sku", &s)
	if _, ok := tiers[s.Name]; ok {
		return s.Name
	}
	return "Standard"
}
