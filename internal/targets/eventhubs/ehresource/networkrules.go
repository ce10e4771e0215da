package ehresource

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/store"
)

// NetworkRuleSets is namespaces/networkRuleSets: one set named "default",
// readable before anyone PUTs it (Allow everything), as in Azure.
type NetworkRuleSets struct{ p *Provider }

var (
	_ arm.ResourceType     = (*NetworkRuleSets)(nil)
	_ arm.ResourceReader   = (*NetworkRuleSets)(nil)
	_ arm.CollectionLister = (*NetworkRuleSets)(nil)
)

// Info implements arm.ResourceType.
func (n *NetworkRuleSets) Info() arm.TypeInfo {
	return arm.TypeInfo{Namespace: ProviderNamespace, Type: "namespaces/networkRuleSets", APIVersions: APIVersions(), CreateStatus: http.StatusOK}
}

// IPRule is one entry of ipRules.
type IPRule struct {
	IPMask string `json:"ipMask"`
	Action string `json:"action"`
}

// NetworkRuleSet is the properties of the "default" set.
type NetworkRuleSet struct {
	DefaultAction               string            `json:"defaultAction"`
	PublicNetworkAccess         string            `json:"publicNetworkAccess"`
	TrustedServiceAccessEnabled bool              `json:"trustedServiceAccessEnabled"`
	IPRules                     []IPRule          `json:"ipRules"`
	VirtualNetworkRules         []json.RawMessage `json:"virtualNetworkRules"`
}

func defaultRuleSet() NetworkRuleSet {
	return NetworkRuleSet{DefaultAction: "Allow", PublicNetworkAccess: "Enabled", IPRules: []IPRule{}, VirtualNetworkRules: []json.RawMessage{}}
}

// Prepare implements arm.ResourceType.
func (n *NetworkRuleSets) Prepare(_ context.Context, req arm.PutRequest) (arm.Document, error) {
	if !strings.EqualFold(req.ID.Name(), "default") {
		return nil, errReadOnlyDefault("A namespace has one network rule set and it is named 'default': PUT .../networkRuleSets/default.")
	}
	set := defaultRuleSet()
	if err := req.Body.Decode("properties", &set); err != nil {
		return nil, invalid("The network rule set properties are invalid: %v.", err)
	}
	switch {
	case set.DefaultAction == "", strings.EqualFold(set.DefaultAction, "Allow"):
		set.DefaultAction = "Allow"
	case strings.EqualFold(set.DefaultAction, "Deny"):
		set.DefaultAction = "Deny"
	default:
		return nil, invalid("properties.defaultAction '%s' is not valid; use Allow or Deny.", set.DefaultAction)
	}
	switch {
	case set.PublicNetworkAccess == "", strings.EqualFold(set.PublicNetworkAccess, "Enabled"):
		set.PublicNetworkAccess = "Enabled"
	case strings.EqualFold(set.PublicNetworkAccess, "Disabled"):
		set.PublicNetworkAccess = "Disabled"
	case strings.EqualFold(set.PublicNetworkAccess, "SecuredByPerimeter"):
		set.PublicNetworkAccess = "SecuredByPerimeter"
	default:
		return nil, invalid("properties.publicNetworkAccess '%s' is not valid; use Enabled, Disabled or SecuredByPerimeter.", set.PublicNetworkAccess)
	}
	if set.IPRules == nil {
		set.IPRules = []IPRule{}
	}
	for i, r := range set.IPRules {
		if !validIPMask(r.IPMask) {
			return nil, invalid("ipRules[%d].ipMask '%s' is not an IP address or CIDR range (e.g. 203.0.113.7 or 203.0.113.0/24).", i, r.IPMask)
		}
		if r.Action != "" && !strings.EqualFold(r.Action, "Allow") {
			return nil, invalid("ipRules[%d].action '%s' is not valid; the only action is Allow.", i, r.Action)
		}
		set.IPRules[i].Action = "Allow"
	}
	if set.VirtualNetworkRules == nil {
		set.VirtualNetworkRules = []json.RawMessage{}
	}
	doc := arm.Document{}
	doc.Set("properties", set)
	return doc, nil
}

func validIPMask(s string) bool {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		_, err := netip.ParsePrefix(s)
		return err == nil
	}
	_, err := netip.ParseAddr(s)
	return err == nil
}

// Provision implements arm.ResourceType.
func (n *NetworkRuleSets) Provision(_ context.Context, id arm.ResourceID, doc arm.Document) (arm.Document, error) {
	n.p.cfg.Changed(namespaceOf(id))
	return doc, nil
}

// Deprovision implements arm.ResourceType.
func (n *NetworkRuleSets) Deprovision(_ context.Context, res store.Resource) error {
	if id, err := arm.ParseResourceID(res.ID); err == nil {
		n.p.cfg.Changed(namespaceOf(id))
	}
	return nil
}

func (n *NetworkRuleSets) synthesized(id arm.ResourceID) store.Resource {
	doc := arm.Document{}
	doc.Set("id", id.String())
	doc.Set("name", "default")
	doc.Set("type", TypeNetworkRuleSet)
	doc.Set("properties", defaultRuleSet())
	return store.Resource{ID: id.String(), Type: TypeNetworkRuleSet, Subscription: id.Subscription, ResourceGroup: id.ResourceGroup,
		ParentID: id.ParentID(), Name: "default", Body: doc.Bytes()}
}

// Get implements arm.ResourceReader: the stored set, or the default one.
func (n *NetworkRuleSets) Get(ctx context.Context, id arm.ResourceID) (store.Resource, error) {
	res, err := n.p.cfg.Resources.Get(ctx, id.String())
	if err == nil || !errors.Is(err, store.ErrNotFound) || !strings.EqualFold(id.Name(), "default") {
		return res, err
	}
	return n.synthesized(id), nil
}

// List implements arm.CollectionLister: the one set.
func (n *NetworkRuleSets) List(ctx context.Context, coll arm.ResourceID, _ url.Values) ([]store.Resource, error) {
	id := coll
	id.Names = append(append([]string{}, coll.Names...), "default")
	res, err := n.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return []store.Resource{res}, nil
}
