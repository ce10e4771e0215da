package ehresource

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/targets/access"
)

// Rule is a SAS authorization rule with its keys.
type Rule struct {
	Name         string
	Rights       []string
	PrimaryKey   string
	SecondaryKey string
}

// Grants reports whether the rule grants right (Manage implies Listen and Send).
func (r Rule) Grants(right string) bool {
	return slices.Contains(r.Rights, right) || slices.Contains(r.Rights, RightManage)
}

// EventHubView is what the data plane needs of one event hub.
type EventHubView struct {
	Name           string
	ID             string
	PartitionCount int
	Status         string
	Retention      time.Duration
	Rules          []Rule
	// ConsumerGroups holds the lower-cased names, $default included.
	ConsumerGroups map[string]bool
}

// NamespaceView is a snapshot of one namespace for the data plane.
type NamespaceView struct {
	Name             string
	ID               string
	Tier             string
	DisableLocalAuth bool
	Network          access.Network
	Rules            []Rule
	// EventHubs is keyed by lower-cased name.
	EventHubs map[string]*EventHubView
}

// EventHub finds an event hub by name, any letter case.
func (n *NamespaceView) EventHub(name string) (*EventHubView, bool) {
	eh, ok := n.EventHubs[strings.ToLower(name)]
	return eh, ok
}

// MaxEventBytes is the tier's event and batch limit.
func (n *NamespaceView) MaxEventBytes() int { return MaxEventBytes(n.Tier) }

// LoadNamespace reads the snapshot of the namespace name. found is false
// when there is no Event Hubs namespace of that name.
func LoadNamespace(ctx context.Context, r Reader, name string) (view *NamespaceView, found bool, err error) {
	res, found, err := findByName(ctx, r, TypeNamespace, name)
	if err != nil || !found {
		return nil, false, err
	}
	doc, err := arm.ParseDocument(res.Body)
	if err != nil {
		return nil, false, fmt.Errorf("ehresource: decode namespace %s: %w", res.ID, err)
	}
	var props struct {
		DisableLocalAuth    bool   `json:"disableLocalAuth"`
		PublicNetworkAccess string `json:"publicNetworkAccess"`
	}
	_ = doc.Decode("properties", &props)
	v := &NamespaceView{
		Name: res.Name, ID: res.ID, Tier: tierOf(doc), DisableLocalAuth: props.DisableLocalAuth,
		EventHubs: map[string]*EventHubView{},
		Network: access.Network{
			PublicNetworkAccess: props.PublicNetworkAccess, DefaultAction: "Allow",
			Resource: fmt.Sprintf("Event Hubs namespace '%s'", res.Name),
		},
	}
	children, err := r.List(ctx, store.ResourceFilter{ParentID: res.ID})
	if err != nil {
		return nil, false, fmt.Errorf("ehresource: list children of %s: %w", res.ID, err)
	}
	for _, c := range children {
		switch {
		case strings.EqualFold(c.Type, TypeNamespaceRule):
			if rule, ok := ruleOf(c); ok {
				v.Rules = append(v.Rules, rule)
			}
		case strings.EqualFold(c.Type, TypeNetworkRuleSet):
			applyNetwork(&v.Network, c)
		case strings.EqualFold(c.Type, TypeEventHub):
			eh, err := loadEventHub(ctx, r, c)
			if err != nil {
				return nil, false, err
			}
			v.EventHubs[strings.ToLower(eh.Name)] = eh
		}
	}
	return v, true, nil
}

func ruleOf(res store.Resource) (Rule, bool) {
	var d struct {
		Properties struct {
			Rights []string `json:"rights"`
		} `json:"properties"`
		Keys ruleKeys `json:"keys"`
	}
	if json.Unmarshal(res.Body, &d) != nil {
		return Rule{}, false
	}
	return Rule{Name: res.Name, Rights: d.Properties.Rights, PrimaryKey: d.Keys.PrimaryKey, SecondaryKey: d.Keys.SecondaryKey}, true
}

// applyNetwork folds the rule set into the namespace's network settings:
// public access is disabled when either the namespace or the set says so
// (Azure keeps the two in step).
func applyNetwork(n *access.Network, res store.Resource) {
	var d struct {
		Properties NetworkRuleSet `json:"properties"`
	}
	if json.Unmarshal(res.Body, &d) != nil {
		return
	}
	s := d.Properties
	if s.PublicNetworkAccess != "" && !strings.EqualFold(s.PublicNetworkAccess, "Enabled") {
		n.PublicNetworkAccess = s.PublicNetworkAccess
	}
	if s.DefaultAction != "" {
		n.DefaultAction = s.DefaultAction
	}
	n.TrustedServices = s.TrustedServiceAccessEnabled
	n.IPRules = nil
	for _, r := range s.IPRules {
		n.IPRules = append(n.IPRules, r.IPMask)
	}
}

func loadEventHub(ctx context.Context, r Reader, res store.Resource) (*EventHubView, error) {
	id, err := arm.ParseResourceID(res.ID)
	if err != nil {
		return nil, fmt.Errorf("ehresource: event hub id %s: %w", res.ID, err)
	}
	doc, err := arm.ParseDocument(res.Body)
	if err != nil {
		return nil, fmt.Errorf("ehresource: decode event hub %s: %w", res.ID, err)
	}
	spec := specOf(id, doc)
	eh := &EventHubView{
		Name: res.Name, ID: res.ID, PartitionCount: spec.PartitionCount, Retention: spec.Retention,
		Status: storedString(doc, "status"), ConsumerGroups: map[string]bool{strings.ToLower(DefaultConsumerGroup): true},
	}
	children, err := r.List(ctx, store.ResourceFilter{ParentID: res.ID})
	if err != nil {
		return nil, fmt.Errorf("ehresource: list children of %s: %w", res.ID, err)
	}
	for _, c := range children {
		switch {
		case strings.EqualFold(c.Type, TypeEventHubRule):
			if rule, ok := ruleOf(c); ok {
				eh.Rules = append(eh.Rules, rule)
			}
		case strings.EqualFold(c.Type, TypeConsumerGroup):
			eh.ConsumerGroups[strings.ToLower(c.Name)] = true
		}
	}
	return eh, nil
}
