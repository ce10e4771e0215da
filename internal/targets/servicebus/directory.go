package servicebus

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/targets/access"
	"github.com/outpost-iot/outpost/internal/targets/servicebus/sbresource"
	"github.com/outpost-iot/outpost/internal/targets/servicebus/sqlfilter"
)

// namespaceView is a namespace's configuration as the data plane needs it,
// read from the store at once and cached.
type namespaceView struct {
	name             string
	id               string // ARM id
	sku              string
	disableLocalAuth bool
	network          access.Network
	rules            []sbresource.AuthRule
	queues           map[string]*queueView // lower-cased name
	topics           map[string]*topicView
	loaded           time.Time
}

type queueView struct {
	name, id string
	settings sbresource.Settings
	rules    []sbresource.AuthRule
}

type topicView struct {
	name, id string
	settings sbresource.Settings
	rules    []sbresource.AuthRule
	subs     map[string]*subscriptionView
	order    []*subscriptionView // stable fan-out order
}

type subscriptionView struct {
	name, id string
	settings sbresource.Settings
	filters  []sbresource.RuleFilter
}

// directory caches namespace views. Entries are dropped when the ARM types
// report a change (Changed) and after ttl, so changes made through another
// node show within ttl.
type directory struct {
	resources store.Resources
	ttl       time.Duration
	now       func() time.Time

	mu    sync.Mutex
	cache map[string]*namespaceView // nil value: known absent
	at    map[string]time.Time
}

func newDirectory(rs store.Resources, ttl time.Duration, now func() time.Time) *directory {
	return &directory{resources: rs, ttl: ttl, now: now, cache: map[string]*namespaceView{}, at: map[string]time.Time{}}
}

func (d *directory) invalidate(ns string) {
	d.mu.Lock()
	delete(d.cache, strings.ToLower(ns))
	d.mu.Unlock()
}

// get returns the namespace's view, nil when there is no such namespace.
func (d *directory) get(ctx context.Context, ns string) (*namespaceView, error) {
	key := strings.ToLower(ns)
	d.mu.Lock()
	v, ok := d.cache[key]
	fresh := ok && d.now().Sub(d.at[key]) < d.ttl
	d.mu.Unlock()
	if fresh {
		return v, nil
	}
	v, err := d.load(ctx, ns)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.cache[key], d.at[key] = v, d.now()
	d.mu.Unlock()
	return v, nil
}

func (d *directory) load(ctx context.Context, ns string) (*namespaceView, error) {
	res, found, err := sbresource.FindNamespace(ctx, d.resources, ns)
	if err != nil || !found {
		return nil, err
	}
	var doc struct {
		SKU struct {
			Name string `json:"name"`
		} `json:"sku"`
		Properties struct {
			DisableLocalAuth    bool   `json:"disableLocalAuth"`
			PublicNetworkAccess string `json:"publicNetworkAccess"`
		} `json:"properties"`
	}
	_ = json.Unmarshal(res.Body, &doc)
	v := &namespaceView{name: res.Name, id: res.ID, sku: doc.SKU.Name, disableLocalAuth: doc.Properties.DisableLocalAuth,
		queues: map[string]*queueView{}, topics: map[string]*topicView{}, loaded: d.now()}
	children, err := d.children(ctx, res.ID)
	if err != nil {
		return nil, err
	}
	var rules sbresource.NetworkRules
	rules = sbresource.DecodeNetworkRules(nil)
	for _, c := range children {
		switch strings.ToLower(c.Type) {
		case strings.ToLower(sbresource.TypeNamespaceRule):
			v.rules = append(v.rules, sbresource.DecodeAuthRule(c))
		case strings.ToLower(sbresource.TypeNetworkRuleSet):
			rules = sbresource.DecodeNetworkRules(c.Body)
		case strings.ToLower(sbresource.TypeQueue):
			q := &queueView{name: c.Name, id: c.ID, settings: sbresource.DecodeSettings(c.Body)}
			if q.rules, err = d.authRules(ctx, c.ID); err != nil {
				return nil, err
			}
			v.queues[strings.ToLower(c.Name)] = q
		case strings.ToLower(sbresource.TypeTopic):
			t, err := d.loadTopic(ctx, c)
			if err != nil {
				return nil, err
			}
			v.topics[strings.ToLower(c.Name)] = t
		}
	}
	public := rules.PublicNetworkAccess
	if strings.EqualFold(doc.Properties.PublicNetworkAccess, "Disabled") {
		public = "Disabled"
	}
	v.network = access.Network{PublicNetworkAccess: public, DefaultAction: rules.DefaultAction,
		TrustedServices: rules.TrustedServiceAccessEnabled, Resource: "Service Bus namespace '" + res.Name + "'"}
	for _, r := range rules.IPRules {
		v.network.IPRules = append(v.network.IPRules, r.IPMask)
	}
	return v, nil
}

func (d *directory) children(ctx context.Context, parent string) ([]store.Resource, error) {
	out, err := d.resources.List(ctx, store.ResourceFilter{ParentID: parent})
	if err != nil {
		return nil, fmt.Errorf("servicebus: list %s: %w", parent, err)
	}
	return out, nil
}

func (d *directory) authRules(ctx context.Context, entity string) ([]sbresource.AuthRule, error) {
	children, err := d.children(ctx, entity)
	if err != nil {
		return nil, err
	}
	var out []sbresource.AuthRule
	for _, c := range children {
		if strings.HasSuffix(strings.ToLower(c.Type), "/authorizationrules") {
			out = append(out, sbresource.DecodeAuthRule(c))
		}
	}
	return out, nil
}

func (d *directory) loadTopic(ctx context.Context, res store.Resource) (*topicView, error) {
	t := &topicView{name: res.Name, id: res.ID, settings: sbresource.DecodeSettings(res.Body), subs: map[string]*subscriptionView{}}
	children, err := d.children(ctx, res.ID)
	if err != nil {
		return nil, err
	}
	for _, c := range children {
		switch strings.ToLower(c.Type) {
		case strings.ToLower(sbresource.TypeTopicRule):
			t.rules = append(t.rules, sbresource.DecodeAuthRule(c))
		case strings.ToLower(sbresource.TypeSubscription):
			s := &subscriptionView{name: c.Name, id: c.ID, settings: sbresource.DecodeSettings(c.Body)}
			rules, err := d.children(ctx, c.ID)
			if err != nil {
				return nil, err
			}
			for _, r := range rules {
				f, err := sbresource.DecodeRule(r)
				if err != nil {
					// A stored rule that no longer parses matches nothing
					// rather than taking the whole namespace down.
					continue
				}
				s.filters = append(s.filters, f)
			}
			t.subs[strings.ToLower(c.Name)] = s
			t.order = append(t.order, s)
		}
	}
	return t, nil
}

// matches reports whether any rule of the subscription accepts m.
func (s *subscriptionView) matches(m *Message) bool {
	for _, f := range s.filters {
		if f.SQL != nil && f.SQL.Match(filterProps{m}) {
			return true
		}
		if f.Correlation != nil && correlationMatches(f.Correlation, m) {
			return true
		}
	}
	return false
}

// correlationMatches: every property the filter sets must equal the
// message's (exact, case-sensitive); user properties compare as strings.
func correlationMatches(c *sbresource.CorrelationFilter, m *Message) bool {
	p := m.Props
	for _, pair := range [][2]string{
		{c.CorrelationID, p.CorrelationID}, {c.MessageID, p.MessageID}, {c.To, p.To}, {c.ReplyTo, p.ReplyTo},
		{c.Label, p.Label}, {c.SessionID, p.SessionID}, {c.ReplyToSessionID, p.ReplyToSessionID}, {c.ContentType, p.ContentType},
	} {
		if pair[0] != "" && pair[0] != pair[1] {
			return false
		}
	}
	for k, want := range c.Properties {
		v, ok := filterProps{m}.User(k)
		if !ok {
			return false
		}
		got := v.S
		switch v.Kind {
		case sqlfilter.Int:
			got = fmt.Sprint(v.I)
		case sqlfilter.Float:
			got = fmt.Sprint(v.F)
		case sqlfilter.Bool:
			got = fmt.Sprint(v.B)
		}
		if got != want {
			return false
		}
	}
	return true
}
