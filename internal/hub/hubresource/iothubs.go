package hubresource

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/identity/msi"
	"github.com/outpost-iot/outpost/internal/store"
)

// Type is the ARM type served here.
const Type = "Microsoft.Devices/IotHubs"

// Identities applies the identity block; *msi.Manager implements it.
type Identities interface {
	Prepare(ctx context.Context, req arm.PutRequest) (msi.Block, error)
	Provision(ctx context.Context, resourceID string, b msi.Block) (msi.Block, error)
	Deprovision(ctx context.Context, resourceID string) error
}

// ResourceLister lists stored resources; store.Resources implements it.
// Hub names are host names, so they must be unique across the whole
// installation, not just a resource group: the type looks at every hub.
type ResourceLister interface {
	List(ctx context.Context, filter store.ResourceFilter) ([]store.Resource, error)
}

// Config holds the type's dependencies.
type Config struct {
	// DNSSuffix makes host names: {hub}.{DNSSuffix}.
	DNSSuffix  string
	Identities Identities
	Resources  ResourceLister
	// Runtime follows hubs as they are provisioned and deleted
	// (NopRuntime when nil).
	Runtime Runtime
	// Devices answers IotHubStats (NoDevices when nil).
	Devices DeviceCounter
	// MinBatchSeconds is the lowest storage endpoint batchFrequencyInSeconds
	// accepted (60, Azure's, when 0; a server setting lowers it for tests).
	MinBatchSeconds int64
	// RoutingHealth reports a hub's routing endpoint health (nil: none).
	RoutingHealth func(hub string) any
	// CheckCondition validates route conditions when they are saved (nil
	// accepts any).
	CheckCondition func(string) error
	// FileUpload checks changed file upload storage settings with a real
	// call (nil skips the check).
	FileUpload FileUploadChecker
	// Jobs runs the exportDevices and importDevices actions and answers
	// the jobs read (nil answers the actions 501 and lists no jobs).
	Jobs JobStarter
	// Locations are the accepted locations (arm.DefaultLocations when nil).
	Locations []arm.Location
	// Now defaults to time.Now; Random (key material) to crypto/rand.
	Now    func() time.Time
	Random io.Reader
}

// FileUploadChecker reaches the file upload container with the credentials
// the settings name — the hub's identity or the account key — and says
// exactly what is missing (role, network rule, container) when it can't.
// storage is the hub's properties.storageEndpoints.$default as it will be
// stored.
type FileUploadChecker interface {
	CheckFileUpload(ctx context.Context, hubID string, storage json.RawMessage) error
}

// IotHubs is the Microsoft.Devices/IotHubs resource type.
type IotHubs struct {
	cfg Config
}

var (
	_ arm.ResourceType = (*IotHubs)(nil)
	_ arm.ActionType   = (*IotHubs)(nil)
	_ arm.Renderer     = (*IotHubs)(nil)
)

// New builds the resource type.
func New(cfg Config) *IotHubs {
	if cfg.Runtime == nil {
		cfg.Runtime = NopRuntime{}
	}
	if cfg.Devices == nil {
		cfg.Devices = NoDevices{}
	}
	if cfg.MinBatchSeconds <= 0 {
		cfg.MinBatchSeconds = 60
	}
	if cfg.Locations == nil {
		cfg.Locations = arm.DefaultLocations()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Random == nil {
		cfg.Random = rand.Reader
	}
	return &IotHubs{cfg: cfg}
}

// Info implements arm.ResourceType.
func (h *IotHubs) Info() arm.TypeInfo {
	return arm.TypeInfo{
		Namespace: "Microsoft.Devices", Type: "IotHubs",
		APIVersions:  APIVersions(),
		LongRunning:  true,
		Actions:      []string{"listkeys", "exportDevices", "importDevices"},
		Reads:        []string{"IotHubStats", "skus", "quotaMetrics", "routingEndpointsHealth", "jobs"},
		Capabilities: "SupportsTags, SupportsLocation",
	}
}

// Prepare implements arm.ResourceType: it validates a PUT and returns the
// hub to store, keys and server-filled settings included.
func (h *IotHubs) Prepare(ctx context.Context, req arm.PutRequest) (arm.Document, error) {
	name := req.ID.Name()
	if problem := nameProblem(name); problem != "" {
		return nil, errInvalidName(name, problem)
	}
	if err := h.checkNameFree(ctx, req.ID); err != nil {
		return nil, err
	}
	body := object(req.Body)
	var current object
	if req.Current != nil {
		doc, err := arm.ParseDocument(req.Current.Body)
		if err != nil {
			return nil, fmt.Errorf("hubresource: decode stored hub %s: %w", req.Current.ID, err)
		}
		current = object(doc)
	}
	location, err := h.location(req, current)
	if err != nil {
		return nil, err
	}
	sku, limits, err := prepareSKU(body, current)
	if err != nil {
		return nil, err
	}
	block, err := h.cfg.Identities.Prepare(ctx, req)
	if err != nil {
		return nil, err
	}
	keepPrincipalIDs(&block, current)
	var tags map[string]string
	if raw, ok := body.get("tags"); ok {
		if err := json.Unmarshal(raw, &tags); err != nil {
			return nil, invalid("tags must be an object of string values, got %s.", abbreviate(raw))
		}
	}
	if tags == nil {
		tags = map[string]string{}
	}
	propsBody := object{}
	if raw, ok := body.get("properties"); ok {
		if propsBody, err = decodeObject(raw, "properties"); err != nil {
			return nil, err
		}
	}
	var currentProps object
	if current != nil {
		currentProps, _ = current.sub("properties", "")
	}
	b := &propertiesBuilder{
		name: name, location: location, dnsSuffix: h.cfg.DNSSuffix, body: propsBody, current: currentProps,
		sku: limits, identity: block, random: h.cfg.Random,
		minBatchSeconds: h.cfg.MinBatchSeconds, checkCondition: h.cfg.CheckCondition,
	}
	props, err := b.build()
	if err != nil {
		return nil, err
	}
	if err := h.checkFileUpload(ctx, req, b, props, currentProps); err != nil {
		return nil, err
	}
	id := req.ID
	if req.Current != nil {
		if cid, err := arm.ParseResourceID(req.Current.ID); err == nil {
			id = cid // the first spelling stays, as in ARM
		}
	}
	doc := arm.Document{}
	doc.Set("location", location)
	doc.Set("tags", tags)
	doc.Set("sku", sku)
	doc.Set("identity", block)
	doc.Set("properties", props)
	// az reads the resource group from here when -g is omitted.
	doc.Set("resourcegroup", id.ResourceGroup)
	doc.Set("subscriptionid", id.Subscription)
	doc.Set("systemData", h.systemData(req.Principal, current))
	return doc, nil
}

// checkFileUpload runs the FileUploadChecker when an existing hub's file
// upload storage settings change. On create the hub's identities don't exist
// yet, so there is nothing to check them with; the settings are checked
// the first time an update changes them (Azure's flow too: enable the
// identity, grant its role, then save the file upload settings).
func (h *IotHubs) checkFileUpload(ctx context.Context, req arm.PutRequest, b *propertiesBuilder, props, currentProps object) error {
	if h.cfg.FileUpload == nil || req.Current == nil || !b.fileUploadReady {
		return nil
	}
	next := storageDefault(props)
	if next == nil || string(next) == string(storageDefault(currentProps)) {
		return nil
	}
	if err := h.cfg.FileUpload.CheckFileUpload(ctx, req.ID.String(), next); err != nil {
		return invalid("The file upload storage settings were not saved: %v", err)
	}
	return nil
}

// storageDefault is properties.storageEndpoints.$default, nil when absent.
func storageDefault(props object) json.RawMessage {
	if props == nil {
		return nil
	}
	eps, err := props.sub("storageEndpoints", "properties")
	if err != nil || eps == nil {
		return nil
	}
	def, _ := eps.get("$default")
	return def
}

// checkNameFree refuses a name another hub of the installation holds.
func (h *IotHubs) checkNameFree(ctx context.Context, id arm.ResourceID) error {
	other, found, err := h.findHub(ctx, id.Name())
	if err != nil {
		return err
	}
	if found && store.Key(other.ID) != store.Key(id.String()) {
		return errNameNotAvailable(id.Name())
	}
	return nil
}

// findHub finds the hub of a name in any subscription.
func (h *IotHubs) findHub(ctx context.Context, name string) (store.Resource, bool, error) {
	return store.FindByName(ctx, h.cfg.Resources, Type, name)
}

// location validates the location: required, a known region, and fixed
// once the hub exists.
func (h *IotHubs) location(req arm.PutRequest, current object) (string, error) {
	stored := ""
	if current != nil {
		stored, _, _ = current.str("location", "")
	}
	return arm.ResolveLocation(h.cfg.Locations, Type, req.ID, req.Body.String("location"), stored)
}

// keepPrincipalIDs shows the ids the identities already have while the
// update is provisioned (Provision sets them again).
func keepPrincipalIDs(b *msi.Block, current object) {
	if current == nil {
		return
	}
	var was msi.Block
	if raw, ok := current.get("identity"); ok {
		_ = json.Unmarshal(raw, &was)
	}
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

func (h *IotHubs) systemData(p arm.Principal, current object) map[string]string {
	now := h.cfg.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	by, byType := p.AppID, "Application"
	switch p.Type {
	case "User":
		by, byType = p.ObjectID, "User"
	case "ManagedIdentity":
		byType = "ManagedIdentity"
	}
	if by == "" {
		by = p.ObjectID
	}
	sd := map[string]string{"createdByType": byType, "createdAt": now, "lastModifiedByType": byType, "lastModifiedAt": now}
	if by != "" {
		sd["createdBy"], sd["lastModifiedBy"] = by, by
	}
	if current != nil {
		var was map[string]string
		if raw, ok := current.get("systemData"); ok && json.Unmarshal(raw, &was) == nil {
			for _, k := range []string{"createdBy", "createdByType", "createdAt"} {
				if v := was[k]; v != "" {
					sd[k] = v
				}
			}
		}
	}
	return sd
}

// Provision implements arm.ResourceType: the system-assigned identity
// follows the block, then the hub runtime follows the hub.
func (h *IotHubs) Provision(ctx context.Context, id arm.ResourceID, doc arm.Document) (arm.Document, error) {
	var block msi.Block
	if err := doc.Decode("identity", &block); err != nil {
		return nil, fmt.Errorf("hubresource: provision %s: %w", id, err)
	}
	block, err := h.cfg.Identities.Provision(ctx, id.String(), block)
	if err != nil {
		return nil, fmt.Errorf("hubresource: provision %s: %w", id, err)
	}
	doc.Set("identity", block)
	props, err := object(doc).sub("properties", "")
	if err != nil || props == nil {
		return nil, fmt.Errorf("hubresource: provision %s: stored hub has no properties", id)
	}
	hub := Hub{Name: id.Name(), ResourceID: id.String()}
	hub.HostName, _, _ = props.str("hostName", "properties")
	if eh, _ := props.sub("eventHubEndpoints", "properties"); eh != nil {
		if ev, _ := eh.sub("events", "eventHubEndpoints"); ev != nil {
			n, _, _ := ev.integer("partitionCount", "events")
			d, _, _ := ev.integer("retentionTimeInDays", "events")
			hub.PartitionCount, hub.RetentionDays = int(n), int(d)
		}
	}
	if err := h.cfg.Runtime.EnsureHub(ctx, hub); err != nil {
		return nil, fmt.Errorf("hubresource: start hub %s: %w", id.Name(), err)
	}
	props.set("state", "Active")
	doc.Set("properties", props)
	return doc, nil
}

// Deprovision implements arm.ResourceType.
func (h *IotHubs) Deprovision(ctx context.Context, res store.Resource) error {
	if err := h.cfg.Identities.Deprovision(ctx, res.ID); err != nil {
		return fmt.Errorf("hubresource: deprovision %s: %w", res.ID, err)
	}
	if err := h.cfg.Runtime.RemoveHub(ctx, res.Name); err != nil {
		return fmt.Errorf("hubresource: stop hub %s: %w", res.Name, err)
	}
	return nil
}

// Render implements arm.Renderer: keys never leave through GET, PUT or
// list ("security-related properties are set to null"); listkeys has them.
func (h *IotHubs) Render(res store.Resource) json.RawMessage {
	doc, err := arm.ParseDocument(res.Body)
	if err != nil {
		return res.Body
	}
	props, err := object(doc).sub("properties", "")
	if err != nil || props == nil {
		return res.Body
	}
	props["authorizationPolicies"] = json.RawMessage("null")
	doc.Set("properties", props)
	if _, ok := doc["identity"]; !ok {
		doc.Set("identity", msi.Block{Type: msi.TypeNone})
	}
	return doc.Bytes()
}

// policiesOf returns the stored shared access policies of a hub.
func policiesOf(res store.Resource) ([]Policy, error) {
	doc, err := arm.ParseDocument(res.Body)
	if err != nil {
		return nil, fmt.Errorf("hubresource: decode %s: %w", res.ID, err)
	}
	props, err := object(doc).sub("properties", "")
	if err != nil || props == nil {
		return nil, errors.New("hubresource: stored hub has no properties")
	}
	var ps []Policy
	if raw, ok := props.get("authorizationPolicies"); ok {
		if err := json.Unmarshal(raw, &ps); err != nil {
			return nil, fmt.Errorf("hubresource: decode policies of %s: %w", res.ID, err)
		}
	}
	return ps, nil
}
