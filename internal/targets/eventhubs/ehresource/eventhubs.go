package ehresource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/store"
)

// EventHubs is the namespaces/eventhubs type.
type EventHubs struct{ p *Provider }

var _ arm.ResourceType = (*EventHubs)(nil)

// Info implements arm.ResourceType.
func (e *EventHubs) Info() arm.TypeInfo {
	return arm.TypeInfo{Namespace: ProviderNamespace, Type: "namespaces/eventhubs", APIVersions: APIVersions(), CreateStatus: http.StatusOK}
}

// entityName: 1-256 letters, digits, '.', '-' and '_', starting and ending
// with a letter or digit (event hubs and consumer groups alike).
var entityName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,254}[A-Za-z0-9])?$`)

// EventHub statuses that change what the data plane accepts.
const (
	StatusActive          = "Active"
	StatusDisabled        = "Disabled"
	StatusSendDisabled    = "SendDisabled"
	StatusReceiveDisabled = "ReceiveDisabled"
)

var statuses = []string{StatusActive, StatusDisabled, StatusSendDisabled, StatusReceiveDisabled}

type retentionDescription struct {
	CleanupPolicy        string `json:"cleanupPolicy,omitempty"`
	RetentionTimeInHours *int   `json:"retentionTimeInHours,omitempty"`
	// The compaction fields pass through unchanged.
	TombstoneRetentionTimeInHours *int `json:"tombstoneRetentionTimeInHours,omitempty"`
	MinCompactionLagInMins        *int `json:"minCompactionLagInMins,omitempty"`
}

// Prepare implements arm.ResourceType.
func (e *EventHubs) Prepare(ctx context.Context, req arm.PutRequest) (arm.Document, error) {
	name := req.ID.Name()
	if !entityName.MatchString(name) {
		return nil, invalid("The event hub name '%s' is invalid: use 1-256 letters, numbers, periods, hyphens and underscores, starting and ending with a letter or number.", name)
	}
	_, nsDoc, err := e.p.namespaceDoc(ctx, req.ID.ParentID())
	if err != nil {
		return nil, err
	}
	tier := tierOf(nsDoc)
	limits := limitsOf(tier)
	cur, err := currentDoc(req)
	if err != nil {
		return nil, err
	}
	props, err := properties(req.Body)
	if err != nil {
		return nil, err
	}
	var was map[string]json.RawMessage
	if cur != nil {
		was, _ = properties(cur)
	}

	partitions := 4
	if r, ok := props["partitionCount"]; ok && string(r) != "null" {
		if err := json.Unmarshal(r, &partitions); err != nil {
			return nil, invalid("properties.partitionCount must be a whole number, got %s.", r)
		}
	} else if r, ok := was["partitionCount"]; ok {
		_ = json.Unmarshal(r, &partitions)
	}
	if partitions < 1 || partitions > limits.maxPartitions {
		return nil, invalid("properties.partitionCount %d is out of range: the %s tier allows 1 to %d partitions.", partitions, tier, limits.maxPartitions)
	}
	if r, ok := was["partitionCount"]; ok {
		var before int
		_ = json.Unmarshal(r, &before)
		if before != partitions && !(tier == "Premium" && partitions > before) {
			return nil, invalid("The partition count of event hub '%s' can't change from %d to %d: partitions are fixed at creation in the %s tier (only Premium and Dedicated can add partitions, never remove them). Create a new event hub instead.",
				name, before, partitions, tier)
		}
	}

	hours, err := retentionHours(props, was)
	if err != nil {
		return nil, err
	}
	if hours < 1 || hours > limits.maxRetentionHours {
		return nil, invalid("The message retention of %d hours is out of range: the %s tier allows 1 to %d hours (%d days).",
			hours, tier, limits.maxRetentionHours, limits.maxRetentionHours/24)
	}
	var rd retentionDescription
	if r, ok := props["retentionDescription"]; ok && string(r) != "null" {
		_ = json.Unmarshal(r, &rd)
	}
	if rd.CleanupPolicy == "" {
		rd.CleanupPolicy = "Delete"
	}
	if !strings.EqualFold(rd.CleanupPolicy, "Delete") {
		return nil, invalid("retentionDescription.cleanupPolicy '%s' is not supported by Outpost; use Delete (log compaction is not implemented).", rd.CleanupPolicy)
	}
	rd.CleanupPolicy = "Delete"
	rd.RetentionTimeInHours = &hours

	status := StatusActive
	if r, ok := was["status"]; ok {
		_ = json.Unmarshal(r, &status)
	}
	if r, ok := props["status"]; ok && string(r) != "null" {
		if err := json.Unmarshal(r, &status); err != nil {
			return nil, invalid("properties.status must be a string, got %s.", r)
		}
	}
	canon := ""
	for _, s := range statuses {
		if strings.EqualFold(s, status) {
			canon = s
		}
	}
	if canon == "" {
		return nil, invalid("properties.status '%s' is not valid for an event hub; use one of %s.", status, strings.Join(statuses, ", "))
	}

	ids := make([]string, partitions)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	now := e.p.timestamp()
	created := now
	if c := storedString(cur, "createdAt"); c != "" {
		created = c
	}
	props["partitionCount"] = raw(partitions)
	props["partitionIds"] = raw(ids)
	props["messageRetentionInDays"] = raw((hours + 23) / 24)
	props["retentionDescription"] = raw(rd)
	props["status"] = raw(canon)
	props["createdAt"] = raw(created)
	props["updatedAt"] = raw(now)
	doc := arm.Document{}
	doc.Set("properties", props)
	return doc, nil
}

// retentionHours reads the retention: retentionDescription.retentionTimeInHours
// wins over messageRetentionInDays (the older property); default one day.
func retentionHours(props, was map[string]json.RawMessage) (int, error) {
	if r, ok := props["retentionDescription"]; ok && string(r) != "null" {
		var rd retentionDescription
		if err := json.Unmarshal(r, &rd); err != nil {
			return 0, invalid("properties.retentionDescription must be {\"cleanupPolicy\": \"Delete\", \"retentionTimeInHours\": n}: %v.", err)
		}
		if rd.RetentionTimeInHours != nil {
			return *rd.RetentionTimeInHours, nil
		}
	}
	if r, ok := props["messageRetentionInDays"]; ok && string(r) != "null" {
		var days int
		if err := json.Unmarshal(r, &days); err != nil {
			return 0, invalid("properties.messageRetentionInDays must be a whole number, got %s.", r)
		}
		return days * 24, nil
	}
	if r, ok := was["retentionDescription"]; ok {
		var rd retentionDescription
		if json.Unmarshal(r, &rd) == nil && rd.RetentionTimeInHours != nil {
			return *rd.RetentionTimeInHours, nil
		}
	}
	return 24, nil
}

// specOf reads the runtime spec of a stored event hub.
func specOf(id arm.ResourceID, doc arm.Document) EventHubSpec {
	var p struct {
		PartitionCount       int                  `json:"partitionCount"`
		RetentionDescription retentionDescription `json:"retentionDescription"`
		Days                 int                  `json:"messageRetentionInDays"`
	}
	_ = doc.Decode("properties", &p)
	hours := p.Days * 24
	if p.RetentionDescription.RetentionTimeInHours != nil {
		hours = *p.RetentionDescription.RetentionTimeInHours
	}
	if hours <= 0 {
		hours = 24
	}
	return EventHubSpec{Namespace: namespaceOf(id), Name: id.Name(), PartitionCount: p.PartitionCount, Retention: time.Duration(hours) * time.Hour}
}

// Provision implements arm.ResourceType: the event hub's streams exist.
func (e *EventHubs) Provision(ctx context.Context, id arm.ResourceID, doc arm.Document) (arm.Document, error) {
	if err := e.p.cfg.Runtime.EnsureEventHub(ctx, specOf(id, doc)); err != nil {
		return nil, fmt.Errorf("ehresource: provision event hub %s: %w", id, err)
	}
	e.p.cfg.Changed(namespaceOf(id))
	return doc, nil
}

// Deprovision implements arm.ResourceType: the streams and their events go.
func (e *EventHubs) Deprovision(ctx context.Context, res store.Resource) error {
	id, err := arm.ParseResourceID(res.ID)
	if err != nil {
		return fmt.Errorf("ehresource: deprovision %s: %w", res.ID, err)
	}
	doc, err := arm.ParseDocument(res.Body)
	if err != nil {
		return fmt.Errorf("ehresource: deprovision %s: %w", res.ID, err)
	}
	if err := e.p.cfg.Runtime.RemoveEventHub(ctx, specOf(id, doc)); err != nil {
		return fmt.Errorf("ehresource: deprovision event hub %s: %w", res.ID, err)
	}
	e.p.cfg.Changed(namespaceOf(id))
	return nil
}

// ConsumerGroups is namespaces/eventhubs/consumergroups; $Default always
// exists and is never stored.
type ConsumerGroups struct{ p *Provider }

var (
	_ arm.ResourceType     = (*ConsumerGroups)(nil)
	_ arm.ResourceReader   = (*ConsumerGroups)(nil)
	_ arm.CollectionLister = (*ConsumerGroups)(nil)
)

// Info implements arm.ResourceType.
func (c *ConsumerGroups) Info() arm.TypeInfo {
	return arm.TypeInfo{Namespace: ProviderNamespace, Type: "namespaces/eventhubs/consumergroups", APIVersions: APIVersions(), CreateStatus: http.StatusOK}
}

// maxConsumerGroups per event hub, by tier (Azure's quotas).
var maxConsumerGroups = map[string]int{"Basic": 1, "Standard": 20, "Premium": 100}

// Prepare implements arm.ResourceType.
func (c *ConsumerGroups) Prepare(ctx context.Context, req arm.PutRequest) (arm.Document, error) {
	name := req.ID.Name()
	if strings.EqualFold(name, DefaultConsumerGroup) {
		return nil, invalid("The $Default consumer group always exists and can't be changed.")
	}
	if len(name) > 50 || !entityName.MatchString(name) {
		return nil, invalid("The consumer group name '%s' is invalid: use 1-50 letters, numbers, periods, hyphens and underscores, starting and ending with a letter or number.", name)
	}
	ehID, err := arm.ParseResourceID(req.ID.ParentID())
	if err != nil {
		return nil, fmt.Errorf("ehresource: consumer group parent: %w", err)
	}
	_, nsDoc, err := c.p.namespaceDoc(ctx, ehID.ParentID())
	if err != nil {
		return nil, err
	}
	tier := tierOf(nsDoc)
	if req.Current == nil {
		if !limitsOf(tier).extraConsumerGroups {
			return nil, arm.Errorf(http.StatusBadRequest, "QuotaExceeded",
				"The Basic tier has only the $Default consumer group; upgrade the namespace to Standard to create '%s'.", name)
		}
		existing, err := c.p.cfg.Resources.List(ctx, store.ResourceFilter{ParentID: ehID.String(), Type: TypeConsumerGroup})
		if err != nil {
			return nil, fmt.Errorf("ehresource: list consumer groups: %w", err)
		}
		if len(existing)+1 >= maxConsumerGroups[tier] {
			return nil, arm.Errorf(http.StatusBadRequest, "QuotaExceeded",
				"The event hub '%s' already has %d consumer groups, the most the %s tier allows (including $Default). Delete one first.", ehID.Name(), len(existing)+1, tier)
		}
	}
	cur, err := currentDoc(req)
	if err != nil {
		return nil, err
	}
	props, err := properties(req.Body)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	if r, ok := props["userMetadata"]; ok && string(r) != "null" {
		var meta string
		if err := json.Unmarshal(r, &meta); err != nil || len(meta) > 1024 {
			return nil, invalid("properties.userMetadata must be a string of at most 1024 characters.")
		}
		out["userMetadata"] = meta
	}
	now := c.p.timestamp()
	created := now
	if s := storedString(cur, "createdAt"); s != "" {
		created = s
	}
	out["createdAt"], out["updatedAt"] = created, now
	doc := arm.Document{}
	doc.Set("properties", out)
	return doc, nil
}

// Provision implements arm.ResourceType.
func (c *ConsumerGroups) Provision(_ context.Context, id arm.ResourceID, doc arm.Document) (arm.Document, error) {
	c.p.cfg.Changed(namespaceOf(id))
	return doc, nil
}

// Deprovision implements arm.ResourceType.
func (c *ConsumerGroups) Deprovision(_ context.Context, res store.Resource) error {
	if id, err := arm.ParseResourceID(res.ID); err == nil {
		c.p.cfg.Changed(namespaceOf(id))
	}
	return nil
}

func (c *ConsumerGroups) defaultGroup(id arm.ResourceID, created string) store.Resource {
	doc := arm.Document{}
	doc.Set("id", id.String())
	doc.Set("name", DefaultConsumerGroup)
	doc.Set("type", TypeConsumerGroup)
	doc.Set("properties", map[string]string{"createdAt": created, "updatedAt": created})
	return store.Resource{ID: id.String(), Type: TypeConsumerGroup, Subscription: id.Subscription, ResourceGroup: id.ResourceGroup,
		ParentID: id.ParentID(), Name: DefaultConsumerGroup, Body: doc.Bytes()}
}

// createdOf is the event hub's createdAt, which $Default shares.
func (c *ConsumerGroups) createdOf(ctx context.Context, ehID string) (string, error) {
	res, err := c.p.cfg.Resources.Get(ctx, ehID)
	if err != nil {
		return "", err
	}
	doc, err := arm.ParseDocument(res.Body)
	if err != nil {
		return "", fmt.Errorf("ehresource: decode %s: %w", ehID, err)
	}
	return storedString(doc, "createdAt"), nil
}

// Get implements arm.ResourceReader.
func (c *ConsumerGroups) Get(ctx context.Context, id arm.ResourceID) (store.Resource, error) {
	if strings.EqualFold(id.Name(), DefaultConsumerGroup) {
		created, err := c.createdOf(ctx, id.ParentID())
		if err != nil {
			return store.Resource{}, err
		}
		return c.defaultGroup(id, created), nil
	}
	return c.p.cfg.Resources.Get(ctx, id.String())
}

// List implements arm.CollectionLister: $Default and the stored groups.
func (c *ConsumerGroups) List(ctx context.Context, coll arm.ResourceID, _ url.Values) ([]store.Resource, error) {
	created, err := c.createdOf(ctx, coll.ParentID())
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	def := coll
	def.Names = append(append([]string{}, coll.Names...), DefaultConsumerGroup)
	stored, err := c.p.cfg.Resources.List(ctx, store.ResourceFilter{ParentID: coll.ParentID(), Type: TypeConsumerGroup})
	if err != nil {
		return nil, fmt.Errorf("ehresource: list consumer groups: %w", err)
	}
	return append([]store.Resource{c.defaultGroup(def, created)}, stored...), nil
}
