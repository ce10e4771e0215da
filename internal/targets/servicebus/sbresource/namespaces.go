package sbresource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/identity/msi"
	"github.com/outpost-iot/outpost/internal/store"
)

// Namespaces is Microsoft.ServiceBus/namespaces: tracked, long-running like
// Azure's, with an identity block, the RootManageSharedAccessKey rule made
// at creation and a JetStream stream provisioned for its messages.
type Namespaces struct{ cfg Config }

var (
	_ arm.ResourceType = (*Namespaces)(nil)
	_ arm.Renderer     = (*Namespaces)(nil)
)

// createMarker is a document member Prepare sets on creation so Provision
// (which may run again after a crash) knows to create the implicit child
// resources; Provision removes it.
const createMarker = "outpostCreate"

// Info implements arm.ResourceType.
func (n *Namespaces) Info() arm.TypeInfo {
	return arm.TypeInfo{Namespace: Namespace, Type: "namespaces", APIVersions: APIVersions(), LongRunning: true,
		Capabilities: "SupportsTags, SupportsLocation"}
}

// NameProblem says what is wrong with a namespace name ("" when valid):
// 6-50 letters, digits and hyphens, starting with a letter, ending with a
// letter or digit, and not ending in "-sb" or "-mgmt" (Azure reserves them).
func NameProblem(name string) string {
	switch {
	case len(name) < 6 || len(name) > 50:
		return fmt.Sprintf("it has %d characters; use 6 to 50", len(name))
	case !isLetter(name[0]):
		return "it must start with a letter"
	case strings.HasSuffix(name, "-"):
		return "it must end with a letter or digit"
	case strings.HasSuffix(strings.ToLower(name), "-sb"), strings.HasSuffix(strings.ToLower(name), "-mgmt"):
		return "names ending in '-sb' or '-mgmt' are reserved"
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !isLetter(c) && !(c >= '0' && c <= '9') && c != '-' {
			return fmt.Sprintf("it contains %q; use only letters, digits and hyphens", c)
		}
	}
	return ""
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

var skus = []string{"Basic", "Standard", "Premium"}

// Prepare implements arm.ResourceType.
func (n *Namespaces) Prepare(ctx context.Context, req arm.PutRequest) (arm.Document, error) {
	name := req.ID.Name()
	if p := NameProblem(name); p != "" {
		return nil, invalid("The namespace name '%s' is invalid: %s.", name, p)
	}
	if req.Current == nil {
		taken, err := n.nameTaken(ctx, name, req.ID)
		if err != nil {
			return nil, err
		}
		if taken {
			return nil, arm.Errorf(http.StatusConflict, "NamespaceNameNotAvailable",
				"The namespace name '%s' is not available: a Service Bus or Event Hubs namespace of this installation already uses it. Namespace names are host names ({name}.servicebus.<dns suffix>); choose another name.", name)
		}
	}
	stored := ""
	if req.Current != nil {
		if cur, err := arm.ParseDocument(req.Current.Body); err == nil {
			stored = cur.String("location")
		}
	}
	loc, err := arm.ResolveLocation(n.cfg.Locations, TypeNamespace, req.ID, req.Body.String("location"), stored)
	if err != nil {
		return nil, err
	}
	var sku struct {
		Name     string `json:"name"`
		Tier     string `json:"tier"`
		Capacity int    `json:"capacity"`
	}
	if err := req.Body.Decode("sku", &sku); err != nil {
		return nil, invalid("The sku is invalid: %v.", err)
	}
	if sku.Name == "" {
		sku.Name = "Standard"
	}
	canon := ""
	for _, s := range skus {
		if strings.EqualFold(s, sku.Name) {
			canon = s
		}
	}
	if canon == "" {
		return nil, invalid("The sku '%s' is not supported; use Basic, Standard or Premium.", sku.Name)
	}
	skuOut := map[string]any{"name": canon, "tier": canon}
	if canon == "Premium" {
		if sku.Capacity == 0 {
			sku.Capacity = 1
		}
		switch sku.Capacity {
		case 1, 2, 4, 8, 16:
		default:
			return nil, invalid("The Premium capacity %d is not supported; use 1, 2, 4, 8 or 16 messaging units.", sku.Capacity)
		}
		skuOut["capacity"] = sku.Capacity
	}
	block, err := n.cfg.Identities.Prepare(ctx, req)
	if err != nil {
		return nil, err
	}
	cur := storedProps(req.Current)
	var body map[string]json.RawMessage
	if err := req.Body.Decode("properties", &body); err != nil {
		return nil, invalid("The properties are invalid: %v.", err)
	}
	now := timestamp(n.cfg.Now())
	props := map[string]any{
		"provisioningState":   "Succeeded",
		"status":              "Active",
		"serviceBusEndpoint":  "https://" + name + ".servicebus." + n.cfg.DNSSuffix + ":443/",
		"metricId":            req.ID.Subscription + ":" + strings.ToLower(name),
		"createdAt":           now,
		"updatedAt":           now,
		"disableLocalAuth":    false,
		"publicNetworkAccess": "Enabled",
		"minimumTlsVersion":   "1.2",
		"zoneRedundant":       false,
	}
	if c, ok := cur["createdAt"]; ok {
		var s string
		_ = json.Unmarshal(c, &s)
		props["createdAt"] = s
	}
	if raw, ok := body["disableLocalAuth"]; ok && string(raw) != "null" {
		var b bool
		if json.Unmarshal(raw, &b) != nil {
			return nil, invalid("disableLocalAuth must be true or false, got %s.", raw)
		}
		props["disableLocalAuth"] = b
	}
	if raw, ok := body["publicNetworkAccess"]; ok && string(raw) != "null" {
		var s string
		_ = json.Unmarshal(raw, &s)
		switch strings.ToLower(s) {
		case "enabled", "disabled", "securedbyperimeter":
			props["publicNetworkAccess"] = canonicalFold(s, "Enabled", "Disabled", "SecuredByPerimeter")
		default:
			return nil, invalid("publicNetworkAccess %s is not supported; use Enabled, Disabled or SecuredByPerimeter.", raw)
		}
	}
	if raw, ok := body["minimumTlsVersion"]; ok && string(raw) != "null" {
		var s string
		_ = json.Unmarshal(raw, &s)
		if s != "1.0" && s != "1.1" && s != "1.2" {
			return nil, invalid("minimumTlsVersion %s is not supported; use 1.0, 1.1 or 1.2.", raw)
		}
		props["minimumTlsVersion"] = s
	}
	var tags map[string]string
	if err := req.Body.Decode("tags", &tags); err != nil {
		return nil, invalid("tags must be an object of string values: %v.", err)
	}
	if tags == nil {
		tags = map[string]string{}
	}
	doc := arm.Document{}
	doc.Set("location", loc)
	doc.Set("tags", tags)
	doc.Set("sku", skuOut)
	doc.Set("identity", block)
	doc.Set("properties", props)
	if req.Current == nil {
		doc.Set(createMarker, true)
	}
	return doc, nil
}

func canonicalFold(s string, options ...string) string {
	for _, o := range options {
		if strings.EqualFold(o, s) {
			return o
		}
	}
	return s
}

// nameTaken checks the Service Bus namespaces of every subscription and
// then the NameTaken hook (Event Hubs).
func (n *Namespaces) nameTaken(ctx context.Context, name string, self arm.ResourceID) (bool, error) {
	_, found, err := FindNamespace(ctx, n.cfg.Resources, name)
	if err != nil {
		return false, err
	}
	if found {
		return true, nil
	}
	if n.cfg.NameTaken != nil {
		taken, err := n.cfg.NameTaken(ctx, name)
		if err != nil {
			return false, fmt.Errorf("sbresource: check name %s: %w", name, err)
		}
		return taken, nil
	}
	return false, nil
}

// ResourceLister lists stored resources; store.Resources implements it.
type ResourceLister interface {
	List(ctx context.Context, filter store.ResourceFilter) ([]store.Resource, error)
}

// FindNamespace finds a Service Bus namespace by name in any subscription
// (names are global, case-insensitive).
func FindNamespace(ctx context.Context, rs ResourceLister, name string) (store.Resource, bool, error) {
	return store.FindByName(ctx, rs, TypeNamespace, name)
}

// Provision implements arm.ResourceType: identity, the namespace's stream
// and, on creation, RootManageSharedAccessKey.
func (n *Namespaces) Provision(ctx context.Context, id arm.ResourceID, doc arm.Document) (arm.Document, error) {
	var block msi.Block
	if err := doc.Decode("identity", &block); err != nil {
		return nil, fmt.Errorf("sbresource: provision %s: %w", id, err)
	}
	block, err := n.cfg.Identities.Provision(ctx, id.String(), block)
	if err != nil {
		return nil, fmt.Errorf("sbresource: provision %s: %w", id, err)
	}
	doc.Set("identity", block)
	if err := n.cfg.Runtime.EnsureNamespace(ctx, id.Name()); err != nil {
		return nil, fmt.Errorf("sbresource: provision %s: %w", id, err)
	}
	if _, ok := doc[createMarker]; ok {
		ruleID := id.String() + "/authorizationRules/" + RootRuleName
		if err := putImplicit(ctx, n.cfg.Resources, ruleID, func() (arm.Document, error) {
			return newRuleDoc(n.cfg.Random, []string{"Listen", "Manage", "Send"})
		}); err != nil {
			return nil, err
		}
		delete(doc, createMarker)
	}
	n.cfg.Runtime.Changed(id.Name())
	return doc, nil
}

// putImplicit stores a resource Azure creates on its own unless it exists.
func putImplicit(ctx context.Context, rs store.Resources, id string, build func() (arm.Document, error)) error {
	rid, err := arm.ParseResourceID(id)
	if err != nil {
		return fmt.Errorf("sbresource: implicit %s: %w", id, err)
	}
	doc, err := build()
	if err != nil {
		return err
	}
	doc.Set("id", id)
	doc.Set("name", rid.Name())
	doc.Set("type", rid.FullType())
	_, _, err = rs.Put(ctx, id, func(cur *store.Resource) (store.Resource, error) {
		if cur != nil {
			return *cur, nil
		}
		return store.Resource{ID: id, Type: rid.FullType(), Subscription: rid.Subscription, ResourceGroup: rid.ResourceGroup,
			ParentID: rid.ParentID(), Name: rid.Name(), Body: doc.Bytes()}, nil
	})
	if err != nil {
		return fmt.Errorf("sbresource: create %s: %w", id, err)
	}
	return nil
}

// Deprovision implements arm.ResourceType.
func (n *Namespaces) Deprovision(ctx context.Context, res store.Resource) error {
	if err := n.cfg.Identities.Deprovision(ctx, res.ID); err != nil {
		return fmt.Errorf("sbresource: deprovision %s: %w", res.ID, err)
	}
	if err := n.cfg.Runtime.RemoveNamespace(ctx, res.Name); err != nil {
		return fmt.Errorf("sbresource: deprovision %s: %w", res.ID, err)
	}
	n.cfg.Runtime.Changed(res.Name)
	return nil
}

// Render implements arm.Renderer: identity None is shown as Azure does.
func (n *Namespaces) Render(res store.Resource) json.RawMessage {
	doc, err := arm.ParseDocument(res.Body)
	if err != nil {
		return res.Body
	}
	delete(doc, createMarker)
	if _, ok := doc["identity"]; !ok {
		doc.Set("identity", msi.Block{Type: msi.TypeNone})
	}
	return doc.Bytes()
}

// ProviderActions returns checkNameAvailability.
func (n *Namespaces) ProviderActions() []arm.ProviderAction {
	return []arm.ProviderAction{{
		Namespace: Namespace, Name: "CheckNameAvailability", Method: http.MethodPost, APIVersions: APIVersions(),
		Action: Namespace + "/checkNameAvailability/action",
		Run: func(ctx context.Context, _ string, body json.RawMessage, _ arm.Principal) (any, error) {
			var in struct {
				Name string `json:"name"`
			}
			if err := json.Unmarshal(body, &in); err != nil || in.Name == "" {
				return nil, invalid("Send {\"name\": \"<namespace name>\"}.")
			}
			if p := NameProblem(in.Name); p != "" {
				return map[string]any{"nameAvailable": false, "reason": "InvalidName", "message": "The namespace name is invalid: " + p + "."}, nil
			}
			taken, err := n.nameTaken(ctx, in.Name, arm.ResourceID{})
			if err != nil {
				return nil, err
			}
			if taken {
				return map[string]any{"nameAvailable": false, "reason": "NameInUse", "message": "The namespace name '" + in.Name + "' is already in use."}, nil
			}
			return map[string]any{"nameAvailable": true, "reason": "None", "message": ""}, nil
		},
	}}
}

// NetworkRuleSets is namespaces/networkRuleSets: one "default" set per
// namespace, readable before anyone writes it.
type NetworkRuleSets struct{ cfg Config }

// Info implements arm.ResourceType.
func (s *NetworkRuleSets) Info() arm.TypeInfo {
	return arm.TypeInfo{Namespace: Namespace, Type: "namespaces/networkRuleSets", APIVersions: APIVersions(), CreateStatus: http.StatusOK}
}

// NetworkRules is the decoded network rule set of a namespace.
type NetworkRules struct {
	DefaultAction               string   `json:"defaultAction"`
	PublicNetworkAccess         string   `json:"publicNetworkAccess"`
	TrustedServiceAccessEnabled bool     `json:"trustedServiceAccessEnabled"`
	IPRules                     []IPRule `json:"ipRules"`
	VirtualNetworkRules         []any    `json:"virtualNetworkRules"`
}

// IPRule is one entry of ipRules.
type IPRule struct {
	IPMask string `json:"ipMask"`
	Action string `json:"action"`
}

// DecodeNetworkRules reads a stored rule set (defaults when body is nil).
func DecodeNetworkRules(body []byte) NetworkRules {
	var doc struct {
		Properties NetworkRules `json:"properties"`
	}
	_ = json.Unmarshal(body, &doc)
	r := doc.Properties
	if r.DefaultAction == "" {
		r.DefaultAction = "Allow"
	}
	if r.PublicNetworkAccess == "" {
		r.PublicNetworkAccess = "Enabled"
	}
	if r.IPRules == nil {
		r.IPRules = []IPRule{}
	}
	if r.VirtualNetworkRules == nil {
		r.VirtualNetworkRules = []any{}
	}
	return r
}

// Prepare implements arm.ResourceType.
func (s *NetworkRuleSets) Prepare(_ context.Context, req arm.PutRequest) (arm.Document, error) {
	if !strings.EqualFold(req.ID.Name(), DefaultNetworkRuleSet) {
		return nil, invalid("A namespace has one network rule set, named 'default'; PUT .../networkRuleSets/default.")
	}
	var in NetworkRules
	if err := req.Body.Decode("properties", &in); err != nil {
		return nil, invalid("The network rule set is invalid: %v.", err)
	}
	out := DecodeNetworkRules(nil)
	if in.DefaultAction != "" {
		if !strings.EqualFold(in.DefaultAction, "Allow") && !strings.EqualFold(in.DefaultAction, "Deny") {
			return nil, invalid("defaultAction '%s' is not supported; use Allow or Deny.", in.DefaultAction)
		}
		out.DefaultAction = canonicalFold(in.DefaultAction, "Allow", "Deny")
	}
	if in.PublicNetworkAccess != "" {
		out.PublicNetworkAccess = canonicalFold(in.PublicNetworkAccess, "Enabled", "Disabled", "SecuredByPerimeter")
	}
	out.TrustedServiceAccessEnabled = in.TrustedServiceAccessEnabled
	for _, r := range in.IPRules {
		if r.Action == "" {
			r.Action = "Allow"
		}
		if !strings.EqualFold(r.Action, "Allow") {
			return nil, invalid("IP rule action '%s' is not supported; only Allow rules exist.", r.Action)
		}
		if strings.TrimSpace(r.IPMask) == "" {
			return nil, invalid("Every ipRules entry needs an ipMask (an IPv4 address or CIDR range).")
		}
		out.IPRules = append(out.IPRules, IPRule{IPMask: r.IPMask, Action: "Allow"})
	}
	if in.VirtualNetworkRules != nil {
		out.VirtualNetworkRules = in.VirtualNetworkRules
	}
	doc := arm.Document{}
	doc.Set("properties", out)
	return doc, nil
}

// Provision implements arm.ResourceType.
func (s *NetworkRuleSets) Provision(_ context.Context, id arm.ResourceID, doc arm.Document) (arm.Document, error) {
	s.cfg.Runtime.Changed(id.Names[0])
	return doc, nil
}

// Deprovision implements arm.ResourceType.
func (s *NetworkRuleSets) Deprovision(_ context.Context, res store.Resource) error {
	if id, err := arm.ParseResourceID(res.ID); err == nil {
		s.cfg.Runtime.Changed(id.Names[0])
	}
	return nil
}

// Get implements arm.ResourceReader: "default" exists for every namespace.
func (s *NetworkRuleSets) Get(ctx context.Context, id arm.ResourceID) (store.Resource, error) {
	res, err := s.cfg.Resources.Get(ctx, id.String())
	if err == nil || !errors.Is(err, store.ErrNotFound) || !strings.EqualFold(id.Name(), DefaultNetworkRuleSet) {
		return res, err
	}
	if _, err := namespaceOf(ctx, s.cfg.Resources, id); err != nil {
		return store.Resource{}, store.ErrNotFound
	}
	doc := arm.Document{}
	doc.Set("id", id.String())
	doc.Set("name", DefaultNetworkRuleSet)
	doc.Set("type", TypeNetworkRuleSet)
	doc.Set("properties", DecodeNetworkRules(nil))
	return store.Resource{ID: id.String(), Type: TypeNetworkRuleSet, Name: DefaultNetworkRuleSet, ParentID: id.ParentID(), Body: doc.Bytes()}, nil
}
