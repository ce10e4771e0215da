package sbresource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/targets/servicebus/sqlfilter"
)

// entityName: letters, digits, '.', '-', '_', starting and ending with a
// letter or digit (Azure also allows '/', which an ARM id cannot carry).
var entityName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,258}[A-Za-z0-9])?$`)

var shortName = regexp.MustCompile(`^[A-Za-z0-9$]([A-Za-z0-9._-]{0,48}[A-Za-z0-9])?$`)

// checkPathFree refuses a queue named like a topic and vice versa: both
// live in one path space of the namespace.
func checkPathFree(ctx context.Context, rs store.Resources, id arm.ResourceID, otherType string) error {
	other := id
	other.Types = []string{id.Types[0], otherType}
	if _, err := rs.Get(ctx, other.String()); err == nil {
		return arm.Errorf(http.StatusConflict, "MessagingEntityAlreadyExists",
			"The messaging entity '%s' already exists as a %s in namespace '%s'. Queues and topics share one name space; choose another name.",
			id.Name(), strings.TrimSuffix(otherType, "s"), id.Names[0])
	} else if !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("sbresource: check %s: %w", other, err)
	}
	return nil
}

func bodyProps(req arm.PutRequest) (map[string]json.RawMessage, error) {
	var body map[string]json.RawMessage
	if err := req.Body.Decode("properties", &body); err != nil {
		return nil, invalid("The properties must be a JSON object: %v.", err)
	}
	return body, nil
}

func entityDoc(props map[string]any) arm.Document {
	doc := arm.Document{}
	doc.Set("properties", props)
	return doc
}

func countDetails(active, dead int64) map[string]int64 {
	return map[string]int64{"activeMessageCount": active, "deadLetterMessageCount": dead, "scheduledMessageCount": 0,
		"transferMessageCount": 0, "transferDeadLetterMessageCount": 0}
}

// withCounts adds live message counts to a stored queue or subscription.
func withCounts(ctx context.Context, cfg Config, res store.Resource, e Entity) store.Resource {
	c, ok := cfg.Runtime.(Counter)
	if !ok {
		return res
	}
	active, dead, err := c.Count(ctx, e)
	if err != nil {
		return res
	}
	doc, err := arm.ParseDocument(res.Body)
	if err != nil {
		return res
	}
	props := map[string]any{}
	_ = doc.Decode("properties", &props)
	props["messageCount"] = active + dead
	props["countDetails"] = countDetails(active, dead)
	doc.Set("properties", props)
	res.Body = doc.Bytes()
	return res
}

// Queues is namespaces/queues.
type Queues struct{ cfg Config }

// Info implements arm.ResourceType.
func (q *Queues) Info() arm.TypeInfo {
	return arm.TypeInfo{Namespace: Namespace, Type: "namespaces/queues", APIVersions: APIVersions(), CreateStatus: http.StatusOK}
}

// Prepare implements arm.ResourceType.
func (q *Queues) Prepare(ctx context.Context, req arm.PutRequest) (arm.Document, error) {
	if !entityName.MatchString(req.ID.Name()) {
		return nil, invalid("The queue name '%s' is invalid: use 1-260 letters, digits, '.', '-' or '_', starting and ending with a letter or digit.", req.ID.Name())
	}
	if err := checkPathFree(ctx, q.cfg.Resources, req.ID, "topics"); err != nil {
		return nil, err
	}
	body, err := bodyProps(req)
	if err != nil {
		return nil, err
	}
	props, err := buildProps("queue", queueProps, body, storedProps(req.Current), timestamp(q.cfg.Now()))
	if err != nil {
		return nil, err
	}
	props["sizeInBytes"], props["messageCount"], props["countDetails"] = 0, 0, countDetails(0, 0)
	return entityDoc(props), nil
}

func queueEntity(id arm.ResourceID, body []byte) Entity {
	return Entity{Namespace: id.Names[0], Queue: id.Names[1], Settings: DecodeSettings(body)}
}

// Provision implements arm.ResourceType.
func (q *Queues) Provision(ctx context.Context, id arm.ResourceID, doc arm.Document) (arm.Document, error) {
	if err := q.cfg.Runtime.EnsureEntity(ctx, queueEntity(id, doc.Bytes())); err != nil {
		return nil, fmt.Errorf("sbresource: provision queue %s: %w", id, err)
	}
	q.cfg.Runtime.Changed(id.Names[0])
	return doc, nil
}

// Deprovision implements arm.ResourceType.
func (q *Queues) Deprovision(ctx context.Context, res store.Resource) error {
	id, err := arm.ParseResourceID(res.ID)
	if err != nil {
		return fmt.Errorf("sbresource: queue id %s: %w", res.ID, err)
	}
	if err := q.cfg.Runtime.RemoveEntity(ctx, queueEntity(id, res.Body)); err != nil {
		return fmt.Errorf("sbresource: deprovision queue %s: %w", id, err)
	}
	q.cfg.Runtime.Changed(id.Names[0])
	return nil
}

// Get implements arm.ResourceReader: the stored queue with live counts.
func (q *Queues) Get(ctx context.Context, id arm.ResourceID) (store.Resource, error) {
	res, err := q.cfg.Resources.Get(ctx, id.String())
	if err != nil {
		return res, err
	}
	return withCounts(ctx, q.cfg, res, queueEntity(id, res.Body)), nil
}

// Topics is namespaces/topics (not available on the Basic tier).
type Topics struct{ cfg Config }

// Info implements arm.ResourceType.
func (t *Topics) Info() arm.TypeInfo {
	return arm.TypeInfo{Namespace: Namespace, Type: "namespaces/topics", APIVersions: APIVersions(), CreateStatus: http.StatusOK}
}

// Prepare implements arm.ResourceType.
func (t *Topics) Prepare(ctx context.Context, req arm.PutRequest) (arm.Document, error) {
	if !entityName.MatchString(req.ID.Name()) {
		return nil, invalid("The topic name '%s' is invalid: use 1-260 letters, digits, '.', '-' or '_', starting and ending with a letter or digit.", req.ID.Name())
	}
	ns, err := namespaceOf(ctx, t.cfg.Resources, req.ID)
	if err != nil {
		return nil, err
	}
	var nsDoc struct {
		SKU struct {
			Name string `json:"name"`
		} `json:"sku"`
	}
	_ = json.Unmarshal(ns.Body, &nsDoc)
	if strings.EqualFold(nsDoc.SKU.Name, "Basic") {
		return nil, invalid("SubCode=40000. Cannot operate on type Topic because the namespace '%s' is using 'Basic' tier. Topics need the Standard or Premium tier; update the namespace's sku.", ns.Name)
	}
	if err := checkPathFree(ctx, t.cfg.Resources, req.ID, "queues"); err != nil {
		return nil, err
	}
	body, err := bodyProps(req)
	if err != nil {
		return nil, err
	}
	props, err := buildProps("topic", topicProps, body, storedProps(req.Current), timestamp(t.cfg.Now()))
	if err != nil {
		return nil, err
	}
	props["sizeInBytes"], props["subscriptionCount"], props["countDetails"] = 0, 0, countDetails(0, 0)
	return entityDoc(props), nil
}

// Provision implements arm.ResourceType.
func (t *Topics) Provision(_ context.Context, id arm.ResourceID, doc arm.Document) (arm.Document, error) {
	t.cfg.Runtime.Changed(id.Names[0])
	return doc, nil
}

// Deprovision implements arm.ResourceType: subscriptions go first (the
// framework deletes children deepest first).
func (t *Topics) Deprovision(_ context.Context, res store.Resource) error {
	if id, err := arm.ParseResourceID(res.ID); err == nil {
		t.cfg.Runtime.Changed(id.Names[0])
	}
	return nil
}

// Subscriptions is namespaces/topics/subscriptions; a new one gets the
// $Default rule (TrueFilter), as in Azure.
type Subscriptions struct{ cfg Config }

// Info implements arm.ResourceType.
func (s *Subscriptions) Info() arm.TypeInfo {
	return arm.TypeInfo{Namespace: Namespace, Type: "namespaces/topics/subscriptions", APIVersions: APIVersions(), CreateStatus: http.StatusOK}
}

// Prepare implements arm.ResourceType.
func (s *Subscriptions) Prepare(_ context.Context, req arm.PutRequest) (arm.Document, error) {
	if !shortName.MatchString(req.ID.Name()) || strings.HasPrefix(req.ID.Name(), "$") {
		return nil, invalid("The subscription name '%s' is invalid: use 1-50 letters, digits, '.', '-' or '_', starting and ending with a letter or digit.", req.ID.Name())
	}
	body, err := bodyProps(req)
	if err != nil {
		return nil, err
	}
	props, err := buildProps("subscription", subscriptionProps, body, storedProps(req.Current), timestamp(s.cfg.Now()))
	if err != nil {
		return nil, err
	}
	props["messageCount"], props["countDetails"] = 0, countDetails(0, 0)
	doc := entityDoc(props)
	if req.Current == nil {
		doc.Set(createMarker, true)
	}
	return doc, nil
}

func subscriptionEntity(id arm.ResourceID, body []byte) Entity {
	return Entity{Namespace: id.Names[0], Topic: id.Names[1], Subscription: id.Names[2], Settings: DecodeSettings(body)}
}

// Provision implements arm.ResourceType.
func (s *Subscriptions) Provision(ctx context.Context, id arm.ResourceID, doc arm.Document) (arm.Document, error) {
	if _, ok := doc[createMarker]; ok {
		if err := putImplicit(ctx, s.cfg.Resources, id.String()+"/rules/"+DefaultRuleName, func() (arm.Document, error) {
			d := arm.Document{}
			d.Set("properties", map[string]any{"action": map[string]any{}, "filterType": "SqlFilter",
				"sqlFilter": map[string]any{"sqlExpression": "1=1", "compatibilityLevel": 20}})
			return d, nil
		}); err != nil {
			return nil, err
		}
		delete(doc, createMarker)
	}
	if err := s.cfg.Runtime.EnsureEntity(ctx, subscriptionEntity(id, doc.Bytes())); err != nil {
		return nil, fmt.Errorf("sbresource: provision subscription %s: %w", id, err)
	}
	s.cfg.Runtime.Changed(id.Names[0])
	return doc, nil
}

// Deprovision implements arm.ResourceType.
func (s *Subscriptions) Deprovision(ctx context.Context, res store.Resource) error {
	id, err := arm.ParseResourceID(res.ID)
	if err != nil {
		return fmt.Errorf("sbresource: subscription id %s: %w", res.ID, err)
	}
	if err := s.cfg.Runtime.RemoveEntity(ctx, subscriptionEntity(id, res.Body)); err != nil {
		return fmt.Errorf("sbresource: deprovision subscription %s: %w", id, err)
	}
	s.cfg.Runtime.Changed(id.Names[0])
	return nil
}

// Render implements arm.Renderer.
func (s *Subscriptions) Render(res store.Resource) json.RawMessage {
	doc, err := arm.ParseDocument(res.Body)
	if err != nil {
		return res.Body
	}
	delete(doc, createMarker)
	return doc.Bytes()
}

// Get implements arm.ResourceReader: the stored subscription with counts.
func (s *Subscriptions) Get(ctx context.Context, id arm.ResourceID) (store.Resource, error) {
	res, err := s.cfg.Resources.Get(ctx, id.String())
	if err != nil {
		return res, err
	}
	return withCounts(ctx, s.cfg, res, subscriptionEntity(id, res.Body)), nil
}

// Rules is namespaces/topics/subscriptions/rules: a SqlFilter or a
// CorrelationFilter (and an optional SqlRuleAction, stored but not run).
type Rules struct{ cfg Config }

// Info implements arm.ResourceType.
func (r *Rules) Info() arm.TypeInfo {
	return arm.TypeInfo{Namespace: Namespace, Type: "namespaces/topics/subscriptions/rules", APIVersions: APIVersions(), CreateStatus: http.StatusOK}
}

// CorrelationFilter matches system and user properties exactly.
type CorrelationFilter struct {
	CorrelationID         string            `json:"correlationId,omitempty"`
	MessageID             string            `json:"messageId,omitempty"`
	To                    string            `json:"to,omitempty"`
	ReplyTo               string            `json:"replyTo,omitempty"`
	Label                 string            `json:"label,omitempty"`
	SessionID             string            `json:"sessionId,omitempty"`
	ReplyToSessionID      string            `json:"replyToSessionId,omitempty"`
	ContentType           string            `json:"contentType,omitempty"`
	Properties            map[string]string `json:"properties,omitempty"`
	RequiresPreprocessing *bool             `json:"requiresPreprocessing,omitempty"`
}

// RuleFilter is a decoded rule: exactly one of SQL and Correlation is set.
type RuleFilter struct {
	Name        string
	SQL         *sqlfilter.Filter
	Correlation *CorrelationFilter
}

// DecodeRule reads a stored rule.
func DecodeRule(res store.Resource) (RuleFilter, error) {
	var doc struct {
		Properties struct {
			FilterType string `json:"filterType"`
			SQLFilter  struct {
				SQLExpression string `json:"sqlExpression"`
			} `json:"sqlFilter"`
			CorrelationFilter *CorrelationFilter `json:"correlationFilter"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(res.Body, &doc); err != nil {
		return RuleFilter{}, fmt.Errorf("sbresource: decode rule %s: %w", res.ID, err)
	}
	out := RuleFilter{Name: res.Name}
	if strings.EqualFold(doc.Properties.FilterType, "CorrelationFilter") {
		out.Correlation = doc.Properties.CorrelationFilter
		if out.Correlation == nil {
			out.Correlation = &CorrelationFilter{}
		}
		return out, nil
	}
	f, err := sqlfilter.Parse(doc.Properties.SQLFilter.SQLExpression)
	if err != nil {
		return RuleFilter{}, fmt.Errorf("sbresource: rule %s: %w", res.ID, err)
	}
	out.SQL = f
	return out, nil
}

// Prepare implements arm.ResourceType.
func (r *Rules) Prepare(_ context.Context, req arm.PutRequest) (arm.Document, error) {
	if !shortName.MatchString(req.ID.Name()) {
		return nil, invalid("The rule name '%s' is invalid: use 1-50 letters, digits, '.', '-' or '_'.", req.ID.Name())
	}
	var in struct {
		FilterType string `json:"filterType"`
		SQLFilter  *struct {
			SQLExpression      string `json:"sqlExpression"`
			CompatibilityLevel int    `json:"compatibilityLevel"`
		} `json:"sqlFilter"`
		CorrelationFilter *CorrelationFilter `json:"correlationFilter"`
		Action            *struct {
			SQLExpression string `json:"sqlExpression"`
		} `json:"action"`
	}
	if err := req.Body.Decode("properties", &in); err != nil {
		return nil, invalid("The rule is invalid: %v.", err)
	}
	props := map[string]any{"action": map[string]any{}}
	if in.Action != nil && in.Action.SQLExpression != "" {
		props["action"] = map[string]any{"sqlExpression": in.Action.SQLExpression, "compatibilityLevel": 20}
	}
	filterType := in.FilterType
	if filterType == "" {
		switch {
		case in.CorrelationFilter != nil:
			filterType = "CorrelationFilter"
		default:
			filterType = "SqlFilter"
		}
	}
	switch strings.ToLower(filterType) {
	case "sqlfilter":
		expr := "1=1"
		if in.SQLFilter != nil && strings.TrimSpace(in.SQLFilter.SQLExpression) != "" {
			expr = in.SQLFilter.SQLExpression
		}
		if _, err := sqlfilter.Parse(expr); err != nil {
			return nil, invalid("The SQL filter expression '%s' is invalid: %v.", expr, err)
		}
		props["filterType"] = "SqlFilter"
		props["sqlFilter"] = map[string]any{"sqlExpression": expr, "compatibilityLevel": 20}
	case "correlationfilter":
		if in.CorrelationFilter == nil {
			return nil, invalid("A CorrelationFilter rule needs properties.correlationFilter, e.g. {\"correlationId\": \"order-1\"} or {\"properties\": {\"color\": \"red\"}}.")
		}
		props["filterType"] = "CorrelationFilter"
		props["correlationFilter"] = in.CorrelationFilter
	default:
		return nil, invalid("The filterType '%s' is not supported; use SqlFilter or CorrelationFilter.", in.FilterType)
	}
	return entityDoc(props), nil
}

// Provision implements arm.ResourceType.
func (r *Rules) Provision(_ context.Context, id arm.ResourceID, doc arm.Document) (arm.Document, error) {
	r.cfg.Runtime.Changed(id.Names[0])
	return doc, nil
}

// Deprovision implements arm.ResourceType.
func (r *Rules) Deprovision(_ context.Context, res store.Resource) error {
	if id, err := arm.ParseResourceID(res.ID); err == nil {
		r.cfg.Runtime.Changed(id.Names[0])
	}
	return nil
}
